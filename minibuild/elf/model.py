"""The values the resolver takes and returns (the public API of minibuild.elf)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from minibuild.entry import TreeEntry

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class LoadOrder:
    """G19: objects one process loaded, in that order (`paths` are in-image, symlinks allowed); `source` says
    who saw or declared it (`probe `app``, `` `loaded_before` of //app:x ``)."""

    paths: tuple[str, ...]
    source: str


@dataclass(frozen=True)
class LoadedMatch:
    """G19: a DT_NEEDED name of a library root satisfied by an object its process had loaded before it."""

    requester: str  # the object whose DT_NEEDED (or filter) entry it is
    name: str
    provider: str  # path of the object already loaded
    root: str  # the library root (what the process dlopens) the requester belongs to
    by: str  # "soname" or "name" (a name it was requested or opened by)
    source: str | None  # the LoadOrder's source; None: assumed (`assume_loaded`)

    @property
    def reason(self) -> str:
        by = self.source or "assumed until the probe has run"
        return f"matched by {self.by}: already loaded from {self.provider}, by {by}"


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
    # G19: what a process had loaded before it dlopened a library root, seen by a probe or declared.
    load_orders: tuple[LoadOrder, ...] = ()
    # G19 before the probe has run: any object of the image may have been loaded first (the caller resolves
    # again with the probe's load orders; matches made this way have `LoadedMatch.source` None).
    assume_loaded: bool = False

    def __post_init__(self) -> None:
        env = self.env
        pairs = tuple(sorted(env.items())) if isinstance(env, Mapping) else tuple(sorted(tuple(p) for p in env))
        object.__setattr__(self, "env", pairs)
        object.__setattr__(self, "overlay", tuple(sorted(tuple(p) for p in self.overlay)))
        object.__setattr__(self, "load_orders", tuple(self.load_orders))

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
    already_loaded: tuple[LoadedMatch, ...] = ()  # G19: names satisfied by objects loaded before a library root
