from __future__ import annotations

import json
import os
import tarfile

import pytest

from minibuild.errors import InputError
from minibuild.oci.archive import normalise_repo_tag, qualified_name, write_docker_archive

from .helpers import build_image


def write_archive(built, dest, **kwargs):
    image = built.image
    write_docker_archive(
        str(dest),
        config=image.config_bytes,
        layers=image.layers,
        repo_tags=kwargs.pop("repo_tags", ["minibuild/test:1"]),
        manifest=image.manifest_bytes,
        **kwargs,
    )


def test_archive_layout_and_documents(tmp_path):
    built = build_image(tmp_path / "build", with_bash=False)
    image = built.image
    dest = tmp_path / "image.tar"
    write_archive(built, dest, repo_tags=["minibuild/test:1", "localhost:5000/x/y"])
    with tarfile.open(dest) as tar:
        infos = tar.getmembers()
        files = {m.name: tar.extractfile(m).read() for m in infos if m.isfile()}  # type: ignore[union-attr]
    blob_names = sorted(f"blobs/sha256/{d.split(':')[1]}" for d in image.blobs())
    assert [m.name for m in infos] == ["blobs", "blobs/sha256", *blob_names, "index.json", "manifest.json",
                                       "oci-layout"]  # fmt: skip
    for m in infos:
        assert (m.uid, m.gid, m.uname, m.gname, m.mtime, m.pax_headers) == (0, 0, "", "", 0, {})
    assert json.loads(files["manifest.json"]) == [
        {
            "Config": f"blobs/sha256/{image.config.hex}",
            "RepoTags": ["minibuild/test:1", "localhost:5000/x/y:latest"],
            "Layers": [f"blobs/sha256/{layer.descriptor.hex}" for layer, _ in built.layers],
        }
    ]
    index = json.loads(files["index.json"])
    assert [m["digest"] for m in index["manifests"]] == [image.manifest.digest] * 2
    assert [m["annotations"] for m in index["manifests"]] == [
        {"io.containerd.image.name": "docker.io/minibuild/test:1", "org.opencontainers.image.ref.name": "1"},
        {
            "io.containerd.image.name": "localhost:5000/x/y:latest",
            "org.opencontainers.image.ref.name": "latest",
        },
    ]
    assert files[f"blobs/sha256/{image.config.hex}"] == image.config_bytes
    assert files[f"blobs/sha256/{image.manifest.hex}"] == image.manifest_bytes
    for layer, path in built.layers:
        assert files[f"blobs/sha256/{layer.descriptor.hex}"] == open(path, "rb").read()


def test_archive_is_deterministic(tmp_path):
    one = build_image(tmp_path / "one", with_bash=False)
    two = build_image(tmp_path / "elsewhere" / "two", with_bash=False)
    write_archive(one, tmp_path / "a.tar")
    old = os.umask(0o077)
    try:
        write_archive(two, tmp_path / "b.tar")
    finally:
        os.umask(old)
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()


def test_manifest_is_made_when_not_given(tmp_path):
    built = build_image(tmp_path / "build", with_bash=False)
    dest = tmp_path / "image.tar"
    write_docker_archive(str(dest), config=built.image.config_bytes, layers=built.layers, repo_tags=[])
    with tarfile.open(dest) as tar:
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert "annotations" not in index["manifests"][0]
    assert manifest[0]["RepoTags"] == []


@pytest.mark.parametrize(
    ("tag", "normal", "qualified"),
    [
        ("bash", "bash:latest", "docker.io/library/bash:latest"),
        ("me/bash:5.2", "me/bash:5.2", "docker.io/me/bash:5.2"),
        ("registry.example:5000/a/b:v1", "registry.example:5000/a/b:v1", "registry.example:5000/a/b:v1"),
        ("localhost/b", "localhost/b:latest", "localhost/b:latest"),
    ],
)
def test_repo_tags(tag, normal, qualified):
    assert normalise_repo_tag(tag) == normal
    assert qualified_name(normal) == qualified


@pytest.mark.parametrize("tag", ["", "Bash", "a b", "bash:", "bash@sha256:" + "0" * 64, "-x"])
def test_invalid_repo_tags(tag, tmp_path):
    with pytest.raises(InputError, match="not a valid image name"):
        normalise_repo_tag(tag)
