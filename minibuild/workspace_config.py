"""The schema of `workspace.toml` (pydantic; imported only when a workspace's configuration is read)."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from minibuild.sizes import parse_size


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
    """`[cache]`: the remote cache shared by a team (docs/remote-cache.md), the local cache's limit (docs/cache.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    remote: str | None = None  # http(s)://host/path (Bazel HTTP cache), grpc(s)://host:port (REAPI v2),
    #                            oci://host/repository (an OCI registry)
    instance: str = ""  # the REAPI instance name
    read: bool = True
    write: bool = True
    headers_file: str | None = None  # `Name: value` lines sent with every request (credentials), never printed
    ca_file: str | None = None  # a private CA's certificates (PEM), for https://, grpcs:// and oci+https://
    timeout: float = Field(default=10.0, gt=0, le=3600)  # seconds for one request
    connections: int = Field(default=8, ge=1, le=64)  # requests at once
    max_size: int | None = None  # bytes ("5GiB" in TOML): the local cache is cut to it after a build that ran actions

    @field_validator("max_size", mode="before")
    @classmethod
    def _max_size(cls, v: object) -> int | None:
        return None if v is None else parse_size(v)


class DebianSource(BaseModel):
    """`debian = { suite, components, architectures }` of a package sysroot (docs/packages.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    suite: str
    components: tuple[str, ...] = ("main",)
    architectures: tuple[str, ...]

    @field_validator("suite", "components", "architectures")
    @classmethod
    def _names(cls, v: str | tuple[str, ...]) -> str | tuple[str, ...]:
        for name in (v,) if isinstance(v, str) else v:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
                raise ValueError(f"`{name}` is not a Debian suite, component or architecture name")
        if not v:
            raise ValueError("name at least one")
        return v


class SysrootConfig(BaseModel):
    """`[sysroots.NAME]`: a sysroot made of Debian packages, pinned by `minibuild.lock` (docs/packages.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    debian: DebianSource
    packages: tuple[str, ...]
    url: str | None = None  # the mirror; None: the one the host's apt sources name
    keyring: str | tuple[str, ...] | None = None  # None: Debian's archive keyring
    essential: bool = False  # add every `Essential: yes` package too

    @field_validator("packages")
    @classmethod
    def _packages(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for name in v:
            if not re.fullmatch(r"[a-z0-9][a-z0-9+.-]+", name):
                raise ValueError(f"`{name}` is not a Debian package name (lower case, digits, `+`, `-`, `.`)")
        if not v:
            raise ValueError("name at least one package")
        return v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", v):
            raise ValueError(f"`{v}` is not an http:// or https:// URL")
        return v


ATTACHMENTS = ("signature", "provenance", "sbom")


class SigningSection(BaseModel):
    """`[signing]`: what `minibuild push` signs with and attaches to the images it pushes (docs/signing.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    key: str | None = None  # the private key (relative to the workspace root); set: every push signs
    attach: tuple[str, ...] = ATTACHMENTS  # of "signature", "provenance" (SLSA v1), "sbom" (SPDX)
    builder_id: str | None = None  # the SLSA builder id; None: minibuild's own

    @field_validator("attach")
    @classmethod
    def _attach(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for name in v:
            if name not in ATTACHMENTS:
                raise ValueError(f"`{name}` is not one of " + ", ".join(f"`{a}`" for a in ATTACHMENTS))
        if not v:
            raise ValueError("name at least one of " + ", ".join(f"`{a}`" for a in ATTACHMENTS))
        return v


class WorkspaceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    workspace: WorkspaceSection = WorkspaceSection()
    platforms: dict[str, PlatformConfig] = {}
    rules: RulesSection = RulesSection()
    cache: CacheSection = CacheSection()
    sysroots: dict[str, SysrootConfig] = {}
    signing: SigningSection = SigningSection()

    @field_validator("sysroots")
    @classmethod
    def _sysroot_names(cls, v: dict[str, SysrootConfig]) -> dict[str, SysrootConfig]:
        for name in v:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
                raise ValueError(f"sysroot name `{name}`: letters, digits, `_`, `-` and `.` only")
        return v
