from __future__ import annotations

import json
import os
import stat

import pytest

from minibuild.entry import TreeEntry
from minibuild.errors import BuildError, InputError
from minibuild.oci.image import ImageConfig, Platform, assemble_image, assemble_index
from minibuild.oci.layer import write_layer
from minibuild.oci.layout import read_layout, write_layout

from .helpers import build_image


@pytest.fixture
def built(tmp_path):
    return build_image(tmp_path / "build", with_bash=False)


def test_layout_files_and_index(tmp_path, built):
    dest = tmp_path / "out" / "oci"
    write_layout(str(dest), built.image.blobs(), [built.image.manifest], ref_name="latest")
    assert (dest / "oci-layout").read_bytes() == b'{"imageLayoutVersion":"1.0.0"}'
    index = json.loads((dest / "index.json").read_bytes())
    assert index["schemaVersion"] == 2
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    [entry] = index["manifests"]
    assert entry["digest"] == built.image.manifest.digest
    assert entry["annotations"] == {"org.opencontainers.image.ref.name": "latest"}
    assert entry["platform"] == {"architecture": "amd64", "os": "linux"}
    assert sorted(os.listdir(dest / "blobs" / "sha256")) == sorted(
        d.split(":")[1] for d in built.image.blobs()
    )
    assert (dest / "blobs" / "sha256" / built.image.manifest.hex).read_bytes() == built.image.manifest_bytes
    assert [p for p in os.listdir(tmp_path / "out")] == ["oci"]  # no temp dirs left over


def test_layout_modes_do_not_depend_on_umask(tmp_path, built):
    old = os.umask(0o077)
    try:
        write_layout(str(tmp_path / "oci"), built.image.blobs(), [built.image.manifest])
    finally:
        os.umask(old)
    for root, _dirs, files in os.walk(tmp_path / "oci"):
        assert stat.S_IMODE(os.stat(root).st_mode) == 0o755
        for name in files:
            assert stat.S_IMODE(os.stat(os.path.join(root, name)).st_mode) == 0o644


def test_layer_blobs_are_hard_linked_on_the_same_file_system(tmp_path, built):
    write_layout(str(tmp_path / "oci"), built.image.blobs(), [built.image.manifest])
    layer, path = built.layers[0]
    assert os.path.samefile(path, tmp_path / "oci" / "blobs" / "sha256" / layer.descriptor.hex)


