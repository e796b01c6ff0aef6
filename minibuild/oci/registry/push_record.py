"""Where blobs were pushed before: the hint file that chooses the source of cross-repository mounts."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

from minibuild.oci._io import atomic_file


def push_record_path(cache_dir: str) -> str:
    """Where the record is kept, in the cache directory (`.minibuild/cache` or `$MINIBUILD_CACHE`):
    `minibuild push` and the OCI remote cache both read and add to it."""
    return os.path.join(cache_dir, "pushed.json")


class PushRecord:
    """A small JSON file mapping registry -> digest -> repositories the blob was pushed to, most recent last.

    Only a hint for choosing `from` in cross-repository mounts: a stale entry costs one mount that the
    registry declines, so losing an update to a concurrent push is harmless.
    """

    MAX_REPOS = 8
    MAX_DIGESTS = 4096

    def __init__(self, path: str) -> None:
        self.path = path
        self.data: dict[str, dict[str, list[str]]] = {}
        try:
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
            if isinstance(doc, dict) and isinstance(doc.get("registries"), dict):
                self.data = doc["registries"]
        except (OSError, ValueError):
            pass  # absent or damaged: start afresh

    def sources(self, registry: str, digest: str, exclude: str) -> list[str]:
        repos = self.data.get(registry, {}).get(digest, [])
        return [r for r in reversed(repos) if isinstance(r, str) and r != exclude]

    def add(self, registry: str, repository: str, digests: Iterable[str]) -> None:
        blobs = self.data.setdefault(registry, {})
        for digest in digests:
            repos = [r for r in blobs.pop(digest, []) if r != repository] + [repository]
            blobs[digest] = repos[-self.MAX_REPOS:]
        for stale in list(blobs)[: max(0, len(blobs) - self.MAX_DIGESTS)]:
            del blobs[stale]

    def save(self) -> None:
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            with atomic_file(self.path) as f:
                f.write(json.dumps({"version": 1, "registries": self.data}, sort_keys=True).encode("utf-8"))
        except Exception:  # noqa: BLE001 - a hint file must never fail a push that succeeded
            pass
