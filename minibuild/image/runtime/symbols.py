"""The dynamic symbols an ELF object imports: the undefined entries of `.dynsym`.

`minibuild.elf.parse` reads only what the loader reads (headers, PT_DYNAMIC, version tables); runtime
detection also needs the imported names (docs/loader.md#sec-7: `pthread_cancel` means libgcc_s.so.1 will be
dlopened). They are read from the `.dynsym` section with `struct`, or, when the section headers were
stripped, from the symbol table PT_DYNAMIC points at, with pyelftools. Results are cached per process by file identity.
"""

from __future__ import annotations

import os
import struct
from typing import BinaryIO

from minibuild.elf.parse import FileKey, file_key

_CACHE: dict[FileKey, frozenset[str]] = {}


def imported_symbols(host_path: str) -> frozenset[str]:
    """Names of the undefined dynamic symbols of `host_path` (empty for a non-ELF or unreadable file)."""
    try:
        st = os.stat(host_path)
    except OSError:
        return frozenset()
    key = file_key(st)
    hit = _CACHE.get(key)
    if hit is None:
        hit = _CACHE[key] = _read(host_path)
    return hit


def _read(host_path: str) -> frozenset[str]:
    try:
        with open(host_path, "rb") as f:
            fast = _read_dynsym(f)
    except (OSError, struct.error, ValueError):
        return frozenset()
    return fast if fast is not None else _read_with_pyelftools(host_path)


# Section header and symbol layouts (ELF gABI), by ELF class: 32 or 64 bits.
_SHDR = {1: "IIIIIIIIII", 2: "IIQQQQIIQQ"}
_SYM = {1: "IIIBBH", 2: "IBBHQQ"}
_SHT_DYNSYM = 11


def _read_dynsym(f: BinaryIO) -> frozenset[str] | None:
    """The undefined names of `.dynsym`, read with `struct` (pyelftools takes ~0.3 s on libc's 3,000 symbols).
    None when the file has no section headers or no `.dynsym`: the caller falls back to PT_DYNAMIC."""
    head = f.read(64)
    if head[:4] != b"\x7fELF" or head[4] not in (1, 2) or head[5] not in (1, 2):
        return frozenset()
    cls, end = head[4], "<" if head[5] == 1 else ">"
    # e_shoff, then e_shentsize and e_shnum, where each class keeps them.
    off_format, off_at, counts_at = ("Q", 0x28, 0x3A) if cls == 2 else ("I", 0x20, 0x2E)
    [shoff] = struct.unpack_from(end + off_format, head, off_at)
    shentsize, shnum = struct.unpack_from(end + "HH", head, counts_at)
    shdr = struct.Struct(end + _SHDR[cls])
    if shoff == 0 or shnum == 0 or shentsize < shdr.size:
        return None
    f.seek(shoff)
    table = f.read(shentsize * shnum)
    sections = [shdr.unpack_from(table, i * shentsize) for i in range(len(table) // shentsize)]
    dynsym = next((s for s in sections if s[1] == _SHT_DYNSYM), None)
    if dynsym is None or dynsym[6] >= len(sections):
        return None
    strtab = sections[dynsym[6]]
    f.seek(strtab[4])
    strings = f.read(strtab[5])
    f.seek(dynsym[4])
    symbols = f.read(dynsym[5])
    sym = struct.Struct(end + _SYM[cls])
    name_at, shndx_at = 0, (3 if cls == 2 else 5)
    names = set()
    for entry in sym.iter_unpack(symbols[:len(symbols) - len(symbols) % sym.size]):
        if entry[shndx_at] == 0 and entry[name_at]:  # SHN_UNDEF, named
            start = entry[name_at]
            stop = strings.find(b"\0", start)
            names.add(strings[start:stop if stop >= 0 else len(strings)].decode("utf-8", "replace"))
    return frozenset(names)


def _read_with_pyelftools(host_path: str) -> frozenset[str]:
    """Stripped section headers: the symbol table PT_DYNAMIC points at, through pyelftools."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.dynamic import DynamicSegment
    from elftools.elf.elffile import ELFFile

    try:
        with open(host_path, "rb") as f:
            elf = ELFFile(f)
            table = next((seg for seg in elf.iter_segments() if seg["p_type"] == "PT_DYNAMIC"), None)
            if not isinstance(table, DynamicSegment):  # none (pyelftools makes every PT_DYNAMIC one)
                return frozenset()
            return frozenset(sym.name for sym in table.iter_symbols()
                             if sym.name and sym["st_shndx"] == "SHN_UNDEF")
    except (ELFError, OSError, ValueError, KeyError, AttributeError):
        return frozenset()
