"""musl's search for a library name (docs/loader.md, rules M2-M6).

Reserved names map to the loader itself; a bare name is looked up by the base name of what is
loaded, then in `LD_LIBRARY_PATH`, then in DT_RUNPATH-else-DT_RPATH of every object up the loading
chain (inherited, unlike glibc), then in the system path file. The first file found is used: a wrong
one is fatal, never skipped.
"""

from __future__ import annotations

import posixpath
import re
from typing import TYPE_CHECKING

from minibuild.elf.linkmap import MappedObject, SearchLog

if TYPE_CHECKING:
    from minibuild.elf.parse import ElfInfo
    from minibuild.elf.profile import Arch, LoaderProfile
    from minibuild.elf.resolver import Resolver
    from minibuild.elf.sysroot import Lookup, Sysroot

MUSL_RESERVED = ("c", "pthread", "rt", "m", "dl", "util", "xnet")


class MuslSearch:
    """M2-M5 for `Process` (with its `_adopt`, `_verify` and `_not_found`)."""

    r: Resolver
    fs: Sysroot
    arch: Arch
    profile: LoaderProfile
    objs: list[MappedObject]
    by_ident: dict[tuple[int, int], MappedObject]
    interp: MappedObject | None
    interp_path: str | None
    _sys_path: list[str] | None

    if TYPE_CHECKING:
        # provided by `Process`
        def origin_of(self, o: MappedObject) -> str: ...

        def _not_found(self, name: str, req: MappedObject, kind: str, search: SearchLog) -> None: ...

        def _verify(self, path: str, look: Lookup, name: str, req: MappedObject, quiet: bool = False,
                    search: SearchLog | None = None, direct: bool = False) -> ElfInfo | None: ...

        def _adopt(self, path: str, look: Lookup, info: ElfInfo, name: str, req: MappedObject, kind: str,
                   label: str) -> MappedObject: ...

    def _map_musl(self, name: str, req: MappedObject, kind: str) -> MappedObject | None:
        interp = self.interp
        base = name.split("/")[-1]
        if name.startswith("lib") and interp is not None:  # M2
            stem = name[3:].split(".", 1)
            if len(stem) == 2 and stem[0] in MUSL_RESERVED:
                interp.names.append(name)
                return interp
        if interp is not None and (name == interp.path or name == posixpath.basename(interp.path)):
            return interp
        search = SearchLog()
        if "/" in name:
            hit = self._try_musl(name, name, req, kind, "path in DT_NEEDED", search)
            if hit is None:
                self._not_found(name, req, kind, search)
            return hit
        for loaded in self.objs:  # M3a: loaded under this base name
            if loaded.shortname == base:
                return loaded
        llp = self.r.env.get("LD_LIBRARY_PATH")
        if llp:
            hit = self._musl_dirs(re.split(r"[:\n]", llp), name, req, kind, "`LD_LIBRARY_PATH`", search)
            if hit is not None:
                return hit
        o: MappedObject | None = req
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
        if hit is None:
            self._not_found(name, req, kind, search)
        return hit

    def _musl_rpath(self, text: str, o: MappedObject) -> list[str] | None:
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

    def _musl_dirs(self, dirs: list[str], name: str, req: MappedObject, kind: str, label: str,
                   search: SearchLog) -> MappedObject | None:
        dirs = [d for d in dirs if d]
        search.steps.append(f"{label}: " + ", ".join(f"`{d}`" for d in dirs))
        for d in dirs:
            hit = self._try_musl(f"{d}/{name}", name, req, kind, label, search)
            if hit is not None:
                return hit
        return None

    def _try_musl(self, path: str, name: str, req: MappedObject, kind: str, label: str,
                  search: SearchLog) -> MappedObject | None:
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
