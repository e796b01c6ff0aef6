"""One suite of a Debian archive: its verified Release, and the `Packages` indices of an architecture, each
checked against the Release's SHA256 before it is read and kept in the cache by that digest."""

from __future__ import annotations

import gzip
import lzma
import os
import tempfile
import time
from dataclasses import dataclass

from minibuild.cache import Cache
from minibuild.errors import BuildError
from minibuild.packages import http, release
from minibuild.packages.index import Universe, read_packages


@dataclass(frozen=True)
class Archive:
    url: str  # the mirror, e.g. http://deb.debian.org/debian
    suite: str
    keyrings: tuple[str, ...]
    retry: http.Retry = http.DEFAULT_RETRY

    def dists(self, path: str = "") -> str:
        return f"{self.url.rstrip('/')}/dists/{self.suite}/{path}"

    def pool(self, filename: str) -> str:
        return f"{self.url.rstrip('/')}/{filename}"


def load_release(archive: Archive, cache: Cache) -> release.Release:
    """Download `InRelease`, check its signature against the archive's keyrings, parse and check it."""
    url = archive.dists("InRelease")
    with cache.workdir() as work:
        path = os.path.join(work, "InRelease")
        http.download(url, path, retry=archive.retry)
        with open(path, "rb") as f:
            signed = release.verify(f.read(), archive.keyrings, url)
    parsed = release.parse(signed.decode("utf-8", errors="replace"), url)
    release.check(parsed, archive.suite, url, time.time())
    return parsed


def load_universe(archive: Archive, rel: release.Release, components: tuple[str, ...], arch: str,
                  cache: Cache) -> Universe:
    """Every package of `components` for `arch` (and `all`), from indices the Release vouches for."""
    if rel.architectures and arch not in rel.architectures:
        raise BuildError(f"suite `{archive.suite}` of `{archive.url}` has no architecture `{arch}`",
                         hint="it has: " + ", ".join(a for a in rel.architectures if a != "all"))
    universe = Universe(arch)
    for component in components:
        found = False
        for directory in (f"{component}/binary-{arch}", f"{component}/binary-all"):
            entry = rel.index(directory)
            if entry is None:
                continue
            found = True
            text = _index_text(archive, rel, entry, cache)
            try:
                universe.add(read_packages(text, archive.dists(entry.path)))
            except ValueError as exc:
                raise BuildError(str(exc)) from None
        if not found:
            raise BuildError(f"the Release of `{archive.suite}` lists no `Packages` index for component "
                             f"`{component}`, architecture `{arch}`",
                             hint="components it has: " + ", ".join(rel.components))
    return universe


def _index_text(archive: Archive, rel: release.Release, entry: release.IndexFile, cache: Cache) -> str:
    digest = "sha256:" + entry.sha256
    if not cache.has_blob(digest):
        directory = entry.path.rsplit("/", 1)[0]
        # by-hash names stay valid while the mirror updates between our reads of InRelease and of the index
        path = f"{directory}/by-hash/SHA256/{entry.sha256}" if rel.acquire_by_hash else entry.path
        fd, tmp = tempfile.mkstemp(dir=os.path.join(cache.root, "tmp"))
        os.close(fd)
        http.download(archive.dists(path), tmp, sha256=entry.sha256, size=entry.size, retry=archive.retry,
                      named_by="the Release")
        cache.put_file(tmp, digest)
    with open(cache.blob_path(digest), "rb") as f:
        data = f.read()
    try:
        if entry.path.endswith(".xz"):
            data = lzma.decompress(data)
        elif entry.path.endswith(".gz"):
            data = gzip.decompress(data)
    except (lzma.LZMAError, OSError, EOFError) as exc:
        raise BuildError(f"cannot decompress `{archive.dists(entry.path)}`: {exc}") from None
    return data.decode("utf-8", errors="replace")
