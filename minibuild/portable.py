"""Paths that read the same on every machine: what goes into a key, an output or a shared cache entry.

A path inside the workspace is kept relative to its root (a clone elsewhere has another root); any other
path (a sysroot of `/`, a system directory) is kept absolute. Actions turn such a path back into a host
path with `host_path`.
"""

from __future__ import annotations

import os


def portable_path(path: str, root: str) -> str:
    """`path` relative to the workspace `root` when it lies inside it (a trailing `/` kept), else unchanged."""
    root = root.rstrip("/") or "/"
    if root == "/" or not os.path.isabs(path):
        return path
    if path == root:
        return "."
    if not path.startswith(root + "/"):
        return path
    return path[len(root) + 1:] or "."


def host_path(path: str, root: str) -> str:
    """A path as `portable_path` gives it, on this machine (an absolute path is left as it is)."""
    if os.path.isabs(path):
        return path
    return root if path == "." else os.path.join(root, path)
