"""`.deb` files into the cache's content-addressed store, several at once, each checked against the lock's
sha256 before it is stored (a file that does not match is never stored), with `--offline` using only the store."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from minibuild.cache import Cache
from minibuild.digest import StatCache
from minibuild.errors import BuildError, MinibuildError
from minibuild.packages import http
from minibuild.packages.lockfile import LockedPackage

OFFLINE_ENV = "MINIBUILD_OFFLINE"
DEFAULT_JOBS = 4


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
          on_fetched: Callable[[LockedPackage], None] | None = None) -> list[LockedPackage]:
    """Store every package of `packages` the store lacks; the ones downloaded. `mirror()` gives the archive's URL
    (called only when something must be downloaded). BuildError when offline and some are missing, or when a
    download fails (every failure listed)."""
    todo = missing(packages, cache, stat_cache)
    if not todo:
        return []
    if offline():
        raise BuildError(f"--offline, and {len(todo)} package(s) of the lock are not in the cache",
                         causes=tuple(f"{p.deb_name}.deb ({p.size} bytes)" for p in todo),
                         hint="build once without `--offline` to fetch them")
    url = mirror()

    def one(p: LockedPackage) -> LockedPackage:
        fd, tmp = tempfile.mkstemp(dir=os.path.join(cache.root, "tmp"), suffix=".deb")
        os.close(fd)
        try:
            http.download(f"{url.rstrip('/')}/{p.path}", tmp, sha256=p.sha256, size=p.size, retry=retry)
            cache.put_file(tmp, "sha256:" + p.sha256)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
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
