"""Run an action graph: in parallel, each action at most once, skipping every action whose key is cached.

An action's key hashes its kind, version, params and the content digest of every input; derived
inputs are known only once their producer has run (or hit the cache), so keys are computed as the
graph unfolds. An action that re-runs and writes identical bytes leaves its dependents cached
(early cutoff). Actions that discover their inputs (the ELF closure) record what they looked at,
and a cache hit is confirmed by re-checking those paths through the stat cache.
"""

from __future__ import annotations

import importlib
import os
import shutil
import stat
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

from minibuild.actions import Action, Artifact, DeferredParams, action_key, explain
from minibuild.cache import Blob, Cache, EntryError
from minibuild.digest import StatCache, canonical_json
from minibuild.errors import BuildError, InputError, MinibuildError
from minibuild.portable import host_path, portable_path
from minibuild.remote_sync import RemoteSync


@dataclass
class ActionResult:
    action: Action
    key: str
    outputs: dict[str, Blob]
    cached: bool
    seconds: float = 0.0
    reason: str = ""
    blobs: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    remote: bool = False  # cached: fetched from the remote cache in this build


@dataclass(frozen=True)
class Event:
    kind: str  # "start" | "progress" | "done" | "cached" | "failed" | "skipped"
    action: Action
    result: ActionResult | None = None
    error: BaseException | None = None
    detail: str = ""  # "progress": how far the action is, in words


P = TypeVar("P")


class ActionRun(Generic[P]):
    """What an action function receives: its params (the object the rule gave), input and output paths,
    and the store."""

    params: P

    def __init__(self, action: Action, inputs: dict[str, str], outputs: dict[str, str], root: str,
                 cache: Cache, stat_cache: StatCache, on_progress: Callable[[str], None] | None = None) -> None:
        self.action = action
        self._on_progress = on_progress
        # An action read back from the analysis cache carries its params object too (pickled with it).
        # It is the object the rule gave for this function, so of the function's P: unchecked here.
        value = action.value.load() if isinstance(action.value, DeferredParams) else action.value
        self.params = cast(P, value if value is not None else action.params_dict())
        self.inputs = inputs
        self.outputs = outputs
        self.root = root
        self.cache = cache
        self.stat_cache = stat_cache
        self.discovered: set[str] = set()
        self.extra_blobs: list[str] = []
        self.warnings: list[str] = []

    def input(self, artifact: Artifact) -> str:
        """The path to read a declared input from."""
        return self.inputs[artifact.path]

    def output(self, artifact: Artifact) -> str:
        """The path to write a declared output to."""
        return self.outputs[artifact.name]

    def discover(self, *host_paths: str) -> None:
        """Record paths this run depended on (present or absent); a change to any re-runs the action.
        Paths inside the workspace are kept relative to its root, so the entry holds in any clone."""
        self.discovered.update(portable_path(p, self.root) for p in host_paths)

    def host_path(self, path: str) -> str:
        """A path of the params (relative to the workspace root, or absolute) on this machine."""
        return host_path(path, self.root)

    def portable_path(self, host: str) -> str:
        """A host path as an output should record it: relative to the workspace root when inside it."""
        return portable_path(host, self.root)

    def digest(self, host_path: str) -> str:
        return self.stat_cache.digest(host_path)

    def store_blob(self, path: str, digest: str | None = None) -> Blob:
        """Move a file into the store as an extra output of this action (e.g. a layer)."""
        blob = self.cache.put_file(path, digest)
        self.extra_blobs.append(blob.digest)
        return blob

    def reuse_blob(self, digest: str) -> bool:
        """Claim a blob already in the store as an extra output of this action (a layer another image of this
        build wrote byte for byte); False when the store does not have it."""
        if not self.cache.has_blob(digest):
            return False
        self.extra_blobs.append(digest)
        return True

    def blob_path(self, digest: str) -> str:
        return self.cache.blob_path(digest)

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def progress(self, detail: str) -> None:
        """Say how far a long action is (a terminal shows it beside the action); not part of any output."""
        if self._on_progress is not None:
            self._on_progress(detail)


def _resolve_function(spec: str) -> Callable[[ActionRun[Any]], None]:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


