"""The copy plan (docs/loader.md, rule L4): what to create in the image for each path the loader opens."""

from __future__ import annotations

import os
import stat

from minibuild.elf.sysroot import Lookup, Sysroot
from minibuild.entry import TreeEntry


class CopyPlan:
    """L4 for `Resolver`: symlinks verbatim, directories crossed by `..`, the file with its capabilities."""

    fs: Sysroot
    entries: dict[str, TreeEntry]

    def plan(self, look: Lookup, reason: str, via: str | None, executed: bool = False) -> None:
        """L4: recreate every symlink on the way verbatim, then the file itself."""
        for link in look.links:
            if link.path not in self.entries:
                st = self.fs.lstat(link.path)
                mode = stat.S_IMODE(st.st_mode) if st else 0o777
                self.entries[link.path] = TreeEntry(link.path, "symlink", mode, f"symlink on the path to {look.path}",
                                                    target=link.target, via=via)
        for d in look.dotdot_dirs:
            if d not in self.entries:
                self.entries[d] = TreeEntry(d, "dir", 0o755, f"directory crossed by `..` in {look.path}", via=via)
        real, st = look.realpath, look.st
        if real is None or st is None:
            return
        old = self.entries.get(real)
        if old is None or old.kind == "dir":
            host = self.fs.host(real)
            # file capabilities only act on a program the kernel executes, so only those are read
            self.entries[real] = TreeEntry(real, "file", stat.S_IMODE(st.st_mode), reason, source=host, size=st.st_size,
                                           via=via or look.path, xattrs=_capabilities(host) if executed else ())


def _capabilities(host: str) -> tuple[tuple[str, bytes], ...]:
    """File capabilities must be copied too (L4): they also put the program in secure mode."""
    try:
        return (("security.capability", os.getxattr(host, "security.capability", follow_symlinks=False)),)
    except OSError:
        return ()
