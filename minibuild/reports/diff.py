"""Compare two images file by file: what was added, removed, grew, shrank or changed.

An image is read either from a build's summary (summary.json, or one recorded in `.minibuild/history/`)
or from an OCI image layout on disk (any layout, e.g. another build's `.minibuild/out/.../oci/` or one
written by skopeo), whose layers are read as an OCI runtime would apply them (whiteouts included).
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import stat
import tarfile
from typing import IO, Any

from minibuild.errors import InputError
from minibuild.image.platform import host_architecture
from minibuild.oci.layout import read_layout

Files = dict[str, dict[str, Any]]  # path (absolute, normalised) -> {kind, size, mode, digest?, target?}


def _norm(path: str) -> str:
    return posixpath.normpath("/" + path.lstrip("./").lstrip("/")) if path not in (".", "./") else "/"


def files_from_summary(summary: dict[str, Any]) -> Files:
    out: Files = {}
    for f in summary["files"]:
        out[_norm(f["path"])] = {k: f[k] for k in ("kind", "size", "mode", "digest", "target") if k in f}
    return out


def is_layout(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "oci-layout")) and os.path.isfile(os.path.join(path, "index.json"))


def _open_layer(blob: str, media_type: str) -> tarfile.TarFile:
    if media_type.endswith("+zstd"):
        from minibuild.oci.layer import import_zstandard

        stream: IO[bytes] = import_zstandard().ZstdDecompressor().stream_reader(open(blob, "rb"))  # noqa: SIM115
        return tarfile.open(fileobj=stream, mode="r|")
    return tarfile.open(blob, mode="r|*")


def files_from_layout(path: str, platform: str | None = None,
                      extra_hashes: tuple[str, ...] = ()) -> tuple[Files, str, str]:
    """The files of the image in an OCI layout (the host's platform when it holds several), its manifest
    digest and its architecture. Each file has `digest` (sha256:...) and the hex of each of `extra_hashes`
    (hashlib names, e.g. "sha1", "md5") under that name."""

    layout = read_layout(path)
    images = list(layout.images)
    if not images:
        raise InputError(f"the OCI layout `{path}` holds no image")
    want = platform.split("/")[1] if platform else host_architecture()
    image = next((i for i in images if i.platform.architecture == want), images[0])
    files: Files = {}
    for layer, blob in image.layers:
        with _open_layer(blob, layer.descriptor.media_type) as tar:
            for member in tar:
                name = _norm(member.name)
                base = posixpath.basename(name)
                parent = posixpath.dirname(name)
                if base == ".wh..wh..opq":
                    for p in [p for p in files if p.startswith(parent.rstrip("/") + "/")]:
                        del files[p]
                    continue
                if base.startswith(".wh."):
                    gone = posixpath.join(parent, base[4:])
                    for p in [p for p in files if p == gone or p.startswith(gone + "/")]:
                        del files[p]
                    continue
                entry: dict[str, Any] = {"mode": stat.S_IMODE(member.mode), "size": 0}
                if member.isfile():
                    f = tar.extractfile(member)
                    hashes = [hashlib.new(name) for name in ("sha256", *extra_hashes)]
                    assert f is not None
                    for chunk in iter(lambda f=f: f.read(1 << 20), b""):  # type: ignore[misc]
                        for h in hashes:
                            h.update(chunk)
                    entry.update(kind="file", size=member.size, digest="sha256:" + hashes[0].hexdigest(),
                                 **{name: h.hexdigest() for name, h in zip(extra_hashes, hashes[1:], strict=True)})
                elif member.issym():
                    entry.update(kind="symlink", target=member.linkname)
                elif member.islnk():
                    target = files.get(_norm(member.linkname), {})
                    entry.update({**target, "mode": entry["mode"]})
                elif member.isdir():
                    entry.update(kind="dir")
                else:
                    entry.update(kind="other")
                files[name] = entry
    return files, image.manifest.digest, image.platform.architecture


def diff_files(before: Files, after: Files) -> dict[str, Any]:
    """added/removed/changed lists (directories only when they appear, vanish or change kind) and totals."""
    added, removed, changed = [], [], []
    for path in sorted(set(before) | set(after)):
        a, b = before.get(path), after.get(path)
        if a is None and b is not None:
            if b["kind"] != "dir":
                added.append({"path": path, "kind": b["kind"], "size": b.get("size", 0)})
        elif b is None and a is not None:
            if a["kind"] != "dir":
                removed.append({"path": path, "kind": a["kind"], "size": a.get("size", 0)})
        elif a is not None and b is not None:
            what = []
            if a["kind"] != b["kind"]:
                what.append(f"{a['kind']} -> {b['kind']}")
            elif a["kind"] == "symlink" and a.get("target") != b.get("target"):
                what.append(f"-> {a.get('target')} now -> {b.get('target')}")
            elif a["kind"] == "file" and (a.get("size") != b.get("size") or (
                    a.get("digest") and b.get("digest") and a["digest"] != b["digest"])):
                what.append("content")
            if a.get("mode") is not None and b.get("mode") is not None and a["mode"] != b["mode"]:
                what.append(f"mode {a['mode']:04o} -> {b['mode']:04o}")
            if what:
                before_size, after_size = a.get("size", 0), b.get("size", 0)
                changed.append({"path": path, "before": before_size, "after": after_size,
                                "delta": after_size - before_size, "what": ", ".join(what)})

    def total(files: Files) -> int:
        return sum(f.get("size", 0) for f in files.values() if f["kind"] == "file")

    return {
        "added": added, "removed": removed, "changed": changed,
        "totals": {
            "added": len(added), "removed": len(removed),
            "grown": sum(1 for c in changed if c["delta"] > 0), "shrunk": sum(1 for c in changed if c["delta"] < 0),
            "modified": sum(1 for c in changed if c["delta"] == 0),
            "bytes_before": total(before), "bytes_after": total(after),
            "delta_bytes": total(after) - total(before),
        },
    }
