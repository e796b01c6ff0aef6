"""G17: a library older than the program needs (a missing symbol version) fails the build, naming both files."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.runtime.rootfs import glibc_sysroot, sysroot_workspace

LIB = """
int v1(void) { return 1; }
#ifdef V2
int v2(void) { return 2; }
#endif
"""
PROG = "int v2(void);\nint main(void) { return v2(); }\n"


def _cc(*args: str) -> None:
    subprocess.run(["cc", *args], check=True, capture_output=True)


def _sysroot(root: Path, tmp: Path) -> None:
    """A sysroot with the host's loader and libc, a program built against libv v2 and libv v1 installed."""
    (tmp / "lib.c").write_text(LIB)
    (tmp / "prog.c").write_text(PROG)
    (tmp / "v1.map").write_text("VERS_1 { global: v1; local: *; };\n")
    (tmp / "v2.map").write_text("VERS_1 { global: v1; local: *; };\nVERS_2 { global: v2; } VERS_1;\n")
    build = tmp / "build"
    build.mkdir()
    _cc("-shared", "-fPIC", "-DV2", "-Wl,-soname,libv.so.1", f"-Wl,--version-script={tmp / 'v2.map'}",
        "-o", str(build / "libv.so.1"), str(tmp / "lib.c"))
    _cc("-o", str(build / "prog"), str(tmp / "prog.c"), f"-L{build}", "-l:libv.so.1")
    libdir = glibc_sysroot(root)
    shutil.copy2(build / "prog", root / "usr/bin/prog")
    # The sysroot's libv is the older release: it defines VERS_1 only.
    _cc("-shared", "-fPIC", "-Wl,-soname,libv.so.1", f"-Wl,--version-script={tmp / 'v1.map'}",
        "-o", str(libdir / "libv.so.1.0.0"), str(tmp / "lib.c"))
    os.symlink("libv.so.1.0.0", libdir / "libv.so.1")


def test_missing_symbol_version_fails_the_build(tmp_path, cli):
    root = tmp_path / "sysroot"
    _sysroot(root, tmp_path)
    ws = sysroot_workspace(tmp_path / "ws", root, '[[image]]\nname = "prog"\nbinaries = ["/usr/bin/prog"]\n')
    r = cli("build", "//app:prog", "--no-load", cwd=ws)
    assert r.returncode == 2, r.stderr
    assert "`/usr/bin/prog` requires version `VERS_2` of `libv.so.1`" in r.stderr, r.stderr
    assert "/lib/x86_64-linux-gnu/libv.so.1" in r.stderr and "libv.so.1.0.0" in r.stderr, r.stderr
    # The same sysroot with the library the program was linked against builds.
    lib = root / "usr/lib/x86_64-linux-gnu/libv.so.1.0.0"
    lib.unlink()
    _cc("-shared", "-fPIC", "-DV2", "-Wl,-soname,libv.so.1", f"-Wl,--version-script={tmp_path / 'v2.map'}",
        "-o", str(lib), str(tmp_path / "lib.c"))
    again = cli("build", "//app:prog", "--no-load", cwd=ws)
    assert again.returncode == 0, again.stderr
