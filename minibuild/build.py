"""A whole build: analyse the requested targets, run their actions, put outputs in `.minibuild/out/`."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Concatenate, ParamSpec

from minibuild import analysis_cache, cache_gc
from minibuild.analysis_cache import AnalysedTarget
from minibuild.cache import Cache
from minibuild.digest import StatCache
from minibuild.errors import MinibuildError
from minibuild.executor import ActionResult, Event, Executor
from minibuild.hooks import AfterBuild, BuiltTarget
from minibuild.label import Label
from minibuild.remote_cache import RemoteCache
from minibuild.remote_sync import RemoteSync
from minibuild.workspace import Workspace

P = ParamSpec("P")


@dataclass
class TargetResult:
    label: Label
    kind: str
    rebuilt: bool
    outputs: dict[str, str] = field(default_factory=dict)  # name -> path under the workspace
    summary: dict[str, Any] | None = None  # what the rule's `after_build` hook said (an image: tag, digest, files)
    reasons: dict[str, str] = field(default_factory=dict)  # action id -> why it ran (--explain)
    actions: dict[str, int] = field(default_factory=dict)  # "run", "cached" (local), "remote": its actions by fate


@dataclass
class BuildResult:
    targets: list[TargetResult]
    run: int
    cached: int
    results: dict[str, ActionResult]
    warnings: list[str] = field(default_factory=list)
    remote: int = 0  # of `cached`, fetched from the remote cache
    bytes_downloaded: int = 0  # from the remote cache
    bytes_uploaded: int = 0  # to the remote cache


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


def out_root(workspace: Workspace) -> str:
    """`.minibuild/out`: never a symbolic link (workspace.py)."""
    return workspace.state_path("out")


def out_dir(workspace: Workspace, label: Label) -> str:
    return os.path.join(out_root(workspace), label.out_dir)


def cache_dir(workspace: Workspace) -> str:
    """`$MINIBUILD_CACHE`, else `.minibuild/cache` (never a symbolic link): docs/cache.md."""
    return workspace.cache_dir


def open_cache(workspace: Workspace) -> tuple[Cache, StatCache]:
    cache = Cache(cache_dir(workspace))
    return cache, StatCache(os.path.join(cache.root, "stat-cache.json"))


def analyse(workspace: Workspace, patterns: Sequence[str], package: str | None,
            stat_cache: StatCache) -> tuple[list[Label], list[AnalysedTarget]]:
    """The requested labels and every target they need, with actions and providers: stored, or analysed."""
    stored = analysis_cache.load(workspace, patterns, package, stat_cache)
    if stored is not None:
        return stored
    # lazy: pydantic, loaded only when BUILD files are analysed
    from minibuild.analysis import Analysis

    analysis = Analysis(workspace)
    labels = analysis.expand(patterns, package)
    configured = [AnalysedTarget(ct.label, ct.target.rule, tuple(ct.actions), tuple(ct.providers),
                                 ct.target.origin() if ct.target.generator else None)
                  for ct in analysis.analyse(labels)]
    analysis_cache.save(workspace, patterns, package, stat_cache, labels, configured, analysis.registry.user_modules)
    return labels, configured


def _bounded(run: Callable[Concatenate[Workspace, P], BuildResult]) -> Callable[Concatenate[Workspace, P], BuildResult]:
    """A build holds the store (shared) while it runs, so `cache gc` removes nothing it found; one that stored
    something then applies the cache's size limit, if one is set (docs/cache.md)."""

    @functools.wraps(run)
    def bounded(workspace: Workspace, *args: P.args, **kwargs: P.kwargs) -> BuildResult:
        cache_gc.env_limit(os.environ)  # a limit that is not a size is exit 2 before anything is built
        cache = Cache(cache_dir(workspace))
        with cache.in_use():
            result = run(workspace, *args, **kwargs)
        if result.run or result.remote:  # a no-op build stored nothing: the store is as big as before
            used = frozenset(r.key for r in result.results.values())
            result.warnings += cache_gc.after_build(cache, workspace, out_root(workspace), used, os.environ)
        return result

    return bounded


@_bounded
def build(
    workspace: Workspace,
    patterns: Sequence[str],
    package: str | None,
    *,
    jobs: int,
    keep_going: bool = False,
    on_event: Callable[[Event], None] | None = None,
    remote: RemoteCache | None = None,
    on_finished: Callable[[TargetResult], None] | None = None,
) -> BuildResult:
    """Build `patterns`; with `remote`, actions are looked up in (and uploaded to) that remote cache too.

    `on_finished` hears of each requested target as soon as it is finished, while the rest of the build goes on
    (from a finishing thread): `minibuild build` starts loading an image into Docker there. A failed build may
    have called it for some targets before the failure: the caller undoes what it did then (cli/commands/build.py).
    """
    cache, stat_cache = open_cache(workspace)
    labels, configured = analyse(workspace, patterns, package, stat_cache)
    actions = [a for ct in configured for a in ct.actions]
    sync = RemoteSync(remote, remote.settings, cache) if remote is not None else None
    requested = set(labels)
    finisher = _Finisher(workspace, cache, [ct for ct in configured if ct.label in requested], on_event, on_finished)
    executor = Executor(str(workspace.root), cache, stat_cache, jobs=jobs, keep_going=keep_going,
                        on_event=finisher.event, remote=sync)
    remote_warnings: list[str] = []
    try:
        results, failures = executor.run(actions)
        complete = [ct for ct in configured if ct.label in requested and all(a.id in results for a in ct.actions)]
        targets = finisher.results(complete, results)
    finally:
        finisher.close()
        stat_cache.save()
        if sync is not None:
            remote_warnings = sync.finish()  # the uploads end before the build does
    if failures:
        # With --keep-going what did build is in .minibuild/out (above); then every failure is reported.
        made = {ct.label: ct.origin for ct in configured if ct.origin}
        for a, e in failures:  # an action of a target a macro made: say which table made it
            if isinstance(e, MinibuildError) and e.origin is None and a.owner in made:
                e.origin = made[a.owner]
        raise BuildFailed([(a.owner, e) for a, e in failures])
    warnings = sorted({f"{r.action.owner}: {w}" for r in results.values() for w in r.warnings}) + executor.warnings
    return BuildResult(
        targets=targets,
        run=sum(1 for r in results.values() if not r.cached),
        cached=sum(1 for r in results.values() if r.cached),
        results=results,
        warnings=warnings + remote_warnings,
        remote=sum(1 for r in results.values() if r.remote),
        bytes_downloaded=sync.bytes_downloaded if sync else 0,
        bytes_uploaded=sync.bytes_uploaded if sync else 0,
    )


