"""`minibuild push` against the real local registry, with skopeo and the Docker engine as oracles."""

from __future__ import annotations

import json
import subprocess

import pytest

from minibuild.oci.layout import read_layout
from tests.registry.conftest import blob_count

pytestmark = pytest.mark.registry


def skopeo_digest(ref: str, *extra: str) -> str:
    """The manifest digest skopeo reads from the registry: an oracle independent of minibuild."""
    proc = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", *extra, f"docker://{ref}"],
                          capture_output=True, check=True)
    import hashlib

    return "sha256:" + hashlib.sha256(proc.stdout).hexdigest()


def skopeo_inspect(ref: str) -> dict:
    proc = subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{ref}"],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def built_digest(ws) -> str:
    return read_layout(str(ws.root / ".minibuild/out/img/bash/oci")).manifests[0].digest


def test_push_then_skopeo_sees_the_same_digest(image_ws, cli, registry, repo):
    ref = f"{registry}/{repo}:1"
    r = cli("push", "//img:bash", "--to", ref, "--json", cwd=image_ws.root)
    assert r.returncode == 0, r.stderr
    out = r.json()
    assert out["digest"] == built_digest(image_ws)
    assert out["reference"] == f"{ref}@{out['digest']}"
    assert out["blobs"]["uploaded"] == blob_count(image_ws) and out["blobs"]["skipped"] == 0
    info = skopeo_inspect(ref)
    assert info["Digest"] == out["digest"]
    assert skopeo_digest(ref) == out["digest"]
    assert len(info["Layers"]) == blob_count(image_ws) - 1


def test_push_prints_the_reference_with_its_digest(image_ws, cli, registry, repo):
    ref = f"{registry}/{repo}:v2"
    r = cli("push", "//img:bash", "--to", ref, cwd=image_ws.root)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"{ref}@{built_digest(image_ws)}\n"
    assert "uploaded" in r.stderr


def test_second_push_uploads_nothing(image_ws, cli, registry, repo):
    ref = f"{registry}/{repo}:1"
    first = cli("push", "//img:bash", "--to", ref, "--json", cwd=image_ws.root)
    assert first.returncode == 0, first.stderr
    again = cli("push", "//img:bash", "--to", ref, "--json", cwd=image_ws.root)
    assert again.returncode == 0, again.stderr
    assert again.json()["blobs"] == {"uploaded": 0, "skipped": blob_count(image_ws), "mounted": 0}
    assert again.json()["digest"] == first.json()["digest"]
    # A new tag in the same repository: still nothing to upload.
    tagged = cli("push", "//img:bash", "--to", f"{registry}/{repo}:other", "--json", cwd=image_ws.root)
    assert tagged.json()["blobs"]["uploaded"] == 0
    assert skopeo_digest(f"{registry}/{repo}:other") == first.json()["digest"]


def test_second_repository_mounts_blobs(image_ws, cli, registry, repo):
    first = cli("push", "//img:bash", "--to", f"{registry}/{repo}:1", "--json", cwd=image_ws.root)
    assert first.returncode == 0, first.stderr
    assert (image_ws.root / ".minibuild/cache/pushed.json").is_file()
    second = cli("push", "//img:bash", "--to", f"{registry}/{repo}-b:1", "--json", cwd=image_ws.root)
    assert second.returncode == 0, second.stderr
    blobs = second.json()["blobs"]
    assert blobs["uploaded"] == 0
    assert blobs["mounted"] >= 1  # the layer unique to this test can only be mounted
    assert blobs["mounted"] + blobs["skipped"] == blob_count(image_ws)
    assert skopeo_digest(f"{registry}/{repo}-b:1") == first.json()["digest"]


def test_from_repo_mounts_without_a_record(image_ws, cli, registry, repo):
    first = cli("push", "//img:bash", "--to", f"{registry}/{repo}:1", "--json", cwd=image_ws.root)
    assert first.returncode == 0, first.stderr
    (image_ws.root / ".minibuild/cache/pushed.json").unlink()
    second = cli("push", "//img:bash", "--to", f"{registry}/{repo}-c:1", "--from-repo", repo, "--json",
                 cwd=image_ws.root)
    assert second.returncode == 0, second.stderr
    blobs = second.json()["blobs"]
    assert blobs["uploaded"] == 0 and blobs["mounted"] >= 1


