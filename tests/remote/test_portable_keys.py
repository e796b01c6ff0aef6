"""Keys and outputs do not depend on where a workspace is checked out: two clones at different paths compute
the same key for every action and write the same bytes, the condition for sharing a remote cache."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.remote.workspaces import make_sysroot_workspace, make_team_workspace, minibuild


def _manifests(root: Path) -> dict[str, dict]:
    """The key manifest of every action that ran, by the file name the cache gives it (a hash of the action id)."""
    last = root / ".minibuild" / "cache" / "last"
    return {p.name: json.loads(p.read_text()) for p in sorted(last.iterdir())}


def _outputs(root: Path) -> dict[str, bytes]:
    out = root / ".minibuild" / "out"
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.name != ".lock"}


@pytest.mark.parametrize("make", [make_team_workspace, make_sysroot_workspace], ids=["genrule", "sysroot-inside"])
def test_two_clones_share_every_key(tmp_path, make):
    a = make(tmp_path / "a" / "ws")
    b = tmp_path / "elsewhere" / "deeper" / "clone"
    shutil.copytree(a, b)
    for root in (a, b):
        done = minibuild(root, "build", "//...", "--no-load", "--quiet")
        assert done.returncode == 0, done.stderr
    ma, mb = _manifests(a), _manifests(b)
    assert ma and ma.keys() == mb.keys()
    for name in ma:
        assert ma[name] == mb[name], f"{ma[name]['function']}: the key differs between the clones"
        assert str(a) not in json.dumps(ma[name])
    assert _outputs(a) == _outputs(b)
    for data in _outputs(a).values():
        assert str(a).encode() not in data


def test_a_moved_sysroot_file_still_reruns_the_closure(tmp_path):
    """Discovered inputs inside the workspace are kept relative to it, and still checked."""
    root = make_sysroot_workspace(tmp_path / "ws")
    assert minibuild(root, "build", "//app:bash", "--no-load", "--json").returncode == 0
    again = minibuild(root, "build", "//app:bash", "--no-load", "--json")
    assert json.loads(again.stdout)["actions"]["run"] == 0
    (root / "sysroot" / "etc").mkdir(exist_ok=True)
    (root / "sysroot" / "etc" / "ld.so.preload").write_text("")
    changed = minibuild(root, "build", "//app:bash", "--no-load", "--json")
    assert changed.returncode == 0, changed.stderr
    assert json.loads(changed.stdout)["actions"]["run"] >= 1
