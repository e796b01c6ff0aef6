"""Bounding the local cache: `minibuild cache gc` and `[cache] max_size` (docs/cache.md)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import stat
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from minibuild.cache import Cache, EntryError, is_digest, parse_entry
from minibuild.errors import BuildError, InputError, MinibuildError
from minibuild.portable import host_path
from minibuild.sizes import parse_size
from minibuild.workspace import Workspace

ENV_MAX_SIZE = "MINIBUILD_CACHE_MAX_SIZE"
_OFF = ("", "off", "none", "no", "false")
SYSROOTS = "sysroots"  # unpacked package sysroots: `<key>/` and records `<key>.*.json` (packages/tree.py)
_TREE = "sysroot:"  # a tree among the resources entries need
TMP_GRACE = 3600.0  # seconds: older entries of tmp/ are what killed processes left


@dataclasses.dataclass(frozen=True)
class Limit:
    """A limit on the cache's bytes and where it was set (for messages); `bytes` None: explicitly no limit."""

    bytes: int | None
    source: str


def size_setting(text: str, source: str) -> int:
    """`parse_size` for a value the user typed: InputError naming where it was typed."""
    try:
        return parse_size(text)
    except ValueError as exc:
        raise InputError(f"{source}: `{text}` is not a limit for the cache", hint=str(exc)) from None


def env_limit(environ: Mapping[str, str]) -> Limit | None:
    """MINIBUILD_CACHE_MAX_SIZE: a limit, `off` for none, or None when it is not set."""
    if ENV_MAX_SIZE not in environ:
        return None
    text = environ[ENV_MAX_SIZE]
    if text.strip().lower() in _OFF:
        return Limit(None, f"${ENV_MAX_SIZE}")
    return Limit(size_setting(text, f"${ENV_MAX_SIZE}"), f"${ENV_MAX_SIZE}")


def configured_limit(workspace: Workspace, environ: Mapping[str, str]) -> Limit | None:
    """The environment over `[cache] max_size` of workspace.toml; None when neither sets one."""
    limit = env_limit(environ)
    if limit is not None:
        return limit
    size = workspace.config.cache.max_size
    return Limit(size, "`[cache] max_size` of workspace.toml") if size else None


# -- what the store holds --------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Unit:
    """What gc removes in one piece, least recently used first. An action entry needs resources (its blobs and
    the sysroot trees its discovered inputs lie in), which go with it unless a kept entry or the out tree needs
    them; a resource no entry needs is a unit of its own."""

    kind: str  # "action", "blob", "sysroot", "analysis", "tmp"
    name: str
    bytes: int  # freed by removing the unit itself (its entry file), resources apart
    last_used: float  # seconds since the epoch
    paths: tuple[str, ...] = ()
    needs: frozenset[str] = frozenset()  # resources: blob digests and `sysroot:<key>`
    pinned: bool = False  # an entry whose outputs are all in .minibuild/out: kept, it costs only its own bytes


@dataclasses.dataclass(frozen=True)
class Resource:
    bytes: int
    paths: tuple[str, ...]  # a tree's directory comes first: it is renamed away before anything else goes


@dataclasses.dataclass(frozen=True)
class Inventory:
    total: int  # bytes under the cache directory, as `du -sb` counts them
    units: tuple[Unit, ...]
    resources: Mapping[str, Resource]
    pinned: frozenset[str]  # blobs an output in .minibuild/out is (a hard link to, or names)
    entries: int


@dataclasses.dataclass(frozen=True)
class Counts:
    bytes: int
    entries: int
    blobs: int
    sysroots: int

    def as_json(self) -> dict[str, int]:
        return {"bytes": self.bytes, "entries": self.entries, "blobs": self.blobs, "sysroots": self.sysroots}


