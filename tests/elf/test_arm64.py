"""A foreign-architecture sysroot: arm64 libraries from libc6-arm64-cross laid out as a Debian root.

Nothing here can run the arm64 loader, so the expectations come from binutils' own reading of the
files (`aarch64-linux-gnu-readelf`) and from the layout the test itself made.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from minibuild.elf import ResolveOptions, closure_json, resolve
from minibuild.errors import ElfError
from tests.elf import cc

CROSS = Path("/usr/aarch64-linux-gnu/lib")
TRIPLET = "aarch64-linux-gnu"

pytestmark = pytest.mark.skipif(
    not (cc.have("aarch64-linux-gnu-gcc") and CROSS.is_dir()) and not os.environ.get("CI"),
    reason="gcc-aarch64-linux-gnu / libc6-arm64-cross not installed",
)


def readelf(*args: str) -> str:
    return subprocess.run(["aarch64-linux-gnu-readelf", *args], capture_output=True, text=True, check=True).stdout


def readelf_needed(path: Path) -> list[str]:
    return re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", readelf("-d", str(path)))


def readelf_interp(path: Path) -> str:
    return re.search(r"Requesting program interpreter: (.+?)\]", readelf("-l", str(path))).group(1)


@pytest.fixture(scope="module")
def sysroot(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("arm64") / "root"
    libdir = root / "usr/lib" / TRIPLET
    libdir.mkdir(parents=True)
    for entry in CROSS.iterdir():
        if entry.suffix in (".a", ".o") or entry.name.endswith(".a"):
            continue
        shutil.copy2(entry, libdir / entry.name, follow_symlinks=False)
    # Debian arm64: /lib -> usr/lib, /lib/ld-linux-aarch64.so.1 -> aarch64-linux-gnu/ld-linux-aarch64.so.1
    (root / "lib").symlink_to("usr/lib")
    (root / "usr/lib/ld-linux-aarch64.so.1").symlink_to(f"{TRIPLET}/ld-linux-aarch64.so.1")
    (root / "etc/ld.so.conf.d").mkdir(parents=True)
    (root / "etc/ld.so.conf").write_text("include /etc/ld.so.conf.d/*.conf\n")
    (root / "etc/ld.so.conf.d/aarch64-linux-gnu.conf").write_text(f"/usr/local/lib/{TRIPLET}\n")
    # the program's own library, next to it, found through RUNPATH $ORIGIN/../lib
    gcc = "aarch64-linux-gnu-gcc"
    mine = cc.shared(root / "opt/app/lib/libmine.so.1", soname="libmine.so.1", cc=gcc, extra=("-lm",))
    conf = cc.shared(root / f"usr/local/lib/{TRIPLET}/libconf.so.1", soname="libconf.so.1", cc=gcc)
    cc.executable(root / "opt/app/bin/hello", deps=(mine, conf), runpath="$ORIGIN/../lib", cc=gcc,
                  source="int main(void) { return 0; }\n")
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/hello").symlink_to("/opt/app/bin/hello")  # absolute: must resolve inside the sysroot
    return root


def test_arm64_closure(sysroot):
    exe = sysroot / "opt/app/bin/hello"
    interp = readelf_interp(exe)
    assert interp == "/lib/ld-linux-aarch64.so.1"
    closure = resolve(["/usr/bin/hello"], str(sysroot))
    assert (closure.architecture, closure.variant) == ("arm64", "v8")
    main, loader = closure.objects[0], closure.objects[1]
    assert main.machine == "EM_AARCH64" and loader.is_interpreter and loader.path == interp
    assert loader.realpath == f"/usr/lib/{TRIPLET}/ld-linux-aarch64.so.1"
    needed = dict(main.needed)
    assert list(needed) == readelf_needed(exe)
    assert needed["libmine.so.1"] == "/opt/app/bin/../lib/libmine.so.1"  # $ORIGIN is the real directory
    assert needed["libconf.so.1"] == f"/usr/local/lib/{TRIPLET}/libconf.so.1"  # via ld.so.conf, no cache
    assert needed["libc.so.6"] == f"/lib/{TRIPLET}/libc.so.6"  # the arm64 loader's first default dir
    mine = next(o for o in closure.objects if o.path.endswith("libmine.so.1"))
    assert [n for n, _ in mine.needed] == readelf_needed(sysroot / "opt/app/lib/libmine.so.1")
    assert dict(mine.needed)["libm.so.6"] == f"/lib/{TRIPLET}/libm.so.6"
    files = {e.path: e for e in closure.entries}
    for path in ("/usr/bin/hello", "/lib", "/usr/lib/ld-linux-aarch64.so.1"):
        assert files[path].kind == "symlink", path
    for path in (f"/usr/lib/{TRIPLET}/libc.so.6", f"/usr/lib/{TRIPLET}/ld-linux-aarch64.so.1",
                 "/opt/app/bin/hello", "/opt/app/lib/libmine.so.1"):
        assert files[path].kind == "file" and files[path].source == f"{sysroot}{path}", path
    assert files["/opt/app/bin"].kind == "dir"  # crossed by `..`: must exist in the image
    assert all(e.source is None or e.source.startswith(str(sysroot)) for e in closure.entries)
    assert closure_json({"/usr/bin/hello": closure})["/usr/bin/hello"]["interpreter"] == interp


def test_arm64_library_root(sysroot):
    closure = resolve([f"/usr/lib/{TRIPLET}/libstdc++.so.6"], str(sysroot))
    names = {n for o in closure.objects for n, _ in o.needed}
    assert set(readelf_needed(CROSS / "libstdc++.so.6")) <= names
    assert closure.architecture == "arm64"


def test_mixing_architectures_is_an_error(sysroot):
    target = sysroot / "usr/bin/x86"
    if not target.exists():
        cc.executable(target, extra=("-static",))
    with pytest.raises(ElfError, match="one architecture"):
        resolve(["/usr/bin/hello", "/usr/bin/x86"], str(sysroot))


def test_host_loader_is_not_used(sysroot):
    """Resolving arm64 on x86_64 must not fall back to the host's /lib/x86_64-linux-gnu."""
    closure = resolve(["/usr/bin/hello"], str(sysroot), ResolveOptions())
    assert not any("x86_64" in e.path for e in closure.entries)
