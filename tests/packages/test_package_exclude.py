"""`packages` with `exclude` on a package sysroot of the loopback repository: what the `.deb` ships (`dpkg-deb -c`)
but the paths the patterns name (docs/runtime.md, "packages")."""

from __future__ import annotations

import json

from tests.conftest import run_cli
from tests.packages.test_image_packages import _deb, _shipped


def test_exclude_leaves_out_named_directories_and_absolute_globs(pkg_ws, debs):
    pkg_ws.write(["hello"], '[[image]]\nname = "p"\nsysroot = "test"\npackages = [{ name = "hello", docs = true, '
                 'exclude = ["locale", "/usr/share/man/man1/*", "/usr/lib/nothing*"] }]\n')
    assert run_cli("lock", cwd=pkg_ws.root).returncode == 0
    r = run_cli("build", "//images:p", "--no-load", cwd=pkg_ws.root)
    assert r.returncode == 0, r.stderr
    assert "`exclude` pattern `/usr/lib/nothing*` of package `hello` matches none of its paths" in r.stderr
    files = {f["path"] for f in json.loads((pkg_ws.root / ".minibuild/out/images/p/summary.json").read_text())
             ["files"]}
    shipped = _shipped(_deb(debs, "hello"))
    gone = [p for p in shipped if p.startswith(("/usr/share/locale", "/usr/share/man/man1/"))]
    kept = [p for p in shipped if p not in gone and p not in ("/bin", "/lib", "/sbin")]
    assert gone and "/usr/share/man/man1" in kept and "/usr/share/info/hello.info.gz" in kept
    assert not [p for p in gone if p in files] and not [p for p in kept if p not in files]


def test_a_relative_exclude_pattern_is_exit_2_in_the_build_file(pkg_ws):
    pkg_ws.write(["hello"], '[[image]]\nname = "p"\nsysroot = "test"\n'
                 'packages = [{ name = "hello", exclude = ["usr/share/man"] }]\n')
    r = run_cli("build", "//images:p", "--no-load", cwd=pkg_ws.root)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "BUILD.toml" in r.stderr, r.stderr
    assert "exclude pattern `usr/share/man` must be a name (`bitcode`, `*.a`) or an absolute path" in r.stderr
