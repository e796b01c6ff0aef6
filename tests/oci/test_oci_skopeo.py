"""skopeo as the independent oracle: it must accept what we write and agree with our digests."""

from __future__ import annotations

import hashlib
import json

import pytest

from minibuild.oci.archive import write_docker_archive
from minibuild.oci.image import Platform, assemble_index
from minibuild.oci.layout import write_layout

from .helpers import build_image


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    work = tmp_path_factory.mktemp("skopeo")
    built = build_image(work / "build")
    write_layout(str(work / "oci"), built.image.blobs(), [built.image.manifest], ref_name="latest")
    return work, built


def test_skopeo_inspects_our_layout_with_our_digests(skopeo, layout):
    work, built = layout
    info = skopeo("inspect", f"oci:{work / 'oci'}", parse=True)
    assert info["Digest"] == built.image.manifest.digest
    assert info["Layers"] == [layer.descriptor.digest for layer, _ in built.layers]
    assert (info["Os"], info["Architecture"], info["Created"]) == ("linux", "amd64", "1970-01-01T00:00:00Z")
    assert info["Env"] == ["PATH=/usr/local/bin:/usr/bin"]
    assert info["Labels"] == {"org.example.test": "oci"}
    assert skopeo("inspect", "--raw", f"oci:{work / 'oci'}:latest") == built.image.manifest_bytes
    assert skopeo("inspect", "--config", "--raw", f"oci:{work / 'oci'}") == built.image.config_bytes


def test_skopeo_copies_our_layout_to_a_docker_archive_and_oci(skopeo, layout):
    work, built = layout
    skopeo("copy", "-q", f"oci:{work / 'oci'}", f"docker-archive:{work / 'copied.tar'}:minibuild/copied:1")
    info = skopeo("inspect", f"docker-archive:{work / 'copied.tar'}", parse=True)
    # docker-archive names layers by diff_id, and the config it carries must be ours, byte for byte.
    assert info["Layers"] == [layer.diff_id for layer, _ in built.layers]
    assert (
        skopeo("inspect", "--config", "--raw", f"docker-archive:{work / 'copied.tar'}")
        == built.image.config_bytes
    )
    skopeo("copy", "-q", f"oci:{work / 'oci'}", f"oci:{work / 'again'}:latest")
    again = json.loads((work / "again" / "index.json").read_bytes())
    assert again["manifests"][0]["digest"] == built.image.manifest.digest


def test_skopeo_reads_our_docker_archive(skopeo, layout):
    work, built = layout
    dest = work / "ours.tar"
    write_docker_archive(
        str(dest),
        config=built.image.config_bytes,
        layers=built.layers,
        repo_tags=["minibuild/ours:1"],
        manifest=built.image.manifest_bytes,
    )
    info = skopeo("inspect", f"docker-archive:{dest}", parse=True)
    assert info["Layers"] == [layer.diff_id for layer, _ in built.layers]
    assert skopeo("inspect", "--config", "--raw", f"docker-archive:{dest}") == built.image.config_bytes
    # The same file read as an OCI archive: the manifest is ours, untouched.
    assert skopeo("inspect", "--raw", f"oci-archive:{dest}") == built.image.manifest_bytes
    skopeo("copy", "-q", f"docker-archive:{dest}", f"oci:{work / 'from-archive'}:x")


def test_skopeo_accepts_a_multi_platform_index(skopeo, tmp_path):
    amd = build_image(tmp_path / "amd64")
    arm = build_image(
        tmp_path / "arm64", with_bash=False, platform=Platform(architecture="arm64", variant="v8")
    )
    index, index_bytes, blobs = assemble_index([amd.image, arm.image])
    write_layout(str(tmp_path / "oci"), blobs, [index], ref_name="multi")
    assert skopeo("inspect", "--raw", f"oci:{tmp_path / 'oci'}:multi") == index_bytes
    for built, arch in ((amd, "amd64"), (arm, "arm64")):
        info = skopeo("--override-arch", arch, "inspect", f"oci:{tmp_path / 'oci'}:multi", parse=True)
        assert info["Digest"] == index.digest  # skopeo names the image by what the reference points at
        assert info["Architecture"] == arch
        assert info["Layers"] == [layer.descriptor.digest for layer, _ in built.layers]
        raw = skopeo("--override-arch", arch, "inspect", "--config", "--raw", f"oci:{tmp_path / 'oci'}:multi")
        assert raw == built.image.config_bytes
    skopeo("copy", "-q", "--all", f"oci:{tmp_path / 'oci'}:multi", f"oci:{tmp_path / 'copy'}:multi")
    copied = json.loads((tmp_path / "copy" / "index.json").read_bytes())
    assert copied["manifests"][0]["digest"] == index.digest


def test_skopeo_accepts_a_zstd_layout(skopeo, tmp_path):
    pytest.importorskip("zstandard", reason="compression zstd needs the zstandard package")
    built = build_image(tmp_path / "build", compression="zstd")
    write_layout(str(tmp_path / "oci"), built.image.blobs(), [built.image.manifest])
    info = skopeo("inspect", f"oci:{tmp_path / 'oci'}", parse=True)
    assert info["Digest"] == built.image.manifest.digest
    manifest = json.loads(skopeo("inspect", "--raw", f"oci:{tmp_path / 'oci'}"))
    assert {layer["mediaType"] for layer in manifest["layers"]} == {
        "application/vnd.oci.image.layer.v1.tar+zstd"
    }
    # skopeo decompresses each layer with its own zstd decoder; the tars it gets must be our diff_ids.
    skopeo("copy", "-q", "--dest-decompress", f"oci:{tmp_path / 'oci'}", f"dir:{tmp_path / 'plain'}")
    copied = json.loads((tmp_path / "plain" / "manifest.json").read_bytes())
    assert [layer["digest"] for layer in copied["layers"]] == [layer.diff_id for layer, _ in built.layers]
    for layer, _ in built.layers:
        tar = (tmp_path / "plain" / layer.diff_id.split(":")[1]).read_bytes()
        assert "sha256:" + hashlib.sha256(tar).hexdigest() == layer.diff_id
