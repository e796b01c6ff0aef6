"""`packages = ["nginx-common", ...]`: the files of Debian packages as the sysroot's package database lists them
(docs/runtime.md, "packages"). The caller reads the database (dpkg's `info/<name>.list` on a host sysroot, the
sysroot.json record on a package sysroot) and hands over each package's paths; here they are taken from the sysroot:
directories with their modes, symlinks as they are (with the file a link leads to), regular files, every ELF file
made a root so its closure comes too. Documentation, man pages and translations are left out unless `docs`."""

from __future__ import annotations

import os
import posixpath
import stat

from minibuild.elf.sysroot import Sysroot
from minibuild.entry import TreeEntry
from minibuild.image.runtime.copy import copy_path, excluded
from minibuild.image.runtime.model import PackageFiles, RuntimePlan

# What `docs = false` leaves out: documentation, man and info pages, message catalogs.
DOC_DIRS = ("/usr/share/doc", "/usr/share/man", "/usr/share/info", "/usr/share/locale")
REASON = "package: "


def is_doc(path: str) -> bool:
    return any(path == d or path.startswith(d + "/") for d in DOC_DIRS)


def left_out(path: str, patterns: tuple[str, ...]) -> str | None:
    """The pattern that leaves `path` out: one matching it or a directory above it (a name pattern matches the
    last part, an absolute one the whole path), as `trees`' exclude does below its `src`."""
    parts = path.strip("/").split("/")
    for i in range(len(parts), 0, -1):
        rel = "/".join(parts[:i])
        found = next((p for p in patterns if excluded(rel if "/" in p else parts[i - 1], (p,))), None)
        if found is not None:
            return found
    return None


def plan_packages(out: RuntimePlan, fs: Sysroot, packages: tuple[PackageFiles, ...]) -> None:
    for pkg in packages:
        reason = REASON + pkg.name
        missing = []
        used = set()
        for path in pkg.paths:
            if not pkg.docs and is_doc(path):
                continue
            pattern = left_out(path, pkg.exclude)
            if pattern is not None:
                used.add(pattern)
                continue
            if not _add(out, fs, path, reason):
                missing.append(path)
        if missing:
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            out.warnings.append(f"package `{pkg.name}` lists `{missing[0]}`{more}, absent from sysroot `{fs.root}`; "
                                "left out")
        for pattern in (p for p in pkg.exclude if p not in used):
            out.warnings.append(f"`exclude` pattern `{pattern}` of package `{pkg.name}` matches none of its paths")


def _add(out: RuntimePlan, fs: Sysroot, path: str, reason: str) -> bool:
    """Add one listed path; False when the sysroot does not have it."""
    head, name = posixpath.split(path)
    parent = copy_path(fs, head, reason, out) if head != "/" else "/"  # the links on the way (merged /usr)
    if parent is None:
        return False
    real = posixpath.join(parent, name)
    st = fs.lstat(real)
    if st is None:
        return False
    if stat.S_ISDIR(st.st_mode):
        out.add(TreeEntry(real, "dir", stat.S_IMODE(st.st_mode), reason))
    elif stat.S_ISLNK(st.st_mode):
        target = fs.lookup(real)
        out.add(TreeEntry(real, "symlink", 0o777, reason, target=os.readlink(fs.host(real))))
        if target.realpath is None:
            out.warnings.append(f"`{path}` (in {reason}) is a broken symlink in the sysroot; copied as it is")
        elif target.st is not None and stat.S_ISDIR(target.st.st_mode):
            copy_path(fs, real, f"target of {real}", out)
            out.add(TreeEntry(target.realpath, "dir", stat.S_IMODE(target.st.st_mode), f"target of {real}"))
        else:
            copy_path(fs, real, f"target of {real}", out)
    elif stat.S_ISREG(st.st_mode):
        copy_path(fs, real, reason, out)
    return True
