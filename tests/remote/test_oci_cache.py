"""An OCI registry as the remote cache (`oci://`): Debian's docker-registry of scripts/test.sh on 127.0.0.1:5000
(each test in a repository of its own) and 5001 (htpasswd), read back with skopeo and plain HTTP."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from buildgrid.common.protos.build.bazel.remote.execution.v2 import remote_execution_pb2 as re_pb2

from minibuild.oci.registry import PushRecord, RegistryClient, push_record_path
from minibuild.remote.oci import ACTION_RESULT_TYPE, ARTIFACT_TYPE, OciCache, entry_manifest, parse_entry_manifest
from minibuild.remote_cache import Digest, OutputFile, RemoteCacheError, RemoteSettings
from tests.remote import scenario
from tests.remote.workspaces import make_team_workspace, minibuild

TAG_RE = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")  # the distribution spec's tag rule


def _where(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.netloc, parts.path.strip("/")


def _tags(url: str) -> list[str]:
    registry, repo = _where(url)
    response = requests.get(f"http://{registry}/v2/{repo}/tags/list", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["tags"] or []


def _manifest(url: str, tag: str) -> dict:
    """The manifest under `tag` as skopeo (an independent client) reads it."""
    registry, repo = _where(url)
    raw = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{registry}/{repo}:{tag}"],
                         capture_output=True, check=True).stdout
    return json.loads(raw)


def _blob(url: str, digest: str) -> bytes:
    registry, repo = _where(url)
    response = requests.get(f"http://{registry}/v2/{repo}/blobs/{digest}", timeout=30)
    assert response.status_code == 200, (digest, response.status_code)
    assert "sha256:" + hashlib.sha256(response.content).hexdigest() == digest
    return response.content


@pytest.mark.docker
def test_team_scenario(oci_cache, tmp_path):
    scenario.team_scenario(tmp_path, oci_cache)
    out = scenario.run_in_docker(tmp_path / "bob" / "src" / "clone-b", oci_cache, tmp_path / "home-b")
    assert "hello again from a genrule" in out


def test_entries_are_oci_artifacts_tagged_by_key(oci_cache, tmp_path):
    """Every entry: a tag `ac-<64 hex>`, an image manifest with our artifactType whose config is the ActionResult
    (parsed with the REAPI stubs) and whose layers are exactly the blobs of its files, all in the repository."""
    root = make_team_workspace(tmp_path / "ws")
    scenario.build(root, oci_cache, tmp_path / "home")
    tags = _tags(oci_cache)
    assert len(tags) == scenario.ACTIONS
    names = set()
    for tag in tags:
        assert TAG_RE.fullmatch(tag) and re.fullmatch(r"ac-[0-9a-f]{64}", tag)
        doc = _manifest(oci_cache, tag)
        assert doc["mediaType"] == "application/vnd.oci.image.manifest.v1+json" and doc["schemaVersion"] == 2
        assert doc["artifactType"] == ARTIFACT_TYPE and doc["config"]["mediaType"] == ACTION_RESULT_TYPE
        result = re_pb2.ActionResult()
        result.ParseFromString(_blob(oci_cache, doc["config"]["digest"]))
        files = [(f.path, "sha256:" + f.digest.hash, f.digest.size_bytes) for f in result.output_files]
        layers = [(d["annotations"]["org.opencontainers.image.title"], d["digest"], d["size"]) for d in doc["layers"]]
        assert files == layers and result.exit_code == 0
        assert {d["mediaType"] for d in doc["layers"]} == {"application/octet-stream"}
        for _, digest, size in layers:
            assert len(_blob(oci_cache, digest)) == size
        names |= {path for path, _, _ in files}
    assert {"closure.json", "layers.json", "image.tar", "hello", ".minibuild/entry.json"} <= names


def test_push_mounts_what_the_cache_uploaded(oci_cache, registry, tmp_path):
    """The cache adds its blobs to the workspace's push record: a push of an image it built to another
    repository of the registry mounts every blob from the cache instead of uploading it."""
    root = make_team_workspace(tmp_path / "ws")
    scenario.build(root, oci_cache, tmp_path / "home")
    target = f"{registry}/{_where(oci_cache)[1]}-img0:1"
    done = minibuild(root, "push", "//app:img0", "--to", target, "--json", "--remote-cache", oci_cache)
    assert done.returncode == 0, done.stderr
    pushed = json.loads(done.stdout)
    assert pushed["blobs"]["uploaded"] == 0 and pushed["blobs"]["mounted"] > 0, pushed
    info = subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{target}"],
                          capture_output=True, text=True, check=True)
    assert json.loads(info.stdout)["Digest"] == pushed["digest"]


def test_the_cache_mounts_what_was_pushed(oci_cache, registry, tmp_path):
    """A blob the push record places in another repository is mounted, not read: here its file does not even
    exist, so only a mount can put it in the cache's repository (and without the record the upload fails)."""
    data = os.urandom(4096)
    digest = Digest.of_bytes(data)
    (tmp_path / "blob").write_bytes(data)
    source = f"{_where(oci_cache)[1]}-pushed"
    client = RegistryClient(registry)
    client.upload_blob(source, digest.local, str(tmp_path / "blob"), len(data))
    state = tmp_path / "state"
    record = PushRecord(push_record_path(str(state)))
    record.add(registry, source, [digest.local])
    record.save()

    settings = RemoteSettings(url=oci_cache)
    with pytest.raises(RemoteCacheError):
        OciCache(settings).upload_blobs([(digest, str(tmp_path / "absent"))])
    cache = OciCache(settings, cache_dir=str(state))
    assert cache.find_missing_blobs([digest]) == {digest}
    cache.upload_blobs([(digest, str(tmp_path / "absent"))])
    registry_, repo = _where(oci_cache)
    head = requests.head(f"http://{registry_}/v2/{repo}/blobs/{digest.local}", timeout=10)
    assert head.status_code == 200 and head.headers["Content-Length"] == str(len(data))

    key = Digest.of_bytes(b"an action key")
    cache.update_action_result(key, [OutputFile("out", digest, executable=True)])
    assert cache.get_action_result(key) == [OutputFile("out", digest, executable=True)]
    cache.close()
    saved = json.loads(Path(push_record_path(str(state))).read_text())["registries"][registry]
    assert repo in saved[digest.local]


