"""`files = [{ src = "/etc/nginx/mime.types", from = "sysroot" }]`: single files of the sysroot (docs/runtime.md,
"files from the sysroot"). At its own path a file comes as the sysroot has it, with the symlinks on the way to it
(an ELF file becomes a root, its closure comes too); elsewhere its bytes are copied to `dest`, and an ELF program or
library is resolved there as a binary would be (the closure action maps `dest` to the sysroot file, `moved_elf_files`),
so its libraries come too. The Layers action applies the entry's mode and owner."""

from __future__ import annotations

import stat

from minibuild.elf.sysroot import Sysroot
from minibuild.entry import TreeEntry
from minibuild.errors import InputError
from minibuild.image.runtime.copy import copy_path, is_elf
from minibuild.image.runtime.model import RuntimePlan

REASON = "file from the sysroot"


def plan_sysroot_files(out: RuntimePlan, fs: Sysroot, files: tuple[tuple[str, str, str], ...],
                       sysroot_name: str) -> None:
    for src, dest, origin in files:
        look = fs.lookup(src)
        if look.realpath is None or look.st is None:
            raise InputError(f"{origin}: `{src}` is not in sysroot `{sysroot_name}`",
                             hint="check the path in the sysroot (`ls -l`), or ship the file from the package "
                                  "(`src` relative to BUILD.toml, without `from`)")
        if stat.S_ISDIR(look.st.st_mode):
            raise InputError(f"{origin}: `{src}` is a directory in sysroot `{sysroot_name}`; `files` takes files",
                             hint=f'copy a directory with `trees = [{{ src = "{src}" }}]` (with `include` or '
                                  "`exclude` to take part of it)")
        if not stat.S_ISREG(look.st.st_mode):
            raise InputError(f"{origin}: `{src}` in sysroot `{sysroot_name}` is not a regular file")
        if dest == src:
            copy_path(fs, src, REASON, out)
        elif fs.overlay.get(dest) == fs.host(look.realpath):  # an ELF file mapped to `dest`: resolved there
            out.root(dest, REASON, "runtime")
        else:
            out.add(TreeEntry(dest, "file", stat.S_IMODE(look.st.st_mode), REASON, source=fs.host(look.realpath),
                              size=look.st.st_size))


def moved_elf_files(fs: Sysroot, files: tuple[tuple[str, str, str], ...]) -> dict[str, str]:
    """`dest` -> host file of each sysroot ELF program or library that `files` copies to another path: the resolver
    reads it at `dest` (as an overlay), so RUNPATH's `$ORIGIN` and the closure are those of the file where it runs.
    Every path looked at is in `fs.probed`."""
    out = {}
    for src, dest, _ in files:
        look = fs.lookup(src)
        if dest != src and look.realpath is not None and look.st is not None and stat.S_ISREG(look.st.st_mode) \
                and is_elf(fs.host(look.realpath)):
            out[dest] = fs.host(look.realpath)
    return out
