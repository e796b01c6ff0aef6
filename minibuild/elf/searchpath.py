"""glibc's search for a library name (docs/loader.md, rules G4-G8 and G15).

`GlibcSearch` is the part of `Process` that walks the search order of a bare name: DT_RPATH of the
loading chain, `LD_LIBRARY_PATH`, the requester's DT_RUNPATH, the sysroot's ld.so.cache (or its
ld.so.conf when there is no cache), the loader's default directories. It also parses path lists and
expands dynamic string tokens. `SysrootCache` is the part of `Resolver` that reads the cache once for
every process of a resolution.
"""

from __future__ import annotations

import functools
import posixpath
import re
import stat
from typing import TYPE_CHECKING

from minibuild.elf import ldcache
from minibuild.elf.linkmap import MappedObject, SearchLog
from minibuild.elf.parse import file_key

if TYPE_CHECKING:
    from minibuild.elf.profile import Arch, LoaderProfile
    from minibuild.elf.resolver import Resolver
    from minibuild.elf.sysroot import Sysroot

_DST_RE = re.compile(r"\$(?:\{(ORIGIN|LIB|PLATFORM)\}|(ORIGIN|LIB|PLATFORM)(?![A-Za-z0-9_]))")

_CACHE_FILES: dict[tuple, ldcache.LdCache | None] = {}


def _dst_value(values: dict[str, str], m: re.Match[str]) -> str:
    """The value of the dynamic string token `m` matched (either spelling)."""
    return values[m.group(1) or m.group(2)]


class GlibcSearch:
    """G4-G8 for `Process`: where glibc's loader looks for a name, in order.

    Uses the candidate checks of `Process` (`_try`) and the variants of `CpuVariants`.
    """

    r: Resolver
    fs: Sysroot
    arch: Arch
    profile: LoaderProfile
    main: MappedObject
    supported: tuple[str, ...] | None
    platform: str
    _cache: tuple[ldcache.LdCache | None, list[str] | None] | None

    if TYPE_CHECKING:
        # provided by `Process`
        def origin_of(self, o: MappedObject) -> str: ...

        def _try(self, path: str, name: str, req: MappedObject, kind: str, label: str, search: SearchLog,
                 direct: bool = False) -> MappedObject | None: ...

        # provided by `CpuVariants`
        def _subdirs(self) -> list[str]: ...

        def _hwcaps_variants(self, base: str, name: str, primary: MappedObject, req: MappedObject) -> None: ...

        def _platform_variants(self, hit: MappedObject | None, alts: list[tuple[str, str]], name: str,
                               req: MappedObject) -> MappedObject | None: ...

        def _variant(self, path: str, primary: MappedObject | None, name: str, req: MappedObject,
                     via: str) -> MappedObject | None: ...

    def _search_glibc(self, name: str, req: MappedObject, kind: str, search: SearchLog) -> MappedObject | None:
        main = self.main
        platform_alts: list[tuple[str, str]] = []
        # G5.1: DT_RPATH of the loading chain, then of main, unless the requester has DT_RUNPATH
        if req.info.runpath is None:
            o: MappedObject | None = req
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

    def _search_list(self, text: str, owner: MappedObject, name: str, req: MappedObject, kind: str, label: str,
                     search: SearchLog, platform_alts: list[tuple[str, str]], seps: str = ":") -> MappedObject | None:
        dirs = []
        for elem in self.path_list(text, owner, seps, platform_alts):
            if elem not in dirs:
                dirs.append(elem)
        return self._search_dirs(dirs, name, req, kind, label, search)

    def path_list(self, text: str, owner: MappedObject, seps: str, platform_alts: list[tuple[str, str]]) -> list[str]:
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

    def expand(self, text: str, owner: MappedObject) -> list[str]:
        """G7: expand $ORIGIN/$LIB/$PLATFORM; [] if it cannot be; several results for $PLATFORM."""
        if "$" not in text:
            return [text]
        platforms = [self.platform]
        if self.r.options.platform is None and _DST_RE.search(text) and "PLATFORM" in text:
            platforms += [p for p in self.arch.platforms if p != self.platform]
        out = []
        for plat in platforms:
            values = {"ORIGIN": self.origin_of(owner), "LIB": self.profile.lib, "PLATFORM": plat}
            out.append(_DST_RE.sub(functools.partial(_dst_value, values), text))
        if "PLATFORM" not in text:
            out = out[:1]
        return out

    def _search_dirs(self, dirs: list[str], name: str, req: MappedObject, kind: str, label: str,
                     search: SearchLog) -> MappedObject | None:
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


class SysrootCache:
    """G15 for `Resolver`: the sysroot's ld.so.cache, parsed once per file (process-wide, by file identity)."""

    fs: Sysroot
    warnings: list[str]

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
