"""What a built image leaves beside its outputs: its OCI layout and `summary.json`, the description every
report and command reads (tag, digest, platforms, files, layers), written once per change of its outputs."""

from __future__ import annotations

import json
import os
from typing import Any

from minibuild.build import same_file
from minibuild.cache import Cache
from minibuild.digest import sha256_bytes
from minibuild.hooks import BuiltTarget
from minibuild.image import history
from minibuild.image.documents import image_files
from minibuild.image.platform import host_architecture
from minibuild.oci.layout import write_layout
from minibuild.oci.spec import MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST, Descriptor

SUMMARY_VERSION = 2  # 2: each platform's layers.json and sysroot


def write_summary(info: Any, target: BuiltTarget) -> dict[str, Any]:
    """Write the OCI layout of a built image (`info`: its ImageInfo) from stored blobs, and describe the
    image for reports: `summary.json` beside it, and a record in the history `minibuild diff` reads."""
    cache, outputs, dest, rel = target.cache, target.outputs, target.out_dir, target.rel_dir

    def read(art: Any) -> Any:
        with open(cache.blob_path(outputs[art.name].digest), "rb") as f:
            return json.loads(f.read())

    top = outputs[info.index.name if info.index is not None else info.primary.manifest.name]
    oci_dir = os.path.join(dest, "oci")
    summary_path = os.path.join(dest, "summary.json")
    # Any output of the target changing (layers.json carries max_size, say) makes the summary stale.
    outputs_key = sha256_bytes(json.dumps([SUMMARY_VERSION, sorted(b.digest for b in outputs.values())]).encode())
    summary = _read_summary(summary_path, outputs_key)
    if (summary is not None and _layout_is(os.path.join(oci_dir, "index.json"), top.digest)
            and _blobs_are_stored(cache, oci_dir, summary.get("blobs", []))):
        return summary  # nothing changed since the last build wrote this target
    blobs: dict[str, str | bytes] = {}
    described = []
    for image in info.platforms:
        layers = read(image.layers)
        for d in layers["layers"]:
            blobs[d["digest"]] = cache.blob_path(d["digest"])
        for art in (image.config, image.manifest):
            blobs[outputs[art.name].digest] = cache.blob_path(outputs[art.name].digest)
        described.append((image, layers, read(image.config).get("architecture")))
    if info.index is not None:
        blobs[top.digest] = cache.blob_path(top.digest)
        root = Descriptor(MEDIA_TYPE_INDEX, top.digest, top.size)
    else:
        root = Descriptor(MEDIA_TYPE_MANIFEST, top.digest, top.size)
    if not (_layout_is(os.path.join(oci_dir, "index.json"), top.digest)
            and _blobs_are_stored(cache, oci_dir, list(blobs))):
        write_layout(oci_dir, blobs, [root], ref_name=info.tag)
    # The tarball holds the host's platform when there is one (as write_index chose), else the first.
    loaded = next((d for d in described if d[2] == host_architecture()), described[0])
    image, layers, _ = described[0]
    files = image_files(layers)
    summary = {
        "tag": info.tag,
        "digest": top.digest,
        "config_digest": outputs[loaded[0].config.name].digest,
        "platforms": [_platform(i, arch, outputs[i.manifest.name].digest, rel) for i, _, arch in described],
        "files": files,
        "size": sum(f["size"] for f in files),
        "compressed_size": sum(d["size"] for d in layers["layers"]),
        "layers": [{"digest": d["digest"], "size": d["size"], "created_by": d["created_by"]}
                   for d in layers["layers"]],
        "oci": os.path.join(rel, "oci"),
        "tarball": os.path.join(rel, "image.tar"),
        "warnings": layers.get("warnings", []),
        "max_size": layers.get("max_size"),
        "blobs": sorted(blobs),
        "outputs_key": outputs_key,
    }
    with open(summary_path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(summary, f)
    os.replace(summary_path + ".tmp", summary_path)
    history.record(target.state_dir, target.label, summary)  # so `minibuild diff` can compare with this build
    return summary


def _platform(image: Any, arch: str, manifest: str, rel: str) -> dict[str, Any]:
    """One platform of the image: its manifest, its layers.json and where its files came from (a host sysroot, or
    a package sysroot's sysroot.json), as `minibuild sbom` reads them."""
    out = {"platform": f"linux/{arch}", "manifest": manifest, "layers": os.path.join(rel, image.layers.name)}
    if image.sysroot_document is not None:
        out["sysroot_document"] = os.path.join(rel, image.sysroot_document.name)
    elif image.sysroot:
        out["sysroot"] = image.sysroot
    return out


def _blobs_are_stored(cache: Cache, oci_dir: str, digests: list[str]) -> bool:
    """The layout's blobs are the store's own files (hard links): a blob the store replaced after finding
    it corrupt is then not current, since the layout still links the corrupt inode."""
    if not digests:
        return False
    for d in digests:
        hex_ = d.removeprefix("sha256:")
        if not same_file(os.path.join(oci_dir, "blobs", "sha256", hex_), cache.blob_path(d)):
            return False
    return True


def _read_summary(path: str, outputs_key: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as f:
            summary = json.load(f)
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) and summary.get("outputs_key") == outputs_key else None


def _layout_is(index_path: str, manifest_digest: str) -> bool:
    try:
        with open(index_path, encoding="utf-8") as f:
            index = json.load(f)
        return [m.get("digest") for m in index.get("manifests", [])] == [manifest_digest]
    except (OSError, ValueError, AttributeError):
        return False
