"""The executor's side of a remote cache: fetch an action's entry before running it, upload it after.

Fetching: the entry for the key, then its `.minibuild/entry.json`, then (once its discovered inputs match
this machine) every blob the local store lacks. Small files (the JSON, configs, manifests) travel inline in
the entry, so a hit costs one request plus one per large blob. Each blob's size and sha256 are checked before
it is stored, inline bytes included, so a server that answers with other bytes (nginx's WebDAV keeps any
body PUT under any name) can only cost a local run. Uploading runs beside the build on a pool of
`connections` threads: the blobs the server lacks first, the entry last, so no reader sees an entry whose
blobs are missing.

No fault of the server fails a build: each one is counted under its cause and becomes one warning line at
the end; a server that cannot be reached (refused, timed out) is not asked again during this build.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from minibuild.cache import Cache
from minibuild.digest import sha256_file
from minibuild.remote_cache import BlobNotFound, Digest, OutputFile, RemoteCache, RemoteCacheError, RemoteSettings
from minibuild.remote_entry import ENTRY_PATH, EntryError, entry_blobs, entry_digest, entry_files, parse_entry

# Files up to INLINE_FILE_BYTES travel inside the entry, up to INLINE_BYTES in all: a hit then costs one request
# instead of one per file, and the entry stays far below the 4 MiB a gRPC message may have on most servers.
INLINE_FILE_BYTES = 256 << 10
INLINE_BYTES = 1 << 20


class _Corrupt(Exception):
    """A downloaded blob whose bytes are not the ones its digest names."""


@dataclass(frozen=True)
class Fetched:
    """What looking an action up remotely gave: its local entry, or why there is none to use."""

    entry: dict[str, Any] | None
    reason: str = ""


class RemoteSync:
    def __init__(self, client: RemoteCache, settings: RemoteSettings, cache: Cache) -> None:
        self.client = client
        self.settings = settings
        self.cache = cache
        self._uploads = ThreadPoolExecutor(max_workers=max(1, settings.connections),
                                           thread_name_prefix="minibuild-upload")
        self._pending: list[Future[None]] = []
        self._lock = threading.Lock()
        self._off = ""  # why the server is not asked any more in this build
        self._causes: dict[str, int] = {}
        self._inflight: dict[str, threading.Event] = {}  # blobs being downloaded, by hash
        self.hits = 0
        self.bytes_downloaded = 0
        self.bytes_uploaded = 0
        self.entries_uploaded = 0

    @property
    def fetch_threads(self) -> int:
        """Threads the executor adds for lookups and downloads (they wait on the network, not the CPU)."""
        return self.settings.connections if self.settings.read else 0

    # -- fetching ------------------------------------------------------------------------------
    def fetch(self, key: str, key_size: int, outputs: Sequence[str],
              mismatch: Callable[[Mapping[str, str]], str | None]) -> Fetched:
        """The remote entry of an action, its blobs now in the local store; or why not. `mismatch` says which
        discovered input of an entry differs on this machine, if one does."""
        if not self.settings.read:
            return Fetched(None, "remote cache: reading is off")
        if self._off:
            return Fetched(None, f"remote cache not asked ({self._off})")
        try:
            files = self.client.get_action_result(Digest(key, key_size))
            if files is None:
                return Fetched(None, "remote cache: no entry")
            inline = _inline(files)
            meta = entry_digest(files)
            data = self._stored_inline(meta, inline[meta]) if meta in inline else self._download_bytes(meta)
            entry = parse_entry(files, data, outputs)
            differs = mismatch(entry["discovered"])
            if differs:
                return Fetched(None, f"remote entry not used: {differs}")
            missing = [d for d in entry_blobs(entry, _blob_sizes(files)) if not self.cache.has_blob(d.local)]
            for d in [d for d in missing if d in inline]:
                self._store(d, inline[d])
            self._download([d for d in missing if d not in inline])
        except _Corrupt as exc:
            return self._failed("a blob did not match its digest (corrupt or cut short); the action ran here",
                                f"a corrupt blob ({exc})")
        except BlobNotFound:
            return self._failed("an entry names blobs the server no longer has; the action ran here",
                                "its blobs are gone")
        except EntryError as exc:
            return self._failed("an entry was refused (not one minibuild wrote, or tampered with); the action ran "
                                "here", f"an unusable entry ({exc})")
        except RemoteCacheError as exc:
            return self._failed(exc.cause, exc.cause, unavailable=exc.unavailable)
        except Exception as exc:  # noqa: BLE001 - a client's bug must not fail the build either
            return self._failed(f"unexpected {type(exc).__name__}: {exc}", "an unexpected error")
        with self._lock:
            self.hits += 1
        return Fetched(entry)

    def _store(self, digest: Digest, data: bytes) -> None:
        """Store bytes an entry carried inline (already checked against their digest by `_inline`)."""
        self.cache.put_bytes(data, digest.local)
        self._stored_inline(digest, data)

    def _stored_inline(self, digest: Digest, data: bytes) -> bytes:
        with self._lock:
            self.bytes_downloaded += digest.size
        return data

    def _download_bytes(self, digest: Digest) -> bytes:
        if not self.cache.has_blob(digest.local):
            self._download_now([digest])
        with open(self.cache.blob_path(digest.local), "rb") as f:
            return f.read()

    def _download(self, digests: Sequence[Digest]) -> None:
        """Download `digests` into the local store, each checked against its digest first. A blob another
        action is downloading (the layers images share) is waited for, not downloaded twice."""
        mine, theirs = [], []
        with self._lock:
            for d in digests:
                if d.hash in self._inflight:
                    theirs.append((d, self._inflight[d.hash]))
                elif not self.cache.has_blob(d.local):
                    self._inflight[d.hash] = threading.Event()
                    mine.append(d)
        try:
            self._download_now(mine)
        finally:
            with self._lock:
                for d in mine:
                    self._inflight.pop(d.hash).set()
        for _, done in theirs:
            done.wait(self.settings.timeout + 60)
        self._download_now([d for d, _ in theirs if not self.cache.has_blob(d.local)])  # theirs failed

    def _download_now(self, digests: Sequence[Digest]) -> None:
        if not digests:
            return
        tmp = os.path.join(self.cache.root, "tmp")
        wanted = [(d, os.path.join(tmp, f"{d.hash}.{os.getpid()}.{threading.get_ident()}")) for d in digests]
        try:
            self.client.download_blobs(wanted)
            for d, path in wanted:
                try:
                    size = os.path.getsize(path)
                    ok = size == d.size and sha256_file(path) == d.local
                except OSError:
                    raise _Corrupt(f"`{d.local}` was not written") from None
                if not ok:
                    raise _Corrupt(f"`{d.local}`, {size} bytes received for {d.size}")
            for d, path in wanted:
                self.cache.put_file(path, d.local)
                with self._lock:
                    self.bytes_downloaded += d.size
        finally:
            for _, path in wanted:
                with contextlib.suppress(OSError):
                    os.unlink(path)

    # -- uploading -----------------------------------------------------------------------------
    def upload(self, key: str, key_size: int, entry: Mapping[str, Any]) -> None:
        """Upload an action's outputs, then its entry, beside the build."""
        if not self.settings.write or self._off:
            return
        future = self._uploads.submit(self._upload, Digest(key, key_size), dict(entry))
        with self._lock:
            self._pending.append(future)

    def _upload(self, key: Digest, entry: dict[str, Any]) -> None:
        if self._off:
            return
        try:
            sizes = {d: os.path.getsize(self.cache.blob_path(d)) for d in entry.get("blobs", [])}
            files, data = entry_files(entry, sizes)
            meta = self.cache.put_bytes(data)
            files = self._with_contents(files, data)
            paths = {f.digest: self.cache.blob_path(f.digest.local) for f in files}
            paths[Digest.from_local(meta.digest, meta.size)] = self.cache.blob_path(meta.digest)
            missing = self.client.find_missing_blobs(sorted(paths))
            self.client.upload_blobs([(d, paths[d]) for d in sorted(missing)])
            with self._lock:
                self.bytes_uploaded += sum(d.size for d in missing)
            self.client.update_action_result(key, files)
            with self._lock:
                self.entries_uploaded += 1
        except RemoteCacheError as exc:
            self._note(f"upload failed: {exc.cause}", unavailable=exc.unavailable)
        except Exception as exc:  # noqa: BLE001 - a failed upload is a warning, never a failed build
            self._note(f"upload failed: unexpected {type(exc).__name__}: {exc}")

    def _with_contents(self, files: list[OutputFile], meta: bytes) -> list[OutputFile]:
        """`files` with the small ones' bytes inline, the entry's JSON first, within `INLINE_BYTES` in all."""
        budget, out = INLINE_BYTES, []
        for f in sorted(files, key=lambda f: (f.path != ENTRY_PATH, f.digest.size)):
            if 0 < f.digest.size <= min(budget, INLINE_FILE_BYTES):
                if f.path == ENTRY_PATH:
                    data = meta
                else:
                    with open(self.cache.blob_path(f.digest.local), "rb") as fh:
                        data = fh.read()
                if len(data) == f.digest.size:
                    f = dataclasses.replace(f, contents=data)
                    budget -= f.digest.size
            out.append(f)
        return sorted(out, key=lambda f: f.path)

    # -- faults and the end of a build ---------------------------------------------------------
    def _failed(self, cause: str, short: str, *, unavailable: bool = False) -> Fetched:
        self._note(cause, unavailable=unavailable)
        return Fetched(None, f"remote cache: {short}")

    def _note(self, cause: str, *, unavailable: bool = False) -> None:
        with self._lock:
            self._causes[cause] = self._causes.get(cause, 0) + 1
            if unavailable and not self._off:
                self._off = cause

    def finish(self) -> list[str]:
        """Wait for the uploads, close the client; one warning line per cause of trouble."""
        for future in list(self._pending):
            with contextlib.suppress(Exception):
                future.result()
        self._uploads.shutdown(wait=True)
        with contextlib.suppress(Exception):
            self.client.close()
        warnings = []
        for cause, n in self._causes.items():
            times = f" ({n} times)" if n > 1 else ""
            after = "; not asked again in this build" if cause == self._off else ""
            warnings.append(f"remote cache `{self.client.url}`: {cause}{times}{after}")
        return warnings


def _inline(files: Sequence[OutputFile]) -> dict[Digest, bytes]:
    """The bytes an entry carries inline, by digest: only those that are what their digest names (a server or
    a proxy may have changed them; the others are downloaded instead)."""
    return {f.digest: f.contents for f in files
            if f.contents is not None and len(f.contents) == f.digest.size
            and hashlib.sha256(f.contents).hexdigest() == f.digest.hash}


def _blob_sizes(files: Sequence[Any]) -> dict[str, int]:
    """Local digest -> size of every file of a remote entry."""
    return {f.digest.local: f.digest.size for f in files}
