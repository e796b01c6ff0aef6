"""Path lookup confined to a sysroot, the way the kernel does it inside a chroot.

Every in-image path is resolved component by component with `lstat`: absolute symlink targets
restart at the sysroot, relative ones continue from the link's directory, `..` in a *requested*
path stops at the root (as in a chroot). A symlink whose own target text climbs above the root of
a sysroot other than `/` is refused: it points at the build host, so the sysroot is not
self-contained and the image would differ from what was analysed. (With sysroot `/` there is
nothing above the root, so such a link is simply clamped, exactly like the kernel does.)

The walker remembers every path it looked at (`probed`) so a cached closure can be re-validated
by stat, and every symlink it went through so the copy plan can recreate them verbatim.
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Mapping
from dataclasses import dataclass

from minibuild.errors import ElfError

MAX_SYMLINKS = 40  # Linux's MAXSYMLINKS for one lookup


@dataclass(frozen=True)
class Link:
    path: str  # in-image path of the symlink
    target: str  # its text, verbatim


@dataclass(frozen=True)
class Lookup:
    """The outcome of resolving one in-image path string."""

    path: str  # as asked
    realpath: str | None  # in-image, every symlink resolved; None if it does not exist
    st: os.stat_result | None  # stat of the final object (after links)
    links: tuple[Link, ...]  # every symlink traversed, in order
    dotdot_dirs: tuple[str, ...]  # real directories a `..` climbed out of (must exist in the image)
    error: str | None = None  # ENOENT / ENOTDIR / ELOOP ... when realpath is None


class Sysroot:
    """Lookups inside one sysroot, memoised for the lifetime of this object (one Session).

    The memo assumes the sysroot does not change meanwhile; `probed` is recorded on every lookup,
    memoised or not, so each closure lists everything its own resolution depended on.
    """

    def __init__(self, root: str, overlay: Mapping[str, str] | None = None) -> None:
        root = os.path.abspath(root)
        self.root = root
        self.prefix = "" if root == "/" else root
        # Files that exist in the image but not in the sysroot (a genrule's program shipped as a binary):
        # in-image path -> host file. Their parent directories exist in the image whatever the sysroot has.
        self.overlay = dict(overlay or {})
        self.overlay_dirs = {d for p in self.overlay for d in parent_dirs(p)}
        # Process-wide memos are per sysroot *and* overlay: the same path may resolve differently.
        self.memo_key = self.prefix if not self.overlay else f"{self.prefix}\0{sorted(self.overlay.items())}"
        self.probed: set[str] = set()
        self._lstat: dict[str, os.stat_result | None] = {}
        self._readlink: dict[str, str] = {}
        self._dirs: dict[str, tuple[Lookup, tuple[str, ...]]] = {}  # dir -> (lookup, paths it probed)
        self._lookups: dict[str, tuple[Lookup, tuple[str, ...]]] = {}  # path -> (lookup, paths it probed)
        self._sigs: dict[str, tuple | None] = {}  # path -> _signature of its current lstat

    def host(self, path: str) -> str:
        """The host path of an in-image *real* path (no symlinks left in it)."""
        return self.overlay.get(path) or self.prefix + path

    def _os_lstat(self, path: str) -> os.stat_result | None:
        """lstat of an in-image path on the host, the overlay taking precedence; raises OSError."""
        if path in self.overlay:
            return os.stat(self.overlay[path])
        try:
            st = os.lstat(self.prefix + path)
        except (FileNotFoundError, NotADirectoryError):
            st = None
        if path in self.overlay_dirs and (st is None or not stat.S_ISDIR(st.st_mode)):
            return _DIR_STAT
        return st

    def begin(self) -> set[str]:
        """Start recording probes afresh (one closure); earlier lookups stay memoised."""
        self.probed = set()
        return self.probed

    def lstat(self, path: str) -> os.stat_result | None:
        self.probed.add(path)
        try:
            return self._lstat[path]
        except KeyError:
            pass
        try:
            st = self._os_lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            st = None
        except OSError as exc:
            raise ElfError(f"cannot stat `{path}` in sysroot `{self.root}`: {exc.strerror}") from None
        self._lstat[path] = st
        return st

    def _lstat_quiet(self, path: str) -> os.stat_result | None:
        try:
            return self._os_lstat(path)
        except OSError:
            return None

    def note_probe(self, path: str) -> None:
        self.probed.add(path)

    def _link_text(self, path: str) -> str:
        text = self._readlink.get(path)
        if text is None:
            try:
                text = os.readlink(self.prefix + path)
            except OSError as exc:
                raise ElfError(f"cannot read symlink `{path}` in sysroot `{self.root}`: {exc.strerror}") from None
            self._readlink[path] = text
        return text

    def lookup(self, path: str, cwd: str = "/") -> Lookup:
        """Resolve `path` (absolute, or relative to the in-image `cwd`), following every symlink."""
        if not path.startswith("/"):
            path = posixpath.join(cwd, path)
        memo = self._lookups.get(path)
        if memo is None:
            memo = self._shared(_SHARED_LOOKUPS, path, self._lookups)
        if memo is None:
            outer, self.probed = self.probed, set()
            try:
                found = self._lookup(path)
            finally:
                seen, self.probed = self.probed, outer
            self._lookups[path] = memo = (found, tuple(seen))
            _SHARED_LOOKUPS[(self.memo_key, path)] = (found, memo[1], self._signatures(memo[1]))
        self.probed.update(memo[1])
        return memo[0]

    def _lookup(self, path: str) -> Lookup:
        head, _, name = path.rstrip("/").rpartition("/") if path.rstrip("/") else ("", "", "")
        # Memoise directories: most lookups are many names tried in a few directories.
        if not name:
            return self._walk(path)
        memo = self._dirs.get(head or "/")
        if memo is None:
            memo = self._shared(_SHARED_DIRS, head or "/", self._dirs)
        if memo is None:
            outer, self.probed = self.probed, set()
            try:
                parent = self._walk(head or "/")
            finally:
                seen, self.probed = self.probed, outer
            self._dirs[head or "/"] = memo = (parent, tuple(seen))
            _SHARED_DIRS[(self.memo_key, head or "/")] = (parent, memo[1], self._signatures(memo[1]))
        parent, parent_probed = memo
        self.probed.update(parent_probed)
        if parent.realpath is None:
            return Lookup(path, None, None, parent.links, parent.dotdot_dirs, parent.error)
        if parent.st is not None and not stat.S_ISDIR(parent.st.st_mode):
            return Lookup(path, None, None, parent.links, parent.dotdot_dirs, "ENOTDIR")
        if name not in (".", ".."):
            # fast path for the common case: one more component that is not a symlink
            real = parent.realpath.rstrip("/") + "/" + name
            st = self.lstat(real)
            if st is None:
                return Lookup(path, None, None, parent.links, parent.dotdot_dirs, "ENOENT")
            if not stat.S_ISLNK(st.st_mode):
                return Lookup(path, real, st, parent.links, parent.dotdot_dirs)
        return self._walk_from(parent.realpath, [name], path, list(parent.links), list(parent.dotdot_dirs),
                               len(parent.links))

    def _signatures(self, seen: tuple[str, ...]) -> tuple:
        return tuple(_signature(self._lstat.get(p)) for p in seen)

    def _shared(self, shared_memo: dict, path: str, local_memo: dict) -> tuple[Lookup, tuple[str, ...]] | None:
        """A lookup memoised process-wide, if every path it looked at is unchanged (one lstat each)."""
        shared = shared_memo.get((self.memo_key, path))
        if shared is None:
            return None
        found, seen, signatures = shared
        current, lstats = self._sigs, self._lstat
        for p, sig in zip(seen, signatures, strict=True):
            cur = current.get(p, _UNKNOWN)
            if cur is _UNKNOWN:
                if p in lstats:
                    st = lstats[p]
                else:
                    st = lstats[p] = self._lstat_quiet(p)  # a real, current result either way
                cur = current[p] = _signature(st)
            if cur != sig:
                return None
        local_memo[path] = memo = (found, seen)
        return memo

    def _walk(self, path: str) -> Lookup:
        return self._walk_from("/", path.split("/"), path, [], [], 0)

    def _walk_from(self, cur: str, comps: list[str], asked: str, links: list[Link], dotdots: list[str],
                   nlinks: int) -> Lookup:
        todo = list(reversed([c for c in comps if c]))
        st = self.lstat(cur)
        while todo:
            comp = todo.pop()
            if comp in ("", "."):
                continue
            if comp == "..":
                if cur != "/":
                    dotdots.append(cur)
                cur = posixpath.dirname(cur)
                st = self.lstat(cur)
                continue
            if st is not None and not stat.S_ISDIR(st.st_mode):
                return Lookup(asked, None, None, tuple(links), tuple(dotdots), "ENOTDIR")
            nxt = cur.rstrip("/") + "/" + comp
            st = self.lstat(nxt)
            if st is None:
                return Lookup(asked, None, None, tuple(links), tuple(dotdots), "ENOENT")
            if stat.S_ISLNK(st.st_mode):
                nlinks += 1
                if nlinks > MAX_SYMLINKS:
                    return Lookup(asked, None, None, tuple(links), tuple(dotdots), "ELOOP")
                text = self._link_text(nxt)
                links.append(Link(nxt, text))
                if text.startswith("/"):
                    cur = "/"
                elif self.prefix and _escapes(cur, text):
                    raise ElfError(
                        f"symlink `{nxt}` -> `{text}` points outside sysroot `{self.root}`",
                        hint="make the sysroot self-contained (absolute link targets are resolved inside it)",
                    )
                todo.extend(reversed([c for c in text.split("/") if c]))
                st = self.lstat(cur)
                continue
            cur = nxt
        if st is None:
            st = self.lstat(cur)
        return Lookup(asked, cur, st, tuple(links), tuple(dotdots))

    def read_text(self, path: str, limit: int = 1 << 20) -> str | None:
        """Read a small in-image text file (config), or None if it does not exist."""
        found = self.lookup(path)
        if found.realpath is None or found.st is None or not stat.S_ISREG(found.st.st_mode):
            return None
        try:
            with open(self.host(found.realpath), "rb") as fh:
                return fh.read(limit).decode("utf-8", "surrogateescape")
        except OSError as exc:
            raise ElfError(f"cannot read `{path}` in sysroot `{self.root}`: {exc.strerror}") from None

    def read_bytes(self, path: str) -> bytes | None:
        found = self.lookup(path)
        if found.realpath is None or found.st is None or not stat.S_ISREG(found.st.st_mode):
            return None
        try:
            with open(self.host(found.realpath), "rb") as fh:
                return fh.read()
        except OSError as exc:
            raise ElfError(f"cannot read `{path}` in sysroot `{self.root}`: {exc.strerror}") from None

    def listdir(self, path: str) -> list[str]:
        found = self.lookup(path)
        if found.realpath is None or found.st is None or not stat.S_ISDIR(found.st.st_mode):
            return []
        try:
            return sorted(os.listdir(self.host(found.realpath)))
        except OSError:
            return []


# Lookups shared by every Sysroot of the process, keyed by (sysroot prefix, path), re-validated
# before use with one lstat per path they looked at (a Lookup depends on nothing else): a symlink
# cannot change its text without changing its inode or ctime, nor a directory turn into anything
# else without changing its identity. This is what makes repeated one-shot resolve() calls cheap.
_SHARED_DIRS: dict[tuple[str, str], tuple[Lookup, tuple[str, ...], tuple]] = {}
_SHARED_LOOKUPS: dict[tuple[str, str], tuple[Lookup, tuple[str, ...], tuple]] = {}


_UNKNOWN = object()


def _signature(st: os.stat_result | None) -> tuple | None:
    return None if st is None else (st.st_dev, st.st_ino, st.st_mode, st.st_mtime_ns, st.st_ctime_ns)


# What an overlay's parent directory looks like when the sysroot lacks it.
_DIR_STAT = os.stat_result((stat.S_IFDIR | 0o755, 0, 0, 2, 0, 0, 4096, 0, 0, 0))


def parent_dirs(path: str) -> list[str]:
    """The directories above `path`, `/` excluded, top first."""
    parts = [p for p in path.split("/") if p][:-1]
    return ["/" + "/".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _escapes(cur: str, text: str) -> bool:
    """Does relative link text `text`, read in real directory `cur`, climb above the root?"""
    depth = len([c for c in cur.split("/") if c])
    for comp in text.split("/"):
        if comp == "..":
            depth -= 1
            if depth < 0:
                return True
        elif comp not in ("", "."):
            depth += 1
    return False