def test_same_inputs_same_layout_bytes(tmp_path):
    one = build_image(tmp_path / "one", with_bash=False)
    two = build_image(tmp_path / "two", with_bash=False)
    assert one.image.manifest == two.image.manifest
    write_layout(str(tmp_path / "a"), one.image.blobs(), [one.image.manifest])
    write_layout(str(tmp_path / "b"), two.image.blobs(), [two.image.manifest])
    for name in ("index.json", "oci-layout"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_rewriting_replaces_the_whole_layout(tmp_path, built):
    dest = tmp_path / "oci"
    write_layout(str(dest), built.image.blobs(), [built.image.manifest])
    (dest / "blobs" / "sha256" / "stale").write_bytes(b"")
    other = assemble_image(Platform(), ImageConfig(cmd=("x",)), built.layers, ["a"])
    write_layout(str(dest), other.blobs(), [other.manifest])
    assert not (dest / "blobs" / "sha256" / "stale").exists()
    assert json.loads((dest / "index.json").read_bytes())["manifests"][0]["digest"] == other.manifest.digest
    assert sorted(os.listdir(tmp_path)) == ["build", "oci"]


def test_refuses_to_replace_a_directory_that_is_not_a_layout(tmp_path, built):
    dest = tmp_path / "precious"
    dest.mkdir()
    (dest / "notes.txt").write_text("keep me")
    with pytest.raises(BuildError, match="not an OCI layout"):
        write_layout(str(dest), built.image.blobs(), [built.image.manifest])
    assert (dest / "notes.txt").read_text() == "keep me"
    assert sorted(os.listdir(tmp_path)) == ["build", "precious"]  # and no temp dir left behind


def test_missing_or_wrong_blobs_are_caller_bugs(tmp_path, built):
    blobs = built.image.blobs()
    missing = dict(blobs)
    del missing[built.image.config.digest]
    with pytest.raises(ValueError, match="not given"):
        write_layout(str(tmp_path / "oci"), missing, [built.image.manifest])
    wrong = dict(blobs)
    wrong[built.image.config.digest] = b"{}"
    with pytest.raises(ValueError, match="has digest"):
        write_layout(str(tmp_path / "oci"), wrong, [built.image.manifest])
    assert not (tmp_path / "oci").exists()


def test_read_back_what_was_written(tmp_path, built):
    write_layout(str(tmp_path / "oci"), built.image.blobs(), [built.image.manifest], ref_name="v1")
    layout = read_layout(str(tmp_path / "oci"), verify_layers=True)
    image = layout.image()
    assert image.ref_name == "v1"
    assert image.manifest.digest == built.image.manifest.digest
    assert image.config_bytes == built.image.config_bytes
    assert image.platform == Platform()
    assert [layer for layer, _ in image.layers] == [layer for layer, _ in built.layers]
    for layer, path in image.layers:
        assert path == layout.blob_path(layer.descriptor.digest)
    assert image.image_config().entrypoint == ("/usr/bin/bash",)
    assert [h["created_by"] for h in image.history()] == ["files of the test"]
    assert read_layout(str(tmp_path / "oci")).image().layers[0][0].uncompressed_size is None


def test_read_detects_damage(tmp_path, built):
    dest = tmp_path / "oci"
    write_layout(str(dest), built.image.blobs(), [built.image.manifest])
    layer, _ = built.layers[0]
    blob = dest / "blobs" / "sha256" / layer.descriptor.hex
    data = bytearray(blob.read_bytes())
    blob.unlink()  # it is hard-linked to the build's blob; damage only the layout's copy
    data[-6] ^= 0xFF  # inside the gzip trailer's CRC: the size stays the same
    blob.write_bytes(bytes(data))
    read_layout(str(dest))  # sizes still match
    with pytest.raises(InputError, match="layer blob `.*` is damaged"):
        read_layout(str(dest), verify_layers=True)
    config = dest / "blobs" / "sha256" / built.image.config.hex
    config.write_bytes(config.read_bytes().replace(b"amd64", b"arm64"))
    with pytest.raises(InputError, match="does not match its descriptor"):
        read_layout(str(dest))
    with pytest.raises(InputError, match="does not exist"):
        read_layout(str(tmp_path / "nowhere"))


def test_derived_image_reuses_base_layers_untouched(tmp_path, built):
    base_dir = tmp_path / "base"
    write_layout(str(base_dir), built.image.blobs(), [built.image.manifest], ref_name="base")
    base = read_layout(str(base_dir)).image(Platform(), ref_name="base")

    top_path = str(tmp_path / "top")
    top = write_layer([TreeEntry("/app", "file", 0o755, data=b"#!/bin/sh\n", origin="app")], top_path)
    config = ImageConfig(cmd=("/app",)).inherit(base.image_config())
    derived = assemble_image(Platform(), config, [*base.layers, (top, top_path)], [*base.history(), "app"])
    write_layout(str(tmp_path / "derived"), derived.blobs(), [derived.manifest])

    got = read_layout(str(tmp_path / "derived"), verify_layers=True).image()
    base_descs = [json.dumps(layer.descriptor.to_json()) for layer, _ in base.layers]
    assert [json.dumps(layer.descriptor.to_json()) for layer, _ in got.layers][:-1] == base_descs
    assert got.config_doc["rootfs"]["diff_ids"] == [
        *json.loads(base.config_bytes)["rootfs"]["diff_ids"],
        top.diff_id,
    ]
    assert got.history()[:-1] == base.history()
    assert got.image_config().env == ("PATH=/usr/local/bin:/usr/bin",)


def test_multi_platform_layout(tmp_path):
    amd = build_image(tmp_path / "amd64", with_bash=False)
    arm = build_image(
        tmp_path / "arm64", with_bash=False, platform=Platform(architecture="arm64", variant="v8")
    )
    index, _, blobs = assemble_index([amd.image, arm.image])
    write_layout(str(tmp_path / "oci"), blobs, [index], ref_name="multi")
    layout = read_layout(str(tmp_path / "oci"))
    assert [d.digest for d in layout.manifests] == [index.digest]
    assert (
        layout.image(Platform(architecture="arm64", variant="v8")).manifest.digest
        == arm.image.manifest.digest
    )
    assert layout.image(Platform()).ref_name == "multi"
    with pytest.raises(InputError, match="has 2 images"):
        layout.image()
    with pytest.raises(InputError, match="no image for platform `linux/s390x`"):
        layout.image(Platform(architecture="s390x"))
