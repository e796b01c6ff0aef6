"""The content-addressed store and the action cache, safe for several processes at once.

Layout under the cache directory:
  CACHEDIR.TAG              marks the directory as a cache (bford.info/cachedir): `clean --cache` empties only that
  cas/sha256/ab/<hex>       blobs, named by the sha256 of their content, read-only
  ac/ab/<key>.json          action key -> output digests and discovered inputs; its mtime is when it was last used
  last/<hash of action id>  the key manifest of the last run of an action (for --explain)
  locks/<key>.lock          flock held while an action runs, so no two processes run it at once
  locks/store.lock          flock held shared by every build, exclusively by `cache gc` while it deletes
  tmp/                      work directories; a blob is written here and renamed into place
  sysroots/, analysis/      unpacked package sysroots (packages/tree.py), stored analyses (analysis_cache.py)

Every write is a temp file plus rename, so a killed process leaves at worst an orphan in tmp/.
What `cache gc` removes, and in which order, is in cache_gc.py (docs/cache.md).

Nothing read from the cache is trusted to name a path: a digest is `sha256:` and 64 lowercase hex digits wherever it
is read (`is_digest`), and an entry is checked whole before it is used (`parse_entry`): its shape, the key it was
written for, and a checksum over its bytes, so an entry cut short, edited or copied to another key is refused.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from minibuild.digest import canonical_json, sha256_bytes, sha256_file
from minibuild.errors import BuildError, InputError

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
TAG = "CACHEDIR.TAG"
_TAG_TEXT = ("Signature: 8a477f597d28d172789f06886806bc55\n"
             "# This directory is minibuild's cache (docs/cache.md); see https://bford.info/cachedir/\n")
_SUBDIRS = ("cas", "ac", "last", "locks", "tmp", "analysis", "sysroots", "logs")
_FILES = ("stat-cache.json", "pushed.json", "gc-trees.json")  # the other files minibuild keeps there


def is_digest(value: object) -> bool:
    """`sha256:` and 64 lowercase hex digits: the only name of a blob, so no digest read from anywhere can name a
    path outside the store."""
    return isinstance(value, str) and _DIGEST.fullmatch(value) is not None


class EntryError(ValueError):
    """An action entry that is not one minibuild wrote whole for its key: the reason, in words."""


class StaleEntry(EntryError):
    """An entry in the format of an older minibuild: never used, never worth a warning."""


# An entry file is `{"check":"sha256:<hex>","entry":<entry>}`, `<entry>` canonical JSON and `<hex>` the sha256 of
# exactly its bytes: checked without serialising anything again.
_HEAD = b'{"check":"'
_MIDDLE = b'","entry":'
_CHECK_END = len(_HEAD) + 71
_BODY = _CHECK_END + len(_MIDDLE)
_ENTRY_KEYS = {"key", "outputs", "blobs", "discovered", "warnings"}
_OLD_KEYS = {"outputs", "blobs", "discovered", "warnings"}


def entry_bytes(key: str, entry: dict[str, Any]) -> bytes:
    """The file of the entry of `key`: {outputs, blobs, discovered, warnings} with its key, and their checksum."""
    body = canonical_json({"key": key, "outputs": entry["outputs"], "blobs": entry.get("blobs", []),
                           "discovered": entry.get("discovered", {}), "warnings": entry.get("warnings", [])}).encode()
    return _HEAD + sha256_bytes(body).encode() + _MIDDLE + body + b"}"


def parse_entry(data: bytes, key: str) -> dict[str, Any]:
    """The entry `data` holds, checked to be one minibuild wrote for `key`: EntryError (StaleEntry for an older
    format) otherwise. What it names is not looked at here (whether its blobs exist, or hash to their names)."""
    if not (data.startswith(_HEAD) and data[_CHECK_END:_BODY] == _MIDDLE and data.endswith(b"}")):
        try:
            old = json.loads(data)
        except ValueError:
            raise EntryError("it is not JSON") from None
        if isinstance(old, dict) and set(old) == _OLD_KEYS:
            raise StaleEntry("it was written by an older minibuild")
        raise EntryError("it is not an entry minibuild writes")
    body = data[_BODY:-1]
    if sha256_bytes(body).encode() != data[len(_HEAD):_CHECK_END]:
        raise EntryError("its checksum does not match its content (edited, or damaged)")
    try:
        entry = json.loads(body)
    except ValueError:
        raise EntryError("it is not JSON") from None
    if not isinstance(entry, dict) or set(entry) != _ENTRY_KEYS:
        raise EntryError("it does not have the parts of an entry")
    if entry["key"] != key:
        raise EntryError(f"it was written for another action (`{str(entry['key'])[:16]}`)")
    check_entry(entry)
    return entry


def check_entry(entry: dict[str, Any]) -> None:
    """EntryError unless the parts of an entry (outputs, blobs, discovered, warnings) have the shape minibuild
    writes: what a local entry and one fetched from a remote cache both pass before they are used. (Read on every
    no-op build, for every action: the loops are joins and maps where they can be.)"""
    outputs, blobs, discovered, warnings = entry["outputs"], entry["blobs"], entry["discovered"], entry["warnings"]
    if type(outputs) is not dict or not all(map(_output_shape, outputs.items())):
        raise EntryError("its outputs are malformed (each needs a sha256 digest, a size and an executable bit)")
    if type(blobs) is not list or not all(map(is_digest, blobs)):
        raise EntryError("its extra blobs are not all sha256 digests")
    try:  # a join fails on anything but strings; a path cannot be empty or hold a NUL
        if type(discovered) is not dict or "" in discovered or "\0" in "".join(discovered):
            raise TypeError
        "".join(discovered.values())
    except TypeError:
        raise EntryError("its discovered inputs are malformed") from None
    if type(warnings) is not list or not all(type(w) is str for w in warnings):
        raise EntryError("its warnings are malformed")


_OUTPUT_KEYS = {"digest", "size", "executable"}


def _output_shape(item: tuple[Any, Any]) -> bool:
    name, o = item
    return (type(name) is str and type(o) is dict and o.keys() == _OUTPUT_KEYS and is_digest(o["digest"])
            and type(o["size"]) is int and o["size"] >= 0 and type(o["executable"]) is bool)


@dataclass(frozen=True)
class Blob:
    digest: str
    size: int
    executable: bool = False  # metadata of an action output, not of the stored bytes


def _no_space(exc: OSError, what: str) -> BuildError:
    if exc.errno == errno.ENOSPC:
        return BuildError(f"no space left on device while writing {what}",
                          hint="free some space (or `minibuild clean --cache`) and build again")
    return BuildError(f"cannot write {what}: {exc.strerror}")


class Cache:
    def __init__(self, root: str) -> None:
        self.root = root
        _own_cache_dir(root)
        try:
            for sub in ("cas/sha256", "ac", "last", "locks", "tmp"):
                os.makedirs(os.path.join(root, sub), exist_ok=True)
        except OSError as exc:
            raise BuildError(f"cannot create the cache in `{root}`: {exc.strerror}",
                             hint="the cache must be writable by this user; MINIBUILD_CACHE puts it elsewhere "
                                  "(docs/cache.md)") from None

    # -- blobs ---------------------------------------------------------------------------------
    def blob_path(self, digest: str) -> str:
        """The file of a blob; BuildError for anything but a digest (one read from a tampered file)."""
        if not is_digest(digest):
            raise BuildError(f"`{digest!r:.80}` is not a blob digest (`sha256:` and 64 lowercase hex digits)",
                             hint="something in the cache or the outputs was damaged or tampered with: "
                                  "`minibuild cache verify` removes what names it")
        return os.path.join(self.root, "cas", "sha256", digest[7:9], digest[7:])

    def has_blob(self, digest: str) -> bool:
        return is_digest(digest) and os.path.exists(self.blob_path(digest))

    def put_file(self, path: str, digest: str | None = None) -> Blob:
        """Move a finished file into the store (it is consumed); returns its digest and size."""
        digest = digest or sha256_file(path)
        size = os.path.getsize(path)
        dest = self.blob_path(digest)
        if os.path.exists(dest):
            os.unlink(path)
            return Blob(digest, size)
        try:
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            os.chmod(path, 0o444)
            os.replace(path, dest)
        except OSError as exc:
            raise _no_space(exc, f"blob `{digest}`") from None
        return Blob(digest, size)

    def put_bytes(self, data: bytes, digest: str | None = None) -> Blob:
        """Store `data`; `digest` when the caller has just computed it (it is trusted: never one read from
        elsewhere)."""
        digest = digest or "sha256:" + hashlib.sha256(data).hexdigest()
        if os.path.exists(self.blob_path(digest)):
            return Blob(digest, len(data))
        tmp = None
        try:
            fd, tmp = tempfile.mkstemp(dir=os.path.join(self.root, "tmp"))
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        except OSError as exc:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            raise _no_space(exc, f"blob `{digest}`") from None
        return self.put_file(tmp, digest)

    def discard_blob(self, digest: str) -> None:
        if is_digest(digest):
            with contextlib.suppress(OSError):
                os.unlink(self.blob_path(digest))

    def store_files(self, part: str) -> Iterator[tuple[str, str | None]]:
        """Each file of `cas` or `ac` as (path, None), shard by shard, and (folder, why) for a folder that cannot be
        listed. What is not a shard folder (a file, a symbolic link) is yielded as a file: never followed."""
        base = os.path.join(self.root, "cas", "sha256") if part == "cas" else os.path.join(self.root, part)
        try:
            with os.scandir(base) as it:
                shards = sorted(it, key=lambda e: e.name)
        except FileNotFoundError:
            return
        except OSError as exc:
            yield base, exc.strerror or str(exc)
            return
        for shard in shards:
            if not shard.is_dir(follow_symlinks=False):
                yield shard.path, None
                continue
            try:
                names = sorted(os.listdir(shard.path))
            except OSError as exc:
                yield shard.path, exc.strerror or str(exc)
                continue
            yield from ((os.path.join(shard.path, name), None) for name in names)

    def blob_name(self, path: str) -> str | None:
        """The digest a file of `store_files("cas")` is stored under, or None when it is no blob's place."""
        digest = "sha256:" + os.path.basename(path)
        return digest if is_digest(digest) and self.blob_path(digest) == path else None

    def blobs(self) -> Iterator[str]:
        """The digest of every stored blob (files in no blob's place are left out)."""
        for path, problem in self.store_files("cas"):
            digest = self.blob_name(path) if problem is None else None
            if digest is not None:
                yield digest

    def discard_action(self, key: str) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.ac_path(key))

    def verify_blob(self, digest: str) -> str:
        """Re-hash a stored blob: "ok", "corrupt" (removed, so it gets rebuilt; so is anything but a regular file in
        its place, never followed), or why it could not be checked or removed."""
        path = self.blob_path(digest)
        try:
            if stat.S_ISREG(os.lstat(path).st_mode) and sha256_file(path) == digest:
                return "ok"
        except FileNotFoundError:
            return "ok"  # gone since it was listed (a gc): nothing to check
        except OSError as exc:
            return f"cannot be read ({exc.strerror}): not checked, left in place"
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            return f"does not hash to its name, and cannot be removed ({exc.strerror})"
        return "corrupt"

    # -- action cache --------------------------------------------------------------------------
    def ac_path(self, key: str) -> str:
        return os.path.join(self.root, "ac", key[:2], key + ".json")

    def get_action(self, key: str, check_blobs: bool = True) -> dict[str, Any] | None:
        """The entry of `key` when it is whole and its blobs are there; None when there is none (or one of an older
        format). EntryError for an entry that is not one minibuild wrote for `key`: it is removed first.
        `check_blobs=False`: the caller looks at every blob itself (the executor: each one stat'ed once, not twice)."""
        try:
            with open(self.ac_path(key), "rb") as f:
                data = f.read()
                with contextlib.suppress(OSError):  # a read-only cache still reads
                    os.utime(f.fileno())  # used now: `cache gc` removes the least recently used first
        except OSError:
            return None
        try:
            entry = parse_entry(data, key)
        except StaleEntry:
            return None
        except EntryError:
            self.discard_action(key)
            raise
        blobs = [o["digest"] for o in entry["outputs"].values()] + entry["blobs"]
        if check_blobs and not all(self.has_blob(d) for d in blobs):
            return None
        return entry

    def put_action(self, key: str, entry: dict[str, Any]) -> None:
        """Store the entry of `key` (outputs, blobs, discovered inputs, warnings), with its key and checksum."""
        self._write(self.ac_path(key), entry_bytes(key, entry))

    def last_manifest(self, action_id: str) -> dict[str, Any] | None:
        try:
            with open(self._last_path(action_id), encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def put_last_manifest(self, action_id: str, manifest: dict[str, Any]) -> None:
        self._write_json(self._last_path(action_id), manifest)

    def _last_path(self, action_id: str) -> str:
        return os.path.join(self.root, "last", hashlib.sha256(action_id.encode()).hexdigest() + ".json")

    def _write_json(self, path: str, value: Any) -> None:
        self._write(path, json.dumps(value, sort_keys=True, separators=(",", ":")).encode())

    def _write(self, path: str, data: bytes) -> None:
        tmp = None
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=os.path.join(self.root, "tmp"))
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except OSError as exc:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            raise _no_space(exc, f"cache entry `{os.path.basename(path)}`") from None

    # -- work space and locks ------------------------------------------------------------------
    @contextlib.contextmanager
    def workdir(self) -> Iterator[str]:
        try:
            path = tempfile.mkdtemp(dir=os.path.join(self.root, "tmp"))
        except OSError as exc:
            raise _no_space(exc, f"a work directory in `{os.path.join(self.root, 'tmp')}`") from None
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def _open_lock(self, name: str) -> int:
        path = os.path.join(self.root, "locks", name)
        try:
            return os.open(path, os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            raise BuildError(f"cannot open the lock file `{path}`: {exc.strerror}",
                             hint="the cache must be writable by this user; MINIBUILD_CACHE puts it elsewhere "
                                  "(docs/cache.md)") from None

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[None]:
        fd = self._open_lock(key[:16] + ".lock")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    @contextlib.contextmanager
    def in_use(self) -> Iterator[None]:
        """Held (shared) by a build from its first lookup to its last output: `cache gc` takes it exclusively,
        so nothing a build in progress has found in the store goes before the build ends."""
        fd = self._open_lock("store.lock")
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def exclusive(self, wait: bool = True, on_wait: Callable[[], None] | None = None) -> Iterator[bool]:
        """The store to oneself (no build in progress): yields True once held; False at once, not holding it,
        when `wait` is False and a build is using the store. `on_wait` is called before waiting."""
        fd = self._open_lock("store.lock")
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not wait:
                    yield False
                    return
                if on_wait is not None:
                    on_wait()
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield True
        finally:
            os.close(fd)

    def materialize(self, digest: str, dest: str, executable: bool = False) -> None:
        """Put a stored blob at `dest`, replacing what is there.

        A hard link shares the store's read-only inode; an executable output is copied instead, since
        its mode (0755) cannot be given to the shared inode.
        """
        src = self.blob_path(digest)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        tmp = f"{dest}.tmp{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        try:
            if executable:
                shutil.copyfile(src, tmp)
                os.chmod(tmp, 0o755)
            else:
                try:
                    os.link(src, tmp)
                except OSError:
                    shutil.copyfile(src, tmp)
            os.replace(tmp, dest)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise _no_space(exc, f"`{dest}`") from None


def _listing(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def _own_cache_dir(root: str) -> None:
    """The cache directory and its folders are directories of minibuild's own, never symbolic links (a link would
    have builds write, and gc and `clean` delete, wherever it points); a directory holding something else is not
    taken for a cache. A new (or older minibuild's) cache is marked with CACHEDIR.TAG."""
    for path in [root, *(os.path.join(root, sub) for sub in _SUBDIRS)]:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise BuildError(f"cannot read `{path}`: {exc.strerror}") from None
        if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
            what = f"a symbolic link (to `{os.readlink(path)}`)" if stat.S_ISLNK(st.st_mode) else "not a directory"
            raise InputError(f"`{path}` is {what}: minibuild writes and deletes nothing through it",
                             hint="remove it (it is part of the cache, made again when missing); to keep the cache "
                                  "elsewhere, set MINIBUILD_CACHE to a directory (docs/cache.md)")
    names = _listing(root)
    if TAG in names:  # listed, not tested apart: another build may make it between a test and a listing
        return
    foreign = [n for n in names if n not in _SUBDIRS + _FILES and not n.endswith(".tmp")]
    if foreign:
        raise InputError(f"`{root}` is not a minibuild cache (it has no {TAG}) and holds other files (`{foreign[0]}`)",
                         hint="point MINIBUILD_CACHE to a new or empty directory: minibuild mixes its cache with "
                              "nothing else")
    try:
        os.makedirs(root, exist_ok=True)
        # Written aside and renamed: builds starting together each write it whole, none sees a part.
        part = os.path.join(root, f"{TAG}.{os.getpid()}.tmp")
        with open(part, "w", encoding="utf-8") as f:
            f.write(_TAG_TEXT)
        os.replace(part, os.path.join(root, TAG))
    except OSError as exc:
        raise BuildError(f"cannot create the cache in `{root}`: {exc.strerror}",
                         hint="the cache must be writable by this user; MINIBUILD_CACHE puts it elsewhere "
                              "(docs/cache.md)") from None
