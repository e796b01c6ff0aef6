"""Downloads from a Debian mirror: bounded timeouts, retries with backoff on what may pass (5xx, 429, broken or
cut connections, a short body), the digest checked as the bytes arrive, nothing left behind on failure."""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from minibuild.errors import BuildError

_local = threading.local()


@dataclass(frozen=True)
class Retry:
    attempts: int = 4
    backoff: float = 0.5  # seconds before the second attempt, doubled before each next one
    connect_timeout: float = 10.0
    read_timeout: float = 60.0  # between two reads, not for the whole file


DEFAULT_RETRY = Retry()


class _Retryable(Exception):
    pass


def _session() -> Any:
    # lazy: requests, imported only when something is downloaded (about 0.1 s)
    import requests

    session = getattr(_local, "session", None)
    if session is None:
        session = requests.Session()
        session.headers["User-Agent"] = "minibuild"
        _local.session = session
    return session


def download(url: str, dest: str, *, sha256: str | None = None, size: int | None = None,
             retry: Retry = DEFAULT_RETRY, named_by: str = "the lock",
             on_bytes: Callable[[int], None] | None = None) -> str:
    """Write `url` to `dest`; its sha256 (hex). With `sha256`/`size`, a body that differs is refused and `dest`
    removed. BuildError after the last attempt, or at once for what retrying cannot fix (404, a wrong digest).
    `on_bytes(n)` is told of every chunk received (a retry starts the count again: it is told `-got`)."""
    import requests  # lazy, as in _session

    last = ""
    for attempt in range(1, retry.attempts + 1):
        try:
            return _attempt(url, dest, sha256, size, retry, named_by, on_bytes or _ignore)
        except _Retryable as exc:
            last = str(exc)
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            last = f"{type(exc).__name__}: {_reason(exc)}"
        with contextlib.suppress(OSError):
            os.unlink(dest)
        if attempt < retry.attempts:
            time.sleep(retry.backoff * 2 ** (attempt - 1))
    raise BuildError(f"cannot download `{url}`: {last} (tried {retry.attempts} times)",
                     hint="check the network and the mirror; a build with `--offline` uses what is already cached")


def _reason(exc: BaseException) -> str:
    """The innermost reason of a requests/urllib3 error, not the whole chain of wrappers."""
    while exc.__context__ is not None and exc.args and isinstance(exc.args[0], BaseException):
        exc = exc.args[0]
    return str(exc).split(": ", 1)[-1][:200]


def _ignore(n: int) -> None:
    pass


def _attempt(url: str, dest: str, sha256: str | None, size: int | None, retry: Retry, named_by: str,
             on_bytes: Callable[[int], None]) -> str:
    with _session().get(url, stream=True, timeout=(retry.connect_timeout, retry.read_timeout)) as response:
        if response.status_code >= 500 or response.status_code == 429:
            raise _Retryable(f"HTTP {response.status_code} {response.reason}")
        if response.status_code != 200:
            raise BuildError(f"cannot download `{url}`: HTTP {response.status_code} {response.reason}",
                             hint="the mirror does not have it (any more): `minibuild lock --update` locks what "
                                  "it has now")
        digest = hashlib.sha256()
        got = 0
        try:
            with open(dest, "wb") as f:
                for chunk in response.iter_content(1 << 16):
                    f.write(chunk)
                    digest.update(chunk)
                    got += len(chunk)
                    on_bytes(len(chunk))
                    if size is not None and got > size:
                        break
        except BaseException:
            on_bytes(-got)
            raise
    if size is not None and got < size:
        on_bytes(-got)
        raise _Retryable(f"the connection ended after {got} of {size} bytes")
    actual = digest.hexdigest()
    if (size is not None and got != size) or (sha256 is not None and actual != sha256):
        os.unlink(dest)
        raise BuildError(f"`{url}` is not the file {named_by} names: refused, nothing stored",
                         causes=(f"expected sha256 {sha256} ({size} bytes)",
                                 f"actual   sha256 {actual}" + (f" (at least {got} bytes)" if got > (size or 0)
                                                               else f" ({got} bytes)")),
                         hint="the mirror or something between it and you changed the file; check the mirror "
                              "(and `minibuild lock --update` if the archive really changed)")
    return actual
