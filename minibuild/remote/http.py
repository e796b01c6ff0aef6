"""The Bazel HTTP cache protocol: `GET/PUT/HEAD <url>/ac/<key>` and `<url>/cas/<sha256>`.

Served by bazel-remote, by most build-cache services, and by any WebDAV server (nginx: `dav_methods PUT`).
Action-cache values are serialized REAPI `ActionResult` messages, CAS values the blobs' bytes. Blobs are
streamed both ways, never held whole in memory. At most `connections` requests run at once; each waits at
most `timeout` seconds for the server. A 404 is an answer (no entry, no blob); any other failure is a
`RemoteCacheError` naming the status and the path kind, never a header or a credential. `https://` trusts
`ca_file` or the system's CA bundle (`tls.py`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import requests

from minibuild.remote import action_result
from minibuild.remote.tls import tls_failure, trusted_cas
from minibuild.remote_cache import BlobNotFound, Digest, OutputFile, RemoteCacheError, RemoteSettings

_CHUNK = 1 << 20


class HttpCache:
    def __init__(self, settings: RemoteSettings) -> None:
        self.settings = settings
        self.url = settings.url
        self._base = settings.url.rstrip("/")
        self._headers = dict(settings.headers)
        self._verify: str | bool = trusted_cas(settings) or True
        self._slots = threading.BoundedSemaphore(settings.connections)
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers.update(self._headers)
            session.verify = self._verify
            session.trust_env = False  # no proxy or .netrc from the environment: the URL says where to go
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    @contextmanager
    def _request(self, method: str, kind: str, name: str, **kwargs: Any) -> Iterator[requests.Response]:
        """One request to `<url>/<kind>/<name>`; connection faults and timeouts become RemoteCacheError."""
        what = f"{method} /{kind}/…"
        with self._slots:
            try:
                response = self._session().request(method, f"{self._base}/{kind}/{name}",
                                                   timeout=self.settings.timeout, **kwargs)
            except requests.Timeout:
                raise RemoteCacheError(f"no answer within {self.settings.timeout:g} s ({what})",
                                       unavailable=True) from None
            except requests.exceptions.SSLError as exc:
                why = tls_failure(str(exc)) or "the handshake failed"
                raise RemoteCacheError(f"TLS failed ({what}): {why}", unavailable=True) from None
            except requests.ConnectionError as exc:
                raise RemoteCacheError(f"unreachable ({what}): {_reason(exc)}", unavailable=True) from None
            except requests.RequestException as exc:
                raise RemoteCacheError(f"request failed ({what}): {type(exc).__name__}") from None
            try:
                yield response
            except (requests.RequestException, OSError) as exc:
                raise RemoteCacheError(f"the answer to {what} was cut short ({type(exc).__name__})",
                                       unavailable=isinstance(exc, requests.Timeout | requests.ConnectionError),
                                       ) from None
            finally:
                response.close()

    @staticmethod
    def _fail(response: requests.Response, method: str, kind: str) -> RemoteCacheError:
        auth = " (check the credentials)" if response.status_code in (401, 403) else ""
        return RemoteCacheError(f"answered HTTP {response.status_code} to {method} /{kind}/…{auth}")

    def get_action_result(self, key: Digest) -> list[OutputFile] | None:
        with self._request("GET", "ac", key.hash) as response:
            if response.status_code == 404:
                return None
            if response.status_code != 200:
                raise self._fail(response, "GET", "ac")
            return action_result.decode(response.content)

    def update_action_result(self, key: Digest, files: Sequence[OutputFile]) -> None:
        data = action_result.encode(files)
        with self._request("PUT", "ac", key.hash, data=data) as response:
            if not response.ok:
                raise self._fail(response, "PUT", "ac")

    def find_missing_blobs(self, digests: Sequence[Digest]) -> set[Digest]:
        missing = set()
        for d in digests:
            with self._request("HEAD", "cas", d.hash) as response:
                if response.status_code == 404:
                    missing.add(d)
                elif response.status_code != 200:
                    raise self._fail(response, "HEAD", "cas")
                elif response.headers.get("Content-Length", str(d.size)) != str(d.size):
                    missing.add(d)  # a blob of another size under that name: put the right one
        return missing

    def upload_blobs(self, blobs: Sequence[tuple[Digest, str]]) -> None:
        for d, path in blobs:
            with open(path, "rb") as f, self._request("PUT", "cas", d.hash, data=f,
                                                      headers={"Content-Length": str(d.size)}) as response:
                if not response.ok:
                    raise self._fail(response, "PUT", "cas")

    def download_blobs(self, blobs: Sequence[tuple[Digest, str]]) -> None:
        for d, path in blobs:
            with self._request("GET", "cas", d.hash, stream=True) as response:
                if response.status_code == 404:
                    raise BlobNotFound(f"no blob {d}")
                if response.status_code != 200:
                    raise self._fail(response, "GET", "cas")
                with open(path, "wb") as f:
                    for chunk in response.iter_content(_CHUNK):
                        f.write(chunk)

    def close(self) -> None:
        with self._lock:
            for session in self._sessions:
                session.close()
            self._sessions.clear()


def _reason(exc: BaseException) -> str:
    """The innermost reason of a connection error, without the URL requests puts around it."""
    text = str(exc)
    for known in ("Connection refused", "Name or service not known", "No route to host", "Connection reset",
                  "Remote end closed connection", "timed out"):
        if known in text:
            return known.lower() if known != "Connection refused" else "connection refused"
    return type(exc).__name__
