"""CPython's standard library (docs/loader.md#r9).

CPython finds its stdlib by a landmark: `<prefix>/lib/python3.X/os.py`, the prefix being the parent of the
directory of the executable's real path. The stdlib's extension modules (`lib-dynload/*.so`) are dlopened
by full path; each is resolved as an ELF root so its libraries (libssl, libffi, libsqlite3 ...) come too.
"""

from __future__ import annotations

import posixpath
import re

from minibuild.elf.sysroot import Sysroot
from minibuild.errors import InputError
from minibuild.image.runtime.copy import copy_path, copy_tree
from minibuild.image.runtime.model import RuntimePlan, TreeSpec

EXECUTABLE = re.compile(r"python3\.\d+$")
# `python_stdlib = "minimal"` leaves out tests, GUI and development modules, the bytecode caches (CPython
# compiles what it imports, and writes the caches where it can), and three extension modules deprecated by
# PEP 594 whose libraries weigh 3.9 MB: nis (libnsl, libtirpc, Kerberos), _dbm (Berkeley DB), _crypt.
MINIMAL_EXCLUDE = ("test", "tests", "idle_test", "__pycache__", "idlelib", "tkinter", "turtledemo", "turtle.py",
                   "ensurepip", "lib2to3", "pydoc_data", "config-3.*", "*.exe", "lib-dynload/_tkinter.*",
                   "lib-dynload/_test*", "lib-dynload/xxlimited*", "lib-dynload/nis.*", "lib-dynload/_dbm.*",
                   "lib-dynload/_crypt.*")


def stdlib_of(realpath: str) -> str | None:
    name = posixpath.basename(realpath)
    if not EXECUTABLE.match(name):
        return None
    prefix = posixpath.dirname(posixpath.dirname(realpath))
    return posixpath.join(prefix, "lib", name)


def plan_python(plan: RuntimePlan, fs: Sysroot, *, executables: list[str], mode: str,
                packages: tuple[str, ...]) -> None:
    """`executables`: real paths of the closure's root programs."""
    if mode == "none":
        return
    for exe in executables:
        stdlib = stdlib_of(exe)
        if stdlib is None:
            continue
        if fs.lookup(stdlib + "/os.py").realpath is None:
            plan.warnings.append(f"`{exe}` looks like CPython but `{stdlib}/os.py` is not in sysroot `{fs.root}`: "
                                 "no standard library copied")
            continue
        exclude = MINIMAL_EXCLUDE if mode == "minimal" else ()
        copy_tree(fs, TreeSpec(stdlib, exclude, f"Python standard library ({mode}) of {exe}"), plan)
        plan.notes.append(f"Python standard library `{stdlib}` ({mode})")
    for pkg in packages:
        # A package directory, or a single module file (`/usr/lib/python3/dist-packages/six.py`).
        if not copy_tree(fs, TreeSpec(pkg, (), "python_packages"), plan) \
                and copy_path(fs, pkg, "python_packages", plan) is None:
            raise InputError(f"`python_packages`: `{pkg}` is not in sysroot `{fs.root}`")
