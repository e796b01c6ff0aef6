"""The remote cache as the engine sees it: the values it exchanges and the interface a client implements.

A remote cache is a content-addressed store of blobs (named by sha256) and an action cache mapping an
action key to the files that action wrote. The clients in `minibuild/remote/` (the Bazel HTTP cache
protocol, REAPI v2 over gRPC) implement `RemoteCache`; the engine (`remote_sync.py`) decides what to ask,
verifies every blob it gets back and never lets a fault of the server fail a build.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, order=True)
class Digest:
    """A blob's name in a remote cache: its sha256 (hex, no prefix) and size, as REAPI's `Digest`."""

    hash: str
    size: int

    @staticmethod
    def of_bytes(data: bytes) -> Digest:
        return Digest(hashlib.sha256(data).hexdigest(), len(data))

    @staticmethod
    def from_local(digest: str, size: int) -> Digest:
        """From the local store's `sha256:<hex>`."""
        return Digest(digest.removeprefix("sha256:"), size)

    @property
    def local(self) -> str:
        """The local store's name for it, `sha256:<hex>`."""
        return "sha256:" + self.hash

    def __str__(self) -> str:
        return f"sha256:{self.hash[:12]}… ({self.size} bytes)"


@dataclass(frozen=True)
class OutputFile:
    """One file of an action-cache entry (REAPI's `OutputFile`): a path, the blob with its bytes, its mode, and
    the bytes themselves when the entry carries them inline (small files: one request instead of two). Inline
    bytes are checked against the digest like any download; the blob is in the CAS all the same."""

    path: str
    digest: Digest
    executable: bool = False
    contents: bytes | None = field(default=None, compare=False, repr=False)


class RemoteCacheError(Exception):
    """A fault of the server or the connection to it. `cause` is one line for a warning, never a credential;
    `unavailable` means the server cannot be reached at all (refused, timed out, name unknown), and the
    rest of the build does not try again."""

    def __init__(self, cause: str, *, unavailable: bool = False) -> None:
        super().__init__(cause)
        self.cause = cause
        self.unavailable = unavailable


class BlobNotFound(RemoteCacheError):
    """The server has no blob of that digest (an entry whose blobs were evicted)."""


class RemoteCache(Protocol):
    """What a remote cache client does. Every method may raise `RemoteCacheError`; all are called from several
    threads at once, and the client bounds its own connections."""

    url: str  # the server, for messages: never with credentials in it
    settings: RemoteSettings

    def get_action_result(self, key: Digest) -> list[OutputFile] | None:
        """The files of the entry for an action key, or None when the server has none."""
        ...

    def update_action_result(self, key: Digest, files: Sequence[OutputFile]) -> None:
        """Store the entry for an action key (its blobs are uploaded first)."""
        ...

    def find_missing_blobs(self, digests: Sequence[Digest]) -> set[Digest]:
        """Those of `digests` the server does not have."""
        ...

    def upload_blobs(self, blobs: Sequence[tuple[Digest, str]]) -> None:
        """Upload each (digest, path of a local file with those bytes)."""
        ...

    def download_blobs(self, blobs: Sequence[tuple[Digest, str]]) -> None:
        """Write each blob to the path given with it (the caller verifies the bytes). BlobNotFound when the
        server lacks one."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class RemoteSettings:
    """Where the remote cache is and how to use it: `[cache]` of workspace.toml, the environment and the command
    line, resolved (`remote_settings.py`). `headers` may hold credentials: never shown (not in repr)."""

    url: str
    instance: str = ""
    read: bool = True
    write: bool = True
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    ca_file: str | None = None
    timeout: float = 10.0
    connections: int = 8

    @property
    def enabled(self) -> bool:
        return self.read or self.write
