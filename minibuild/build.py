"""A whole build: analyse the requested targets, run their actions, put outputs in `.minibuild/out/`."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from minibuild import analysis_cache
from minibuild.analysis_cache import AnalysedTarget
from minibuild.cache import Cache
from minibuild.digest import StatCache, sha256_bytes
from minibuild.errors import MinibuildError
from minibuild.executor import ActionResult, Event, Executor
from minibuild.label import Label
from minibuild.workspace import Workspace


@dataclass
class TargetResult:
    label: Label
    kind: str
    rebuilt: bool
    outputs: dict[str, str] = field(default_factory=dict)  # name -> path under the workspace
    image: dict[str, Any] | None = None  # for images: tag, digest, files, sizes, layers
    reasons: dict[str, str] = field(default_factory=dict)  # action id -> why it ran (--explain)


@dataclass
class BuildResult:
    targets: list[TargetResult]
    run: int
    cached: int
    results: dict[str, ActionResult]
    warnings: list[str] = field(default_factory=list)


class BuildFailed(MinibuildError):
    """One or more actions failed; carries every failure (one unless --keep-going)."""

    def __init__(self, failures: list[tuple[Label, BaseException]]) -> None:
        first_label, first = failures[0]
        message = f"cannot build `{first_label}`"
        if len(failures) > 1:
            message = f"{len(failures)} actions failed: " + ", ".join(f"`{lbl}`" for lbl, _ in failures)
        super().__init__(message)
        self.failures = failures
        errors = [e for _, e in failures if isinstance(e, MinibuildError)]
        # Bad input is exit 2 even when it surfaces while building; anything else that failed is exit 1.
        self.exit_code = 2 if errors and all(e.exit_code == 2 for e in errors) else 1


def out_dir(workspace: Workspace, label: Label) -> str:
    return os.path.join(workspace.state_dir, "out", label.out_dir)


def open_cache(workspace: Workspace) -> tuple[Cache, StatCache]:
    cache = Cache(os.path.join(workspace.state_dir, "cache"))
    return cache, StatCache(os.path.join(cache.root, "stat-cache.json"))


def analyse(workspace: Workspace, patterns: Sequence[str], package: str | None,
            stat_cache: StatCache) -> tuple[list[Label], list[AnalysedTarget]]:
    """The requested labels and every target they need, with actions and providers: stored, or analysed."""
    stored = analysis_cache.load(workspace, patterns, package, stat_cache)
    if stored is not None:
        return stored
    from minibuild.analysis import Analysis

    analysis = Analysis(workspace)
    labels = analysis.expand(patterns, package)
    configured = [AnalysedTarget(ct.label, ct.target.rule, tuple(ct.actions), tuple(ct.providers))
                  for ct in analysis.analyse(labels)]
    analysis_cache.save(workspace, patterns, package, stat_cache, labels, configured, analysis.registry.user_modules)
    return labels, configured


def build(
    workspace: Workspace,
    patterns: Sequence[str],
    package: str | None,
    *,
    jobs: int,
    keep_going: bool = False,
    on_event: Callable[[Event], None] | None = None,
) -> BuildResult:
    cache, stat_cache = open_cache(workspace)
    labels, configured = analyse(workspace, patterns, package, stat_cache)
    actions = [a for ct in configured for a in ct.actions]
    executor = Executor(str(workspace.root), cache, stat_cache, jobs=jobs, keep_going=keep_going,
                        on_event=on_event)
    try:
        results, failures = executor.run(actions)
    finally:
        stat_cache.save()
    requested = set(labels)
    complete = [ct for ct in configured if ct.label in requested and all(a.id in results for a in ct.actions)]
    targets = [_finish(workspace, cache, ct, results) for ct in complete]
    if failures:
        # With --keep-going what did build is in .minibuild/out (above); then every failure is reported.
        raise BuildFailed([(a.owner, e) for a, e in failures])
    warnings = sorted({f"{r.action.owner}: {w}" for r in results.values() for w in r.warnings}) + executor.warnings
    return BuildResult(
        targets=targets,
        run=sum(1 for r in results.values() if not r.cached),
        cached=sum(1 for r in results.values() if r.cached),
        results=results,
        warnings=warnings,
    )


def _finish(workspace: Workspace, cache: Cache, ct: AnalysedTarget, results: dict[str, ActionResult]) -> TargetResult:
    """Materialise a target's outputs under .minibuild/out and describe them."""
    mine = [results[a.id] for a in ct.actions]
    rebuilt = any(not r.cached for r in mine)
    dest = out_dir(workspace, ct.label)
    rel = os.path.relpath(dest, workspace.root)
    result = TargetResult(ct.label, ct.rule, rebuilt,
                          reasons={r.action.id: r.reason for r in mine if not r.cached})
    outputs = {name: blob for r in mine for name, blob in r.outputs.items()}
    os.makedirs(dest, exist_ok=True)
    # Builds of one workspace may run at once: one writer per target's output directory at a time.
    with _locked(os.path.join(dest, ".lock")):
        for name, blob in outputs.items():
            path = os.path.join(dest, name)
            if not _up_to_date(path, cache.blob_path(blob.digest), blob.executable):
                cache.materialize(blob.digest, path, blob.executable)
            result.outputs[name] = os.path.join(rel, name)
        if any(type(p).__name__ == "ImageInfo" for p in ct.providers):
            result.image = _write_oci(workspace, cache, dest, rel, outputs, ct)
    return result


