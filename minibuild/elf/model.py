"""The values the resolver takes and returns (the public API of minibuild.elf)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from minibuild.entry import TreeEntry

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class ResolveOptions:
    """Everything about the *image* (not the build host) that changes what the loader opens."""

    env: Mapping[str, str] | tuple = ()  # the image's environment; stored as sorted (key, value) pairs
    workdir: str = "/"  # container WorkingDir: relative paths and empty RUNPATH elements
    cpu_level: str | None = None  # e.g. "x86-64-v3"; None = baseline CPU + copy every glibc-hwcaps variant
    check_versions: bool = True  # G17: DT_VERNEED of each object satisfied by its provider's DT_VERDEF
    platform: str | None = None  # $PLATFORM (AT_PLATFORM); None = baseline, and copy other candidates
    allow_missing: bool = False  # report unresolvable libraries in Closure.missing instead of raising
    # Files in the image that are not in the sysroot: (in-image path, host path) pairs, e.g. a program
    # a genrule compiled, shipped as a binary. They are resolved like sysroot files.
    overlay: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        env = self.env
        pairs = tuple(sorted(env.items())) if isinstance(env, Mapping) else tuple(sorted(tuple(p) for p in env))
        object.__setattr__(self, "env", pairs)
        object.__setattr__(self, "overlay", tuple(sorted(tuple(p) for p in self.overlay)))

    @property
    def environ(self) -> dict[str, str]:
        return dict(self.env)


@dataclass(frozen=True)
class LoadedObject:
    """One object the loader maps, as it would map it."""

    path: str  # the path string that was opened (in-image)
    realpath: str  # symlink-resolved, in-image
    names: tuple[str, ...]  # names it was requested by
    loader: str | None  # path of the object that first required it (None for roots)
    needed: tuple[tuple[str, str | None], ...]  # (DT_NEEDED name, path opened or None)
    machine: str  # e.g. "EM_X86_64"
    elfclass: int
    is_interpreter: bool = False
    soname: str | None = None
    variant_of: str | None = None  # glibc-hwcaps or $PLATFORM alternative of this object path
    via: str = "needed"  # how it was found: root, interp, needed, preload, hwcaps, platform
    found_in: str | None = None  # rule that found it: "RPATH of X", "RUNPATH", "ld.so.cache", "default", ...


@dataclass(frozen=True)
class Closure:
    roots: tuple[str, ...]
    objects: tuple[LoadedObject, ...]  # load order (breadth-first), roots one after the other
    entries: tuple[TreeEntry, ...]  # the copy plan, sorted by path
    probed: tuple[str, ...]  # every in-image path looked at, existing or not (sorted, unique)
    warnings: tuple[str, ...]
    architecture: str | None
    variant: str | None
    missing: tuple[tuple[str, str], ...] = ()  # (requester path, name) when options.allow_missing
    interpreters: tuple[tuple[str, str | None], ...] = ()  # (root, PT_INTERP string or None)
    scripts: tuple[tuple[str, str], ...] = ()  # (script path, program it runs): `#!` and `env NAME`
    cache_only: tuple[str, ...] = field(default=())  # objects found only through ld.so.cache (G15)
