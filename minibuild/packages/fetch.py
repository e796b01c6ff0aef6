"""`.deb` files into the cache's content-addressed store, several at once, each checked against the lock's
sha256 before it is stored (a file that does not match is never stored), with `--offline` using only the store.

Downloads are also kept in a store of this user's that every workspace shares (`shared_store`: lock updates
and other checkouts reuse them without the network). What is taken from it is checked against the lock like a
download: it is a directory other processes write, never trusted by name."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from minibuild.cache import Cache
from minibuild.digest import StatCache, sha256_file
from minibuild.errors import BuildError, MinibuildError
from minibuild.packages import http
from minibuild.packages.lockfile import LockedPackage

OFFLINE_ENV = "MINIBUILD_OFFLINE"
SHARED_ENV = "MINIBUILD_DEB_CACHE"  # where the shared .deb store is; "off" for none
DEFAULT_JOBS = 4
_PROGRESS_EVERY = 0.2  # seconds between progress reports


def shared_store() -> str | None:
    """The directory of `.deb` files every workspace of this user shares, by sha256: $MINIBUILD_DEB_CACHE, else
    $XDG_CACHE_HOME/minibuild/debs, else ~/.cache/minibuild/debs; None when set to `off`."""
    chosen = os.environ.get(SHARED_ENV, "")
    if chosen.strip().lower() in ("off", "0", "no", "none"):
        return None
    if chosen:
        return os.path.abspath(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "minibuild", "debs")


def offline() -> bool:
    """`--offline` (the CLI sets MINIBUILD_OFFLINE=1 for the build it runs)."""
    return os.environ.get(OFFLINE_ENV, "") not in ("", "0")


def missing(packages: Sequence[LockedPackage], cache: Cache, stat_cache: StatCache) -> list[LockedPackage]:
    """The packages the store lacks; a stored one that no longer hashes to its name is discarded and counted."""
    absent = []
    for p in packages:
        digest = "sha256:" + p.sha256
        path = cache.blob_path(digest)
        try:
            if stat_cache.digest(path) == digest:
                continue
            cache.discard_blob(digest)
        except OSError:
            pass
        absent.append(p)
    return absent


def fetch(packages: Sequence[LockedPackage], mirror: Callable[[], str], cache: Cache, stat_cache: StatCache, *,
          jobs: int = DEFAULT_JOBS, retry: http.Retry = http.DEFAULT_RETRY,
          on_fetched: Callable[[LockedPackage], None] | None = None,
          progress: Callable[[str], None] | None = None) -> list[LockedPackage]:
    """Store every package of `packages` the store lacks; the ones downloaded. `mirror()` gives the archive's URL
    (called only when something must be downloaded). BuildError when offline and some are missing, or when a
    download fails (every failure listed). `progress` is told how far the downloads are, in words."""
    todo = [p for p in missing(packages, cache, stat_cache) if not _from_shared(p, cache)]
    if not todo:
        return []
    if offline():
        raise BuildError(f"--offline, and {len(todo)} package(s) of the lock are not in the cache",
                         causes=tuple(f"{p.deb_name}.deb ({p.size} bytes)" for p in todo),
                         hint="build once without `--offline` to fetch them")
    url = mirror()
    meter = _Meter(len(todo), sum(p.size for p in todo), progress)

    def one(p: LockedPackage) -> LockedPackage:
        fd, tmp = tempfile.mkstemp(dir=os.path.join(cache.root, "tmp"), suffix=".deb")
        os.close(fd)
        try:
            http.download(f"{url.rstrip('/')}/{p.path}", tmp, sha256=p.sha256, size=p.size, retry=retry,
                          on_bytes=meter.bytes)
            cache.put_file(tmp, "sha256:" + p.sha256)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        _to_shared(p, cache)
        meter.done()
        if on_fetched:
            on_fetched(p)
        return p

    errors: list[MinibuildError] = []
    done = []
    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="minibuild-fetch") as pool:
        for future in [pool.submit(one, p) for p in todo]:
            try:
                done.append(future.result())
            except MinibuildError as exc:
                errors.append(exc)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise BuildError(f"{len(errors)} of {len(todo)} downloads failed",
                         causes=tuple(e.message for e in errors), hint=errors[0].hint)
    return done


def _shared_path(p: LockedPackage) -> str | None:
    store = shared_store()
    return os.path.join(store, p.sha256[:2], p.sha256 + ".deb") if store else None


def _from_shared(p: LockedPackage, cache: Cache) -> bool:
    """Take `p` from the shared store into the cache's, if it is there and is the file the lock names. Copied
    first, then hashed: the copy is this process's own, so what was checked is what is stored."""
    path = _shared_path(p)
    if path is None or not os.path.isfile(path):
        return False
    fd, tmp = tempfile.mkstemp(dir=os.path.join(cache.root, "tmp"), suffix=".deb")
    os.close(fd)
    try:
        shutil.copyfile(path, tmp)
        if os.path.getsize(tmp) != p.size or sha256_file(tmp) != "sha256:" + p.sha256:
            os.unlink(path)  # not the file its name says: the download that follows puts the right one there
            return False
        cache.put_file(tmp, "sha256:" + p.sha256)
        return True
    except OSError:
        return False  # unreadable, or gone meanwhile: download it
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _to_shared(p: LockedPackage, cache: Cache) -> None:
    """Offer a verified download to other workspaces; a store that cannot be written only costs them a download."""
    path = _shared_path(p)
    if path is None or os.path.exists(path):
        return
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        # A copy, not a hard link: the store's blob shares its inode with the out tree, and a link would let
        # whoever can write the shared store reach it.
        shutil.copyfile(cache.blob_path("sha256:" + p.sha256), tmp)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


class _Meter:
    """Bytes and files downloaded so far, told to `progress` at most every `_PROGRESS_EVERY` seconds."""

    def __init__(self, files: int, total: int, progress: Callable[[str], None] | None) -> None:
        self.files, self.total, self.progress = files, total, progress
        self.got = self.finished = 0
        self.lock = threading.Lock()
        self.last = 0.0

    def bytes(self, n: int) -> None:
        with self.lock:
            self.got += n
        self._tell()

    def done(self) -> None:
        with self.lock:
            self.finished += 1
        self._tell(force=True)

    def _tell(self, force: bool = False) -> None:
        if self.progress is None:
            return
        now = time.monotonic()
        with self.lock:
            if not force and now - self.last < _PROGRESS_EVERY:
                return
            self.last = now
            text = (f"downloading {self.finished}/{self.files} packages, "
                    f"{self.got / 1e6:.1f}/{self.total / 1e6:.1f} MB")
        self.progress(text)
