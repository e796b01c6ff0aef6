"""A build that runs out of space fails with a clear message and leaves no partial blob or output behind;
with space again, the next build succeeds."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture
def small_disk(workspace):
    state = workspace.root / ".minibuild"
    state.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(state)], capture_output=True)
    if mounted.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs (the reliability tests run as root): {mounted.stderr.decode()}")
    yield workspace, state
    subprocess.run(["umount", "-l", str(state)], check=False)


def _build(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "minibuild", "build", "//img:b", "--json", "--no-load"], cwd=root,
                          capture_output=True, text=True, timeout=300)


def test_disk_full_then_freed(small_disk, tally):
    workspace, state = small_disk
    workspace.write("img/BUILD.toml", '[[image]]\nname = "b"\nbinaries = ["/bin/bash"]\n')
    tally["cases"] += 1
    full = _build(workspace.root)
    assert full.returncode == 1, full.stderr
    assert "Traceback" not in full.stderr
    assert "no space left" in full.stderr
    tally["clean_errors"] += 1
    # Nothing half-written: no work files left, and every stored blob hashes to its name.
    assert not any((state / "cache/tmp").iterdir())
    for blob in (state / "cache/cas/sha256").glob("*/*"):
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name
    subprocess.run(["mount", "-o", "remount,size=64m", str(state)], check=True)
    ok = _build(workspace.root)
    assert ok.returncode == 0, ok.stderr
    again = _build(workspace.root)
    assert json.loads(again.stdout)["actions"]["run"] == 0
    assert json.loads(again.stdout)["targets"][0]["digest"] == json.loads(ok.stdout)["targets"][0]["digest"]
