"""The static closure resolver: what the kernel and the dynamic loader would open, without running it.

Rule numbers (G*, M*, L*, S*) refer to docs/loader.md. One `Process` (process.py) models one
execution (its own link map: a root and everything it loads); `Resolver` holds what the roots of one
`resolve()` call share: the sysroot lookups, the copy plan (copyplan.py), the ld.so.cache
(searchpath.py), `#!` scripts (scripts.py), warnings.

Decisions worth knowing:
- Resolution is for a process that is *not* in secure mode (the image's user is not known here);
  a setuid/setgid/capability entrypoint that relies on LD_LIBRARY_PATH or `$ORIGIN` gets a warning.
- A library given as a root is resolved as `ld.so --list` does: it is the main map, and the
  architecture's standard loader of the sysroot is its interpreter.
- With `cpu_level=None` every `glibc-hwcaps` variant found next to a baseline hit (and in the
  cache) is copied with its own closure; with a level, the loader's choice for that CPU is made.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence

from minibuild.elf.copyplan import CopyPlan
from minibuild.elf.linkmap import MappedObject
from minibuild.elf.loaded import AlreadyLoaded
from minibuild.elf.model import Closure, LoadedObject, ResolveOptions
from minibuild.elf.parse import ELF_MAGIC, ElfFormatError, ElfInfo, read_elf
from minibuild.elf.process import Process
from minibuild.elf.profile import Arch, arch_of
from minibuild.elf.scripts import SCRIPT_BUF, ScriptRoots
from minibuild.elf.searchpath import SysrootCache
from minibuild.elf.sysroot import Lookup, Sysroot
from minibuild.entry import TreeEntry
from minibuild.errors import ElfError

_DEFAULT_OPTIONS = ResolveOptions()


def resolve(paths: Sequence[str], sysroot: str = "/", options: ResolveOptions = _DEFAULT_OPTIONS) -> Closure:
    """The closure of `paths` (absolute in-image paths: ELF executables, libraries or `#!` scripts)."""
    return Session(sysroot, dict(options.overlay)).resolve(paths, options)


class Session:
    """Several resolutions in one sysroot that share path lookups (batch use: many images, benchmarks).

    Only valid while the sysroot does not change; parsed ELF headers and ld.so.cache files are
    cached process-wide by file identity anyway, so a one-shot `resolve()` loses little.
    """

    def __init__(self, sysroot: str = "/", overlay: dict[str, str] | None = None) -> None:
        if not os.path.isdir(sysroot):
            raise ElfError(f"sysroot `{sysroot}` is not a directory")
        self.fs = Sysroot(sysroot, overlay)

    def resolve(self, paths: Sequence[str], options: ResolveOptions = _DEFAULT_OPTIONS) -> Closure:
        if isinstance(paths, str):
            paths = [paths]
        self.fs.begin()
        r = Resolver(self.fs, options)
        for path in paths:
            r.add_root(path, "binary", 0)
        return r.finish(tuple(paths))


# ------------------------------------------------------------------------------------------------


class Resolver(ScriptRoots, CopyPlan, SysrootCache):
    """One `resolve()` call: its roots, then one `Process` per ELF program among them."""

    def __init__(self, fs: Sysroot, options: ResolveOptions) -> None:
        self.fs = fs
        self.options = options
        self.env = options.environ
        self.workdir = options.workdir if options.workdir.startswith("/") else "/" + options.workdir
        self.entries: dict[str, TreeEntry] = {}
        self.objects: list[LoadedObject] = []
        self.seen_objects: set[str] = set()
        self.warnings: list[str] = []
        self.missing: list[tuple[str, str]] = []
        self.interpreters: list[tuple[str, str | None]] = []
        self.scripts: list[tuple[str, str]] = []
        self.cache_only: list[str] = []
        self.arch: Arch | None = None
        self.arch_root: str | None = None
        self.root_idents: set[tuple[int, int]] = set()
        self.script_stack: set[tuple[int, int]] = set()
        self.linkmaps: list[list[MappedObject]] = []  # one per ELF root, in order; noted into `objects` at the end
        self.already = AlreadyLoaded(fs, options.load_orders, options.assume_loaded)

    # -- roots ------------------------------------------------------------------------------------

    def add_root(self, path: str, reason: str, depth: int, via: str | None = None) -> None:
        if not path:
            raise ElfError("empty path given as a binary")
        look = self.fs.lookup(path, self.workdir)
        if look.realpath is None:
            if look.error == "ELOOP":
                raise ElfError(f"`{path}`: too many levels of symbolic links in sysroot `{self.fs.root}`")
            if look.links:
                last = look.links[-1]
                raise ElfError(f"`{path}` is a broken symlink in sysroot `{self.fs.root}`: `{last.path}` -> "
                               f"`{last.target}` does not resolve")
            raise ElfError(f"`{path}` does not exist in sysroot `{self.fs.root}`")
        st = look.st
        assert st is not None
        if stat.S_ISDIR(st.st_mode):
            raise ElfError(f"`{path}` is a directory, not a program")
        if not stat.S_ISREG(st.st_mode):
            raise ElfError(f"`{path}` is not a regular file (device, fifo or socket)")
        if (st.st_dev, st.st_ino) in self.script_stack:
            raise ElfError(f"`{path}`: too many levels of `#!` interpreters (a script is its own interpreter)")
        if (st.st_dev, st.st_ino) in self.root_idents:
            self.plan(look, reason, via)
            return
        self.root_idents.add((st.st_dev, st.st_ino))
        head = self._read_head(path, look)
        self.plan(look, reason, via, executed=True)
        if head.startswith(b"#!"):
            self.script_stack.add((st.st_dev, st.st_ino))
            try:
                self.add_script(path, look, head, depth)
            finally:
                self.script_stack.discard((st.st_dev, st.st_ino))
        elif head[:4] == ELF_MAGIC:
            self.add_elf_root(path, look)
        else:
            raise ElfError(f"`{path}` is neither an ELF file nor a `#!` script")

    def _read_head(self, path: str, look: Lookup) -> bytes:
        try:
            with open(self.fs.host(look.realpath or ""), "rb") as fh:
                return fh.read(SCRIPT_BUF)
        except OSError as exc:
            raise ElfError(f"cannot read `{path}`: {exc.strerror}") from None

    def add_elf_root(self, path: str, look: Lookup) -> None:
        info = self.read_root_elf(path, look)
        arch = arch_of(info)
        if arch is not None:
            if self.arch is None:
                self.arch, self.arch_root = arch, path
            elif arch.name != self.arch.name:
                raise ElfError(f"`{path}` is {info.machine_name} ({arch.name}) but `{self.arch_root}` is "
                               f"{self.arch.name}: one image holds one architecture")
        needs_loader = info.interp is not None or any(k == "needed" for k, _ in info.deps)
        if arch is None:
            if needs_loader:
                raise ElfError(f"`{path}` is a {info.machine_name} ELF (class {info.elfclass}); minibuild has no "
                               f"loader model for that machine")
            self.warnings.append(f"`{path}`: unknown machine {info.machine_name}; copied as a static program")
            self.interpreters.append((path, None))
            return
        if not needs_loader:
            # static, static-pie or the loader itself: nothing is loaded (L8)
            self.interpreters.append((path, None))
            self.linkmaps.append([MappedObject(path, look, info, None, "root")])
            return
        proc = Process(self, path, look, info, arch)
        proc.run()

    def read_root_elf(self, path: str, look: Lookup) -> ElfInfo:
        try:
            return read_elf(self.fs.host(look.realpath or ""), look.st)
        except ElfFormatError as exc:
            raise ElfError(f"`{path}` is not a valid ELF file: {exc}") from None
        except OSError as exc:
            raise ElfError(f"cannot read `{path}`: {exc.strerror}") from None

    def note_object(self, o: MappedObject) -> None:
        if o.path in self.seen_objects:
            return
        self.seen_objects.add(o.path)
        self.objects.append(LoadedObject(
            path=o.path, realpath=o.realpath, names=tuple(dict.fromkeys(o.names)),
            loader=o.loader.path if o.loader else None,
            needed=tuple((n, t.path if t else None) for n, t in o.needed),
            machine=o.info.machine_name, elfclass=o.info.elfclass, is_interpreter=o.via == "interp",
            soname=o.info.soname, variant_of=o.variant_of.path if o.variant_of else None, via=o.via,
            found_in=o.found_in,
        ))

    def finish(self, roots: tuple[str, ...]) -> Closure:
        self.already.settle(self.linkmaps)
        for objs in self.linkmaps:
            for o in objs:
                self.note_object(o)
        cache_only = tuple(dict.fromkeys(self.cache_only))
        if cache_only:
            self.warnings.append(
                f"found only through `/etc/ld.so.cache` (not in a default directory): {', '.join(cache_only)}; "
                f"the image needs that cache, the libraries in a default directory, or `LD_LIBRARY_PATH` (G15)")
        return Closure(
            roots=roots,
            objects=tuple(self.objects),
            entries=tuple(self.entries[k] for k in sorted(self.entries)),
            probed=tuple(sorted(self.fs.probed)),
            warnings=tuple(dict.fromkeys(self.warnings)),
            architecture=self.arch.oci if self.arch else None,
            variant=self.arch.variant if self.arch else None,
            missing=tuple(self.missing),
            interpreters=tuple(self.interpreters),
            scripts=tuple(self.scripts),
            cache_only=cache_only,
            already_loaded=tuple(self.already.matches),
        )
