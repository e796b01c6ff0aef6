"""Writing /etc/ld.so.cache ("glibc-ld.so.cache1.1", docs/loader.md#sec-4) for the libraries of an image.

With a cache the loader finds a library by soname in any directory of the image, as `ldconfig` would make
it find it: dlopen("libfoo.so.1") from a program whose RUNPATH does not name `/opt/foo/lib`. glibc
binary-searches the entries, which must be sorted descending by its `_dl_cache_libcmp` (digit runs compare
as numbers); `minibuild.elf.ldcache.parse_cache` reads the result back.
"""

from __future__ import annotations

import functools
import struct

from minibuild.elf.ldcache import EXT_MAGIC, EXT_TAG_GENERATOR, FLAG_ELF_LIBC6, NEW_MAGIC

# The high byte of an entry's flags: the ABI the loader of each architecture accepts (dl-cache.h).
ABI_FLAGS = {"amd64": 0x0300, "arm64": 0x0A00, "386": 0x0000, "ppc64le": 0x0500, "s390x": 0x0400,
             "riscv64": 0x1000}
GENERATOR = b"minibuild"


def libcmp(a: str, b: str) -> int:
    """glibc's `_dl_cache_libcmp`: like strcmp, but runs of digits compare by value, and a digit sorts after a
    non-digit."""
    i = j = 0
    while i < len(a) and j < len(b):
        ca, cb = a[i], b[j]
        if ca.isdigit():
            if not cb.isdigit():
                return 1
            va = vb = 0
            while i < len(a) and a[i].isdigit():
                va = va * 10 + ord(a[i]) - 48
                i += 1
            while j < len(b) and b[j].isdigit():
                vb = vb * 10 + ord(b[j]) - 48
                j += 1
            if va != vb:
                return -1 if va < vb else 1
        elif cb.isdigit():
            return -1
        else:
            if ca != cb:
                return -1 if ca < cb else 1
            i += 1
            j += 1
    return (len(a) - i > 0) - (len(b) - j > 0)


def write_cache(entries: list[tuple[str, str]], architecture: str | None) -> bytes:
    """The cache for (soname, in-image path) pairs; one entry per pair, sorted as glibc expects."""
    flags = FLAG_ELF_LIBC6 | ABI_FLAGS.get(architecture or "amd64", 0x0300)
    unique = sorted(set(entries), key=lambda e: e[1])

    def soname_descending(x: tuple[str, str], y: tuple[str, str]) -> int:
        return libcmp(y[0], x[0])

    ordered = sorted(unique, key=functools.cmp_to_key(soname_descending))
    strings = bytearray()
    offsets: dict[str, int] = {}
    header = 48
    start = header + 24 * len(ordered)

    def offset(s: str) -> int:
        if s not in offsets:
            offsets[s] = start + len(strings)
            strings.extend(s.encode("utf-8", "surrogateescape") + b"\0")
        return offsets[s]

    body = b"".join(struct.pack("<iIIIQ", flags, offset(k), offset(v), 0, 0) for k, v in ordered)
    ext_at = (start + len(strings) + 3) & ~3
    padding = b"\0" * (ext_at - start - len(strings))
    ext_data_at = ext_at + 8 + 16
    extension = struct.pack("<II", EXT_MAGIC, 1) + struct.pack("<IIII", EXT_TAG_GENERATOR, 0, ext_data_at,
                                                               len(GENERATOR)) + GENERATOR
    head = NEW_MAGIC + struct.pack("<IIB3xI12x", len(ordered), len(strings), 2, ext_at)
    assert len(head) == header
    return head + body + bytes(strings) + padding + extension
