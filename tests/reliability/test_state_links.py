"""Symbolic links where minibuild keeps its state (`.minibuild`, `.minibuild/cache`, `.minibuild/out`, the cache's
own folders), as a cloned repository or a CI cache restore can leave them: builds wrote `/cas`, `/ac`, `/last`,
`/locks` at the root, and `clean --cache` deleted another directory's `cache/` and `out/` (issue 15 #8). Now a
build refuses with one message naming the link (exit 2, no traceback), `clean` removes a link at `out` or `cache`
itself and never what it points to, and refuses a `.minibuild` that is a link. Whatever the link points to is
byte for byte as it was, checked with the test's own walk of it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.reliability.cache_tools import build, make_workspace, no_traceback, state


def _target(tmp: Path) -> Path:
    """Another directory, with something in it (another workspace's state, or anything at all)."""
    other = tmp / "elsewhere"
    for rel in ("cache/cas/keep", "out/img/keep", "keep"):
        (other / rel).parent.mkdir(parents=True, exist_ok=True)
        (other / rel).write_text(f"{rel}\n")
    return other


LINKS = {  # where the link is, relative to the workspace, and whether a build first makes the rest
    ".minibuild": False,
    ".minibuild/cache": False,
    ".minibuild/out": False,
    ".minibuild/cache/cas": True,
    ".minibuild/cache/ac": True,
    ".minibuild/cache/tmp": True,
    ".minibuild/cache/analysis": True,
}


@pytest.mark.parametrize("where", sorted(LINKS))
@pytest.mark.parametrize("dangling", [False, True], ids=["to a directory", "dangling"])
def test_a_build_refuses_a_link_in_its_state(tmp_path, tally, where, dangling):
    root = make_workspace(tmp_path / "ws")
    if LINKS[where]:
        assert build(root).returncode == 0
        link = root / where
        os.rename(link, tmp_path / "set-aside")
    other = tmp_path / "nowhere" if dangling else _target(tmp_path)
    before = state(other)
    link = root / where
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(other)
    tally["cases"] += 1
    r = build(root)
    if state(other) != before:
        tally["links_followed"] += 1
    assert state(other) == before
    assert not Path("/cas").exists() and not Path("/ac").exists()
    assert r.returncode == 2 and no_traceback(r), r.stderr
    assert "symbolic link" in r.stderr and link.name in r.stderr and "MINIBUILD_CACHE" in r.stderr, r.stderr
    tally["links_refused"] += 1
    tally["clean_errors"] += 1


@pytest.mark.parametrize("sub", ["out", "cache"])
def test_clean_removes_a_link_not_what_it_points_to(tmp_path, tally, sub):
    root = make_workspace(tmp_path / "ws")
    assert build(root).returncode == 0
    other = _target(tmp_path)
    before = state(other)
    link = root / ".minibuild" / sub
    os.rename(link, tmp_path / "set-aside")
    link.symlink_to(other)
    tally["cases"] += 1
    r = run_cli("clean", "--cache", cwd=root)
    if state(other) != before:
        tally["links_followed"] += 1
    assert state(other) == before
    assert r.returncode == 0 and no_traceback(r), r.stderr
    assert not link.exists() and not link.is_symlink()
    assert "symbolic link" in r.stderr and "left alone" in r.stderr
    tally["links_refused"] += 1
    assert build(root).returncode == 0  # and the workspace builds again, its state its own


def test_clean_refuses_a_state_directory_that_is_a_link(tmp_path, tally):
    """`.minibuild` pointing at another workspace's: `clean --cache` deleted that one's cache and outputs."""
    other_ws = make_workspace(tmp_path / "other")
    assert build(other_ws).returncode == 0
    before = state(other_ws / ".minibuild")
    root = make_workspace(tmp_path / "ws")
    (root / ".minibuild").symlink_to(other_ws / ".minibuild")
    tally["cases"] += 1
    r = run_cli("clean", "--cache", cwd=root)
    if state(other_ws / ".minibuild") != before:
        tally["links_followed"] += 1
    assert state(other_ws / ".minibuild") == before
    assert r.returncode == 2 and no_traceback(r), r.stderr
    assert "`.minibuild` is a symbolic link" in r.stderr, r.stderr
    tally["links_refused"] += 1
    tally["clean_errors"] += 1
