"""musl (docs/loader.md#sec-5): binaries built with musl-gcc, expected results from the musl loader's `--list`."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from minibuild.elf import ResolveOptions, resolve
from minibuild.errors import ElfError
from tests.elf import cc, oracle

MUSL_LOADER = "/lib/ld-musl-x86_64.so.1"

pytestmark = pytest.mark.skipif(not cc.have("musl-gcc") and not os.environ.get("CI"),
                                reason="musl-tools not installed")


def musl_list(path: str, cwd: str = "/") -> oracle.Trace:
    p = subprocess.run([MUSL_LOADER, "--list", path], capture_output=True, text=True, cwd=cwd, env={}, timeout=30)
    return oracle.parse_trace(p.stdout, p.stderr, p.returncode)


def _ours(closure) -> dict[str, str]:
    out = {}
    for o in closure.objects:
        for name, target in o.needed:
            out.setdefault(name, os.path.realpath(target) if target else None)
    return out


def _theirs(t: oracle.Trace) -> dict[str, str]:
    return {n: os.path.realpath(p) if p else None for n, p in t.needed.items()}


@pytest.fixture(scope="module")
def musl_fixtures(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("musl")
    libb = cc.shared(d / "B/libb.so", soname="libb.so", cc="musl-gcc")
    liba = cc.shared(d / "A/liba.so", soname="liba.so", deps=(libb,), cc="musl-gcc")
    # M3c: RUNPATH is inherited down the loading chain in musl (glibc would not find libb)
    cc.executable(d / "inherit", deps=(liba,), runpath=f"{d}/A:{d}/B", cc="musl-gcc")
    libo = cc.shared(d / "app/lib/libo.so", soname="libo.so", cc="musl-gcc")
    cc.executable(d / "app/bin/prog", deps=(libo,), runpath="$ORIGIN/../lib", cc="musl-gcc")
    cc.executable(d / "plain", cc="musl-gcc", extra=("-lm",))
    cc.executable(d / "badtoken", deps=(libo,), runpath="$ORIGIN/../app/lib:$LIB", cc="musl-gcc")
    return d


@pytest.mark.parametrize("name", ["plain", "inherit", "app/bin/prog"])
def test_matches_musl_loader(musl_fixtures, name):
    path = str(musl_fixtures / name)
    expected = musl_list(path)
    assert expected.needed, expected.stdout + expected.stderr
    closure = resolve([path])
    assert _ours(closure) == _theirs(expected)
    assert closure.objects[1].is_interpreter and closure.objects[1].path == MUSL_LOADER
    files = {e.path: e.kind for e in closure.entries}
    links = [p for p, k in files.items() if p.endswith("/ld-musl-x86_64.so.1")]
    assert links and all(files[p] == "symlink" for p in links)  # /lib/ld-musl-x86_64.so.1 -> .../libc.so
    assert files[os.path.realpath(MUSL_LOADER)] == "file"


def test_runpath_inherited_unlike_glibc(musl_fixtures):
    closure = resolve([str(musl_fixtures / "inherit")])
    liba = next(o for o in closure.objects if o.path.endswith("/A/liba.so"))
    assert dict(liba.needed)["libb.so"] == f"{musl_fixtures}/B/libb.so"


def test_reserved_names_map_to_the_loader(musl_fixtures):
    closure = resolve([str(musl_fixtures / "plain")])
    main = closure.objects[0]
    assert dict(main.needed)["libc.so"] == MUSL_LOADER


def test_other_dst_disables_the_whole_list(musl_fixtures):
    """M3c: a `$LIB` makes musl ignore that object's whole RUNPATH, `$ORIGIN` element included."""
    path = str(musl_fixtures / "badtoken")
    expected = musl_list(path)
    assert expected.fatal or expected.needed.get("libo.so") is None
    with pytest.raises(ElfError, match="libo.so"):
        resolve([path])
    closure = resolve([path], options=ResolveOptions(allow_missing=True))
    assert closure.missing == ((path, "libo.so"),)