@dataclasses.dataclass(frozen=True)
class Removal:
    unit: Unit
    freed: int  # the unit and the resources that go with it
    resources: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class GcReport:
    limit: int
    before: Counts
    removed: tuple[Removal, ...]
    pinned_bytes: int  # what the out tree needs: never removed
    dry_run: bool

    @property
    def freed(self) -> int:
        return sum(r.freed for r in self.removed)

    @property
    def after(self) -> Counts:
        gone = [name for r in self.removed for name in r.resources]
        return Counts(self.before.bytes - self.freed,
                      self.before.entries - sum(1 for r in self.removed if r.unit.kind == "action"),
                      self.before.blobs - sum(1 for n in gone if n.startswith("sha256:")),
                      self.before.sysroots - sum(1 for n in gone if n.startswith(_TREE)))

    @property
    def over_limit(self) -> bool:
        return self.after.bytes > self.limit

    def as_json(self) -> dict[str, Any]:
        return {"limit": self.limit, "dry_run": self.dry_run, "before": self.before.as_json(),
                "after": self.after.as_json(), "freed": self.freed, "pinned_by_out": self.pinned_bytes,
                "over_limit": self.over_limit,
                "removed": [{"kind": r.unit.kind, "name": r.unit.name, "bytes": r.freed,
                             "last_used": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r.unit.last_used)),
                             "resources": len(r.resources)} for r in self.removed]}


class _Du:
    """Bytes as `du -sb` counts them: files, directories and links by their apparent size, an inode with several
    hard links once."""

    def __init__(self) -> None:
        self.seen: set[tuple[int, int]] = set()

    def add(self, st: os.stat_result) -> int:
        if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
            inode = (st.st_dev, st.st_ino)
            if inode in self.seen:
                return 0
            self.seen.add(inode)
        return st.st_size

    def tree(self, path: str) -> int:
        """A file or a whole directory; what vanishes while it is walked is not counted."""
        try:
            total = self.add(os.lstat(path))
        except FileNotFoundError:
            return 0
        stack = [path] if os.path.isdir(path) and not os.path.islink(path) else []
        while stack:
            try:
                with os.scandir(stack.pop()) as it:
                    for e in it:
                        try:
                            total += self.add(e.stat(follow_symlinks=False))
                        except FileNotFoundError:
                            continue
                        if e.is_dir(follow_symlinks=False):
                            stack.append(e.path)
            except (FileNotFoundError, NotADirectoryError):
                continue
        return total


def _last_used(st: os.stat_result) -> float:
    # A file's access time counts too where the mount updates it (relatime: at least once a day); not a
    # directory's, which listing it (this walk) updates.
    return st.st_mtime if stat.S_ISDIR(st.st_mode) else max(st.st_atime, st.st_mtime)


