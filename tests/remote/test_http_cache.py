"""The Bazel HTTP cache protocol against Debian's nginx with WebDAV on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess

import pytest
from buildgrid.common.protos.build.bazel.remote.execution.v2 import remote_execution_pb2 as re_pb2

from tests.remote import scenario
from tests.remote.servers import start_nginx
from tests.remote.workspaces import make_sysroot_workspace, make_team_workspace, minibuild


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


SECRET = "s3cret-Pa55"


def test_credentials_work_and_are_never_printed(tmp_path_factory, tmp_path):
    """nginx with basic auth (htpasswd from apache2-utils): credentials in the URL, or a headers file named in
    workspace.toml; a wrong password is one warning that shows neither the password nor the header."""
    base = tmp_path_factory.mktemp("nginx-auth")
    htpasswd = base / "htpasswd"
    subprocess.run(["htpasswd", "-bc", str(htpasswd), "ci", SECRET], check=True, capture_output=True)
    server = start_nginx(base, htpasswd)
    try:
        a, b = scenario.make_clones(tmp_path)
        port = server.port
        first = scenario.build(a, f"http://ci:{SECRET}@127.0.0.1:{port}/cache", tmp_path / "h")
        assert first["bytes"]["uploaded"] > 0 and "warning" not in first["stderr"]
        token = base64.b64encode(f"ci:{SECRET}".encode()).decode()
        (b / "cache-headers").write_text(f"# read by minibuild only\nAuthorization: Basic {token}\n")
        with open(b / "workspace.toml", "a") as f:
            f.write('\n[cache]\nheaders_file = "cache-headers"\n')
        second = scenario.build(b, server.url, tmp_path / "h2")
        assert second["actions"]["remote"] == scenario.ACTIONS
        (a / "app" / "motd").write_text("changed\n")
        bad = minibuild(a, "build", "//...", "--no-load", "--remote-cache",
                        f"http://ci:{SECRET}x@127.0.0.1:{port}/cache", "--plain", "--explain")
        assert bad.returncode == 0, bad.stderr
        assert "HTTP 401" in bad.stderr and "check the credentials" in bad.stderr
        for text in (first["stderr"], second["stderr"], bad.stderr, bad.stdout):
            assert SECRET not in text and token not in text
    finally:
        server.close()


def test_discovered_inputs_are_checked_here(nginx, tmp_path):
    """The closure of a sysroot records the paths it looked at. A clone whose sysroot matches gets every action
    from the cache; one whose sysroot has a file more where the loader looks runs the closure here (--explain
    names the path) and, the closure coming out the same, still gets the layers and the image from the cache."""
    a = make_sysroot_workspace(tmp_path / "a" / "ws")
    same, other = tmp_path / "b" / "ws", tmp_path / "c" / "ws"
    shutil.copytree(a, same)
    shutil.copytree(a, other)
    first = scenario.build(a, nginx.url, tmp_path / "h")
    assert first["actions"] == {"run": 3, "cached": 0, "remote": 0}
    assert scenario.build(same, nginx.url, tmp_path / "h")["actions"] == {"run": 0, "cached": 0, "remote": 3}
    (other / "sysroot" / "etc").mkdir()
    (other / "sysroot" / "etc" / "ld.so.preload").write_text("")
    third = scenario.build(other, nginx.url, tmp_path / "h", "--remote-cache-read-only")
    assert third["actions"] == {"run": 1, "cached": 0, "remote": 2}
    [target] = [t for t in third["targets"] if t["label"] == "//app:bash"]
    [reason] = target["explain"].values()
    assert "remote entry not used: discovered input `sysroot/" in reason  # `etc/` is new in its listing
    assert scenario.digests(third) == scenario.digests(first)
