"""The params of the image actions: what the `image` rule decides at analysis time and the actions read.

Frozen values; the engine hashes them (as canonical JSON, artifacts by path) into each action's key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from minibuild.actions import Artifact
from minibuild.image.runtime.accounts import AccountsSpec


@dataclass(frozen=True)
class FileParam:
    """A file of the image's own (`files`): where it goes, its mode, the artifact with its bytes."""

    dest: str
    mode: int
    input: Artifact
    origin: str
    owner: str = ""  # "NAME", "NAME:GROUP", "UID:GID"; "": root


@dataclass(frozen=True)
class DirParam:
    """A directory the image holds, empty unless something else puts files in it (`dirs`)."""

    path: str
    mode: int
    owner: str
    origin: str
    if_absent: bool = False  # a `volumes` path no `dirs` entry declares: made root's 0755 only if the image lacks it


@dataclass(frozen=True)
class TreeParam:
    src: str
    exclude: tuple[str, ...] = ()
    include: tuple[str, ...] = ()


@dataclass(frozen=True)
class SysrootFileParam:
    """A `files` entry with `from = "sysroot"`: a file of the sysroot at `dest` (its own path by default)."""

    src: str
    dest: str
    mode: int | None  # None: the sysroot file's own
    owner: str  # "NAME", "NAME:GROUP", "UID:GID"; "": root
    origin: str


@dataclass(frozen=True)
class PackageParam:
    """A `packages` entry: a Debian package of the sysroot whose files the image takes."""

    name: str
    docs: bool = False  # keep /usr/share/doc, man, info and locale
    exclude: tuple[str, ...] = ()  # names or absolute paths left out, as `trees`' exclude


@dataclass(frozen=True)
class RuntimeParams:
    """The runtime-file attributes of an image (docs/runtime.md); None means "decide from the closure"."""

    nsswitch: bool | None = None
    nsswitch_conf: Artifact | None = None  # an /etc/nsswitch.conf the image ships itself
    ca_certificates: bool | None = None
    tzdata: bool | tuple[str, ...] | None = None
    terminfo: bool | tuple[str, ...] | None = None
    libgcc_s: bool | None = None
    python_stdlib: str = "minimal"
    python_packages: tuple[str, ...] = ()
    gconv: bool | tuple[str, ...] | None = None
    locales: bool | tuple[str, ...] | None = None
    trees: tuple[TreeParam, ...] = ()
    packages: tuple[PackageParam, ...] = ()
    sysroot_files: tuple[SysrootFileParam, ...] = ()
    shell: bool | None = None


@dataclass(frozen=True)
class ProbeParams:
    """`probe`: commands run in the image as it is built (docs/probe.md)."""

    commands: tuple[tuple[str, ...], ...]
    timeout: int
    user: str  # as the config says it ("65532:65532")
    ld_so_cache: bool
    platform_arch: str | None
    files: tuple[FileParam, ...]


@dataclass(frozen=True)
class ClosureParams:
    paths: tuple[str, ...]  # in-image paths of the binaries
    sysroot: str
    env: Mapping[str, str]
    workdir: str
    platform: str | None
    overlay: Mapping[str, Artifact]  # in-image path -> a built program shipped there
    runtime: RuntimeParams
    probe: ProbeParams | None = None
    # `loaded_before`: (library, objects a process loads before it) pairs (docs/loader.md#g19)
    loaded_before: tuple[tuple[str, tuple[str, ...]], ...] = ()
    accounts: AccountsSpec = AccountsSpec()  # /etc/passwd and /etc/group (docs/runtime.md)
    # A package sysroot's sysroot.json (the Sysroot action's): `sysroot` is then its name, and `sysroot_dir`, set
    # when the action runs (never part of the key), the directory of its unpacked tree.
    package_sysroot: Artifact | None = None
    sysroot_dir: str | None = None
    # The paths of each `packages` entry as the sysroot's package database lists them: read when the action runs
    # (the database files are discovered inputs), never part of the key.
    package_paths: Mapping[str, tuple[str, ...]] | None = None


@dataclass(frozen=True)
class DpkgStatusParams:
    """`dpkg_status = true`: where the Layers action learns which package owns each file of the sysroot."""

    sysroot: str  # a host sysroot as the workspace names it: its dpkg database is read
    document: Artifact | None = None  # a package sysroot's sysroot.json instead (`sysroot` is then its name)


@dataclass(frozen=True)
class LayersParams:
    closure: Artifact
    files: tuple[FileParam, ...]
    base_layers: Artifact | None
    layering: str  # "shared" | "single"
    ld_so_cache: bool
    allow_secrets: tuple[str, ...]  # image paths, directories or globs of the secrets meant to ship
    keep_setuid: bool
    max_size: int | None
    compression: str  # "gzip" | "zstd" | "none"
    gzip_level: int
    epoch: int
    dpkg_status: DpkgStatusParams | None = None
    dirs: tuple[DirParam, ...] = ()
    links: tuple[tuple[str, str, str], ...] = ()  # `links`: (path, target, origin), made before anything else
    tree_owners: tuple[tuple[str, str], ...] = ()  # (a `trees` src, its owner): everything at or below it
    sysroot_files: tuple[SysrootFileParam, ...] = ()  # their mode and owner, applied to what the closure added


@dataclass(frozen=True)
class ConfigParams:
    """The image config fields a BUILD file sets (the OCI config's `config` object)."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ()  # "KEY=value"
    workdir: str = ""
    user: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    exposed_ports: tuple[str, ...] = ()
    stop_signal: str = ""
    volumes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImageParams:
    layers: Artifact
    tag: str
    epoch: int
    platform: str | None
    config: ConfigParams
    annotations: Mapping[str, str]
    base_config: Artifact | None
    config_out: Artifact
    manifest_out: Artifact
    tarball_out: Artifact | None  # a multi-platform image writes its tarball with the index


@dataclass(frozen=True)
class PlatformParams:
    platform: str
    config: Artifact
    manifest: Artifact
    layers: Artifact


@dataclass(frozen=True)
class IndexParams:
    images: tuple[PlatformParams, ...]
    tag: str
    epoch: int
    annotations: Mapping[str, str]
    index_out: Artifact
    tarball_out: Artifact


def names(value: Any) -> Any:
    """A list attribute as a tuple (hashable, frozen); other values as they are."""
    return tuple(value) if isinstance(value, list) else value
