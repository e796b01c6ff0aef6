"""What depends on the CPU that runs the image (docs/loader.md, rules G7 and G8).

With a CPU level, `_subdirs` gives the glibc-hwcaps subdirectories the loader tries first (and the
legacy hwcap subdirectories of glibc <= 2.36). Without one, the baseline file is the loader's choice and
every `glibc-hwcaps/*` variant next to it (or in the cache) is copied too, with its own closure; every
existing `$PLATFORM` alternative likewise, with a warning.
"""

from __future__ import annotations

import stat
from typing import TYPE_CHECKING

from minibuild.elf.linkmap import MappedObject
from minibuild.elf.profile import legacy_subdirs

if TYPE_CHECKING:
    from minibuild.elf.linkmap import SearchLog
    from minibuild.elf.parse import ElfInfo
    from minibuild.elf.profile import Arch, LoaderProfile
    from minibuild.elf.resolver import Resolver
    from minibuild.elf.sysroot import Lookup, Sysroot


class CpuVariants:
    """G7/G8 for `Process`: hwcaps subdirectories, hwcaps variants, `$PLATFORM` alternatives."""

    r: Resolver
    fs: Sysroot
    arch: Arch
    profile: LoaderProfile
    objs: list[MappedObject]
    supported: tuple[str, ...] | None
    platform: str
    _subdir_list: list[str] | None

    if TYPE_CHECKING:
        # provided by `Process`
        def _verify(self, path: str, look: Lookup, name: str, req: MappedObject, quiet: bool = False,
                    search: SearchLog | None = None, direct: bool = False) -> ElfInfo | None: ...

    def _subdirs(self) -> list[str]:
        """G8: the subdirectories tried in every search directory before the directory itself."""
        if self._subdir_list is None:
            subs = [f"glibc-hwcaps/{s}" for s in (self.supported or ())]
            if self.profile.legacy_subdirs:
                subs += list(legacy_subdirs(self.arch, self.platform))
            self._subdir_list = subs
        return self._subdir_list

    def _hwcaps_variants(self, base: str, name: str, primary: MappedObject, req: MappedObject) -> None:
        hw = base + "glibc-hwcaps"
        look = self.fs.lookup(hw, self.r.workdir)
        if look.realpath is None or look.st is None or not stat.S_ISDIR(look.st.st_mode):
            return
        for sub in self.fs.listdir(look.realpath):
            self._variant(f"{hw}/{sub}/{name}", primary, name, req, "hwcaps")

    def _platform_variants(self, hit: MappedObject | None, alts: list[tuple[str, str]], name: str,
                           req: MappedObject) -> MappedObject | None:
        for primary_dir, alt_dir in alts:
            if hit is not None and not hit.path.startswith(primary_dir):
                continue
            v = self._variant(f"{alt_dir.rstrip('/')}/{name}", hit, name, req, "platform")
            if v is not None:
                self.r.warnings.append(
                    f"`$PLATFORM` in the search path of `{req.path}` depends on the CPU: copied `{v.path}` too")
        alts.clear()
        return hit

    def _variant(self, path: str, primary: MappedObject | None, name: str, req: MappedObject,
                 via: str) -> MappedObject | None:
        look = self.fs.lookup(path, self.r.workdir)
        if look.realpath is None or (primary is not None and look.realpath == primary.realpath):
            return None
        info = self._verify(path, look, name, req, quiet=True)
        if info is None:
            return None
        o = MappedObject(path, look, info, req, via, variant_of=primary, found_in=via)
        o.names.append(name)
        self.objs.append(o)
        label = "glibc-hwcaps variant" if via == "hwcaps" else "`$PLATFORM` alternative"
        self.r.plan(look, f"{label} of {primary.path if primary else name} (needed by {req.path})", path)
        return o
