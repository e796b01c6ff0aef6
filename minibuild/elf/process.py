"""One program's link map (docs/loader.md, rules G1-G17 for glibc, M1-M6 for musl).

`Process` models one execution: the main program, its interpreter, preloads, then every DT_NEEDED
breadth-first. The search for a name is split by loader: `searchpath.GlibcSearch` (G4-G8, G15),
`variants.CpuVariants` (glibc-hwcaps and `$PLATFORM` alternatives), `musl.MuslSearch` (M2-M5); this
module keeps what they share: picking the loader (L1), accepting a candidate (G9), identity (G10),
and the report of a name that cannot be found.
"""

from __future__ import annotations

import posixpath
import re
import stat
from typing import TYPE_CHECKING

from minibuild.elf import ldcache
from minibuild.elf.linkmap import MappedObject, SearchLog
from minibuild.elf.loaded import Miss
from minibuild.elf.musl import MuslSearch
from minibuild.elf.parse import ElfFormatError, ElfInfo, file_key, read_elf
from minibuild.elf.profile import (
    Arch,
    LoaderProfile,
    cached_profile,
    glibc_profile,
    hwcaps_supported,
    musl_arch_of,
    musl_profile,
)
from minibuild.elf.searchpath import GlibcSearch
from minibuild.elf.sysroot import Lookup
from minibuild.elf.variants import CpuVariants
from minibuild.elf.versions import check_versions
from minibuild.errors import ElfError

if TYPE_CHECKING:
    from minibuild.elf.resolver import Resolver


class Process(GlibcSearch, CpuVariants, MuslSearch):
    """One program's link map: G1-G17 for glibc, M1-M6 for musl."""

    def __init__(self, r: Resolver, path: str, look: Lookup, info: ElfInfo, arch: Arch) -> None:
        self.r, self.fs, self.arch = r, r.fs, arch
        self.objs: list[MappedObject] = []
        self.by_name: dict[str, MappedObject] = {}
        self.by_ident: dict[tuple[int, int], MappedObject] = {}
        self.main = MappedObject(path, look, info, None, "root")
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
        self.misses: list[Miss] = []  # G19: names a library root may get from an object loaded before it

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

    def origin_of(self, o: MappedObject) -> str:
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
        r.linkmaps.append(self.objs)
        if self.misses:
            r.already.pending.append(self)  # G19: settled once every root's link map is known
        else:
            self.complete()

    def complete(self) -> None:
        """What needs the whole link map: the version check (G17), the secure-mode warning."""
        r, main = self.r, self.main
        if r.options.check_versions and not self.profile.is_musl:
            check_versions(self.objs, self.by_name)
        if self.secure:
            users = [o.path for o in self.objs if "$ORIGIN" in (o.info.runpath or o.info.rpath or "").replace(
                "${ORIGIN}", "$ORIGIN")]
            if users:
                r.warnings.append(f"`{main.path}` runs in secure mode (setuid/setgid/capabilities) for a non-root "
                                  f"user: `$ORIGIN` is then restricted (G7/G14); used by {', '.join(users)}")

    def _name(self, name: str, o: MappedObject) -> None:
        self.by_name.setdefault(name, o)
        o.names.append(name)

    def _load_interp(self, interp: str) -> MappedObject | None:
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
        o = MappedObject(interp, look, info, self.main, "interp")
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

    def map_name(self, name: str, req: MappedObject, kind: str) -> MappedObject | None:
        if self.profile.is_musl:
            return self._map_musl(name, req, kind)
        hit = self.by_name.get(name)
        if hit is not None:  # G3
            return hit
        search = SearchLog()
        if "/" in name:  # G4
            expanded = self.expand(name, req)
            if not expanded:
                search.steps.append(f"`{name}` uses a dynamic string token that cannot be expanded")
                self._not_found(name, req, kind, search)
                return None
            o = self._try(expanded[0], name, req, kind, "path in DT_NEEDED", search, direct=True)
            if o is None:
                search.steps.append(f"`{expanded[0]}` does not exist")
                self._not_found(name, req, kind, search)
                return None
            return o
        o = self._search_glibc(name, req, kind, search)
        if o is None:
            self._not_found(name, req, kind, search)
            return None
        return o

    def _not_found(self, name: str, req: MappedObject, kind: str, search: SearchLog) -> None:
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
        miss = Miss(name, req, kind, f"`{name}` (needed by `{req.path}`) not found in sysroot `{self.fs.root}`",
                    causes)
        if self.is_library_root and not self.profile.is_musl and kind != "preload" \
                and self.r.already.applies(self.main):
            self.misses.append(miss)  # G19
            return None
        self.report_missing(miss)

    def report_missing(self, miss: Miss, more: tuple[str, ...] = ()) -> None:
        """A name nothing provides: an error, or with `allow_missing` an entry of `Closure.missing`."""
        causes = miss.causes + more
        if self.r.options.allow_missing:
            self.r.missing.append((miss.req.path, miss.name))
            self.r.warnings.append(miss.message + ": " + "; ".join(causes))
            return None
        hint = "install the library in the sysroot, or point `LD_LIBRARY_PATH` / RUNPATH at it"
        if self.is_library_root and not self.profile.is_musl:
            hint += ("; if the program loads a library of that soname before this one (dlopen by full path), let "
                     "`probe` see it or declare it with `loaded_before` (docs/loader.md#g19)")
        raise ElfError(miss.message, causes=causes, hint=hint)

    # -- accepting a candidate ---------------------------------------------------------------------

    def _verify(self, path: str, look: Lookup, name: str, req: MappedObject, quiet: bool = False,
                search: SearchLog | None = None, direct: bool = False) -> ElfInfo | None:
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

    def _try(self, path: str, name: str, req: MappedObject, kind: str, label: str, search: SearchLog,
             direct: bool = False) -> MappedObject | None:
        look = self.fs.lookup(path, self.r.workdir)
        if look.realpath is None:
            return None
        info = self._verify(path, look, name, req, search=search, direct=direct)
        if info is None:
            return None
        return self._adopt(path, look, info, name, req, kind, label)

    def _adopt(self, path: str, look: Lookup, info: ElfInfo, name: str, req: MappedObject, kind: str,
               label: str) -> MappedObject:
        assert look.st is not None
        ident = (look.st.st_dev, look.st.st_ino)
        old = self.by_ident.get(ident)
        if old is not None:  # G10
            self._name(name, old)
            return old
        o = MappedObject(path, look, info, req, "preload" if kind == "preload" else "needed", found_in=label)
        self.objs.append(o)
        self.by_ident[ident] = o
        self._name(name, o)
        self.by_name.setdefault(path, o)
        if info.soname and not self.profile.is_musl:
            self.by_name.setdefault(info.soname, o)
        reason = f"needed by {req.path}" if kind != "preload" else f"preloaded by {self.main.path}"
        self.r.plan(look, reason, path)
        return o
