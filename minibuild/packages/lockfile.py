"""`minibuild.lock`: what each package sysroot resolved to, per architecture, pinned by sha256.

JSON with sorted keys and one entry per package and architecture, sorted by name, so that writing the same lock
twice gives the same bytes and a lock diff reads like a changelog:

    {"lock_version": 1, "sysroots": {"bookworm": {"suite": ..., "components": [...], "architectures": [...],
     "packages": [...], "essential": false, "release": "<Date of the Release>",
     "resolved": {"amd64": [{"name", "version", "architecture", "source", "path", "size", "sha256",
                             "requested", "pulled_by"}, ...]}}}}

No mirror URL is written: the lock pins contents, not where they were found.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from minibuild.errors import InputError
from minibuild.packages.spec import Request

LOCK_FILE = "minibuild.lock"
LOCK_VERSION = 1


@dataclass(frozen=True)
class LockedPackage:
    name: str
    version: str
    architecture: str  # the .deb's: the sysroot's architecture or `all`
    source: str
    path: str  # in the archive, below the mirror URL
    size: int
    sha256: str
    requested: bool = False
    pulled_by: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "architecture": self.architecture,
                "source": self.source, "path": self.path, "size": self.size, "sha256": self.sha256,
                "requested": self.requested, "pulled_by": list(self.pulled_by)}

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> LockedPackage:
        sha = str(d["sha256"])
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise ValueError(f"`{d['name']}` has no valid sha256")
        return LockedPackage(str(d["name"]), str(d["version"]), str(d["architecture"]), str(d["source"]),
                             str(d["path"]), int(d["size"]), sha, bool(d.get("requested", False)),
                             tuple(d.get("pulled_by", ())))

    @property
    def deb_name(self) -> str:
        return f"{self.name}_{self.version}_{self.architecture}"


@dataclass(frozen=True)
class IndexRef:
    """An index file of the suite (below dists/<suite>/) as the signed Release listed it."""

    path: str
    sha256: str
    size: int

    def as_json(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "size": self.size}

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> IndexRef:
        return IndexRef(str(d["path"]), str(d["sha256"]), int(d["size"]))


@dataclass(frozen=True)
class LockedSysroot:
    request: Request
    release: str  # the Date of the Release it was resolved against
    resolved: Mapping[str, tuple[LockedPackage, ...]] = field(hash=False)  # architecture -> packages
    # architecture -> the suite's Contents indices (which package ships which path), to name the package a
    # missing binary is in; empty when the archive has none
    contents: Mapping[str, tuple[IndexRef, ...]] = field(default_factory=dict, hash=False)

    def as_json(self) -> dict[str, Any]:
        return {**self.request.as_json(), "release": self.release,
                "contents": {arch: [c.as_json() for c in cs] for arch, cs in sorted(self.contents.items())},
                "resolved": {arch: [p.as_json() for p in sorted(ps, key=lambda p: p.name)]
                             for arch, ps in sorted(self.resolved.items())}}

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> LockedSysroot:
        resolved = {arch: tuple(LockedPackage.from_json(p) for p in ps) for arch, ps in d["resolved"].items()}
        contents = {arch: tuple(IndexRef.from_json(c) for c in cs) for arch, cs in d.get("contents", {}).items()}
        return LockedSysroot(Request.from_json(d), str(d.get("release", "")), resolved, contents)


@dataclass(frozen=True)
class Lock:
    sysroots: Mapping[str, LockedSysroot] = field(default_factory=dict, hash=False)

    def dumps(self) -> str:
        """JSON with one package per line (a lock diff then shows one line per package that moved)."""
        def one(value: Any, sort: bool = True) -> str:
            return json.dumps(value, sort_keys=sort, ensure_ascii=False, separators=(", ", ": "))

        lines = ["{", f' "lock_version": {LOCK_VERSION},', ' "sysroots": {']
        for i, (name, locked) in enumerate(sorted(self.sysroots.items())):
            doc = locked.as_json()
            resolved = doc.pop("resolved")
            lines.append(f"  {one(name)}: {{")
            lines += [f"   {one(k)}: {one(v)}," for k, v in sorted(doc.items())]
            lines.append('   "resolved": {')
            for j, (arch, packages) in enumerate(sorted(resolved.items())):
                lines.append(f"    {one(arch)}: [")
                last = len(packages) - 1
                lines += [f"     {one(p, sort=False)}" + ("," if k < last else "") for k, p in enumerate(packages)]
                lines.append("    ]" + ("," if j < len(resolved) - 1 else ""))
            lines += ["   }", "  }" + ("," if i < len(self.sysroots) - 1 else "")]
        lines += [" }", "}"]
        return "\n".join(lines) + "\n"

    @staticmethod
    def loads(text: str) -> Lock:
        """Parse a lock; InputError when it is not one minibuild wrote."""
        try:
            data = json.loads(text)
            if data.get("lock_version") != LOCK_VERSION:
                raise ValueError(f"lock_version {data.get('lock_version')!r}, this minibuild reads {LOCK_VERSION}")
            return Lock({name: LockedSysroot.from_json(s) for name, s in data["sysroots"].items()})
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            reason = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
            raise InputError(f"`{LOCK_FILE}` is not a lock minibuild can read: {reason}",
                             hint="write it again with `minibuild lock --update` (it is generated; do not edit it)",
                             ) from None


def read(root: str | os.PathLike[str]) -> Lock | None:
    """The workspace's lock, or None when it has none."""
    try:
        with open(os.path.join(root, LOCK_FILE), encoding="utf-8") as f:
            return Lock.loads(f.read())
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        return Lock.loads("")


def write(root: str | os.PathLike[str], lock: Lock) -> bool:
    """Write the lock atomically; whether its bytes changed."""
    path = os.path.join(root, LOCK_FILE)
    text = lock.dumps()
    try:
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                return False
    except (OSError, UnicodeDecodeError):
        pass
    fd, tmp = tempfile.mkstemp(dir=root, prefix=f".{LOCK_FILE}.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return True


def staleness(lock: Lock | None, name: str, request: Request) -> str | None:
    """Why the lock does not answer sysroot `name` as requested now, or None when it does."""
    if lock is None:
        return f"there is no `{LOCK_FILE}`"
    locked = lock.sysroots.get(name)
    if locked is None:
        return f"`{LOCK_FILE}` has no sysroot `{name}`"
    old, new = locked.request, request
    changes = []
    for part in ("suite", "components", "architectures", "essential"):
        if getattr(old, part) != getattr(new, part):
            changes.append(f"`{part}` was {getattr(old, part)!r}, is {getattr(new, part)!r}")
    added, removed = sorted(set(new.packages) - set(old.packages)), sorted(set(old.packages) - set(new.packages))
    if added:
        changes.append("packages added: " + ", ".join(added))
    if removed:
        changes.append("packages removed: " + ", ".join(removed))
    if set(locked.resolved) != set(new.architectures) and not changes:
        changes.append("the lock's architectures differ")
    return f"sysroot `{name}` changed since it was locked ({'; '.join(changes)})" if changes else None
