"""Content digests, canonical JSON, and a stat cache so unchanged files are not hashed again."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import threading
import time
from typing import Any

_CHUNK = 1 << 20
# A file modified within this window of being hashed may change again within the same mtime
# granularity ("racily clean", as git calls it); such entries are not trusted on the next run.
_RACY_NS = 2_000_000_000


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: the one serialisation hashed anywhere in minibuild."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


class StatCache:
    """(path, inode, size, mtime_ns, ctime_ns) -> digest, kept across runs in one JSON file."""

    def __init__(self, path: str | None = None) -> None:
        self.path = path
        self._entries: dict[str, list[Any]] = {}
        self._dirty = False
        self._lock = threading.Lock()
        if path:
            try:
                with open(path, encoding="utf-8") as f:
                    loaded = json.load(f)
                if isinstance(loaded, dict):
                    self._entries = loaded
            except (OSError, ValueError):
                self._entries = {}

    def digest(self, path: str, st: os.stat_result | None = None) -> str:
        """The sha256 digest of a regular file's content, hashing only when its stat changed."""
        st = st or os.stat(path)
        sig = [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
        entry = self._entries.get(path)
        if entry is not None and entry[:4] == sig:
            return entry[4]
        digest = sha256_file(path)
        if time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) > _RACY_NS:
            with self._lock:
                self._entries[path] = [*sig, digest]
                self._dirty = True
        return digest

    def fingerprint(self, path: str) -> str:
        """What a discovered input looked like: absent, a symlink's text, a directory, or file content."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return "absent"
        except NotADirectoryError:
            return "absent"
        if stat.S_ISLNK(st.st_mode):
            return "link:" + os.readlink(path)
        if stat.S_ISDIR(st.st_mode):
            # By its listing, not its mtime: an action that listed it (a tree, a glob) runs again when an
            # entry is added, removed or renamed, and the fingerprint is the same on every machine.
            try:
                names = sorted(os.listdir(path))
            except OSError:
                return f"dir:unreadable:{stat.S_IMODE(st.st_mode):o}"
            return "dir:" + hashlib.sha256("\0".join(names).encode("utf-8", "surrogateescape")).hexdigest()
        if stat.S_ISREG(st.st_mode):
            return self.digest(path, st) + f":{stat.S_IMODE(st.st_mode):o}"
        return f"special:{st.st_mode:o}"

    def save(self) -> None:
        """Write the cache back (atomically) if anything was added."""
        if not self.path or not self._dirty:
            return
        tmp = f"{self.path}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(self._entries, f, separators=(",", ":"))
            os.replace(tmp, self.path)
            self._dirty = False
        except OSError:
            # The stat cache is an optimisation; failing to save it must not fail the build.
            try:
                os.unlink(tmp)
            except OSError:
                pass
