"""The file tree of an image before it is cut into layers: one entry per path, symlinks resolved in it.

Layers must never place an entry below a path that is a symlink in the image (a directory in an upper
layer would replace the symlink of a lower one), so every entry is stored at its canonical path:
its parent directories resolved through the image's own symlinks, never the host's.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass, replace
from typing import Any

from minibuild.digest import sha256_bytes
from minibuild.elf.parse import ElfFormatError, read_elf
from minibuild.errors import InputError
from minibuild.image.runtime.ldcache import write_cache

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


# The layer groups, bottom to top; a big library gets a group (a layer) of its own, `lib:<path>`.
GROUPS = ("base", "libs", "runtime", "app")


BIG_LIBRARY = 256 * 1024  # bytes; smaller libraries share one layer per image


def _etc_files(user: str) -> list[TreeEntry]:
    passwd = "root:x:0:0:root:/root:/bin/sh\n"
    group = "root:x:0:\n"
    if user == "nonroot":
        passwd += "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
        group += "nonroot:x:65532:\n"
    made = "generated by minibuild"
    return [
        TreeEntry("/etc/passwd", "file", 0o644, "users (root)", made, data=passwd.encode()),
        TreeEntry("/etc/group", "file", 0o644, "groups (root)", made, data=group.encode()),
        TreeEntry("/tmp", "dir", 0o1777, "scratch directory", made),
    ]


def _cache_entries(closure: dict[str, Any], files: list[dict[str, Any]], inputs: dict[str, str],
                   tree: ImageTree) -> list[tuple[str, str]]:
    """(soname, path) of every shared library of the image, as ldconfig lists them: `dir/soname` when that
    exists in the image, else the path the library was loaded by. Libraries shipped with `files` count too."""
    found = [(obj.get("soname"), obj["path"]) for obj in closure["objects"] if not obj["interpreter"]]
    for f in files:
        try:
            found.append((read_elf(inputs[f["input"]]).soname, f["dest"]))
        except (ElfFormatError, OSError):
            continue
    out = []
    for soname, path in found:
        if not soname or "/" in soname:
            continue
        by_soname = posixpath.join(posixpath.dirname(path), soname)
        out.append((soname, by_soname if tree.canonical(by_soname) in tree.entries else path))
    return out


def build_tree(closure: dict[str, Any], files: list[dict[str, Any]], inputs: dict[str, str],
               user: str, ld_so_cache: bool = False) -> tuple[ImageTree, dict[str, str]]:
    """The whole image tree, and the layer group of each canonical path."""
    tree = ImageTree()
    order = {"symlink": 0, "dir": 1, "file": 2}
    # The image's own `files` win over runtime files at the same path (e.g. its own nsswitch.conf or CA bundle).
    own = {f["dest"] for f in files}
    runtime = [e for e in closure.get("runtime", []) if e["path"] not in own]
    everything = [(e, "ELF closure") for e in closure["entries"]] + [(e, "runtime files") for e in runtime]
    everything.sort(key=lambda item: (order[item[0]["kind"]], item[0]["path"].count("/"), item[0]["path"]))
    runtime_paths = []
    for e, origin in everything:
        data = e["data"].encode() if "data" in e else None
        added = tree.add(TreeEntry(e["path"], e["kind"], e["mode"], e["reason"], origin, source=e["source"],
                                   data=data, digest=sha256_bytes(data) if data is not None else e["digest"],
                                   size=len(data) if data is not None else e["size"], target=e["target"]))
        # Generated files sit with /etc/passwd on top; sysroot data (trees, bundles) in the runtime layer.
        if origin == "runtime files" and data is None:
            runtime_paths.append(added.path)
    for e in _etc_files(user):
        tree.add(TreeEntry(**{**e.__dict__, "digest": sha256_bytes(e.data) if e.data is not None else None,
                              "size": len(e.data or b"")}))
    for f in files:
        src = inputs[f["input"]]
        tree.add(TreeEntry(f["dest"], "file", f["mode"], "file", f["origin"], source=src,
                           digest=f.get("digest"), size=os.path.getsize(src)))
    if ld_so_cache:
        data = write_cache(_cache_entries(closure, files, inputs, tree), closure.get("architecture"))
        tree.add(TreeEntry("/etc/ld.so.cache", "file", 0o644, "ld.so.cache of the image's libraries",
                           "generated by minibuild", data=data, digest=sha256_bytes(data), size=len(data)))
    groups: dict[str, str] = {path: "runtime" for path in runtime_paths}
    rank = {g: i for i, g in enumerate(GROUPS)}
    walks = {obj["path"]: tree.walk(obj["path"]) for obj in closure["objects"]}
    walkers: dict[str, int] = {}
    for obj in closure["objects"]:
        for path in walks[obj["path"]]:
            walkers[path] = walkers.get(path, 0) + 1
            old = groups.get(path)
            if old is None or rank[obj["role"]] < rank[old]:
                groups[path] = obj["role"]
    # A big library gets a layer of its own (with the symlinks only it is reached by), so every image of a
    # catalog that needs it shares that layer, whatever other libraries each needs.
    for obj in closure["objects"]:
        walk = walks[obj["path"]]
        real = tree.entries.get(walk[-1]) if walk else None
        if obj["role"] != "libs" or real is None or real.kind != "file" or real.size < BIG_LIBRARY:
            continue
        for path in walk:
            if groups.get(path) == "libs" and (path == real.path or walkers[path] == 1):
                groups[path] = "lib:" + real.path
    return tree, groups
