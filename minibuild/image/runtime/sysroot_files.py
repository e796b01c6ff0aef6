"""`files = [{ src = "/etc/nginx/mime.types", from = "sysroot" }]`: single files of the sysroot (docs/runtime.md,
"files from the sysroot"). At its own path a file comes as the sysroot has it, with the symlinks on the way to it
(an ELF file becomes a root, its closure comes too); elsewhere its bytes are copied to `dest`. The Layers action
applies the entry's mode and owner."""

from __future__ import annotations

import stat

from minibuild.elf.sysroot import Sysroot
from minibuild.entry import TreeEntry
from minibuild.errors import InputError
from minibuild.image.runtime.copy import copy_path
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
        else:
            out.add(TreeEntry(dest, "file", stat.S_IMODE(look.st.st_mode), REASON, source=fs.host(look.realpath),
                              size=look.st.st_size))