def action_counts(results: Sequence[ActionResult]) -> dict[str, int]:
    """How many of `results` ran, came from the local cache, came from the remote cache."""
    return {"run": sum(1 for r in results if not r.cached),
            "cached": sum(1 for r in results if r.cached and not r.remote),
            "remote": sum(1 for r in results if r.remote)}


class _Finisher:
    """Finishes each requested target (`_finish`) as soon as its last action is done, beside the rest of the
    build: the out tree and the after-build hooks (an image's OCI layout and summary) wait on the disk while
    the build waits on actions and the network, so the two overlap instead of following each other."""

    def __init__(self, workspace: Workspace, cache: Cache, targets: Sequence[AnalysedTarget],
                 on_event: Callable[[Event], None] | None,
                 on_finished: Callable[[TargetResult], None] | None = None) -> None:
        self._workspace, self._cache, self._forward, self._on_finished = workspace, cache, on_event, on_finished
        self._left = {ct.label: len(ct.actions) for ct in targets}
        self._targets: dict[str, list[AnalysedTarget]] = {}
        for ct in targets:
            for a in ct.actions:
                self._targets.setdefault(a.id, []).append(ct)
        self._results: dict[str, ActionResult] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="minibuild-finish")
        self._started: dict[Label, Future[TargetResult]] = {}

    def event(self, event: Event) -> None:
        if event.kind in ("done", "cached") and event.result is not None:
            with self._lock:
                self._results[event.action.id] = event.result
                for ct in self._targets.get(event.action.id, ()):
                    self._left[ct.label] -= 1
                    if self._left[ct.label] == 0:
                        self._started[ct.label] = self._pool.submit(self._finish, ct, self._results)
        if self._forward is not None:
            self._forward(event)

    def results(self, complete: Sequence[AnalysedTarget], results: dict[str, ActionResult]) -> list[TargetResult]:
        """The finished targets, in `complete`'s order (those with no actions are finished here)."""
        out = []
        for ct in complete:
            with self._lock:
                started = self._started.get(ct.label)
            out.append(started.result() if started else self._finish(ct, results))
        return out

    def _finish(self, ct: AnalysedTarget, results: dict[str, ActionResult]) -> TargetResult:
        result = _finish(self._workspace, self._cache, ct, results)
        if self._on_finished is not None:
            self._on_finished(result)
        return result

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def _finish(workspace: Workspace, cache: Cache, ct: AnalysedTarget, results: dict[str, ActionResult]) -> TargetResult:
    """Materialise a target's outputs under .minibuild/out and describe them."""
    mine = [results[a.id] for a in ct.actions]
    rebuilt = any(not r.cached for r in mine)
    dest = out_dir(workspace, ct.label)
    rel = os.path.relpath(dest, workspace.root)
    result = TargetResult(ct.label, ct.rule, rebuilt,
                          reasons={r.action.id: r.reason for r in mine if not r.cached}, actions=action_counts(mine))
    outputs = {name: blob for r in mine for name, blob in r.outputs.items()}
    os.makedirs(dest, exist_ok=True)
    # Builds of one workspace may run at once: one writer per target's output directory at a time.
    with _locked(os.path.join(dest, ".lock")):
        for name, blob in outputs.items():
            path = os.path.join(dest, name)
            if not _up_to_date(path, cache.blob_path(blob.digest), blob.executable):
                cache.materialize(blob.digest, path, blob.executable)
            result.outputs[name] = os.path.join(rel, name)
        built = BuiltTarget(ct.label, str(workspace.state_dir), dest, rel, outputs, cache)
        for provider in ct.providers:
            if isinstance(provider, AfterBuild):
                result.summary = provider.after_build(built) or result.summary
    return result


@contextlib.contextmanager
def _locked(path: str) -> Iterator[None]:
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _up_to_date(path: str, blob: str, executable: bool) -> bool:
    if not executable:
        return same_file(path, blob)
    try:
        st, bst = os.stat(path), os.stat(blob)
    except OSError:
        return False
    # A copy: trust it when size and mode match and it is not older than the blob.
    return st.st_size == bst.st_size and st.st_mode & 0o777 == 0o755 and st.st_mtime_ns >= bst.st_mtime_ns