def test_chunked_upload(image_ws, cli, registry, repo, fault_proxy):
    proxy = fault_proxy()
    ref = f"{proxy.address}/{repo}:chunked"
    r = cli("push", "//img:bash", "--to", ref, "--chunk-size", "128K", "--json", cwd=image_ws.root)
    assert r.returncode == 0, r.stderr
    assert proxy.counts["upload-patch"] >= 2  # the bash layer is about 1 MiB
    assert skopeo_digest(f"{registry}/{repo}:chunked") == r.json()["digest"]


@pytest.mark.docker
def test_pushed_image_pulls_and_runs(image_ws, cli, registry, repo, docker_engine):
    ref = f"{registry}/{repo}:run"
    r = cli("push", "//img:bash", "--to", ref, "--json", cwd=image_ws.root)
    assert r.returncode == 0, r.stderr
    try:
        pull = subprocess.run([docker_engine, "pull", ref], capture_output=True, text=True)
        assert pull.returncode == 0, pull.stderr
        run = subprocess.run([docker_engine, "run", "--rm", ref, "-c", "echo pushed-ok; echo \"$(</stamp)\""],
                             capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        assert run.stdout.splitlines()[0] == "pushed-ok"
        assert run.stdout.splitlines()[1] == (image_ws.root / "img/stamp").read_text().strip()
        repo_digests = subprocess.run([docker_engine, "image", "inspect", "-f", "{{json .RepoDigests}}", ref],
                                      capture_output=True, text=True, check=True).stdout
        assert r.json()["digest"] in repo_digests
    finally:
        subprocess.run([docker_engine, "rmi", "-f", ref], capture_output=True)


def test_multi_platform_index(image_ws, cli, registry, repo):
    """A layout whose index.json points at an image index: children by digest first, then the index."""
    from minibuild.oci.image import MEDIA_TYPE_INDEX, index_json
    from minibuild.oci.layout import blob_relpath, write_layout
    from minibuild.oci.registry import RegistryClient, parse_reference, push_layout
    from minibuild.oci.spec import Platform, descriptor_for

    r = cli("build", "//img:bash", "--no-load", cwd=image_ws.root)
    assert r.returncode == 0, r.stderr
    src = read_layout(str(image_ws.root / ".minibuild/out/img/bash/oci"))
    [image] = src.images
    from dataclasses import replace

    child = replace(image.manifest, annotations=(), platform=Platform("linux", "amd64"))
    data = index_json([child])
    desc = descriptor_for(data, MEDIA_TYPE_INDEX)
    blobs: dict[str, str | bytes] = {desc.digest: data, child.digest: image.manifest_bytes,
                                     image.config.digest: image.config_bytes}
    for layer, path in image.layers:
        blobs[layer.descriptor.digest] = path
    dest = image_ws.root / "multi"
    write_layout(str(dest), blobs, [desc])
    assert (dest / blob_relpath(desc.digest)).is_file()
    ref = parse_reference(f"{registry}/{repo}:multi")
    result = push_layout(str(dest), ref, RegistryClient(ref.registry))
    assert result.digest == desc.digest
    assert result.uploaded == blob_count(image_ws)
    assert skopeo_digest(f"{registry}/{repo}:multi") == desc.digest
    assert skopeo_digest(f"{registry}/{repo}@{child.digest}") == child.digest


def test_malformed_reference_is_exit_2(image_ws, cli):
    r = cli("push", "//img:bash", "--to", "127.0.0.1:5000/Bad Name", cwd=image_ws.root)
    assert r.returncode == 2
    assert "is not a valid image reference" in r.stderr and "hint:" in r.stderr
    assert "Traceback" not in r.stderr
    r = cli("push", "//img:bash", "--to", f"127.0.0.1:5000/x@sha256:{'0' * 64}", cwd=image_ws.root)
    assert r.returncode == 2 and "names a digest" in r.stderr


def test_not_an_image_is_exit_2(workspace, cli, registry):
    workspace.write("f/BUILD.toml", '[[files]]\nname = "f"\nfiles = []\n')
    r = cli("push", "//f:f", "--to", f"{registry}/x:1", cwd=workspace.root)
    assert r.returncode == 2, r.stderr
    assert "no image" in r.stderr