@contextlib.contextmanager
def _locked(path: str) -> Iterator[None]:
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _up_to_date(path: str, blob: str, executable: bool) -> bool:
    if not executable:
        return _same_file(path, blob)
    try:
        st, bst = os.stat(path), os.stat(blob)
    except OSError:
        return False
    # A copy: trust it when size and mode match and it is not older than the blob.
    return st.st_size == bst.st_size and st.st_mode & 0o777 == 0o755 and st.st_mtime_ns >= bst.st_mtime_ns


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _write_oci(workspace: Workspace, cache: Cache, dest: str, rel: str, outputs: dict[str, Any],
               ct: AnalysedTarget) -> dict[str, Any]:
    """Write the OCI layout of an image target from stored blobs, and describe the image for reports."""
    from minibuild.image_actions import host_architecture, image_files
    from minibuild.oci.layout import write_layout
    from minibuild.oci.spec import MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST, Descriptor

    def read(art: Any) -> Any:
        with open(cache.blob_path(outputs[art.name].digest), "rb") as f:
            return json.loads(f.read())

    info = next(p for p in ct.providers if type(p).__name__ == "ImageInfo")
    top = outputs[info.index.name if info.index is not None else info.primary.manifest.name]
    oci_dir = os.path.join(dest, "oci")
    summary_path = os.path.join(dest, "summary.json")
    # Any output of the target changing (layers.json carries max_size, say) makes the summary stale.
    outputs_key = sha256_bytes(json.dumps(sorted(b.digest for b in outputs.values())).encode())
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
        "platforms": [{"platform": f"linux/{arch}", "manifest": outputs[i.manifest.name].digest}
                      for i, _, arch in described],
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
    from minibuild.reports import history

    history.record(workspace, ct.label, summary)  # so `minibuild diff` can compare with this build
    return summary


def _blobs_are_stored(cache: Cache, oci_dir: str, digests: list[str]) -> bool:
    """The layout's blobs are the store's own files (hard links): a blob the store replaced after finding
    it corrupt is then not current, since the layout still links the corrupt inode."""
    if not digests:
        return False
    for d in digests:
        hex_ = d.removeprefix("sha256:")
        if not _same_file(os.path.join(oci_dir, "blobs", "sha256", hex_), cache.blob_path(d)):
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
