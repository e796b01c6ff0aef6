"""The static closure resolver: what the kernel and the dynamic loader would open, without running it.

Rule numbers (G*, M*, L*, S*) refer to ELF.md. One `_Process` models one execution (its own
link map: a root and everything it loads); `_Resolver` holds what the roots of one `resolve()`
call share: the sysroot lookups, the copy plan, warnings.

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
import posixpath
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field

from minibuild.elf import ldcache
from minibuild.elf.model import DEFAULT_PATH, Closure, LoadedObject, PlanEntry, ResolveOptions
from minibuild.elf.parse import ELF_MAGIC, ElfFormatError, ElfInfo, file_key, read_elf
from minibuild.elf.profile import (
    Arch,
    LoaderProfile,
    arch_of,
    cached_profile,
    glibc_profile,
    hwcaps_supported,
    legacy_subdirs,
    musl_arch_of,
    musl_profile,
)
from minibuild.elf.sysroot import Lookup, Sysroot
from minibuild.errors import ElfError

SCRIPT_BUF = 256  # BINPRM_BUF_SIZE since Linux 5.1
MAX_SCRIPT_DEPTH = 4  # the kernel gives up (ELOOP) beyond this many nested interpreters
MUSL_RESERVED = ("c", "pthread", "rt", "m", "dl", "util", "xnet")
_DST_RE = re.compile(r"\$(?:\{(ORIGIN|LIB|PLATFORM)\}|(ORIGIN|LIB|PLATFORM)(?![A-Za-z0-9_]))")

_CACHE_FILES: dict[tuple, ldcache.LdCache | None] = {}


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
        r = _Resolver(self.fs, options)
        for path in paths:
            r.add_root(path, "binary", 0)
        return r.finish(tuple(paths))


# ------------------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Obj:
    path: str
    look: Lookup
    info: ElfInfo
    loader: _Obj | None
    via: str
    names: list[str] = field(default_factory=list)
    needed: list[tuple[str, _Obj | None]] = field(default_factory=list)
    found_in: str | None = None
    variant_of: _Obj | None = None
    shortname: str | None = None  # musl: the name it can be found by (M3a)

    @property
    def realpath(self) -> str:
        assert self.look.realpath is not None
        return self.look.realpath

    @property
    def ident(self) -> tuple[int, int]:
        assert self.look.st is not None
        return (self.look.st.st_dev, self.look.st.st_ino)


@dataclass
class _Search:
    """What one bare-name search tried, for the error message."""

    steps: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


class _Resolver:
    def __init__(self, fs: Sysroot, options: ResolveOptions) -> None:
        self.fs = fs
        self.options = options
        self.env = options.environ
        self.workdir = options.workdir if options.workdir.startswith("/") else "/" + options.workdir
        self.entries: dict[str, PlanEntry] = {}
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

    def add_script(self, path: str, look: Lookup, head: bytes, depth: int) -> None:
        if depth >= MAX_SCRIPT_DEPTH:
            raise ElfError(f"`{path}`: too many levels of `#!` interpreters (the kernel stops at "
                           f"{MAX_SCRIPT_DEPTH})")
        interp, arg = parse_shebang(head)
        if interp is None:
            raise ElfError(f"`{path}` has a `#!` line the kernel cannot execute (no interpreter name, or "
                           f"the name is cut off at {SCRIPT_BUF} bytes)")
        assert look.st is not None
        if not look.st.st_mode & 0o111:
            self.warnings.append(f"script `{path}` is not executable: the kernel will refuse to run it")
        line = f"#!{interp}" + (f" {arg}" if arg else "")
        ilook = self.fs.lookup(interp, self.workdir)
        if ilook.realpath is None:
            hint = None
            if "\r" in interp or (arg and arg.endswith("\r")):
                hint = "the script has CRLF line endings; the kernel keeps the `\\r`"
            raise ElfError(f"interpreter `{interp}` of script `{path}` does not exist in sysroot `{self.fs.root}`",
                           hint=hint)
        self.scripts.append((path, interp))
        self.add_root(interp, f"interpreter of script {path}", depth + 1, via=path)
        self.warnings.append(f"`{path}` is a `#!` script: its closure covers the interpreter `{interp}`, "
                             f"not the programs the script runs")
        if posixpath.basename(interp) == "env" and arg is not None:
            name = env_program(arg)
            if name is None:
                self.warnings.append(f"`{path}`: cannot tell which program `{line}` runs")
                return
            found = self.find_on_path(name, path, line)
            self.scripts.append((path, found))
            self.add_root(found, f"run by `env` for script {path}", depth + 1, via=path)

    def find_on_path(self, name: str, script: str, line: str) -> str:
        if "/" in name:
            return name if name.startswith("/") else posixpath.join(self.workdir, name)
        search = self.env.get("PATH", DEFAULT_PATH)
        tried = []
        for d in search.split(":"):
            d = d or "."
            cand = posixpath.join(d if d.startswith("/") else posixpath.join(self.workdir, d), name)
            tried.append(cand)
            look = self.fs.lookup(cand, self.workdir)
            st = look.st
            if look.realpath and st and stat.S_ISREG(st.st_mode) and st.st_mode & 0o111:
                return cand
        raise ElfError(
            f"`{name}` (run by `{line}` in script `{script}`) is not on the image PATH in sysroot `{self.fs.root}`",
            causes=tuple(f"not found: `{t}`" for t in tried),
            hint="set `PATH` in the image environment, or use an absolute interpreter path",
        )

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
            self.note_object(_Obj(path, look, info, None, "root"), None)
            return
        proc = _Process(self, path, look, info, arch)
        proc.run()

    def read_root_elf(self, path: str, look: Lookup) -> ElfInfo:
        try:
            return read_elf(self.fs.host(look.realpath or ""), look.st)
        except ElfFormatError as exc:
            raise ElfError(f"`{path}` is not a valid ELF file: {exc}") from None
        except OSError as exc:
            raise ElfError(f"cannot read `{path}`: {exc.strerror}") from None

    # -- the copy plan ---------------------------------------------------------------------------

    def plan(self, look: Lookup, reason: str, via: str | None, executed: bool = False) -> None:
        """L4: recreate every symlink on the way verbatim, then the file itself."""
        for link in look.links:
            if link.path not in self.entries:
                st = self.fs.lstat(link.path)
                mode = stat.S_IMODE(st.st_mode) if st else 0o777
                self.entries[link.path] = PlanEntry(link.path, "symlink", mode, link.target, None,
                                                    f"symlink on the path to {look.path}", 0, via)
        for d in look.dotdot_dirs:
            if d not in self.entries:
                self.entries[d] = PlanEntry(d, "dir", 0o755, None, None,
                                            f"directory crossed by `..` in {look.path}", 0, via)
        real, st = look.realpath, look.st
        if real is None or st is None:
            return
        old = self.entries.get(real)
        if old is None or old.kind == "dir":
            host = self.fs.host(real)
            # file capabilities only act on a program the kernel executes, so only those are read
            self.entries[real] = PlanEntry(real, "file", stat.S_IMODE(st.st_mode), None, host, reason, st.st_size,
                                           via or look.path, _capabilities(host) if executed else ())

    def note_object(self, o: _Obj, proc: _Process | None) -> None:
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

    # -- shared sysroot facts ----------------------------------------------------------------------

    def ld_cache(self) -> tuple[ldcache.LdCache | None, list[str] | None]:
        """The sysroot's parsed /etc/ld.so.cache, or the ld.so.conf directories when there is none."""
        look = self.fs.lookup("/etc/ld.so.cache")
        if look.realpath is not None and look.st is not None and stat.S_ISREG(look.st.st_mode):
            key = (self.fs.root, file_key(look.st))
            if key not in _CACHE_FILES:
                data = self.fs.read_bytes("/etc/ld.so.cache") or b""
                try:
                    _CACHE_FILES[key] = ldcache.parse_cache(data)
                except ldcache.CacheFormatError as exc:
                    self.warnings.append(f"`/etc/ld.so.cache` of sysroot `{self.fs.root}` ignored: {exc}")
                    _CACHE_FILES[key] = None
            cache = _CACHE_FILES[key]
            if cache is not None:
                return cache, None
        dirs = ldcache.read_conf_dirs(self.fs.read_text, lambda pat: self._glob(pat))
        return None, dirs

    def _glob(self, pattern: str) -> list[str]:
        import fnmatch

        head, _, tail = pattern.rpartition("/")
        out = []
        for name in self.fs.listdir(head or "/"):
            if fnmatch.fnmatchcase(name, tail):
                out.append(f"{head}/{name}")
                self.fs.note_probe(f"{head}/{name}")
        self.fs.note_probe(head or "/")
        return out

    def finish(self, roots: tuple[str, ...]) -> Closure:
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
        )


