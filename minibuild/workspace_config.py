"""The schema of `workspace.toml` (pydantic; imported only when a workspace's configuration is read)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class PlatformConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    sysroot: str


class WorkspaceSection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = "workspace"
    sysroot: str = "/"


class RulesSection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    load: tuple[str, ...] = ()


class CacheSection(BaseModel):
    """`[cache]`: the remote cache shared by a team (docs/remote-cache.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    remote: str | None = None  # http(s)://host/path (Bazel HTTP cache), grpc(s)://host:port (REAPI v2)
    instance: str = ""  # the REAPI instance name
    read: bool = True
    write: bool = True
    headers_file: str | None = None  # `Name: value` lines sent with every request (credentials), never printed
    ca_file: str | None = None  # a private CA's certificates (PEM), for https:// and grpcs://
    timeout: float = Field(default=10.0, gt=0, le=3600)  # seconds for one request
    connections: int = Field(default=8, ge=1, le=64)  # requests at once


class WorkspaceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    workspace: WorkspaceSection = WorkspaceSection()
    platforms: dict[str, PlatformConfig] = {}
    rules: RulesSection = RulesSection()
    cache: CacheSection = CacheSection()
