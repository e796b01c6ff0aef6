"""`docker load`-able tarballs, written deterministically from the same blobs as the OCI layout.

The archive is the docker-archive format (`manifest.json` with Config/RepoTags/Layers) laid out the way
Docker 25+ `docker save` does it, blobs under `blobs/sha256/` plus `index.json` and `oci-layout`, so the
same file is also an OCI archive. Layer blobs go in as they are (compressed): `docker load` and skopeo
decompress them and check each against its diff_id.
"""

from __future__ import annotations

import io
import os
import re
import tarfile
from collections.abc import Sequence

from minibuild.errors import BuildError, InputError
from minibuild.oci._io import SourceReader, atomic_file, read_error
from minibuild.oci.image import manifest_json
from minibuild.oci.layer import Layer, check_epoch
from minibuild.oci.layout import OCI_LAYOUT, blob_relpath
from minibuild.oci.spec import (
    ANNOTATION_REF_NAME,
    MEDIA_TYPE_CONFIG,
    MEDIA_TYPE_INDEX,
    MEDIA_TYPE_MANIFEST,
    canonical_json,
    descriptor_for,
)

__all__ = ["normalise_repo_tag", "qualified_name", "write_docker_archive"]

_DOMAIN = (
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?)"
)
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPO_TAG_RE = re.compile(rf"(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*(?::[\w][\w.-]{{0,127}})?")
ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name"


def normalise_repo_tag(tag: str) -> str:
    """`name[:tag]` checked against Docker's reference grammar; no tag means `latest`, as in Docker."""
    if not _REPO_TAG_RE.fullmatch(tag) or len(tag) > 255:
        raise InputError(
            f"`{tag}` is not a valid image name and tag",
            hint="use lowercase `[registry/]name[:tag]`, e.g. `minibuild/bash:1.0`",
        )
    last = tag.rsplit("/", 1)[-1]
    return tag if ":" in last else tag + ":latest"


def qualified_name(repo_tag: str) -> str:
    """The fully qualified form containerd stores: `bash:1` -> `docker.io/library/bash:1`."""
    first, _, rest = repo_tag.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return repo_tag
    if not rest:
        return f"docker.io/library/{repo_tag}"
    return f"docker.io/{repo_tag}"


def _info(name: str, size: int | None, epoch: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = epoch
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if size is None:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
    else:
        info.type, info.mode, info.size = tarfile.REGTYPE, 0o644, size
    return info


def _add_blob(tar: tarfile.TarFile, name: str, layer: Layer, path: str, epoch: int) -> None:
    try:
        f = open(path, "rb")  # closed below; open errors must name the blob
        size = os.fstat(f.fileno()).st_size
    except OSError as exc:
        raise read_error(exc, path, f"layer {layer.descriptor.digest}") from exc
    with f:
        if size != layer.descriptor.size:
            raise BuildError(
                f"layer blob `{path}` has {size} bytes but its descriptor says {layer.descriptor.size}"
            )
        try:
            tar.addfile(_info(name, size, epoch), SourceReader(f, path, "layer blob"))
        except OSError as exc:
            raise BuildError(f"layer blob `{path}` shrank while it was being read ({exc})") from exc


def write_docker_archive(
    dest_tar: str,
    *,
    config: bytes,
    layers: Sequence[tuple[Layer, str]],
    repo_tags: Sequence[str],
    manifest: bytes | None = None,
    epoch: int = 0,
) -> None:
    """Write a `docker load`-able tarball of one image, atomically, the same bytes for the same inputs.

    config: the config document's bytes as hashed; layers: each Layer with the host path of its blob;
    manifest: the OCI manifest's bytes, when the caller has them (they must describe `config` and
    `layers`), else one is made. Repo tags without a tag get `:latest`.
    Engines as old as Docker 20.10 cannot load zstd layers; use gzip for images meant for `docker load`.
    """
    check_epoch(epoch)
    tags = [normalise_repo_tag(t) for t in repo_tags]
    config_desc = descriptor_for(config, MEDIA_TYPE_CONFIG)
    if manifest is None:
        manifest = manifest_json(config_desc, [layer for layer, _ in layers])
    manifest_desc = descriptor_for(manifest, MEDIA_TYPE_MANIFEST)

    docker_manifest = canonical_json(
        [
            {
                "Config": blob_relpath(config_desc.digest),
                "RepoTags": tags,
                "Layers": [blob_relpath(layer.descriptor.digest) for layer, _ in layers],
            }
        ]
    )
    # One index entry per tag, annotated as Docker's own `docker save` does.
    entries = [manifest_desc.to_json()] if not tags else []
    for tag in tags:
        entry = manifest_desc.to_json()
        entry["annotations"] = {
            ANNOTATION_CONTAINERD_NAME: qualified_name(tag),
            ANNOTATION_REF_NAME: tag.rsplit(":", 1)[1],
        }
        entries.append(entry)
    index = canonical_json({"schemaVersion": 2, "mediaType": MEDIA_TYPE_INDEX, "manifests": entries})

    files: dict[str, bytes | tuple[Layer, str]] = {
        blob_relpath(config_desc.digest): config,
        blob_relpath(manifest_desc.digest): manifest,
        "index.json": index,
        "manifest.json": docker_manifest,
        "oci-layout": OCI_LAYOUT,
    }
    for layer, path in layers:
        files.setdefault(blob_relpath(layer.descriptor.digest), (layer, path))

    with atomic_file(dest_tar) as out:
        tar = tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8")
        tar.addfile(_info("blobs", None, epoch))
        tar.addfile(_info("blobs/sha256", None, epoch))
        for name in sorted(files):
            content = files[name]
            if isinstance(content, bytes):
                tar.addfile(_info(name, len(content), epoch), io.BytesIO(content))
            else:
                _add_blob(tar, name, content[0], content[1], epoch)
        tar.close()
