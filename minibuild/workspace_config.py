"""The schema of `workspace.toml` (pydantic; imported only when a workspace's configuration is read)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


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


class WorkspaceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    workspace: WorkspaceSection = WorkspaceSection()
    platforms: dict[str, PlatformConfig] = {}
    rules: RulesSection = RulesSection()
