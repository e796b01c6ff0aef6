"""Layer blobs: deterministic tar streams, compressed and hashed in one pass.

The same entries give the same bytes on any machine, at any time, under any umask or checkout path:
  - members sorted by path components, every parent directory emitted before its children;
  - uid/gid the entry's (0 unless an image gives an owner), empty uname/gname, mtime = `epoch`, no
    atime/ctime, modes taken only from the entries;
  - POSIX pax format, which writes a plain ustar header (no pax record) for every ordinary member and adds
    a pax record only when ustar cannot hold a value: names or link targets over 100 bytes or not ASCII,
    files of 8 GiB or more. GNU format would do the same job with non-standard long-name members instead.
Nothing is read from the host but the bytes of `source` files, streamed, never held whole in memory.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import posixpath
import stat
import struct
import tarfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

from minibuild.entry import DEFAULT_MODES, KINDS, TreeEntry
from minibuild.errors import BuildError, InputError
from minibuild.oci._io import SourceReader, atomic_file, read_error, write_error
from minibuild.oci.spec import LAYER_MEDIA_TYPES, Descriptor, Platform

__all__ = [
    "Descriptor",
    "FileWatch",
    "Layer",
    "TreeEntry",
    "ZSTD_LEVEL",
    "checked",
    "Platform",
    "check_epoch",
    "epoch_from_env",
    "import_zstandard",
    "layer_key",
    "plan_layer",
    "tar_info",
    "write_layer",
]

# ustar's 12-byte octal mtime field holds values below 8**11; later epochs would need a pax record per member.
MAX_EPOCH = 8**11 - 1
ZSTD_LEVEL = 3  # write_layer's default
# The compressors are fed fixed-size chunks so their output depends only on the tar bytes, never on how
# tarfile happened to split its writes.
_CHUNK = 1 << 20


def checked(entry: TreeEntry) -> TreeEntry:
    """The entry as a layer member: kind, mode and content checked, the path normalised, a symlink's mode
    0777 (symlink permissions mean nothing on Linux; tar writes them so). Bad input is an InputError."""
    where = f" (from {entry.origin})" if entry.origin else ""
    if entry.kind not in KINDS:
        raise InputError(f"layer entry `{entry.path}`{where} has kind `{entry.kind}`; "
                         f"expected one of {', '.join(KINDS)}")
    path = _normalise_path(entry.path, where)
    mode = entry.mode
    if entry.kind == "symlink":
        mode = DEFAULT_MODES["symlink"]
    elif isinstance(mode, bool) or not isinstance(mode, int) or not 0 <= mode <= 0o7777:
        raise InputError(f"layer entry `{path}`{where} has mode {mode!r}; expected 0 to 0o7777")
    if entry.kind == "file":
        if (entry.source is None) == (entry.data is None):
            raise InputError(f"file entry `{path}`{where} needs exactly one of `source` and `data`")
    elif entry.source is not None or entry.data is not None:
        raise InputError(f"{entry.kind} entry `{path}`{where} cannot have `source` or `data`")
    if entry.kind == "symlink":
        if not entry.target or "\0" in entry.target:
            raise InputError(f"symlink entry `{path}`{where} needs a non-empty `target`")
        _check_utf8(entry.target, f"symlink target of `{path}`{where}")
    elif entry.target is not None:
        raise InputError(f"{entry.kind} entry `{path}`{where} cannot have a `target`")
    for n in (entry.uid, entry.gid):
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n < 1 << 31:
            raise InputError(f"layer entry `{path}`{where} has owner {entry.uid!r}:{entry.gid!r}; expected 0 to 2^31-1")
    if path == "/" and entry.kind != "dir":
        raise InputError(f"the root `/`{where} can only be a directory")
    return entry if (path, mode) == (entry.path, entry.mode) else dataclasses.replace(entry, path=path, mode=mode)


@dataclass(frozen=True)
class Layer:
    descriptor: Descriptor  # the blob as stored: compressed, if compression is not "none"
    diff_id: str  # "sha256:..." of the uncompressed tar, as the config's rootfs lists it
    uncompressed_size: int | None  # None for a base image layer read back without verify_layers


def _check_utf8(text: str, what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"{what} is not valid UTF-8: {text!r}") from None


def _normalise_path(path: str, where: str) -> str:
    if not isinstance(path, str) or not path.startswith("/"):
        raise InputError(f"layer path {path!r}{where} must be absolute (start with `/`)")
    if "\0" in path:
        raise InputError(f"layer path {path!r}{where} contains a NUL byte")
    _check_utf8(path, f"layer path{where}")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InputError(f"layer path `{path}`{where} must not contain `..`")
    return "/" + "/".join(parts)


def _sort_key(path: str) -> tuple[str, ...]:
    # Comparing component tuples puts a directory right before its own subtree ("/a", "/a/b", "/a-b");
    # str comparison is by code point, which for UTF-8 is byte order.
    return tuple(path.split("/")[1:]) if path != "/" else ()


def _origin(entry: TreeEntry) -> str:
    return entry.origin or "an entry with no origin"


def epoch_from_env(environ: dict[str, str] | None = None) -> int:
    """SOURCE_DATE_EPOCH as an int (0 when unset), checked the way write_layer checks `epoch`."""
    value = (os.environ if environ is None else environ).get("SOURCE_DATE_EPOCH", "").strip()
    if not value:
        return 0
    if not value.isdigit():
        raise InputError(f"SOURCE_DATE_EPOCH must be a non-negative integer, got `{value}`")
    return check_epoch(int(value))


def check_epoch(epoch: int) -> int:
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch <= MAX_EPOCH:
        raise InputError(f"epoch must be an integer from 0 to {MAX_EPOCH}, got {epoch!r}")
    return epoch


class _ContentKeys:
    """(size, sha256) of file entries, computed only when two entries claim the same path."""

    def __init__(self) -> None:
        self._cache: dict[int, tuple[int, str]] = {}

    def get(self, entry: TreeEntry) -> tuple[int, str]:
        key = id(entry)
        if key not in self._cache:
            if entry.data is not None:
                self._cache[key] = (len(entry.data), hashlib.sha256(entry.data).hexdigest())
            else:
                assert entry.source is not None
                h = hashlib.sha256()
                size = 0
                with _open_source(entry) as f:
                    while chunk := f.read(_CHUNK):
                        h.update(chunk)
                        size += len(chunk)
                self._cache[key] = (size, h.hexdigest())
        return self._cache[key]


def _same(a: TreeEntry, b: TreeEntry, keys: _ContentKeys) -> bool:
    if (a.kind, a.mode, a.target, a.uid, a.gid) != (b.kind, b.mode, b.target, b.uid, b.gid):
        return False
    if a.kind != "file":
        return True
    if a.source is not None and b.source is not None:
        if os.path.realpath(a.source) == os.path.realpath(b.source):
            return True
    return keys.get(a) == keys.get(b)


def plan_layer(entries: Iterable[TreeEntry]) -> tuple[TreeEntry, ...]:
    """The members of the layer in tar order: duplicates merged, conflicts refused, parent dirs added.

    Two entries for one path are merged when kind, mode and content are the same; otherwise InputError
    names both origins. An entry under a path that is a file or symlink is refused too: a tar cannot
    both hold a directory and a non-directory at one path, and writing through a symlink is ambiguous.
    """
    by_path: dict[str, TreeEntry] = {}
    keys = _ContentKeys()
    for given in entries:
        if not isinstance(given, TreeEntry):
            raise TypeError(f"expected TreeEntry, got {type(given).__name__}")
        entry = checked(given)
        seen = by_path.get(entry.path)
        if seen is None:
            by_path[entry.path] = entry
        elif not _same(seen, entry, keys):
            raise InputError(
                f"two different entries for `{entry.path}`: {seen.describe()} from {_origin(seen)}, "
                f"and {entry.describe()} from {_origin(entry)}",
                hint="remove one of them, or give both the same content and mode",
            )
    implicit: dict[str, TreeEntry] = {}
    for path, entry in by_path.items():
        parent = posixpath.dirname(path)
        while parent != "/":
            above = by_path.get(parent)
            if above is not None:
                if above.kind != "dir":
                    what = f"a symlink to `{above.target}`" if above.kind == "symlink" else "a file"
                    raise InputError(
                        f"`{path}` from {_origin(entry)} lies under `{parent}`, "
                        f"which is {what} from {_origin(above)}",
                        hint="put the entry at its real path" if above.kind == "symlink" else None,
                    )
            elif parent not in implicit:
                implicit[parent] = TreeEntry(parent, "dir", origin=f"parent directory of `{path}`")
            parent = posixpath.dirname(parent)
    by_path.pop("/", None)  # the root is the extraction target itself; no tool writes a member for it
    by_path.update(implicit)
    return tuple(by_path[p] for p in sorted(by_path, key=_sort_key))


def layer_key(members: Iterable[TreeEntry], compression: str, gzip_level: int, zstd_level: int,
              epoch: int) -> str | None:
    """What decides the bytes of a layer, as one digest: each member's header fields and content (a source file by
    its identity and change time, which any write changes), the compression and its level, the epoch. Two layers
    with one key are the same blob, so a build writes it once. None when a source cannot be looked at."""
    h = hashlib.sha256(repr((compression, gzip_level, zstd_level, epoch)).encode())
    for e in members:
        if e.source is not None:
            try:
                st = os.stat(e.source)
            except OSError:
                return None
            content: object = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        else:
            content = hashlib.sha256(e.data).hexdigest() if e.data is not None else None
        h.update(repr((e.path, e.kind, e.mode, e.uid, e.gid, e.target, content)).encode() + b"\0")
    return h.hexdigest()


def tar_info(entry: TreeEntry, size: int, epoch: int) -> tarfile.TarInfo:
    """The header of one member: nothing in it comes from the host."""
    info = tarfile.TarInfo(entry.path.lstrip("/"))
    info.mtime = epoch
    info.mode = entry.mode or 0
    info.uid, info.gid = entry.uid, entry.gid
    info.uname = info.gname = ""
    info.devmajor = info.devminor = 0
    if entry.kind == "dir":
        info.type = tarfile.DIRTYPE
    elif entry.kind == "symlink":
        info.type = tarfile.SYMTYPE
        info.linkname = entry.target or ""
    else:
        info.type = tarfile.REGTYPE
        info.size = size
    return info


class _Compressor(Protocol):
    def compress(self, data: bytes) -> bytes: ...
    def flush(self) -> bytes: ...


class _Identity:
    def compress(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


class _Gzip:
    """A gzip member (RFC 1952) with a header that carries nothing of the host or the time.

    We write the header ourselves rather than use the gzip module so every byte of it is pinned:
    no file name, MTIME 0, XFL from the level, OS 255 ("unknown", as Go and Python write).
    Deflate output is deterministic for a given zlib implementation, version, level and input chunking
    (the chunking is fixed by _Sink); a different zlib (e.g. zlib-ng) may give other compressed bytes,
    and so another layer digest, but never another diff_id.
    """

    def __init__(self, level: int) -> None:
        self._z = zlib.compressobj(
            level, zlib.DEFLATED, -zlib.MAX_WBITS, zlib.DEF_MEM_LEVEL, zlib.Z_DEFAULT_STRATEGY
        )
        xfl = 2 if level == 9 else 4 if level == 1 else 0
        self._header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00" + bytes([xfl, 255])
        self._crc = 0
        self._length = 0

    def _take_header(self) -> bytes:
        header, self._header = self._header, b""
        return header

    def compress(self, data: bytes) -> bytes:
        self._crc = zlib.crc32(data, self._crc)
        self._length += len(data)
        return self._take_header() + self._z.compress(data)

    def flush(self) -> bytes:
        trailer = struct.pack("<II", self._crc & 0xFFFFFFFF, self._length & 0xFFFFFFFF)
        return self._take_header() + self._z.flush() + trailer


def import_zstandard() -> Any:
    """The optional `zstandard` module, imported only when a zstd layer is written or read."""
    try:
        import zstandard
    except ImportError:
        raise BuildError(
            "zstd layers need the Python package `zstandard`, which is not installed",
            hint="install `zstandard`, or use compression `gzip`",
        ) from None
    return zstandard


def _zstd(level: int) -> _Compressor:
    zstandard = import_zstandard()
    # Single-threaded, with a content checksum. Output is deterministic for a given bundled libzstd version
    # and level, like zlib's.
    cctx: Any = zstandard.ZstdCompressor(level=level, write_checksum=True, threads=0)
    return cctx.compressobj()


def _compressor(compression: str, gzip_level: int, zstd_level: int) -> _Compressor:
    if compression == "gzip":
        if isinstance(gzip_level, bool) or not isinstance(gzip_level, int) or not 0 <= gzip_level <= 9:
            raise InputError(f"gzip level must be 0 to 9, got {gzip_level!r}")
        return _Gzip(gzip_level)
    if compression == "zstd":
        if isinstance(zstd_level, bool) or not isinstance(zstd_level, int) or not 1 <= zstd_level <= 22:
            raise InputError(f"zstd level must be 1 to 22, got {zstd_level!r}")
        return _zstd(zstd_level)
    return _Identity()


class _Sink:
    """What tarfile writes to: hashes the tar (diff_id), compresses it, hashes and writes the blob."""

    def __init__(self, compressor: _Compressor, out: BinaryIO, dest: str) -> None:
        self._compressor = compressor
        self._out = out
        self._dest = dest
        self._buf = bytearray()
        self._diff = hashlib.sha256()
        self._blob = hashlib.sha256()
        self.uncompressed_size = 0
        self.size = 0

    def write(self, data: bytes) -> int:
        self._diff.update(data)
        self.uncompressed_size += len(data)
        self._buf += data
        if len(self._buf) >= _CHUNK:
            whole = len(self._buf) - len(self._buf) % _CHUNK
            view = memoryview(self._buf)
            for start in range(0, whole, _CHUNK):
                self._emit(self._compressor.compress(bytes(view[start : start + _CHUNK])))
            view.release()
            del self._buf[:whole]
        return len(data)

    def tell(self) -> int:
        return self.uncompressed_size

    def finish(self) -> None:
        self._emit(self._compressor.compress(bytes(self._buf)))
        self._buf.clear()
        self._emit(self._compressor.flush())

    def _emit(self, data: bytes) -> None:
        if not data:
            return
        self._blob.update(data)
        self.size += len(data)
        try:
            self._out.write(data)
        except OSError as exc:
            raise write_error(exc, self._dest) from exc

    @property
    def diff_id(self) -> str:
        return "sha256:" + self._diff.hexdigest()

    @property
    def digest(self) -> str:
        return "sha256:" + self._blob.hexdigest()


def _open_source(entry: TreeEntry) -> BinaryIO:
    assert entry.source is not None
    what = f"content of `{entry.path}` from {_origin(entry)}"
    source = f"source `{entry.source}` of `{entry.path}` from {_origin(entry)}"
    try:
        f = open(entry.source, "rb")  # the caller closes it
    except FileNotFoundError:
        raise InputError(f"{source} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"{source} is a directory") from None
    except OSError as exc:
        raise read_error(exc, entry.source, what) from exc
    try:
        st = os.fstat(f.fileno())
    except OSError as exc:
        f.close()
        raise read_error(exc, entry.source, what) from exc
    if not stat.S_ISREG(st.st_mode):
        f.close()
        raise InputError(f"{source} is not a regular file")
    return f


class FileWatch(Protocol):
    """Sees a file member's bytes as they go into the layer (`write_layer`'s `watch`), so a check of the content
    (an image's secrets) needs no second read."""

    def update(self, data: bytes) -> None: ...
    def close(self) -> None: ...


class _Watched:
    def __init__(self, reader: SourceReader | io.BytesIO, watch: FileWatch) -> None:
        self._reader = reader
        self._watch = watch

    def read(self, n: int = -1) -> bytes:
        data = self._reader.read(n)
        self._watch.update(data)
        return data


def _add_file(tar: tarfile.TarFile, entry: TreeEntry, epoch: int, watch: FileWatch | None) -> None:
    if entry.data is not None:
        data = io.BytesIO(entry.data)
        tar.addfile(tar_info(entry, len(entry.data), epoch), _Watched(data, watch) if watch else data)
        if watch:
            watch.close()
        return
    assert entry.source is not None
    with _open_source(entry) as f:
        size = os.fstat(f.fileno()).st_size
        reader = SourceReader(f, entry.source, f"content of `{entry.path}`")
        try:
            tar.addfile(tar_info(entry, size, epoch), _Watched(reader, watch) if watch else reader)
        except OSError as exc:
            # Reads and writes translate their own errors; tarfile raises this one when the file ended early.
            raise BuildError(f"source file `{entry.source}` shrank while it was being read ({exc})") from exc
        if reader.read(1):
            raise BuildError(f"source file `{entry.source}` grew while it was being read")
    if watch:
        watch.close()


def write_layer(
    entries: Iterable[TreeEntry],
    dest: str,
    *,
    compression: str = "gzip",
    gzip_level: int = 1,
    zstd_level: int = ZSTD_LEVEL,
    epoch: int = 0,
    watch: Callable[[TreeEntry], FileWatch] | None = None,
) -> Layer:
    """Write the layer blob of `entries` to `dest` atomically and return its descriptor and diff_id.

    compression: "gzip" | "zstd" | "none". The descriptor's media type follows it. `watch(entry)`, if given,
    is fed the bytes of each file member as they are read.
    """
    media_type = LAYER_MEDIA_TYPES.get(compression)
    if media_type is None:
        raise InputError(f"unknown compression `{compression}`; expected one of {sorted(LAYER_MEDIA_TYPES)}")
    check_epoch(epoch)
    compressor = _compressor(compression, gzip_level, zstd_level)
    members = plan_layer(entries)
    with atomic_file(dest) as out:
        sink = _Sink(compressor, out, dest)
        tar = tarfile.open(fileobj=sink, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8")  # type: ignore[call-overload]
        for entry in members:
            if entry.kind == "file":
                _add_file(tar, entry, epoch, watch(entry) if watch else None)
            else:
                tar.addfile(tar_info(entry, 0, epoch))
        tar.close()
        sink.finish()
    return Layer(
        descriptor=Descriptor(media_type=media_type, digest=sink.digest, size=sink.size),
        diff_id=sink.diff_id,
        uncompressed_size=sink.uncompressed_size,
    )