class Executor:
    def __init__(self, root: str, cache: Cache, stat_cache: StatCache, *, jobs: int, keep_going: bool = False,
                 on_event: Callable[[Event], None] | None = None, remote: RemoteSync | None = None) -> None:
        self.root = root
        self.cache = cache
        self.stat_cache = stat_cache
        self.jobs = max(1, jobs)
        self.remote = remote
        # Remote lookups wait on the network: they get threads of their own, local runs stay at `jobs`.
        self._run_slots = threading.BoundedSemaphore(self.jobs)
        self.keep_going = keep_going
        self.on_event = on_event or (lambda e: None)
        self._fingerprints: dict[str, str] = {}
        self._realpaths: dict[str, str] = {}
        self._real_root = os.path.realpath(root)
        self.warnings: list[str] = []
        self._warn_lock = threading.Lock()

    def run(self, actions: Sequence[Action]) -> tuple[dict[str, ActionResult], list[tuple[Action, BaseException]]]:
        """Run every action; returns results by action id and the failures (non-empty only with keep_going)."""
        producer: dict[str, Action] = {}
        for a in actions:
            for out in a.outputs:
                producer[out.path] = a
        deps: dict[str, set[str]] = {}
        dependents: dict[str, list[Action]] = {a.id: [] for a in actions}
        for a in actions:
            deps[a.id] = {producer[i.path].id for i in a.inputs if i.kind == "derived"}
            for d in deps[a.id]:
                dependents[d].append(a)
        results: dict[str, ActionResult] = {}
        failures: list[tuple[Action, BaseException]] = []
        blocked: set[str] = set()
        pending = {a.id: len(deps[a.id]) for a in actions}
        ready = [a for a in actions if pending[a.id] == 0]
        running: dict[Future[ActionResult], Action] = {}

        def block(action: Action) -> None:
            for d in dependents[action.id]:
                if d.id not in blocked:
                    blocked.add(d.id)
                    self.on_event(Event("skipped", d))
                    block(d)

        def fail(a: Action, exc: BaseException) -> None:
            failures.append((a, exc))
            self.on_event(Event("failed", a, error=exc))
            block(a)

        def settle(a: Action, result: ActionResult) -> None:
            results[a.id] = result
            for d in dependents[a.id]:
                pending[d.id] -= 1
                if pending[d.id] == 0 and d.id not in blocked:
                    ready.append(d)

        workers = self.jobs + (self.remote.fetch_threads if self.remote else 0)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="minibuild") as pool:
            while ready or running:
                while ready and (self.keep_going or not failures):
                    a = ready.pop(0)
                    # Cache hits are settled here, without a round trip through the pool: on a no-op
                    # build that is every action.
                    try:
                        checked = self._check(a, producer, results)
                    except BaseException as exc:  # noqa: BLE001 - reported, then re-raised by the caller
                        fail(a, exc)
                        continue
                    if isinstance(checked, ActionResult):
                        settle(a, checked)
                    else:
                        running[pool.submit(self._run_missing, a, *checked)] = a
                if failures and not self.keep_going:
                    ready.clear()
                if not running:
                    continue
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    a = running.pop(fut)
                    try:
                        settle(a, fut.result())
                    except BaseException as exc:  # noqa: BLE001 - reported, then re-raised by the caller
                        fail(a, exc)
                if failures and not self.keep_going:
                    ready.clear()
        return results, failures

    def _input_digests(self, action: Action, results: dict[str, ActionResult],
                       producer: dict[str, Action]) -> tuple[dict[str, str], dict[str, str]]:
        digests: dict[str, str] = {}
        paths: dict[str, str] = {}
        for art in action.inputs:
            if art.kind == "derived":
                blob = results[producer[art.path].id].outputs[art.name]
                digests[art.path] = blob.digest
                paths[art.path] = self.cache.blob_path(blob.digest)
            else:
                host = os.path.join(self.root, art.path)
                digests[art.path] = self._source_digest(action, art, host)
                paths[art.path] = host
        return digests, paths

    def _source_digest(self, action: Action, art: Artifact, host: str) -> str:
        # One realpath per source path and build (a shared file is an input of many actions): the workspace is not
        # expected to move its symlinks around during a build, and the digest below is of what is there now.
        real = self._realpaths.get(host)
        if real is None:
            real = self._realpaths[host] = os.path.realpath(host)
        root = self._real_root
        if real != root and not real.startswith(root + os.sep):
            raise InputError(f"source `{art.path}` of `{action.owner}` resolves outside the workspace "
                             f"(to `{real}`)", hint="symlinks in the workspace must point inside it")
        try:
            st = os.stat(host)
            if not stat.S_ISREG(st.st_mode):
                kind = "a directory" if stat.S_ISDIR(st.st_mode) else "a device, socket or pipe"
                raise InputError(f"source `{art.path}` of `{action.owner}` is {kind}, not a regular file",
                                 hint="only regular files (and symlinks to them) go into images")
            return self.stat_cache.digest(host, st)
        except FileNotFoundError:
            raise InputError(f"source file `{art.path}` of `{action.owner}` does not exist",
                             hint="check the path; it is relative to the package's BUILD.toml") from None
        except IsADirectoryError:
            raise InputError(f"source `{art.path}` of `{action.owner}` is a directory, not a file") from None
        except OSError as exc:
            raise InputError(f"cannot read source `{art.path}` of `{action.owner}`: {exc.strerror}") from None

    def _fingerprint(self, path: str) -> str:
        """A discovered input's fingerprint (its path as `ActionRun.discover` keeps it), checked once per build
        however many actions share it."""
        fp = self._fingerprints.get(path)
        if fp is None:
            fp = self.stat_cache.fingerprint(host_path(path, self.root))
            self._fingerprints[path] = fp
        return fp

    def _blob_intact(self, digest: str, size: int | None = None) -> bool:
        """A stored blob still hashes to its name (re-hashed only when its stat changed): a regular file, never
        followed if it is a link. `size`: what the entry says it is (the blob is fine, the entry is not, if not)."""
        path = self.cache.blob_path(digest)
        try:
            st = os.lstat(path)
            intact = stat.S_ISREG(st.st_mode) and self.stat_cache.digest(path, st) == digest
        except OSError:
            return False
        if not intact:
            self.cache.discard_blob(digest)
            self._warn(f"stored blob `{digest}` was corrupt: discarded, and rebuilt by the action that made it")
        elif size is not None and st.st_size != size:
            raise EntryError(f"it says an output of {size} bytes is stored as blob `{digest}`, of {st.st_size}")
        return intact

    def _warn(self, message: str) -> None:
        with self._warn_lock:
            self.warnings.append(message)

    def _hit(self, action: Action, key: str) -> dict[str, Any] | None:
        """The entry of `key` if it can be used: whole (cache.parse_entry), for the action's outputs, its blobs
        intact and the sizes it gives theirs, its discovered inputs unchanged. One that is not whole is removed
        with a warning, and the action runs again."""
        try:
            entry = self.cache.get_action(key, check_blobs=False)  # each blob is looked at below
            if entry is None:
                return None
            if set(entry["outputs"]) != {o.name for o in action.outputs}:
                raise EntryError("its outputs are not the action's")
            sized = [(o["digest"], o["size"]) for o in entry["outputs"].values()]
            if not all(self._blob_intact(d, size) for d, size in sized + [(d, None) for d in entry["blobs"]]):
                return None
        except EntryError as exc:
            self.cache.discard_action(key)
            self._warn(f"the cache entry of {action.description} was unusable ({exc}): removed, and the action "
                       "ran again")
            return None
        for path, fp in entry["discovered"].items():
            try:
                if self._fingerprint(path) != fp:
                    return None
            except OSError:
                return None
        return entry

    def _cached(self, action: Action, key: str, entry: dict[str, Any], remote: bool = False) -> ActionResult:
        outputs = {k: Blob(v["digest"], v["size"], v["executable"]) for k, v in entry["outputs"].items()}
        result = ActionResult(action, key, outputs, cached=True, blobs=entry["blobs"], warnings=entry["warnings"],
                              remote=remote)
        self.on_event(Event("cached", action, result))
        return result

    def _check(self, action: Action, producer: dict[str, Action], results: dict[str, ActionResult],
               ) -> ActionResult | tuple[str, dict[str, Any], dict[str, str]]:
        """The cached result, or what running the action needs: its key, key manifest and input paths."""
        digests, paths = self._input_digests(action, results, producer)
        manifest = action.key_manifest(digests)
        key = action_key(manifest)
        entry = self._hit(action, key)
        if entry is not None:
            return self._cached(action, key, entry)
        return key, manifest, paths

    def _run_missing(self, action: Action, key: str, manifest: dict[str, Any], paths: dict[str, str]) -> ActionResult:
        with self.cache.lock(key):
            entry = self._hit(action, key)  # another process may have built it while we waited
            if entry is not None:
                return self._cached(action, key, entry)
            remote_reason = ""
            if self.remote is not None:
                fetched = self.remote.fetch(key, _key_size(manifest), [o.name for o in action.outputs],
                                            self._discovered_mismatch)
                if fetched.entry is not None:
                    self.cache.put_action(key, fetched.entry)
                    return self._cached(action, key, fetched.entry, remote=True)
                remote_reason = fetched.reason
            with self._run_slots:
                return self._execute(action, key, manifest, paths, remote_reason)

    def _discovered_mismatch(self, discovered: Mapping[str, str]) -> str | None:
        """The first discovered input of a (remote) entry that differs here, described; None when all match."""
        for path, fp in discovered.items():
            try:
                here = self._fingerprint(path)
            except OSError:
                here = "unreadable"
            if here != fp:
                return f"discovered input `{path}` differs here"
        return None

    def _execute(self, action: Action, key: str, manifest: dict[str, Any], paths: dict[str, str],
                 remote_reason: str = "") -> ActionResult:
        reason = explain(self.cache.last_manifest(action.id), manifest)
        if remote_reason:
            reason = f"{reason}; {remote_reason}"
        self.on_event(Event("start", action))
        started = time.monotonic()
        with self.cache.workdir() as work:
            outputs = {o.name: os.path.join(work, o.name) for o in action.outputs}
            run: ActionRun[Any] = ActionRun(action, paths, outputs, self.root, self.cache, self.stat_cache,
                                            lambda detail: self.on_event(Event("progress", action, detail=detail)))
            try:
                _resolve_function(action.function)(run)
            except MinibuildError:
                raise
            except OSError as exc:
                raise BuildError(f"{action.description} failed: {exc}") from exc
            stored: dict[str, Blob] = {}
            for name, path in outputs.items():
                _own_regular_file(path, name, action.description)
                executable = bool(os.stat(path).st_mode & 0o111)
                blob = self.cache.put_file(path)
                stored[name] = Blob(blob.digest, blob.size, executable)
            discovered = {p: self.stat_cache.fingerprint(host_path(p, self.root)) for p in sorted(run.discovered)}
            self._fingerprints.update(discovered)
        blobs = sorted(set(run.extra_blobs))
        entry = {
            "outputs": {k: {"digest": b.digest, "size": b.size, "executable": b.executable}
                        for k, b in stored.items()},
            "blobs": blobs,
            "discovered": discovered,
            "warnings": run.warnings,
        }
        self.cache.put_action(key, entry)
        self.cache.put_last_manifest(action.id, manifest)
        if self.remote is not None:
            self.remote.upload(key, _key_size(manifest), entry)
        result = ActionResult(action, key, stored, cached=False, seconds=time.monotonic() - started,
                              reason=reason, blobs=blobs, warnings=run.warnings)
        self.on_event(Event("done", action, result))
        return result


def _own_regular_file(path: str, name: str, description: str) -> None:
    """Make sure an output is a regular file of the action's own before the store takes it (and makes it read-only):
    a symbolic link is refused (never followed), and a file with another name somewhere (a hard link to a file
    outside the work dir) is replaced by a copy, so nothing outside is changed or shared with the store."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise BuildError(f"{description} did not write its declared output `{name}`") from None
    if stat.S_ISLNK(st.st_mode):
        raise BuildError(f"{description} wrote its output `{name}` as a symbolic link; outputs must be regular "
                         "files", hint="write the file itself (copy what the link points to)")
    if not stat.S_ISREG(st.st_mode):
        raise BuildError(f"{description} did not write its declared output `{name}` (not a regular file)")
    if st.st_nlink > 1:
        copy = path + ".own"
        shutil.copyfile(path, copy)
        os.chmod(copy, stat.S_IMODE(st.st_mode))
        os.replace(copy, path)


def _key_size(manifest: dict[str, Any]) -> int:
    """The size of what a key hashes: a remote cache names an action by (key, size), as REAPI's `Digest`."""
    return len(canonical_json(manifest).encode())
