"""The content-addressed store and the action cache, safe for several processes at once.

Layout under the cache directory:
  cas/sha256/ab/<hex>       blobs, named by the sha256 of their content, read-only
  ac/ab/<key>.json          action key -> output digests and discovered inputs; its mtime is when it was last used
  last/<hash of action id>  the key manifest of the last run of an action (for --explain)
  locks/<key>.lock          flock held while an action runs, so no two processes run it at once
  locks/store.lock          flock held shared by every build, exclusively by `cache gc` while it deletes
  tmp/                      work directories; a blob is written here and renamed into place
  sysroots/, analysis/      unpacked package sysroots (packages/tree.py), stored analyses (analysis_cache.py)

Every write is a temp file plus rename, so a killed process leaves at worst an orphan in tmp/.
What `cache gc` removes, and in which order, is in cache_gc.py (docs/cache.md).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from minibuild.digest import sha256_file
from minibuild.errors import BuildError


@dataclass(frozen=True)
class Blob:
    digest: str
    size: int
    executable: bool = False  # metadata of an action output, not of the stored bytes


def _no_space(exc: OSError, what: str) -> BuildError:
    if exc.errno == errno.ENOSPC:
        return BuildError(f"no space left on device while writing {what}",
                          hint="free some space (or `minibuild clean --cache`) and build again")
    return BuildError(f"cannot write {what}: {exc.strerror}")


class Cache:
    def __init__(self, root: str) -> None:
        self.root = root
        for sub in ("cas/sha256", "ac", "last", "locks", "tmp"):
            os.makedirs(os.path.join(root, sub), exist_ok=True)

    # -- blobs ---------------------------------------------------------------------------------
    def blob_path(self, digest: str) -> str:
        hex_ = digest.removeprefix("sha256:")
        return os.path.join(self.root, "cas", "sha256", hex_[:2], hex_)

    def has_blob(self, digest: str) -> bool:
        return os.path.exists(self.blob_path(digest))

    def put_file(self, path: str, digest: str | None = None) -> Blob:
        """Move a finished file into the store (it is consumed); returns its digest and size."""
        digest = digest or sha256_file(path)
        size = os.path.getsize(path)
        dest = self.blob_path(digest)
        if os.path.exists(dest):
            os.unlink(path)
            return Blob(digest, size)
        try:
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            os.chmod(path, 0o444)
            os.replace(path, dest)
        except OSError as exc:
            raise _no_space(exc, f"blob `{digest}`") from None
        return Blob(digest, size)

    def put_bytes(self, data: bytes, digest: str | None = None) -> Blob:
        """Store `data`; `digest` when the caller has just computed it (it is trusted: never one read from
        elsewhere)."""
        digest = digest or "sha256:" + hashlib.sha256(data).hexdigest()
        if os.path.exists(self.blob_path(digest)):
            return Blob(digest, len(data))
        fd, tmp = tempfile.mkstemp(dir=os.path.join(self.root, "tmp"))
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise _no_space(exc, f"blob `{digest}`") from None
        return self.put_file(tmp, digest)

    def discard_blob(self, digest: str) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.blob_path(digest))

    def blobs(self) -> Iterator[str]:
        """The digest of every stored blob."""
        base = os.path.join(self.root, "cas", "sha256")
        for sub in sorted(os.listdir(base)):
            for name in sorted(os.listdir(os.path.join(base, sub))):
                yield "sha256:" + name

    def action_entries(self) -> Iterator[tuple[str, dict[str, Any] | None]]:
        """(key, entry or None when unreadable) for every action cache entry."""
        base = os.path.join(self.root, "ac")
        for sub in sorted(os.listdir(base)):
            for name in sorted(os.listdir(os.path.join(base, sub))):
                key = name.removesuffix(".json")
                try:
                    with open(os.path.join(base, sub, name), encoding="utf-8") as f:
                        yield key, json.load(f)
                except (OSError, ValueError):
                    yield key, None

    def discard_action(self, key: str) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self._ac_path(key))

    def verify_blob(self, digest: str) -> bool:
        """Re-hash a stored blob; a corrupt one is removed so it gets rebuilt."""
        path = self.blob_path(digest)
        try:
            ok = sha256_file(path) == digest
        except OSError:
            return False
        if not ok:
            with contextlib.suppress(OSError):
                os.unlink(path)
        return ok

    # -- action cache --------------------------------------------------------------------------
    def _ac_path(self, key: str) -> str:
        return os.path.join(self.root, "ac", key[:2], key + ".json")

    def get_action(self, key: str) -> dict[str, Any] | None:
        try:
            with open(self._ac_path(key), encoding="utf-8") as f:
                entry = json.load(f)
                with contextlib.suppress(OSError):  # a read-only cache still reads
                    os.utime(f.fileno())  # used now: `cache gc` removes the least recently used first
        except (OSError, ValueError):
            return None
        blobs = [o["digest"] for o in entry.get("outputs", {}).values()] + entry.get("blobs", [])
        if not all(self.has_blob(d) for d in blobs):
            return None
        return entry

    def put_action(self, key: str, entry: dict[str, Any]) -> None:
        self._write_json(self._ac_path(key), entry)

    def last_manifest(self, action_id: str) -> dict[str, Any] | None:
        try:
            with open(self._last_path(action_id), encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def put_last_manifest(self, action_id: str, manifest: dict[str, Any]) -> None:
        self._write_json(self._last_path(action_id), manifest)

    def _last_path(self, action_id: str) -> str:
        return os.path.join(self.root, "last", hashlib.sha256(action_id.encode()).hexdigest() + ".json")

    def _write_json(self, path: str, value: Any) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.join(self.root, "tmp"))
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(value, f, sort_keys=True, separators=(",", ":"))
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise _no_space(exc, f"cache entry `{os.path.basename(path)}`") from None

    # -- work space and locks ------------------------------------------------------------------
    @contextlib.contextmanager
    def workdir(self) -> Iterator[str]:
        path = tempfile.mkdtemp(dir=os.path.join(self.root, "tmp"))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[None]:
        fd = os.open(os.path.join(self.root, "locks", key[:16] + ".lock"), os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    @contextlib.contextmanager
    def in_use(self) -> Iterator[None]:
        """Held (shared) by a build from its first lookup to its last output: `cache gc` takes it exclusively,
        so nothing a build in progress has found in the store goes before the build ends."""
        fd = os.open(self._store_lock(), os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def exclusive(self, wait: bool = True, on_wait: Callable[[], None] | None = None) -> Iterator[bool]:
        """The store to oneself (no build in progress): yields True once held; False at once, not holding it,
        when `wait` is False and a build is using the store. `on_wait` is called before waiting."""
        fd = os.open(self._store_lock(), os.O_CREAT | os.O_RDWR, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not wait:
                    yield False
                    return
                if on_wait is not None:
                    on_wait()
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield True
        finally:
            os.close(fd)

    def _store_lock(self) -> str:
        return os.path.join(self.root, "locks", "store.lock")

    def materialize(self, digest: str, dest: str, executable: bool = False) -> None:
        """Put a stored blob at `dest`, replacing what is there.

        A hard link shares the store's read-only inode; an executable output is copied instead, since
        its mode (0755) cannot be given to the shared inode.
        """
        src = self.blob_path(digest)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        tmp = f"{dest}.tmp{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        try:
            if executable:
                shutil.copyfile(src, tmp)
                os.chmod(tmp, 0o755)
            else:
                try:
                    os.link(src, tmp)
                except OSError:
                    shutil.copyfile(src, tmp)
            os.replace(tmp, dest)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise _no_space(exc, f"`{dest}`") from None
