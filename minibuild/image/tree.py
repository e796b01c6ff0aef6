"""The file tree of an image before it is cut into layers: one entry per path, symlinks resolved in it.

Layers must never place an entry below a path that is a symlink in the image (a directory in an upper
layer would replace the symlink of a lower one), so every entry is stored at its canonical path:
its parent directories resolved through the image's own symlinks, never the host's.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, replace

from minibuild.errors import InputError

_MAX_LINKS = 40


@dataclass(frozen=True)
class TreeEntry:
    path: str
    kind: str  # "file" | "symlink" | "dir"
    mode: int
    reason: str
    origin: str
    source: str | None = None  # host path of the content
    data: bytes | None = None  # or the content itself
    digest: str | None = None  # content digest, when known
    size: int = 0
    target: str | None = None

    def same_content(self, other: TreeEntry) -> bool:
        if self.kind != other.kind or self.mode != other.mode:
            return False
        if self.kind == "symlink":
            return self.target == other.target
        if self.kind == "file":
            return self.digest is not None and self.digest == other.digest
        return True


class ImageTree:
    def __init__(self) -> None:
        self.entries: dict[str, TreeEntry] = {}

    def add(self, entry: TreeEntry) -> TreeEntry:
        """Add at the canonical path; the same content twice is merged, different content is an error."""
        path = self.canonical(entry.path)
        entry = replace(entry, path=path)
        old = self.entries.get(path)
        if old is not None:
            if old.same_content(entry):
                return old
            if old.kind == "dir" and entry.kind == "dir":
                return old
            raise InputError(
                f"two different contents for `{path}` in the image",
                causes=(f"{old.origin}: {old.reason}", f"{entry.origin}: {entry.reason}"),
                hint="remove one of them, or give them different destinations",
            )
        self.entries[path] = entry
        return entry

    def canonical(self, path: str) -> str:
        """`path` with its parent directories resolved through the tree's symlinks (the last part kept)."""
        parent, name = posixpath.split(posixpath.normpath("/" + path.lstrip("/")))
        if not name:
            return "/"
        return posixpath.join(self._resolve(parent, 0), name)

    def _resolve(self, path: str, hops: int) -> str:
        resolved = "/"
        for part in [p for p in path.split("/") if p]:
            candidate = posixpath.join(resolved, part)
            entry = self.entries.get(candidate)
            if entry is not None and entry.kind == "symlink":
                hops += 1
                if hops > _MAX_LINKS:
                    raise InputError(f"too many levels of symlinks resolving `{path}` in the image")
                base = "/" if entry.target.startswith("/") else resolved  # type: ignore[union-attr]
                candidate = self._resolve(posixpath.normpath(posixpath.join(base, entry.target or "")), hops)
            resolved = candidate
        return resolved

    def walk(self, path: str) -> list[str]:
        """Every tree path the kernel touches opening `path`: the symlinks along it and the final entry."""
        touched: list[str] = []
        self._walk(posixpath.normpath("/" + path.lstrip("/")), touched, 0)
        return touched

    def _walk(self, path: str, touched: list[str], hops: int) -> str:
        resolved = "/"
        parts = [p for p in path.split("/") if p]
        for part in parts:
            candidate = posixpath.join(resolved, part)
            entry = self.entries.get(candidate)
            if entry is not None:
                touched.append(candidate)
                if entry.kind == "symlink":
                    if hops >= _MAX_LINKS:
                        return candidate
                    base = "/" if (entry.target or "").startswith("/") else resolved
                    candidate = self._walk(posixpath.normpath(posixpath.join(base, entry.target or "")),
                                           touched, hops + 1)
            resolved = candidate
        return resolved
