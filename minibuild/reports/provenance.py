"""SLSA provenance v1 of a built image (docs/signing.md): who built it (the builder id), what was asked (the target
label, the workspace) and every input it was made from, each with its digest: the workspace's git commit, the lock
file, the image's files (binaries, libraries, runtime files, the workspace's own files; their bytes are the
inputs' bytes) and the `.deb` files of its package sysroots. Read from what the build left: the summary, each
platform's layers.json and sysroot.json.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from typing import Any

from minibuild import __version__
from minibuild.errors import MinibuildError
from minibuild.image.documents import image_files, read_json
from minibuild.packages import sources
from minibuild.packages.installed import PackageSysroot
from minibuild.reports.public_url import without_credentials
from minibuild.reports.sbom import deb_url

BUILD_TYPE = "urn:minibuild:image-build:v1"
DEFAULT_BUILDER_ID = "urn:minibuild:builder:local"
LOCK_FILE = "minibuild.lock"


def predicate(root: str, label: str, summary: dict[str, Any], platforms: list[dict[str, Any]], *,
              builder_id: str | None = None, workspace_name: str = "") -> dict[str, Any]:
    """The predicate (`https://slsa.dev/provenance/v1`) of the image `label`, for `platforms` (entries of the
    summary's platforms: one for a platform's manifest, all of them for an index)."""
    inputs = [*_source(root), *_lock(root)]
    for entry in platforms:
        inputs += _files(root, entry)
        inputs += _debs(root, entry)
    return {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {"target": label, "workspace": workspace_name,
                                   "platforms": [p["platform"] for p in platforms]},
            "internalParameters": {"sysroots": {p["platform"]: _sysroot_name(root, p) for p in platforms},
                                   "tag": summary.get("tag", "")},
            "resolvedDependencies": inputs,
        },
        "runDetails": {
            # No times: the build may have finished long before this push, and minibuild does not record when.
            "builder": {"id": builder_id or DEFAULT_BUILDER_ID, "version": {"minibuild": __version__}},
        },
    }


def _git(root: str, *args: str) -> str | None:
    try:
        r = subprocess.run(["git", "-C", root, *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def _source(root: str) -> list[dict[str, Any]]:
    """The workspace's commit, when it is a git checkout (and whether the tree differs from it)."""
    commit = _git(root, "rev-parse", "--verify", "HEAD")
    if not commit:
        return []
    remote = _git(root, "config", "--get", "remote.origin.url")
    dirty = bool(_git(root, "status", "--porcelain", "--untracked-files=no"))
    return [{"name": "workspace", "uri": "git+" + without_credentials(remote) if remote else "git+file:.",
             "digest": {"gitCommit": commit}, "annotations": {"dirty": dirty}}]


def _lock(root: str) -> list[dict[str, Any]]:
    path = os.path.join(root, LOCK_FILE)
    try:
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
    except FileNotFoundError:
        return []
    return [{"name": LOCK_FILE, "uri": f"file:{LOCK_FILE}", "digest": {"sha256": digest}}]


def _files(root: str, entry: dict[str, Any]) -> list[dict[str, Any]]:
    """The platform's regular files with their digests and why each is there (binary, library, runtime file...)."""
    out = []
    for f in image_files(read_json(os.path.join(root, entry["layers"]))):
        if f.get("kind") == "file" and f.get("digest"):
            out.append({"name": f["path"], "digest": {"sha256": f["digest"].split(":", 1)[1]},
                        "annotations": {"platform": entry["platform"], "reason": f.get("reason", "")}})
    return out


def _debs(root: str, entry: dict[str, Any]) -> list[dict[str, Any]]:
    """The `.deb` files a package sysroot was unpacked from, as its lock entries pin them."""
    if "sysroot_document" not in entry:
        return []
    sysroot = PackageSysroot.read(os.path.join(root, entry["sysroot_document"]))
    try:
        mirror: str | None = sysroot.url or sources.mirror_for(sysroot.suite)
    except MinibuildError:
        mirror = None  # no download location; the digests stand
    out = []
    for pkg in sorted(sysroot.packages.values(), key=lambda p: p.name):
        if pkg.deb is None:
            continue
        item: dict[str, Any] = {"name": os.path.basename(pkg.deb.path), "digest": {"sha256": pkg.deb.sha256},
                                "annotations": {"platform": entry["platform"], "package": pkg.name,
                                                "version": pkg.version, "purl": pkg.purl}}
        url = deb_url(pkg, mirror)
        if url:
            item["uri"] = url
        out.append(item)
    return out


def _sysroot_name(root: str, entry: dict[str, Any]) -> str:
    if "sysroot_document" in entry:
        return str(read_json(os.path.join(root, entry["sysroot_document"])).get("name", ""))
    return str(entry.get("sysroot", ""))


def summary_of(pred: Any) -> dict[str, Any]:
    """What `minibuild verify` prints of a provenance predicate: builder, target, commit, inputs by kind."""
    definition = (pred or {}).get("buildDefinition") or {}
    deps = definition.get("resolvedDependencies") or []
    commit = next((d.get("digest", {}).get("gitCommit") for d in deps if "gitCommit" in (d.get("digest") or {})), None)
    debs = sum(1 for d in deps if str(d.get("name", "")).endswith(".deb"))
    return {"builder": ((pred or {}).get("runDetails") or {}).get("builder", {}).get("id"),
            "target": (definition.get("externalParameters") or {}).get("target"),
            "commit": commit, "inputs": len(deps), "debs": debs}
