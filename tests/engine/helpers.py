"""Helpers for the engine tests: read what a build left on disk, independently of the engine's own reports."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path


def out_dir(root: Path, label: str) -> Path:
    """`.minibuild/out/<package>/<name>` for `//package:name` (the layout the README documents)."""
    package, _, name = label.removeprefix("//").partition(":")
    return root / ".minibuild" / "out" / package / name


def image_files(oci: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every member of every layer of the single image in an OCI layout: path -> (mode, bytes or None).

    Read straight from the layout (index -> manifest -> layers), upper layers winning.
    """
    index = json.loads((oci / "index.json").read_text())
    [desc] = index["manifests"]
    manifest = json.loads(_blob(oci, desc["digest"]))
    members: dict[str, tuple[int, bytes | None]] = {}
    for layer in manifest["layers"]:
        data = _blob(oci, layer["digest"])
        if layer["mediaType"].endswith("gzip"):
            data = gzip.decompress(data)
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for m in tar.getmembers():
                path = "/" + m.name.lstrip("./").rstrip("/")
                f = tar.extractfile(m) if m.isfile() else None
                members[path] = (m.mode, f.read() if f else None)
    return members


def _blob(oci: Path, digest: str) -> bytes:
    algo, hex_ = digest.split(":")
    data = (oci / "blobs" / algo / hex_).read_bytes()
    assert hashlib.sha256(data).hexdigest() == hex_, f"blob {digest} of {oci} does not match its name"
    return data


def corrupt_blobs(cache: Path) -> list[str]:
    """Blobs of the content-addressed store whose content does not hash to their name."""
    bad = []
    blobs = list((cache / "cas" / "sha256").glob("*/*"))
    assert blobs, f"no blobs under {cache}"
    for blob in blobs:
        if hashlib.sha256(blob.read_bytes()).hexdigest() != blob.name:
            bad.append(str(blob))
    return bad