# ------------------------------------------------------------------------------------------------


class _Process:
    """One program's link map: G1-G17 for glibc, M1-M6 for musl."""

    def __init__(self, r: _Resolver, path: str, look: Lookup, info: ElfInfo, arch: Arch) -> None:
        self.r, self.fs, self.arch = r, r.fs, arch
        self.objs: list[_Obj] = []
        self.by_name: dict[str, _Obj] = {}
        self.by_ident: dict[tuple[int, int], _Obj] = {}
        self.main = _Obj(path, look, info, None, "root")
        self.is_library_root = info.interp is None
        self.supported: tuple[str, ...] | None = None
        opts = r.options
        if opts.cpu_level is not None:
            try:
                self.supported = hwcaps_supported(arch, opts.cpu_level)
            except ValueError:
                levels = ", ".join(f"`{h}`" for h in arch.hwcaps) or "none"
                raise ElfError(f"unknown CPU level `{opts.cpu_level}` for {arch.name}",
                               hint=f"glibc-hwcaps levels of this architecture: {levels}") from None
        self.platform = opts.platform or arch.platform
        self.secure = False
        self.interp_path, self.profile = self._pick_loader(path, info)
        self._sys_path: list[str] | None = None
        self._subdir_list: list[str] | None = None
        self._cache: tuple[ldcache.LdCache | None, list[str] | None] | None = None

    # -- setup -------------------------------------------------------------------------------------

    def _pick_loader(self, path: str, info: ElfInfo) -> tuple[str | None, LoaderProfile]:
        arch = self.arch
        if info.interp is not None:
            interp = info.interp
        else:
            interp = arch.glibc_interp
            if self.fs.lookup(interp).realpath is None:
                musl = f"/lib/ld-musl-{arch.musl_arch}.so.1"
                if self.fs.lookup(musl).realpath is not None:
                    interp = musl
                else:
                    self.r.warnings.append(f"library `{path}`: no loader for {arch.name} in the sysroot; "
                                           f"resolved with the default directories of a Debian glibc")
                    return None, glibc_profile(arch, None, None, None)
        march = musl_arch_of(interp)
        if march is not None:
            return interp, musl_profile(arch, interp)
        look = self.fs.lookup(interp, self.r.workdir)
        if look.realpath is None:
            return interp, glibc_profile(arch, interp, None, None)  # reported as missing in run()
        data = None
        key = None
        if look.st is not None and stat.S_ISREG(look.st.st_mode):
            key = file_key(look.st)
            cached = cached_profile(arch, interp, key)
            if cached is not None:
                return interp, cached
            data = self.fs.read_bytes(interp)
        return interp, glibc_profile(arch, interp, data, key)

    def origin_of(self, o: _Obj) -> str:
        if o is self.main and not self.is_library_root:
            # the kernel-mapped main program: /proc/self/exe, i.e. symlinks resolved (G7, M6); a
            # library root is opened by its path string (dlopen, `ld.so --list`), like any library
            return posixpath.dirname(o.realpath)
        p = o.path if o.path.startswith("/") else posixpath.join(self.r.workdir, o.path)
        return posixpath.dirname(p) or "/"

    def run(self) -> None:
        r, main = self.r, self.main
        r.interpreters.append((main.path, self.main.info.interp))
        self.objs.append(main)
        self.by_ident[main.ident] = main
        if self.is_library_root:
            self._name(main.path, main)
        if main.info.soname and not self.profile.is_musl:
            self._name(main.info.soname, main)
        self.interp = None
        if self.interp_path is not None:
            self.interp = self._load_interp(self.interp_path)
        self._secure_warnings()
        self._preload()
        i = 0
        while i < len(self.objs):
            o = self.objs[i]
            i += 1
            if o is self.interp:
                continue
            for kind, name in o.info.deps:
                target = self.map_name(name, o, kind)
                if kind == "needed" or target is not None:
                    o.needed.append((name, target))
        if r.options.check_versions and not self.profile.is_musl:
            self._check_versions()
        if self.secure:
            users = [o.path for o in self.objs if "$ORIGIN" in (o.info.runpath or o.info.rpath or "").replace(
                "${ORIGIN}", "$ORIGIN")]
            if users:
                r.warnings.append(f"`{main.path}` runs in secure mode (setuid/setgid/capabilities) for a non-root "
                                  f"user: `$ORIGIN` is then restricted (G7/G14); used by {', '.join(users)}")
        for o in self.objs:
            r.note_object(o, self)

    def _name(self, name: str, o: _Obj) -> None:
        self.by_name.setdefault(name, o)
        o.names.append(name)

    def _load_interp(self, interp: str) -> _Obj | None:
        r = self.r
        look = self.fs.lookup(interp, r.workdir)
        what = "interpreter" if not self.is_library_root else "loader"
        if look.realpath is None:
            raise ElfError(f"{what} `{interp}` of `{self.main.path}` does not exist in sysroot `{self.fs.root}`",
                           hint="the kernel fails with `No such file or directory` although the program exists")
        if look.st is None or not stat.S_ISREG(look.st.st_mode):
            raise ElfError(f"{what} `{interp}` of `{self.main.path}` is not a regular file")
        try:
            info = read_elf(self.fs.host(look.realpath), look.st)
        except ElfFormatError as exc:
            raise ElfError(f"{what} `{interp}` of `{self.main.path}` is not a valid ELF file: {exc}") from None
        except OSError as exc:
            raise ElfError(f"cannot read {what} `{interp}`: {exc.strerror}") from None
        if (info.machine, info.elfclass) != (self.main.info.machine, self.main.info.elfclass):
            raise ElfError(f"{what} `{interp}` is {info.machine_name} class {info.elfclass} but "
                           f"`{self.main.path}` is {self.main.info.machine_name} class {self.main.info.elfclass}")
        if not look.st.st_mode & 0o111 and not self.is_library_root:
            r.warnings.append(f"interpreter `{interp}` is not executable: the kernel will refuse it (L1)")
        o = _Obj(interp, look, info, self.main, "interp")
        if o.ident in self.by_ident:
            return self.by_ident[o.ident]
        self.objs.append(o)
        self.by_ident[o.ident] = o
        self._name(interp, o)
        if info.soname and not self.profile.is_musl:
            self._name(info.soname, o)
        if self.profile.is_musl:
            o.shortname = None
        r.plan(look, f"interpreter of {self.main.path}", interp)
        return o

    def _secure_warnings(self) -> None:
        st = self.main.look.st
        assert st is not None
        secure = bool(st.st_mode & (stat.S_ISUID | stat.S_ISGID))
        entry = self.r.entries.get(self.main.realpath)
        secure = secure or bool(entry and entry.xattrs)
        self.secure = secure
        if not secure:
            return
        if "LD_LIBRARY_PATH" in self.r.env or "LD_PRELOAD" in self.r.env:
            self.r.warnings.append(f"`{self.main.path}` runs in secure mode (setuid/setgid/capabilities) for a "
                                   f"non-root user: `LD_LIBRARY_PATH`/`LD_PRELOAD` are then ignored (G14)")

    def _preload(self) -> None:
        names = re.split(r"[\s:]+", self.r.env.get("LD_PRELOAD", "").strip())
        for name in filter(None, names):
            self._preload_one(name, "preloaded by `LD_PRELOAD`")
        if not self.profile.is_musl:
            text = self.fs.read_text("/etc/ld.so.preload")
            if text:
                for name in filter(None, re.split(r"[\s:]+", text.strip())):
                    self._preload_one(name, "listed in `/etc/ld.so.preload`")

    def _preload_one(self, name: str, why: str) -> None:
        o = self.map_name(name, self.main, "preload")
        if o is not None:
            self.main.needed.append((name, o))

    # -- mapping a name ------------------------------------------------------------------------------

    def map_name(self, name: str, req: _Obj, kind: str) -> _Obj | None:
        if self.profile.is_musl:
            return self._map_musl(name, req, kind)
        hit = self.by_name.get(name)
        if hit is not None:  # G3
            return hit
        search = _Search()
        if "/" in name:  # G4
            expanded = self.expand(name, req)
            if not expanded:
                search.steps.append(f"`{name}` uses a dynamic string token that cannot be expanded")
                return self._not_found(name, req, kind, search)
            o = self._try(expanded[0], name, req, kind, "path in DT_NEEDED", search, direct=True)
            if o is None:
                search.steps.append(f"`{expanded[0]}` does not exist")
                return self._not_found(name, req, kind, search)
            return o
        o = self._search_glibc(name, req, kind, search)
        if o is None:
            return self._not_found(name, req, kind, search)
        return o

    def _not_found(self, name: str, req: _Obj, kind: str, search: _Search) -> None:
        if kind == "auxiliary":
            return None  # an absent auxiliary filtee is ignored by the loader
        notes = []
        main = self.main
        if not self.profile.is_musl and req is not main and "/" not in name:
            if main.info.runpath and req.info.runpath is None:
                notes.append(f"RUNPATH of `{main.path}` not searched: DT_RUNPATH only serves the object's own "
                             f"DT_NEEDED, it is not inherited")
            if main.info.rpath and main.info.runpath is None and req.info.runpath is not None:
                notes.append(f"RPATH of `{main.path}` not searched: `{req.path}` has DT_RUNPATH")
        causes = tuple(search.steps + search.skipped + notes)
        msg = f"`{name}` (needed by `{req.path}`) not found in sysroot `{self.fs.root}`"
        if self.r.options.allow_missing:
            self.r.missing.append((req.path, name))
            self.r.warnings.append(msg + ": " + "; ".join(causes))
            return None
        raise ElfError(msg, causes=causes,
                       hint="install the library in the sysroot, or point `LD_LIBRARY_PATH` / RUNPATH at it")

    def _search_glibc(self, name: str, req: _Obj, kind: str, search: _Search) -> _Obj | None:
        main = self.main
        platform_alts: list[tuple[str, str]] = []
        # G5.1: DT_RPATH of the loading chain, then of main, unless the requester has DT_RUNPATH
        if req.info.runpath is None:
            o: _Obj | None = req
            seen_main = False
            while o is not None:
                if o is main:
                    seen_main = True
                if o.info.rpath is not None and o.info.runpath is None:
                    hit = self._search_list(o.info.rpath, o, name, req, kind, f"RPATH of `{o.path}`", search,
                                            platform_alts)
                    if hit is not None:
                        return self._platform_variants(hit, platform_alts, name, req)
                o = o.loader if o.via != "interp" else None
            if not seen_main and main.info.rpath is not None and main.info.runpath is None:
                hit = self._search_list(main.info.rpath, main, name, req, kind, f"RPATH of `{main.path}`", search,
                                        platform_alts)
                if hit is not None:
                    return self._platform_variants(hit, platform_alts, name, req)
        # G5.2: the image's LD_LIBRARY_PATH
        llp = self.r.env.get("LD_LIBRARY_PATH")
        if llp:
            hit = self._search_list(llp, main, name, req, kind, "`LD_LIBRARY_PATH`", search, platform_alts,
                                    seps=":;")
            if hit is not None:
                return self._platform_variants(hit, platform_alts, name, req)
        # G5.3: the requester's own DT_RUNPATH
        if req.info.runpath is not None:
            hit = self._search_list(req.info.runpath, req, name, req, kind, f"RUNPATH of `{req.path}`", search,
                                    platform_alts)
            if hit is not None:
                return self._platform_variants(hit, platform_alts, name, req)
        self._platform_variants(None, platform_alts, name, req)
        nodeflib = req.info.nodeflib
        defaults = self.profile.default_dirs
        # G5.4: the image's ld.so.cache
        if self._cache is None:
            self._cache = self.r.ld_cache()
        cache, conf_dirs = self._cache
        if cache is not None:
            entry, hwcaps = cache.lookup(name, self.arch.cache_flags, self.supported)
            if entry is None:
                search.steps.append("ld.so.cache of the sysroot: no entry")
            elif nodeflib and any(entry.value.startswith(d + "/") for d in defaults):
                search.steps.append(f"ld.so.cache of the sysroot: `{entry.value}` ignored (DF_1_NODEFLIB)")
            else:
                hit = self._try(entry.value, name, req, kind, "ld.so.cache", search)
                if hit is not None:
                    if self.supported is None:
                        for h in hwcaps:
                            self._variant(h.value, hit, name, req, "hwcaps")
                    if posixpath.dirname(entry.value) not in defaults and hit.found_in == "ld.so.cache":
                        self.r.cache_only.append(hit.path)
                    return hit
                search.steps.append(f"ld.so.cache of the sysroot: `{entry.value}` cannot be used")
        elif conf_dirs:
            dirs = [d for d in conf_dirs if not (nodeflib and d in defaults)]
            hit = self._search_dirs(dirs, name, req, kind, "ld.so.conf (no ld.so.cache in the sysroot)", search)
            if hit is not None:
                if posixpath.dirname(hit.path) not in defaults:
                    self.r.cache_only.append(hit.path)
                return hit
        else:
            search.steps.append("no ld.so.cache or ld.so.conf in the sysroot")
        # G5.5: the loader's default directories
        if nodeflib:
            search.steps.append("default directories skipped (DF_1_NODEFLIB)")
            return None
        return self._search_dirs(list(defaults), name, req, kind, "default directories", search)

    def _search_list(self, text: str, owner: _Obj, name: str, req: _Obj, kind: str, label: str, search: _Search,
                     platform_alts: list[tuple[str, str]], seps: str = ":") -> _Obj | None:
        dirs = []
        for elem in self.path_list(text, owner, seps, platform_alts):
            if elem not in dirs:
                dirs.append(elem)
        return self._search_dirs(dirs, name, req, kind, label, search)

    def path_list(self, text: str, owner: _Obj, seps: str, platform_alts: list[tuple[str, str]]) -> list[str]:
        """G6: split, expand DSTs, strip trailing '/', an empty element is the CWD ("")."""
        if not text:
            return []
        out = []
        for elem in re.split(f"[{re.escape(seps)}]", text):
            expanded = self.expand(elem, owner)
            if not expanded:
                continue
            primary = expanded[0]
            for alt in expanded[1:]:
                platform_alts.append((primary, alt))
            while len(primary) > 1 and primary.endswith("/"):
                primary = primary[:-1]
            out.append(primary)
        return out

    def expand(self, text: str, owner: _Obj) -> list[str]:
        """G7: expand $ORIGIN/$LIB/$PLATFORM; [] if it cannot be; several results for $PLATFORM."""
        if "$" not in text:
            return [text]
        platforms = [self.platform]
        if self.r.options.platform is None and _DST_RE.search(text) and "PLATFORM" in text:
            platforms += [p for p in self.arch.platforms if p != self.platform]
        out = []
        for plat in platforms:
            values = {"ORIGIN": self.origin_of(owner), "LIB": self.profile.lib, "PLATFORM": plat}
            out.append(_DST_RE.sub(lambda m, v=values: v[m.group(1) or m.group(2)], text))
        if "PLATFORM" not in text:
            out = out[:1]
        return out

    def _subdirs(self) -> list[str]:
        """G8: the subdirectories tried in every search directory before the directory itself."""
        if self._subdir_list is None:
            subs = [f"glibc-hwcaps/{s}" for s in (self.supported or ())]
            if self.profile.legacy_subdirs:
                subs += list(legacy_subdirs(self.arch, self.platform))
            self._subdir_list = subs
        return self._subdir_list

    def _search_dirs(self, dirs: list[str], name: str, req: _Obj, kind: str, label: str,
                     search: _Search) -> _Obj | None:
        if not dirs:
            return None
        search.steps.append(f"{label}: " + ", ".join(f"`{d or '.'}`" for d in dirs))
        for d in dirs:
            base = d + "/" if d else ""
            for sub in self._subdirs():
                top = sub.split("/", 1)[0]
                if self.fs.lookup(base + top, self.r.workdir).realpath is None:
                    continue
                hit = self._try(f"{base}{sub}/{name}", name, req, kind, label, search)
                if hit is not None:
                    return hit
            hit = self._try(base + name, name, req, kind, label, search)
            if hit is not None:
                if self.supported is None:
                    self._hwcaps_variants(base, name, hit, req)
                return hit
        return None

    def _hwcaps_variants(self, base: str, name: str, primary: _Obj, req: _Obj) -> None:
        hw = base + "glibc-hwcaps"
        look = self.fs.lookup(hw, self.r.workdir)
        if look.realpath is None or look.st is None or not stat.S_ISDIR(look.st.st_mode):
            return
        for sub in self.fs.listdir(look.realpath):
            self._variant(f"{hw}/{sub}/{name}", primary, name, req, "hwcaps")

    def _platform_variants(self, hit: _Obj | None, alts: list[tuple[str, str]], name: str, req: _Obj) -> _Obj | None:
        for primary_dir, alt_dir in alts:
            if hit is not None and not hit.path.startswith(primary_dir):
                continue
            v = self._variant(f"{alt_dir.rstrip('/')}/{name}", hit, name, req, "platform")
            if v is not None:
                self.r.warnings.append(
                    f"`$PLATFORM` in the search path of `{req.path}` depends on the CPU: copied `{v.path}` too")
        alts.clear()
        return hit

    def _variant(self, path: str, primary: _Obj | None, name: str, req: _Obj, via: str) -> _Obj | None:
        look = self.fs.lookup(path, self.r.workdir)
        if look.realpath is None or (primary is not None and look.realpath == primary.realpath):
            return None
        info = self._verify(path, look, name, req, quiet=True)
        if info is None:
            return None
        o = _Obj(path, look, info, req, via, variant_of=primary, found_in=via)
        o.names.append(name)
        self.objs.append(o)
        label = "glibc-hwcaps variant" if via == "hwcaps" else "`$PLATFORM` alternative"
        self.r.plan(look, f"{label} of {primary.path if primary else name} (needed by {req.path})", path)
        return o

    def _verify(self, path: str, look: Lookup, name: str, req: _Obj, quiet: bool = False,
                search: _Search | None = None, direct: bool = False) -> ElfInfo | None:
        """G9 `open_verify`: None = skip this candidate; raises for what the loader finds fatal."""
        st = look.st
        assert st is not None and look.realpath is not None
        who = f"`{path}` (candidate for `{name}` needed by `{req.path}`)"
        if stat.S_ISDIR(st.st_mode):
            if quiet:
                return None
            raise ElfError(f"{who} is a directory: the loader fails with `cannot read file data`")
        if not stat.S_ISREG(st.st_mode):
            return None
        try:
            info = read_elf(self.fs.host(look.realpath), st)
        except ElfFormatError as exc:
            if quiet:
                return None
            raise ElfError(f"{who} is not a valid ELF file: {exc}",
                           hint="the loader stops at the first file of that name; remove or rename it") from None
        except OSError:
            return None
        mine = self.main.info
        if info.elfclass != mine.elfclass or info.machine != mine.machine:
            if quiet:
                return None
            if direct:
                raise ElfError(f"{who} is {info.machine_name} class {info.elfclass}, but `{self.main.path}` is "
                               f"{mine.machine_name} class {mine.elfclass}")
            if search is not None:
                search.skipped.append(f"skipped `{path}`: {info.machine_name} ELFCLASS{info.elfclass * 32}")
            return None
        if info.data != mine.data or info.osabi not in (0, 3) or (info.abiversion and info.osabi != 3):
            if quiet:
                return None
            raise ElfError(f"{who} has an incompatible ELF ident (byte order {info.data}, OSABI {info.osabi}, "
                           f"ABI version {info.abiversion})")
        return info

    def _try(self, path: str, name: str, req: _Obj, kind: str, label: str, search: _Search,
             direct: bool = False) -> _Obj | None:
        look = self.fs.lookup(path, self.r.workdir)
        if look.realpath is None:
            return None
        info = self._verify(path, look, name, req, search=search, direct=direct)
        if info is None:
            return None
        return self._adopt(path, look, info, name, req, kind, label)

    def _adopt(self, path: str, look: Lookup, info: ElfInfo, name: str, req: _Obj, kind: str,
               label: str) -> _Obj:
        assert look.st is not None
        ident = (look.st.st_dev, look.st.st_ino)
        old = self.by_ident.get(ident)
        if old is not None:  # G10
            self._name(name, old)
            return old
        o = _Obj(path, look, info, req, "preload" if kind == "preload" else "needed", found_in=label)
        self.objs.append(o)
        self.by_ident[ident] = o
        self._name(name, o)
        self.by_name.setdefault(path, o)
        if info.soname and not self.profile.is_musl:
            self.by_name.setdefault(info.soname, o)
        reason = f"needed by {req.path}" if kind != "preload" else f"preloaded by {self.main.path}"
        self.r.plan(look, reason, path)
        return o

    # -- musl ------------------------------------------------------------------------------------------

    def _map_musl(self, name: str, req: _Obj, kind: str) -> _Obj | None:
        interp = self.interp
        base = name.split("/")[-1]
        if name.startswith("lib") and interp is not None:  # M2
            stem = name[3:].split(".", 1)
            if len(stem) == 2 and stem[0] in MUSL_RESERVED:
                interp.names.append(name)
                return interp
        if interp is not None and (name == interp.path or name == posixpath.basename(interp.path)):
            return interp
        search = _Search()
        if "/" in name:
            return self._try_musl(name, name, req, kind, "path in DT_NEEDED", search) or \
                self._not_found(name, req, kind, search)
        for o in self.objs:  # M3a: loaded under this base name
            if o.shortname == base:
                return o
        llp = self.r.env.get("LD_LIBRARY_PATH")
        if llp:
            hit = self._musl_dirs(re.split(r"[:\n]", llp), name, req, kind, "`LD_LIBRARY_PATH`", search)
            if hit is not None:
                return hit
        o: _Obj | None = req
        while o is not None:
            rp = o.info.runpath if o.info.runpath is not None else o.info.rpath
            if rp:
                dirs = self._musl_rpath(rp, o)
                if dirs is not None:
                    label = f"{'RUNPATH' if o.info.runpath is not None else 'RPATH'} of `{o.path}`"
                    hit = self._musl_dirs(dirs, name, req, kind, label, search)
                    if hit is not None:
                        return hit
            o = o.loader if o.via != "interp" else None
        hit = self._musl_dirs(self._musl_sys_path(), name, req, kind, "musl system path", search)
        return hit if hit is not None else self._not_found(name, req, kind, search)

    def _musl_rpath(self, text: str, o: _Obj) -> list[str] | None:
        if "$" in text:
            for m in re.finditer(r"\$", text):
                if not (text.startswith("$ORIGIN", m.start()) or text.startswith("${ORIGIN}", m.start())):
                    return None  # musl ignores the whole list (M3c)
            origin = self.origin_of(o)
            text = text.replace("${ORIGIN}", origin).replace("$ORIGIN", origin)
        return re.split(r"[:\n]", text)

    def _musl_sys_path(self) -> list[str]:
        if self._sys_path is None:
            interp = self.interp_path or ""
            prefix = posixpath.dirname(posixpath.dirname(interp)) if interp.startswith("/") else ""
            prefix = "" if prefix == "/" else prefix
            text = self.fs.read_text(f"{prefix}/etc/ld-musl-{self.arch.musl_arch}.path")
            if text is None:
                self._sys_path = list(self.profile.default_dirs)
            else:
                self._sys_path = re.split(r"[:\n]", text)
        return self._sys_path

    def _musl_dirs(self, dirs: list[str], name: str, req: _Obj, kind: str, label: str,
                   search: _Search) -> _Obj | None:
        dirs = [d for d in dirs if d]
        search.steps.append(f"{label}: " + ", ".join(f"`{d}`" for d in dirs))
        for d in dirs:
            hit = self._try_musl(f"{d}/{name}", name, req, kind, label, search)
            if hit is not None:
                return hit
        return None

    def _try_musl(self, path: str, name: str, req: _Obj, kind: str, label: str, search: _Search) -> _Obj | None:
        look = self.fs.lookup(path, self.r.workdir)
        if look.realpath is None:
            return None
        assert look.st is not None
        old = self.by_ident.get((look.st.st_dev, look.st.st_ino))
        if old is not None:  # M5
            if old.shortname is None and "/" not in name:
                old.shortname = posixpath.basename(old.path)
            old.names.append(name)
            return old
        info = self._verify(path, look, name, req, direct=True)  # M4: no skipping, a wrong file is fatal
        assert info is not None
        o = self._adopt(path, look, info, name, req, kind, label)
        if "/" not in name:
            o.shortname = posixpath.basename(path)
        return o

    # -- G17 ---------------------------------------------------------------------------------------------

    def _check_versions(self) -> None:
        for o in self.objs:
            if not o.info.verneed:
                continue
            mapped = {n: t for n, t in reversed(o.needed) if t is not None}
            for file, versions in o.info.verneed:
                provider = mapped.get(file)
                if provider is None:
                    provider = self.by_name.get(file)
                if provider is None or not provider.info.verdef:
                    continue  # glibc: "no version information available" is not fatal
                for version, weak in versions:
                    if not weak and version not in provider.info.verdef:
                        raise ElfError(
                            f"`{o.path}` requires version `{version}` of `{file}`, which `{provider.path}` "
                            f"(`{provider.realpath}`) does not define",
                            hint="the library comes from an older release than the program; take both from one "
                                 "sysroot",
                        )


