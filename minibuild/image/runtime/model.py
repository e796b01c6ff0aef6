"""The values runtime detection takes and returns."""

from __future__ import annotations

from dataclasses import dataclass, field

from minibuild.entry import TreeEntry


@dataclass(frozen=True)
class PackageFiles:
    """A Debian package's files an image takes (`packages`)."""

    name: str  # as the BUILD file names it (`nginx-common`, `libc6:amd64`)
    paths: tuple[str, ...]  # as the package database lists them (directories, files, links)
    docs: bool = False
    exclude: tuple[str, ...] = ()  # names or absolute paths (fnmatch), as `trees`' exclude


@dataclass(frozen=True)
class TreeSpec:
    """A directory of the sysroot copied whole (symlinks verbatim), minus `exclude` patterns.

    A pattern without `/` matches the name of any file or directory in the tree (a matching directory
    is skipped with everything below it); a pattern with `/` matches the path relative to `src`. `include`
    patterns match the same way: with any, a file is copied when it or a directory above it matches, and a
    directory only on the way to what is copied (or when it matches); `exclude` wins.
    """

    src: str
    exclude: tuple[str, ...] = ()
    reason: str = ""
    include: tuple[str, ...] = ()  # when given, only what matches (or lies below a directory that matches)
    # (link path, target) pairs whose target may be missing, as on the system the tree comes from: no warning
    dangling: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class RuntimeOptions:
    """What the image asks for. None means *auto*: decided from the closure (see docs/runtime.md)."""

    nsswitch: bool | None = None
    nsswitch_conf: str | None = None  # the text of an /etc/nsswitch.conf the image ships itself
    ca_certificates: bool | None = None
    tzdata: bool | tuple[str, ...] | None = None
    terminfo: bool | tuple[str, ...] | None = None
    libgcc_s: bool | None = None
    gconv: bool | tuple[str, ...] | None = None
    locales: bool | tuple[str, ...] | None = None
    python_stdlib: str = "minimal"  # "minimal" | "full" | "none"
    python_packages: tuple[str, ...] = ()
    trees: tuple[TreeSpec, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    packages: tuple[PackageFiles, ...] = ()  # `packages`, each with the paths its database lists
    sysroot_files: tuple[tuple[str, str, str], ...] = ()  # `files` from the sysroot: (src, dest, origin)
    sysroot_name: str = ""  # the sysroot as the workspace names it, for messages
    shell: bool | None = None  # /bin/sh: true adds it, unset warns when the image needs one and lacks it


@dataclass
class RuntimePlan:
    files: dict[str, TreeEntry] = field(default_factory=dict)  # in-image path -> entry (first one wins)
    # in-image path -> (reason, layer group), resolved as ELF roots: "libs" or "runtime" (files of a tree)
    elf_roots: dict[str, tuple[str, str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what auto-detection decided, for the build output
    shell_importers: dict[str, list[str]] = field(default_factory=dict)  # object -> its imports running /bin/sh

    def add(self, entry: TreeEntry) -> None:
        self.files.setdefault(entry.path, entry)

    def root(self, path: str, reason: str, group: str = "libs") -> None:
        self.elf_roots.setdefault(path, (reason, group))