@pytest.mark.parametrize("gone", ["config", "layers"])
def test_an_entry_whose_blobs_are_gone(oci_cache, tmp_path, gone):
    """Blobs deleted from the repository (DELETE /v2/<repo>/blobs/<digest>) under tagged entries: the actions
    that need them run here, with one warning; the images are the same."""
    first, b = _seeded(tmp_path, oci_cache)
    registry, repo = _where(oci_cache)
    deleted = set()
    for tag in _tags(oci_cache):
        doc = _manifest(oci_cache, tag)
        for d in [doc["config"]] if gone == "config" else doc["layers"]:
            if d["digest"] not in deleted:
                response = requests.delete(f"http://{registry}/v2/{repo}/blobs/{d['digest']}", timeout=10)
                assert response.status_code == 202, response.text
                deleted.add(d["digest"])
    result = scenario.build(b, oci_cache, tmp_path / "home-b", "--remote-cache-read-only")
    assert scenario.digests(result) == scenario.digests(first)
    if gone == "config":
        assert result["actions"]["run"] == scenario.ACTIONS
    else:  # files the ActionResult carries inline need no blob: at least the actions with a large output run
        assert result["actions"]["run"] >= 1
    warnings = [line for line in result["stderr"].splitlines() if line.startswith("warning")]
    assert len(warnings) == 1 and "no longer has" in warnings[0], result["stderr"]
    assert "Traceback" not in result["stderr"]


def _seeded(base: Path, url: str) -> tuple[dict, Path]:
    a, b = scenario.make_clones(base)
    first = scenario.build(a, url, base / "home-a")
    assert first["actions"]["run"] == scenario.ACTIONS
    return first, b


def test_credentials_from_docker_config_or_url_never_printed(tmp_path):
    """The htpasswd registry of scripts/test.sh: `user:password@` in the URL, or docker's config.json as
    `minibuild push` reads it; a wrong password is one warning that shows neither it nor the header."""
    address = os.environ.get("MINIBUILD_TEST_AUTH_REGISTRY", "127.0.0.1:5001")
    user = os.environ.get("MINIBUILD_TEST_REGISTRY_USER", "minibuild")
    password = os.environ.get("MINIBUILD_TEST_REGISTRY_PASSWORD", "minibuild-test")
    repo = f"team/cache-{os.urandom(6).hex()}"  # not the test password, which starts `minibuild-test`
    a, b = scenario.make_clones(tmp_path)
    first = scenario.build(a, f"oci://{user}:{password}@{address}/{repo}", tmp_path / "home-a")
    assert first["bytes"]["uploaded"] > 0 and "warning" not in first["stderr"]

    config = tmp_path / "docker"
    config.mkdir()
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    (config / "config.json").write_text(json.dumps({"auths": {address: {"auth": token}}}))
    second = scenario.build(b, f"oci://{address}/{repo}", tmp_path / "home-b", env={"DOCKER_CONFIG": str(config)})
    assert second["actions"] == {"run": 0, "cached": 0, "remote": scenario.ACTIONS}, second["stderr"]

    (a / "app" / "motd").write_text("changed\n")
    bad = scenario.build(a, f"oci://{user}:{password}x@{address}/{repo}", tmp_path / "home-a")
    (a / "app" / "motd").write_text("changed again\n")
    anonymous = scenario.build(a, f"oci://{address}/{repo}", tmp_path / "home-c")
    assert "credentials for user `minibuild` were rejected" in bad["stderr"]
    assert "no credentials were found" in anonymous["stderr"]
    for text in (first["stderr"], second["stderr"], bad["stderr"], anonymous["stderr"], json.dumps(bad)):
        assert password not in text and token not in text


@pytest.mark.parametrize("url", ["oci://127.0.0.1:5000", "oci://127.0.0.1:5000/Team/Cache",
                                 "oci://127.0.0.1:5000/team/cache?x=1"])
def test_a_url_without_a_repository_is_an_input_error(tmp_path, url):
    root = make_team_workspace(tmp_path / "ws")
    done = minibuild(root, "build", "//...", "--no-load", "--remote-cache", url)
    assert done.returncode == 2, done.stderr
    assert "not `oci://HOST[:PORT]/REPOSITORY`" in done.stderr and "Traceback" not in done.stderr


def test_manifests_are_canonical_and_checked():
    """The same entry is the same manifest bytes from every writer; a manifest of another kind is refused."""
    files = [OutputFile("b", Digest.of_bytes(b"b")), OutputFile("a", Digest.of_bytes(b"a"), executable=True)]
    result = Digest.of_bytes(b"result")
    data = entry_manifest(result, files)
    assert data == entry_manifest(result, list(files)) and len(data) < 1024
    entry = parse_entry_manifest(data)
    assert entry.config == result and entry.layers == {f.digest.local for f in files}
    image = json.loads(data)
    image["config"]["mediaType"] = "application/vnd.oci.image.config.v1+json"
    with pytest.raises(RemoteCacheError, match="not a minibuild entry"):
        parse_entry_manifest(json.dumps(image).encode())
    with pytest.raises(RemoteCacheError, match="not an OCI image manifest"):
        parse_entry_manifest(data[:40])