# ------------------------------------------------------------------------------------------------


def _capabilities(host: str) -> tuple[tuple[str, bytes], ...]:
    """File capabilities must be copied too (L4): they also put the program in secure mode."""
    try:
        return (("security.capability", os.getxattr(host, "security.capability", follow_symlinks=False)),)
    except OSError:
        return ()


def parse_shebang(head: bytes) -> tuple[str | None, str | None]:
    """S1: the kernel's reading of a `#!` line (fs/binfmt_script.c): (interpreter, optional argument)."""
    buf = head[:SCRIPT_BUF].ljust(SCRIPT_BUF, b"\0")  # the kernel's buffer is zero-filled past EOF
    if buf[:2] != b"#!":
        return None, None
    buf_end = SCRIPT_BUF - 1
    i_end = buf.find(b"\n")
    if i_end < 0:
        first = _next_non_spacetab(buf, 2, buf_end)
        if first is None or _next_terminator(buf, first, buf_end) is None:
            return None, None  # all blank, or the interpreter name may be truncated: ENOEXEC
        i_end = buf_end
    while i_end > 2 and buf[i_end - 1] in b" \t":
        i_end -= 1
    i_name = _next_non_spacetab(buf, 2, i_end)
    if i_name is None or i_name == i_end:
        return None, None
    i_sep = _next_terminator(buf, i_name, i_end)
    i_arg = None
    if i_sep is not None and buf[i_sep] != 0:
        i_arg = _next_non_spacetab(buf, i_sep, i_end)
    name = buf[i_name : i_sep if i_sep is not None else i_end]
    if not name:
        return None, None  # the kernel would try to open "" (ENOENT)
    arg = buf[i_arg:i_end].split(b"\0", 1)[0] if i_arg is not None else b""
    return name.decode("utf-8", "surrogateescape"), arg.decode("utf-8", "surrogateescape") or None


def _next_non_spacetab(buf: bytes, first: int, last: int) -> int | None:
    for i in range(first, last + 1):
        if buf[i] not in b" \t":
            return i
    return None


def _next_terminator(buf: bytes, first: int, last: int) -> int | None:
    for i in range(first, last + 1):
        if buf[i] in b" \t\0":
            return i
    return None


def env_program(arg: str) -> str | None:
    """S3: the program `#!/usr/bin/env ARG` runs, skipping options and VAR=value assignments."""
    words = arg.split()
    i = 0
    while i < len(words):
        w = words[i]
        if w.startswith("-S") or w.startswith("--split-string"):
            rest = w[2:] if w.startswith("-S") else w.partition("=")[2]
            words = words[:i] + ([rest] if rest else []) + words[i + 1 :]
            continue
        if w in ("-u", "--unset", "-C", "--chdir"):
            i += 2
            continue
        if w.startswith("-") or ("=" in w and not w.startswith("=")):
            i += 1
            continue
        return w
    return None
