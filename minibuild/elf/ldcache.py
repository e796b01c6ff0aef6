"""/etc/ld.so.cache ("glibc-ld.so.cache1.1") reader and the lookup glibc's `search_cache` does.

Format (docs/loader.md#sec-4): a 48-byte header, 24-byte entries, a string table, and an optional extension
directory whose tag 1 lists the glibc-hwcaps subdirectory names. The legacy `ld.so-1.7.0` wrapper
written by old ldconfig is understood too. When a sysroot has no cache, `read_conf_dirs` lists the
directories of its ld.so.conf (with includes) in ldconfig's order, for the resolver to search.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

OLD_MAGIC = b"ld.so-1.7.0"
NEW_MAGIC = b"glibc-ld.so.cache1.1"
EXT_MAGIC = 0xEAA42174
EXT_TAG_GENERATOR, EXT_TAG_HWCAPS = 0, 1
HWCAPS_MARK = 1 << 62

# flags of an entry: low byte 0x03 = ELF libc6, high byte = the ABI (dl-cache.h FLAG_*).
FLAG_ELF_LIBC6 = 0x0003
ABI_FLAGS = {
    0x0000: "i386/plain", 0x0100: "sparc64", 0x0300: "x86-64", 0x0400: "s390x", 0x0500: "ppc64",
    0x0600: "mips64-n32", 0x0700: "mips64-n64", 0x0800: "x32", 0x0900: "arm-hf", 0x0A00: "aarch64",
    0x0B00: "arm-sf", 0x0F00: "riscv-soft", 0x1000: "riscv-double",
}


class CacheFormatError(Exception):
    pass


@dataclass(frozen=True)
class CacheEntry:
    flags: int
    key: str  # the DT_SONAME (or file name) the loader looks up
    value: str  # the path it opens
    hwcap: int = 0
    hwcaps_subdir: str | None = None  # for glibc-hwcaps entries

    @property
    def is_hwcaps(self) -> bool:
        return self.hwcaps_subdir is not None

    @property
    def isa_level(self) -> int:
        return (self.hwcap >> 32) & 0x3FF if self.is_hwcaps else 0


@dataclass(frozen=True)
class LdCache:
    entries: tuple[CacheEntry, ...]
    generator: str | None = None
    hwcaps_subdirs: tuple[str, ...] = ()
    source: str = "ld.so.cache"  # "ld.so.cache" or "ld.so.conf" (emulated)
    by_key: dict[str, tuple[CacheEntry, ...]] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        index: dict[str, list[CacheEntry]] = {}
        for e in self.entries:
            index.setdefault(e.key, []).append(e)
        self.by_key.update({k: tuple(v) for k, v in index.items()})

    def lookup(self, name: str, flags: int, supported: Iterable[str] | None) -> tuple[CacheEntry | None, list]:
        """Emulate `search_cache`: the entry the loader opens, and every hwcaps alternative.

        `supported` lists the glibc-hwcaps subdirectories the target CPU supports, best first; None
        means a baseline CPU. Returns (chosen entry or None, every hwcaps entry for the key).
        """
        candidates = [e for e in self.by_key.get(name, ()) if e.flags == flags]
        hwcaps = [e for e in candidates if e.is_hwcaps]
        if supported is not None and hwcaps:
            prio = {sub: i for i, sub in enumerate(supported)}
            ranked = [(prio[e.hwcaps_subdir], e) for e in hwcaps
                      if e.hwcaps_subdir is not None and e.hwcaps_subdir in prio]
            if ranked:
                return min(ranked, key=lambda pair: pair[0])[1], hwcaps
        for e in candidates:
            if e.hwcap == 0:
                return e, hwcaps
        return None, hwcaps


def parse_cache(data: bytes) -> LdCache:
    """Parse the bytes of an ld.so.cache file. Raises CacheFormatError (and nothing else)."""
    try:
        return _parse(data)
    except (struct.error, IndexError, ValueError) as exc:
        raise CacheFormatError(f"corrupt: {exc}") from None


def _parse(data: bytes) -> LdCache:
    if data.startswith(NEW_MAGIC):
        return _parse_new(data, 0)
    if data.startswith(OLD_MAGIC):
        if len(data) < 16:
            raise CacheFormatError("truncated old-format header")
        (nlibs,) = struct.unpack_from("<I", data, 12)
        end_old = 16 + 12 * nlibs
        if end_old > len(data):
            raise CacheFormatError("old-format entries run past the end of the file")
        new_at = (end_old + 7) & ~7
        if data[new_at : new_at + len(NEW_MAGIC)] == NEW_MAGIC:
            return _parse_new(data, new_at)
        entries = []
        for i in range(nlibs):
            flags, key, value = struct.unpack_from("<iII", data, 16 + 12 * i)
            entries.append(CacheEntry(flags, _cstr(data, end_old + key), _cstr(data, end_old + value)))
        return LdCache(tuple(entries))
    raise CacheFormatError("not an ld.so.cache file (bad magic)")


def _parse_new(data: bytes, base: int) -> LdCache:
    if len(data) < base + 48:
        raise CacheFormatError("truncated header")
    nlibs, len_strings, flags_byte = struct.unpack_from("<IIB", data, base + 20)
    endian = flags_byte & 3
    if endian == 1:
        raise CacheFormatError("cache is marked invalid")
    end = ">" if endian == 3 else "<"
    if endian == 3:
        nlibs, len_strings = struct.unpack_from(">II", data, base + 20)
    (ext_off,) = struct.unpack_from(end + "I", data, base + 32)
    if (len(data) - base - 48) // 24 < nlibs:
        raise CacheFormatError(f"header claims {nlibs} entries, the file holds fewer")
    raw = []
    for i in range(nlibs):
        raw.append(struct.unpack_from(end + "iIIIQ", data, base + 48 + 24 * i))
    generator = None
    subdirs: tuple[str, ...] = ()
    if ext_off and ext_off + 8 <= len(data):
        magic, count = struct.unpack_from(end + "II", data, ext_off)
        if magic == EXT_MAGIC:
            for i in range(min(count, 64)):
                pos = ext_off + 8 + 16 * i
                if pos + 16 > len(data):
                    raise CacheFormatError("truncated extension directory")
                tag, _flags, off, size = struct.unpack_from(end + "IIII", data, pos)
                if off + size > len(data):
                    raise CacheFormatError("extension section runs past the end of the file")
                if tag == EXT_TAG_GENERATOR:
                    generator = data[off : off + size].decode("utf-8", "replace")
                elif tag == EXT_TAG_HWCAPS:
                    subdirs = tuple(_cstr(data, base + so) for (so,) in struct.iter_unpack(end + "I",
                                                                                          data[off : off + size]))
    entries = []
    for flags, key, value, _osv, hwcap in raw:
        sub = None
        if (hwcap >> 32) & ~0x3FF == HWCAPS_MARK >> 32:
            index = hwcap & 0xFFFFFFFF
            sub = subdirs[index] if index < len(subdirs) else f"#{index}"
        entries.append(CacheEntry(flags, _cstr(data, base + key), _cstr(data, base + value), hwcap, sub))
    return LdCache(tuple(entries), generator, subdirs)


def _cstr(data: bytes, off: int) -> str:
    if off >= len(data):
        raise CacheFormatError(f"string offset {off} past the end of the file")
    stop = data.find(b"\0", off)
    return data[off : stop if stop >= 0 else len(data)].decode("utf-8", "surrogateescape")


# ------------------------------------------------------------------------------------------------
# ld.so.conf emulation (used only when the sysroot has no cache)


def read_conf_dirs(read_text: Callable[[str], str | None], list_glob: Callable[[str], list[str]],
                   conf: str = "/etc/ld.so.conf") -> list[str]:
    """Directories listed by `conf` and its includes, in ldconfig's order (docs/loader.md#sec-4-6).

    `read_text(path)` returns a file's text or None; `list_glob(pattern)` expands an in-image glob.
    Both work on in-image paths so the caller confines them to the sysroot.
    """
    out: list[str] = []
    seen_files: set[str] = set()

    def parse(path: str, depth: int) -> None:
        if path in seen_files or depth > 16:
            return
        seen_files.add(path)
        text = read_text(path)
        if text is None:
            return
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            word, _, rest = line.partition(" ")
            if word == "include" or line.startswith("include\t"):
                rest = line[len("include"):].strip()
                for pattern in rest.split():
                    if not pattern.startswith("/"):
                        pattern = os.path.join(os.path.dirname(path), pattern)
                    for match in sorted(list_glob(pattern)):
                        parse(match, depth + 1)
            elif word == "hwcap" or line.startswith("hwcap\t"):
                continue
            else:
                d = line.split("=", 1)[0].strip().rstrip("/") or "/"
                if d not in out:
                    out.append(d)

    parse(conf, 0)
    return out


def looks_like_dso(name: str) -> bool:
    return (name.startswith("lib") or name.startswith("ld-")) and ".so" in name