class _Listing:
    """One walk of the cache directory: the total, and the files gc may remove (nothing is read yet)."""

    def __init__(self, cache: Cache, now: float) -> None:
        self.root = cache.root
        self.du = _Du()
        self.blobs: dict[str, os.stat_result] = {}
        self.entries: dict[str, tuple[str, os.stat_result]] = {}
        self.trees: dict[str, tuple[Resource, float]] = {}
        self.loose: list[Unit] = []  # analyses, orphans in tmp/
        self.total = self.du.add(os.lstat(self.root))
        tree_sizes = _TreeSizes(self.root)
        if os.path.isdir(os.path.join(self.root, SYSROOTS)):
            self._sysroots(os.path.join(self.root, SYSROOTS), tree_sizes)
        tree_sizes.save(set(self.trees))  # before the rest is counted: the file is part of the total
        for e in _scandir(self.root):
            if e.name in ("cas", "ac") and e.is_dir(follow_symlinks=False):
                self._shards(e.path, self.blobs if e.name == "cas" else None)
            elif e.name in ("analysis", "tmp") and e.is_dir(follow_symlinks=False):
                self._loose(e.path, e.name, now)
            elif e.path != os.path.join(self.root, SYSROOTS):
                self.total += self.du.tree(e.path)

    def _shards(self, path: str, blobs: dict[str, os.stat_result] | None) -> None:
        """cas/sha256/ab/<hex> (blobs) or ac/ab/<key>.json (entries); anything else there counts, and stays."""
        self.total += self.du.tree(path)
        for shard in _scandir(os.path.join(path, "sha256") if blobs is not None else path):
            for f in _scandir(shard.path):
                try:
                    st = f.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if not stat.S_ISREG(st.st_mode):
                    continue
                if blobs is not None:
                    if is_digest("sha256:" + f.name):  # anything else is no blob: it counts, and stays
                        blobs["sha256:" + f.name] = st
                elif f.name.endswith(".json"):
                    self.entries[f.name.removesuffix(".json")] = (f.path, st)

    def _sysroots(self, path: str, tree_sizes: _TreeSizes) -> None:
        """A tree `<key>/` goes with the records beside it (`<key>.owners.json`, ...: packages/tree.py)."""
        self.total += self.du.add(os.lstat(path))
        entries = _scandir(path)
        keys = {e.name for e in entries if e.is_dir(follow_symlinks=False)}
        records: dict[str, list[str]] = {}
        for e in entries:
            key = e.name.split(".", 1)[0]
            if e.name not in keys and key in keys:
                records.setdefault(key, []).append(e.path)
            elif e.name not in keys:
                self.total += self.du.tree(e.path)
        for key in sorted(keys):
            tree = os.path.join(path, key)
            size = tree_sizes.size(tree, self.du) + sum(self.du.tree(r) for r in records.get(key, ()))
            self.trees[key] = (Resource(size, (tree, *records.get(key, ()))), _last_used(os.lstat(tree)))
            self.total += size

    def _loose(self, path: str, kind: str, now: float) -> None:
        """Analyses (re-made when missing) and what killed processes left in tmp/ (an hour old at least: a
        `minibuild lock`, which takes no lock, may be downloading into tmp/ now)."""
        self.total += self.du.add(os.lstat(path))
        for e in _scandir(path):
            try:
                used = _last_used(e.stat(follow_symlinks=False))
            except FileNotFoundError:
                continue
            size = self.du.tree(e.path)
            self.total += size
            if kind == "analysis":
                self.loose.append(Unit("analysis", e.name, size, used, (e.path,)))
            elif now - used > TMP_GRACE:
                self.loose.append(Unit("tmp", e.name, size, 0.0, (e.path,)))


