"""A flipped byte in a stored blob is detected by its digest, discarded, rebuilt with a warning, never shipped."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def _flip(path: Path) -> None:
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _blobs(root: Path) -> list[Path]:
    return sorted(p for p in (root / ".minibuild/cache/cas/sha256").glob("*/*") if p.is_file())


def test_corrupt_layer_is_rebuilt_not_shipped(workspace, cli):
    workspace.write("img/BUILD.toml", '[[image]]\nname = "b"\nbinaries = ["/bin/bash"]\n')
    first = cli("build", "//img:b", "--json", "--no-load", cwd=workspace.root)
    assert first.returncode == 0, first.stderr
    digest = first.json()["targets"][0]["digest"]
    layer = first.json()["targets"][0]["layers"][0]["digest"].split(":")[1]
    blob = next(p for p in _blobs(workspace.root) if p.name == layer)
    _flip(blob)
    again = cli("build", "//img:b", "--json", "--no-load", cwd=workspace.root)
    assert again.returncode == 0, again.stderr
    assert "was corrupt" in again.stderr
    assert again.json()["actions"]["run"] >= 1
    assert again.json()["targets"][0]["digest"] == digest
    # What is stored (and hard-linked into the layout) hashes to its name again.
    for p in _blobs(workspace.root):
        assert hashlib.sha256(p.read_bytes()).hexdigest() == p.name
    shipped = workspace.root / again.json()["targets"][0]["oci"] / "blobs/sha256" / layer
    assert hashlib.sha256(shipped.read_bytes()).hexdigest() == layer


def test_cache_verify(workspace, cli):
    workspace.write("img/BUILD.toml", '[[image]]\nname = "b"\nbinaries = ["/bin/bash"]\n')
    assert cli("build", "//img:b", "--no-load", cwd=workspace.root).returncode == 0
    ok = cli("cache", "verify", "--json", cwd=workspace.root)
    assert ok.returncode == 0 and ok.json()["corrupt_blobs"] == 0, ok.stderr
    _flip(_blobs(workspace.root)[0])
    bad = cli("cache", "verify", "--json", cwd=workspace.root)
    assert bad.returncode == 1 and bad.json()["corrupt_blobs"] == 1
    assert bad.json()["discarded_actions"] >= 1
    assert cli("build", "//img:b", "--no-load", cwd=workspace.root).returncode == 0
    assert cli("cache", "verify", cwd=workspace.root).returncode == 0
