"""Which package of the suite ships a path: the `Contents-<arch>` index (what `apt-file` reads), downloaded only
when a binary is missing from a package sysroot, checked against the sha256 the lock recorded from the signed
Release, and kept in the cache by that digest.

    usr/bin/jq                                              utils/jq
"""

from __future__ import annotations

import gzip
import lzma
import os
import tempfile
from collections.abc import Iterator, Sequence

from minibuild.cache import Cache
from minibuild.errors import MinibuildError
from minibuild.packages import http
from minibuild.packages.lockfile import IndexRef

_MERGED = ("bin/", "sbin/", "lib/", "lib32/", "lib64/", "libx32/")


def aliases(path: str) -> set[str]:
    """`path` as a Contents index may list it (no leading `/`), on either side of merged /usr."""
    rel = path.lstrip("/")
    found = {rel}
    if rel.startswith(_MERGED):
        found.add("usr/" + rel)
    if rel.startswith("usr/") and rel[4:].startswith(_MERGED):
        found.add(rel[4:])
    return found


def shipped_by(paths: Sequence[str], indices: Sequence[IndexRef], dists_url: str, cache: Cache, *,
               offline: bool = False) -> dict[str, list[str]]:
    """{path: packages that ship it} for the paths an index lists; {} when the indices cannot be read, or
    `offline` and they are not in the cache (this is only ever a hint)."""
    wanted = {alias.encode(): path for path in paths for alias in aliases(path)}
    found: dict[str, set[str]] = {}
    for ref in indices:
        try:
            blob = _stored(ref, dists_url, cache, offline)
        except (MinibuildError, OSError):
            return {}
        for line in _lines(blob, ref.path):
            parts = line.rstrip().rsplit(None, 1)
            path = wanted.get(parts[0]) if len(parts) == 2 else None
            if path is not None:  # locations are `section/name`, comma-separated
                found.setdefault(path, set()).update(w.rsplit(b"/", 1)[-1].decode() for w in parts[1].split(b","))
    return {path: sorted(names) for path, names in found.items()}


def _stored(ref: IndexRef, dists_url: str, cache: Cache, offline: bool) -> str:
    digest = "sha256:" + ref.sha256
    if not cache.has_blob(digest):
        if offline:
            raise OSError("offline")
        fd, tmp = tempfile.mkstemp(dir=os.path.join(cache.root, "tmp"))
        os.close(fd)
        try:
            http.download(f"{dists_url.rstrip('/')}/{ref.path}", tmp, sha256=ref.sha256, size=ref.size,
                          retry=http.Retry(attempts=2), named_by="the lock")
            cache.put_file(tmp, digest)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return cache.blob_path(digest)


def _lines(path: str, name: str) -> Iterator[bytes]:
    opener = gzip.open if name.endswith(".gz") else lzma.open if name.endswith(".xz") else open
    with opener(path, "rb") as f:
        yield from f
