"""Copying paths and trees out of a sysroot: symlink chains verbatim, ELF files handed to the resolver."""

from __future__ import annotations

import fnmatch
import os
import posixpath
import stat

from minibuild.elf.parse import ELF_MAGIC, ET_DYN, ET_EXEC, ElfFormatError, read_elf
from minibuild.elf.sysroot import Sysroot
from minibuild.entry import TreeEntry
from minibuild.image.runtime.model import RuntimePlan, TreeSpec


def copy_path(fs: Sysroot, path: str, reason: str, plan: RuntimePlan, *, follow_dir: bool = False) -> str | None:
    """Add `path` with every symlink on the way to it; returns its real in-image path, or None if absent.

    A regular file is copied (or made an ELF root when it is one); a directory only as the links leading
    to it (its content is the caller's business) unless `follow_dir`.
    """
    look = fs.lookup(path)
    if look.realpath is None or look.st is None:
        return None
    for link in look.links:
        st = fs.lstat(link.path)
        plan.add(TreeEntry(link.path, "symlink", stat.S_IMODE(st.st_mode) if st else 0o777,
                             f"symlink on the path to {path}", target=link.target))
    if stat.S_ISREG(look.st.st_mode):
        _add_file(fs, look.realpath, look.st, reason, plan)
    elif stat.S_ISDIR(look.st.st_mode) and follow_dir:
        copy_tree(fs, TreeSpec(look.realpath, (), reason), plan)
    return look.realpath


def _add_file(fs: Sysroot, path: str, st: os.stat_result, reason: str, plan: RuntimePlan) -> None:
    host = fs.host(path)
    if is_elf(host):
        plan.root(path, reason, "runtime")
    else:
        plan.add(TreeEntry(path, "file", stat.S_IMODE(st.st_mode), reason, source=host, size=st.st_size))


def is_elf(host_path: str) -> bool:
    """A program or shared library the loader can map; object files (`.o`) and other ELF files are plain data."""
    try:
        with open(host_path, "rb") as f:
            if f.read(4) != ELF_MAGIC:
                return False
        return read_elf(host_path).e_type in (ET_EXEC, ET_DYN)
    except (OSError, ElfFormatError):
        return False


def excluded(rel: str, patterns: tuple[str, ...]) -> bool:
    name = posixpath.basename(rel)
    return any(fnmatch.fnmatchcase(rel if "/" in p else name, p.strip("/") if "/" in p else p) for p in patterns)


def copy_tree(fs: Sysroot, spec: TreeSpec, plan: RuntimePlan) -> bool:
    """Add the tree `spec.src` of the sysroot; False when it does not exist or is not a directory.

    Every regular ELF file in it becomes an ELF root (its libraries come along); a symlink is copied as
    it is, and when it leads out of the tree, the file it leads to is copied too.
    """
    look = fs.lookup(spec.src)
    if look.realpath is None or look.st is None or not stat.S_ISDIR(look.st.st_mode):
        return False
    copy_path(fs, spec.src, spec.reason, plan)
    top = look.realpath
    host_top = fs.host(top)
    reason = spec.reason or f"tree {spec.src}"
    plan.add(TreeEntry(top, "dir", stat.S_IMODE(look.st.st_mode), reason))
    # With `include`: directories wait here (in-image path -> mode) until something below them is copied.
    pending: dict[str, int] = {}
    inside: set[str] = set()  # relative directories at or below one an `include` pattern matched

    matched: set[str] = set()  # the `include` patterns that matched something, to warn of the others

    def keep(path: str, rel: str, rel_dir: str) -> bool:
        hits = {p for p in spec.include if excluded(rel, (p,))}
        matched.update(hits)
        if rel_dir in inside or hits:
            for d in parent_chain(path, top):
                if d in pending:
                    plan.add(TreeEntry(d, "dir", pending.pop(d), reason))
            return True
        return False

    for host_dir, dirs, files in os.walk(host_top):
        rel_dir = os.path.relpath(host_dir, host_top)
        rel_dir = "" if rel_dir == "." else rel_dir
        kept = []
        for d in sorted(dirs):
            rel = posixpath.join(rel_dir, d)
            if excluded(rel, spec.exclude):
                continue
            full = os.path.join(host_dir, d)
            st = os.lstat(full)
            path = posixpath.join(top, rel)
            fs.note_probe(path)
            if stat.S_ISLNK(st.st_mode):  # os.walk lists links to directories as directories
                if not spec.include or keep(path, rel, rel_dir):
                    _add_link(fs, path, os.readlink(full), top, reason, plan, spec)
                continue
            if not spec.include or keep(path, rel, rel_dir):
                inside.add(rel)
                plan.add(TreeEntry(path, "dir", stat.S_IMODE(st.st_mode), reason))
            else:
                pending[path] = stat.S_IMODE(st.st_mode)
            kept.append(d)
        dirs[:] = kept
        for name in sorted(files):
            rel = posixpath.join(rel_dir, name)
            if excluded(rel, spec.exclude):
                continue
            full = os.path.join(host_dir, name)
            path = posixpath.join(top, rel)
            if spec.include and not keep(path, rel, rel_dir):
                continue
            fs.note_probe(path)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                _add_link(fs, path, os.readlink(full), top, reason, plan, spec)
            elif stat.S_ISREG(st.st_mode):
                _add_file(fs, path, st, reason, plan)
    for pattern in (p for p in spec.include if p not in matched):
        plan.warnings.append(f"`include` pattern `{pattern}` of tree `{spec.src}` matches nothing in sysroot "
                             f"`{fs.root}`; nothing of it is copied")
    return True


def parent_chain(path: str, top: str) -> list[str]:
    """The directories between `top` (excluded) and `path` (excluded), outermost first."""
    out = []
    d = posixpath.dirname(path)
    while d != top and d.startswith(top + "/"):
        out.append(d)
        d = posixpath.dirname(d)
    return out[::-1]


def _add_link(fs: Sysroot, path: str, target: str, top: str, reason: str, plan: RuntimePlan, spec: TreeSpec) -> None:
    plan.add(TreeEntry(path, "symlink", 0o777, reason, target=target))
    look = fs.lookup(path)
    real = look.realpath
    if real is None:
        if (path, target) not in spec.dangling:
            plan.warnings.append(f"`{path}` (in {reason}) is a broken symlink in the sysroot; copied as it is")
    elif spec.include or not (real == top or real.startswith(top + "/")):
        # The link leads out of the tree (Debian: python3.11/sitecustomize.py -> /etc/python3.11/...), or to a part
        # of it `include` leaves out.
        copy_path(fs, path, f"target of {path}", plan)