def _scandir(path: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as it:
            return sorted(it, key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return []


class _TreeSizes:
    """The bytes of each unpacked sysroot, remembered (a tree never changes once in place) so that the check
    after a build does not walk tens of thousands of files."""

    def __init__(self, root: str) -> None:
        self.path = os.path.join(root, "gc-trees.json")
        try:
            with open(self.path, encoding="utf-8") as f:
                self.known: dict[str, list[int]] = json.load(f)
        except (OSError, ValueError):
            self.known = {}
        self.changed = False

    def size(self, path: str, du: _Du) -> int:
        st = os.lstat(path)
        name = os.path.basename(path)
        known = self.known.get(name)
        if isinstance(known, list) and known[:2] == [st.st_ino, st.st_mtime_ns]:
            return int(known[2])
        size = du.tree(path)
        self.known[name] = [st.st_ino, st.st_mtime_ns, size]
        self.changed = True
        return size

    def save(self, present: set[str]) -> None:
        if not self.changed and present >= set(self.known):
            return
        known = {k: v for k, v in self.known.items() if k in present}
        tmp = f"{self.path}.{os.getpid()}.tmp"
        with contextlib.suppress(OSError):  # an optimisation: the next check walks the trees again
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(known, f)
            os.replace(tmp, self.path)


def measure(cache: Cache) -> int:
    """The bytes under the cache directory, as `du -sb` counts them (no entry is read)."""
    return _Listing(cache, time.time()).total


def inventory(cache: Cache, workspace_root: str, out_root: str) -> Inventory:
    """Every unit gc may remove, what each needs, and what the out tree needs."""
    listing = _Listing(cache, time.time())
    resources: dict[str, Resource] = {d: Resource(st.st_size, (cache.blob_path(d),))
                                      for d, st in listing.blobs.items()}
    resources.update({_TREE + key: res for key, (res, _) in listing.trees.items()})
    sysroots = os.path.join(cache.root, SYSROOTS) + os.sep
    pinned = _out_needs(out_root, listing.blobs)
    units = []
    for key, (path, st) in listing.entries.items():
        unit, outputs = _entry_unit(key, path, st, resources, sysroots, workspace_root)
        units.append(dataclasses.replace(unit, pinned=True) if outputs and outputs <= pinned else unit)
    needed = {name for u in units for name in u.needs} | pinned
    units += [Unit("blob", d, 0, _last_used(st), needs=frozenset({d}))
              for d, st in listing.blobs.items() if d not in needed]
    units += [Unit("sysroot", key, 0, used, needs=frozenset({_TREE + key}))
              for key, (_, used) in listing.trees.items() if _TREE + key not in needed]
    return Inventory(listing.total, tuple(units + listing.loose), resources, frozenset(pinned), len(listing.entries))


def _entry_unit(key: str, path: str, st: os.stat_result, resources: Mapping[str, Resource], sysroots: str,
                workspace_root: str) -> tuple[Unit, frozenset[str]]:
    """An action entry with the blobs it names and the sysroot trees its discovered inputs lie in, and the
    digests of its outputs. One that cannot be read, or whose blobs are gone, is worth nothing: it goes first."""
    try:
        with open(path, "rb") as f:
            entry = parse_entry(f.read(), key)  # digests checked: none names a path outside the store
    except (OSError, EntryError):
        return Unit("action", key, st.st_size, 0.0, (path,)), frozenset()
    outputs = frozenset(o["digest"] for o in entry["outputs"].values())
    needs = set(outputs) | set(entry["blobs"])
    for found in entry["discovered"]:
        host = host_path(found, workspace_root)
        if host.startswith(sysroots):
            needs.add(_TREE + host[len(sysroots):].split(os.sep, 1)[0])
    whole = all(n in resources for n in needs if not n.startswith(_TREE))
    return Unit("action", key, st.st_size, st.st_mtime if whole else 0.0, (path,),
                frozenset(n for n in needs if not n.startswith(_TREE) or n in resources)), outputs


def _out_needs(out_root: str, blobs: Mapping[str, os.stat_result]) -> set[str]:
    """The blobs the out tree holds: its files are hard links to them (or copies, where links cannot be made;
    an OCI layout's `blobs/sha256/<hex>` names its blob either way)."""
    inodes: set[tuple[int, int]] = set()
    named: set[str] = set()
    for dirpath, _, files in os.walk(out_root):
        layout_blobs = dirpath.endswith(os.path.join("blobs", "sha256"))
        for name in files:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except FileNotFoundError:
                continue
            if stat.S_ISREG(st.st_mode):
                inodes.add((st.st_dev, st.st_ino))
                if layout_blobs:
                    named.add("sha256:" + name)
    return {d for d, st in blobs.items() if d in named or (st.st_dev, st.st_ino) in inodes}


def plan(inv: Inventory, limit: int, keep: frozenset[str] = frozenset()) -> tuple[Removal, ...]:
    """Least recently used first until the total is at most `limit`: a unit goes with each resource no kept unit
    and nothing in the out tree needs. Pinned units stay, and so do the entries of `keep` (the keys a build has
    just used)."""
    refs = Counter(name for u in inv.units for name in u.needs)
    total = inv.total
    removals = []
    for unit in sorted(inv.units, key=lambda u: (u.last_used, u.kind, u.name)):
        if total <= limit:
            break
        if unit.pinned or (unit.kind == "action" and unit.name in keep):
            continue
        gone = []
        for name in sorted(unit.needs):
            refs[name] -= 1
            if refs[name] == 0 and name in inv.resources and name not in inv.pinned:
                gone.append(name)
        freed = unit.bytes + sum(inv.resources[name].bytes for name in gone)
        total -= freed
        removals.append(Removal(unit, freed, tuple(gone)))
    return tuple(removals)


def remove(cache: Cache, inv: Inventory, removals: Sequence[Removal]) -> None:
    """An entry before its blobs (a reader without the store lock then finds a whole entry or none), a tree
    renamed away before it is emptied (packages/tree.py takes a directory in its place as complete)."""
    for r in removals:
        for path in r.unit.paths:
            _delete(cache, path)
        for name in r.resources:
            for path in inv.resources[name].paths:
                _delete(cache, path)


def _delete(cache: Cache, path: str) -> None:
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            away = tempfile.mkdtemp(dir=os.path.join(cache.root, "tmp"), prefix="gc-")
            os.rename(path, os.path.join(away, "gone"))
            shutil.rmtree(away, ignore_errors=True)
        else:
            os.unlink(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise BuildError(f"cannot remove `{path}` from the cache: {exc.strerror}",
                         hint="check the permissions of .minibuild/cache") from None


def collect(cache: Cache, workspace_root: str, out_root: str, limit: int, *, dry_run: bool = False,
            keep: frozenset[str] = frozenset()) -> GcReport:
    """Bring the cache under `limit` bytes (the caller holds `cache.exclusive()`, or `in_use()` for a dry run)."""
    inv = inventory(cache, workspace_root, out_root)
    removals = plan(inv, limit, keep)
    if not dry_run:
        remove(cache, inv, removals)
    blobs = sum(1 for name in inv.resources if name.startswith("sha256:"))
    before = Counts(inv.total, inv.entries, blobs, len(inv.resources) - blobs)
    pinned = sum(inv.resources[d].bytes for d in inv.pinned)
    return GcReport(limit, before, removals, pinned, dry_run)


def after_build(cache: Cache, workspace: Workspace, out_root: str, used: frozenset[str],
                environ: Mapping[str, str]) -> list[str]:
    """Apply the configured limit once a build that stored something has ended, keeping the entries it `used`;
    its warnings. Skipped while another build uses the store (that one, or the next, applies it): a build never
    waits for gc here."""
    limit = configured_limit(workspace, environ)
    if limit is None or limit.bytes is None:
        return []
    with cache.exclusive(wait=False) as mine:
        if not mine or measure(cache) <= limit.bytes:
            return []
        try:
            report = collect(cache, str(workspace.root), out_root, limit.bytes, keep=used)
        except (MinibuildError, OSError) as exc:  # the build succeeded: this does not undo it
            return [f"the cache could not be brought under its limit ({limit.source}): {exc}"]
    if not report.over_limit:
        return []
    return [f"the cache holds {report.after.bytes:,} bytes, over its limit of {limit.bytes:,} ({limit.source}): "
            "what this build used and what .minibuild/out holds are kept"]


def describe(cache: Cache, unit: Unit) -> str:
    """What a unit is, in a few words: `action entry ab12...`, `.deb package sha256:...`, ..."""
    if unit.kind == "blob":
        try:  # without touching its access time, which says when it was last used
            fd = os.open(cache.blob_path(unit.name), os.O_RDONLY | getattr(os, "O_NOATIME", 0))
            with os.fdopen(fd, "rb") as f:
                deb = f.read(8) == b"!<arch>\n"
        except OSError:
            deb = False
        return f"{'.deb package' if deb else 'blob no entry needs'} {unit.name}"
    words = {"action": "action entry", "sysroot": "unpacked sysroot", "analysis": "stored analysis",
             "tmp": "left in tmp/"}
    return f"{words.get(unit.kind, unit.kind)} {unit.name}"
