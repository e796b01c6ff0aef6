"""The Bazel HTTP cache protocol against Debian's nginx with WebDAV on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json

import pytest
from buildgrid.common.protos.build.bazel.remote.execution.v2 import remote_execution_pb2 as re_pb2

from tests.remote import scenario
from tests.remote.workspaces import make_team_workspace, minibuild


@pytest.mark.docker
def test_team_scenario(nginx, tmp_path):
    scenario.team_scenario(tmp_path, nginx.url)
    out = scenario.run_in_docker(tmp_path / "bob" / "src" / "clone-b", nginx.url, tmp_path / "home-b")
    assert "hello again from a genrule" in out


def test_entries_are_action_results_whose_blobs_are_stored(nginx, tmp_path):
    """Read back from nginx's own files, with the REAPI stubs: every entry an ActionResult, every file it names
    stored under its sha256, with those bytes."""
    root = make_team_workspace(tmp_path / "ws")
    scenario.build(root, nginx.url, tmp_path / "home")
    entries = sorted((nginx.data / "ac").iterdir())
    assert len(entries) == scenario.ACTIONS
    names = set()
    for path in entries:
        result = re_pb2.ActionResult()
        result.ParseFromString(path.read_bytes())
        assert result.output_files
        for f in result.output_files:
            blob = (nginx.data / "cas" / f.digest.hash).read_bytes()
            assert hashlib.sha256(blob).hexdigest() == f.digest.hash and len(blob) == f.digest.size_bytes
            names.add(f.path.split("/")[-1] if f.path.startswith(".minibuild/blobs/") else f.path)
        meta = [f for f in result.output_files if f.path == ".minibuild/entry.json"]
        assert len(meta) == 1
        doc = json.loads((nginx.data / "cas" / meta[0].digest.hash).read_bytes())
        assert set(doc) == {"schema", "outputs", "blobs", "discovered", "warnings"}
    assert {"closure.json", "layers.json", "image.tar", "hello"} <= names


def test_read_only_and_off(nginx, tmp_path):
    a, b = scenario.make_clones(tmp_path)
    ro = scenario.build(a, nginx.url, tmp_path / "h", "--remote-cache-read-only")
    assert ro["actions"]["run"] == scenario.ACTIONS and ro["bytes"]["uploaded"] == 0
    assert not (nginx.data / "ac").exists()
    done = minibuild(b, "build", "//...", "--no-load", "--json", "--no-remote-cache",
                     env={"MINIBUILD_REMOTE_CACHE": nginx.url})
    assert json.loads(done.stdout)["actions"]["run"] == scenario.ACTIONS
    assert not (nginx.data / "ac").exists()


def test_from_the_environment_and_the_workspace(nginx, tmp_path):
    a, b = scenario.make_clones(tmp_path)
    done = minibuild(a, "build", "//...", "--no-load", "--json", env={"MINIBUILD_REMOTE_CACHE": nginx.url})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["bytes"]["uploaded"] > 0
    with open(b / "workspace.toml", "a") as f:
        f.write(f'\n[cache]\nremote = "{nginx.url}"\nwrite = false\n')
    done = minibuild(b, "build", "//...", "--no-load", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["actions"] == {"run": 0, "cached": 0, "remote": scenario.ACTIONS}
