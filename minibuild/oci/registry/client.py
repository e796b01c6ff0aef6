"""The distribution API calls a push needs: check, mount and upload blobs, put manifests; and the two reads
the remote cache adds: get a manifest by tag, download a blob.

The client checks each blob with HEAD, mounts blobs across repositories of the same registry, uploads
the rest monolithically or in chunks streamed from the file, and puts manifests under a tag or digest.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import BinaryIO
from urllib.parse import urljoin

import requests

from minibuild.errors import EngineError
from minibuild.oci._io import read_error
from minibuild.oci.registry.connection import Body, RegistryConnection, _Transient
from minibuild.oci.spec import sha256_digest

DEFAULT_CHUNK_SIZE = 64 << 20
_READ_CHUNK = 1 << 20
_INDEX = "application/vnd.oci.image.index.v1+json"


class RegistryClient(RegistryConnection):
    """One registry: scheme discovery, authentication and retries around the distribution API calls."""

    def blob_exists(self, repository: str, digest: str) -> bool:
        def op() -> bool:
            r = self.request("HEAD", f"/v2/{repository}/blobs/{digest}", scopes=[_scope(repository)])
            if r.status_code == 404:
                return False
            if r.ok:
                return True
            raise self._fail(f"checking blob `{digest}` in `{repository}`", r)

        return self._retrying(f"checking blob `{digest}`", op)

    def mount_blob(self, repository: str, digest: str, from_repository: str) -> str | None:
        """Mount a blob from another repository: None if mounted, else the upload URL the registry opened."""
        def op() -> str | None:
            r = self.request("POST", f"/v2/{repository}/blobs/uploads/",
                             params={"mount": digest, "from": from_repository},
                             scopes=[_scope(repository), _scope(from_repository, "pull")],
                             headers={"Content-Length": "0"})
            if r.status_code == 201:
                return None
            if r.status_code == 202 and r.headers.get("Location"):
                return urljoin(r.url, r.headers["Location"])
            raise self._fail(f"mounting blob `{digest}` from `{from_repository}` into `{repository}`", r)

        return self._retrying(f"mounting blob `{digest}`", op)

    def _start_upload(self, repository: str) -> str:
        r = self.request("POST", f"/v2/{repository}/blobs/uploads/", scopes=[_scope(repository)],
                         headers={"Content-Length": "0"})
        if r.status_code != 202 or not r.headers.get("Location"):
            raise self._fail(f"starting an upload to `{repository}`", r)
        return urljoin(r.url, r.headers["Location"])

    def upload_blob(self, repository: str, digest: str, path: str, size: int, *, chunk_size: int = DEFAULT_CHUNK_SIZE,
                    location: str | None = None) -> None:
        """Upload the blob at `path` (streamed from the file); chunked when larger than chunk_size.

        A retry restarts the whole upload with a new session: a broken session cannot be trusted.
        """
        opened = [location]

        def op() -> None:
            url = opened[0] or self._start_upload(repository)
            opened[0] = None
            if size > chunk_size:
                url = self._patch_chunks(repository, digest, url, path, size, chunk_size)
                body: Body | None = None
                headers = {"Content-Length": "0"}
            else:
                body = _opener(path)
                headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
            r = self.request("PUT", url, params={"digest": digest}, headers=headers, body=body,
                             scopes=[_scope(repository)])
            if not r.ok:
                raise self._fail(f"the upload of blob `{digest}` to `{repository}`", r)

        self._retrying(f"uploading blob `{digest}`", op)

    def _patch_chunks(self, repository: str, digest: str, url: str, path: str, size: int, chunk_size: int) -> str:
        offset = 0
        try:
            f = open(path, "rb")  # closed below; open errors must name the blob
        except OSError as exc:
            raise read_error(exc, path, f"blob {digest}") from exc
        with f:
            while offset < size:
                chunk = _read_exactly(f, min(chunk_size, size - offset), path)
                headers = {"Content-Type": "application/octet-stream", "Content-Length": str(len(chunk)),
                           "Content-Range": f"{offset}-{offset + len(chunk) - 1}"}
                r = self.request("PATCH", url, headers=headers, body=lambda c=chunk: c,  # type: ignore[misc]
                                 scopes=[_scope(repository)])
                if r.status_code != 202 or not r.headers.get("Location"):
                    raise self._fail(f"a chunk of blob `{digest}` for `{repository}`", r)
                url = urljoin(r.url, r.headers["Location"])
                offset += len(chunk)
        return url

    def put_manifest(self, repository: str, reference: str, data: bytes, media_type: str) -> str:
        """PUT a manifest or index under a tag or digest; the digest the registry reports (or ours)."""
        def op() -> str:
            r = self.request("PUT", f"/v2/{repository}/manifests/{reference}", body=lambda: data,
                             headers={"Content-Type": media_type}, scopes=[_scope(repository)])
            if not r.ok:
                raise self._fail(f"the manifest `{reference}` of `{repository}`", r)
            return r.headers.get("Docker-Content-Digest") or sha256_digest(data)

        return self._retrying(f"putting manifest `{reference}`", op)


    def get_manifest(self, repository: str, reference: str, accept: Sequence[str]) -> tuple[bytes, str] | None:
        """GET a manifest by tag or digest: its bytes and media type, or None when the registry has none (404)."""
        def op() -> tuple[bytes, str] | None:
            r = self.request("GET", f"/v2/{repository}/manifests/{reference}", scopes=[_scope(repository, "pull")],
                             headers={"Accept": ", ".join(accept)})
            if r.status_code == 404:
                return None
            if r.status_code != 200:
                raise self._fail(f"the manifest `{reference}` of `{repository}`", r)
            return r.content, r.headers.get("Content-Type", "").split(";", 1)[0].strip()

        return self._retrying(f"getting manifest `{reference}`", op)

    def get_referrers(self, repository: str, digest: str) -> bytes | None:
        """GET the OCI 1.1 referrers index of `digest`, or None when the registry has no referrers API (404, or an
        answer that is not an image index, as registries that predate it give)."""
        def op() -> bytes | None:
            r = self.request("GET", f"/v2/{repository}/referrers/{digest}", scopes=[_scope(repository, "pull")],
                             headers={"Accept": _INDEX})
            if r.status_code in (400, 404, 405):
                return None
            if r.status_code != 200:
                raise self._fail(f"the referrers of `{digest}` in `{repository}`", r)
            return r.content if r.headers.get("Content-Type", "").split(";", 1)[0].strip() == _INDEX else None

        return self._retrying(f"getting the referrers of `{digest}`", op)

    def download_blob(self, repository: str, digest: str, out: BinaryIO) -> bool:
        """Stream a blob into `out` (from its start, again on a retry); False when the registry has none (404).
        The bytes are not checked here: the caller knows what it expects."""
        def op() -> bool:
            out.seek(0)
            out.truncate()
            path = f"/v2/{repository}/blobs/{digest}"
            if not self.base:
                self.ping()
            # one watch for the answer and the body: every chunk restarts the answer limit, so a server that
            # trickles must still send a chunk within it
            with self.watching("GET", urljoin(self.base, path)) as watch:
                r = self.request("GET", path, scopes=[_scope(repository, "pull")], stream=True)
                with r:
                    if r.status_code == 404:
                        return False
                    if r.status_code != 200:
                        raise self._fail(f"blob `{digest}` of `{repository}`", r)
                    try:
                        for chunk in r.iter_content(_READ_CHUNK):
                            watch.arm()
                            out.write(chunk)
                    except requests.RequestException as exc:
                        if watch.expired or isinstance(exc, requests.Timeout):
                            raise self._expired(watch, exc, self.timeout) from None
                        reason = f"cut short ({type(exc).__name__})"
                        raise _Transient(f"the blob's bytes were {reason}", reason=reason, cut_short=True) from None
                    if watch.expired:  # a body without a length ends where the watcher cut it
                        raise self._expired(watch, requests.Timeout(), self.timeout)
            return True

        return self._retrying(f"downloading blob `{digest}`", op)


def _scope(repository: str, actions: str = "pull,push") -> str:
    return f"repository:{repository}:{actions}"


def _opener(path: str) -> Body:
    def open_blob() -> BinaryIO:
        try:
            return open(path, "rb")  # requests streams it; _raw closes it
        except OSError as exc:
            raise read_error(exc, path, "blob") from exc

    return open_blob


def _read_exactly(f: BinaryIO, n: int, path: str) -> bytes:
    parts, left = [], n
    while left:
        try:
            data = f.read(min(left, _READ_CHUNK))
        except OSError as exc:
            raise read_error(exc, path, "blob") from exc
        if not data:
            raise EngineError(f"blob `{path}` shrank while it was being pushed")
        parts.append(data)
        left -= len(data)
    return b"".join(parts)

