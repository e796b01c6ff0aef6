"""Read what the loader reads from an ELF file: the header, program headers and PT_DYNAMIC.

Section headers are never consulted (stripped files may have none) and nothing outside the
ELF header, the program headers, PT_INTERP, PT_DYNAMIC, the dynamic string table and the
version tables is read. Parsing is done with `struct` rather than pyelftools: it touches a few
hundred bytes per file and is several times faster (see benchmarks/closure.py).

Results are cached per process by file identity (st_dev, st_ino, st_size, st_mtime_ns), so a
file that changes on disk is parsed again.
"""

from __future__ import annotations

import os
import stat
import struct
from dataclasses import dataclass
from typing import NamedTuple

ELF_MAGIC = b"\x7fELF"
EHDR_MIN = 64  # glibc's open_verify rejects anything shorter as "file too short"

ET_EXEC, ET_DYN = 2, 3
PT_LOAD, PT_DYNAMIC, PT_INTERP = 1, 2, 3
DT_NULL, DT_NEEDED, DT_STRTAB, DT_STRSZ, DT_SONAME, DT_RPATH = 0, 1, 5, 10, 14, 15
DT_RUNPATH, DT_FLAGS_1 = 29, 0x6FFFFFFB
DT_VERDEF, DT_VERDEFNUM, DT_VERNEED, DT_VERNEEDNUM = 0x6FFFFFFC, 0x6FFFFFFD, 0x6FFFFFFE, 0x6FFFFFFF
DT_AUXILIARY, DT_FILTER = 0x7FFFFFFD, 0x7FFFFFFF
DF_1_NOW, DF_1_NODEFLIB, DF_1_PIE = 0x1, 0x800, 0x08000000
VER_FLG_WEAK = 0x2
ELFOSABI_SYSV, ELFOSABI_GNU = 0, 3
PN_XNUM = 0xFFFF

# Dependency kinds, in the order they appear in PT_DYNAMIC (glibc walks l_ld in that order).
DEP_TAGS = {DT_NEEDED: "needed", DT_AUXILIARY: "auxiliary", DT_FILTER: "filter"}

# The machines the loader model knows (profile.py) are named here: pyelftools' table costs ~25 ms of imports
# (elftools.construct) that a closure of ordinary programs never needs. Any other machine is looked up there.
KNOWN_MACHINES: dict[int, str] = {3: "EM_386", 21: "EM_PPC64", 22: "EM_S390", 40: "EM_ARM", 62: "EM_X86_64",
                                  183: "EM_AARCH64", 243: "EM_RISCV"}
_MACHINE_NAMES: dict[int, str] = dict(KNOWN_MACHINES)
_ALL_MACHINES = [False]


def machine_name(machine: int) -> str:
    """`EM_X86_64` etc.; pyelftools' table for a machine the loader model does not know (imported then)."""
    name = _MACHINE_NAMES.get(machine)
    if name is None and not _ALL_MACHINES[0]:
        from elftools.elf.enums import ENUM_E_MACHINE

        _MACHINE_NAMES.update({v: k for k, v in ENUM_E_MACHINE.items() if k.startswith("EM_") and v not in
                               KNOWN_MACHINES})
        _ALL_MACHINES[0] = True
        name = _MACHINE_NAMES.get(machine)
    return name or f"EM_{machine}"

# Bound every loop over attacker-controlled counts; real files stay far below these.
MAX_DYN_ENTRIES = 1 << 16
MAX_VERSION_RECORDS = 1 << 12


class ElfFormatError(Exception):
    """The file is not a loadable ELF object; the loader would refuse it as fatal."""


@dataclass(frozen=True)
class ElfInfo:
    """The loader-relevant facts of one ELF file."""

    elfclass: int  # 1 = ELFCLASS32, 2 = ELFCLASS64
    data: int  # 1 = little-endian, 2 = big-endian
    osabi: int
    abiversion: int
    e_type: int
    machine: int
    e_flags: int
    interp: str | None
    has_dynamic: bool
    deps: tuple[tuple[str, str], ...]  # (kind, name) in PT_DYNAMIC order: needed/filter/auxiliary
    soname: str | None
    rpath: str | None
    runpath: str | None
    flags_1: int
    verneed: tuple[tuple[str, tuple[tuple[str, bool], ...]], ...]  # (file, ((version, weak), ...))
    verdef: frozenset[str]

    @property
    def needed(self) -> tuple[str, ...]:
        return tuple(name for kind, name in self.deps if kind == "needed")

    @property
    def machine_name(self) -> str:
        return machine_name(self.machine)

    @property
    def nodeflib(self) -> bool:
        return bool(self.flags_1 & DF_1_NODEFLIB)

    @property
    def is_pie(self) -> bool:
        return bool(self.flags_1 & DF_1_PIE)


FileKey = tuple[int, int, int, int]
_CACHE: dict[FileKey, ElfInfo | ElfFormatError] = {}


def file_key(st: os.stat_result) -> FileKey:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def clear_cache() -> None:
    _CACHE.clear()


def read_elf(host_path: str, st: os.stat_result | None = None) -> ElfInfo:
    """Parse `host_path` (a host path, already resolved inside the sysroot).

    Raises ElfFormatError for anything glibc's `open_verify` treats as fatal regardless of the
    requester (short file, bad magic, bad ident, truncated tables) and OSError if it cannot be read.
    """
    if st is None:
        st = os.stat(host_path)
    if not stat.S_ISREG(st.st_mode):
        raise ElfFormatError("not a regular file")
    key = file_key(st)
    hit = _CACHE.get(key)
    if hit is None:
        try:
            hit = _parse(host_path, st.st_size)
        except ElfFormatError as exc:
            hit = exc
        _CACHE[key] = hit
    if isinstance(hit, ElfFormatError):
        raise hit
    return hit


class _Reader:
    """pread-based access bounded by the file size, through a small cache of 4 KiB blocks.

    The tables we need (dynamic section, a few strings, version records) are small and close
    together; reading whole blocks once avoids one pread per record and never pulls in a large
    string table just to read three names out of it.
    """

    BLOCK = 4096

    def __init__(self, fd: int, size: int, head: bytes) -> None:
        self.fd, self.size = fd, size
        self.head = head
        self.blocks: dict[int, bytes] = {0: head}

    def _block(self, index: int) -> bytes:
        blk = self.blocks.get(index)
        if blk is None:
            blk = self.blocks[index] = os.pread(self.fd, self.BLOCK, index * self.BLOCK)
        return blk

    def read(self, offset: int, length: int, what: str) -> bytes:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise ElfFormatError(f"truncated: {what} lies outside the file ({offset}+{length} > {self.size})")
        if length > 16 * self.BLOCK:
            data = os.pread(self.fd, length, offset)
        else:
            first, last = offset // self.BLOCK, (offset + length - 1) // self.BLOCK if length else offset // self.BLOCK
            data = b"".join(self._block(i) for i in range(first, last + 1))
            start = offset - first * self.BLOCK
            data = data[start : start + length]
        if len(data) != length:
            raise ElfFormatError(f"truncated: short read of {what}")
        return data

    def cstring(self, offset: int, end: int, what: str) -> bytes:
        """The NUL-terminated string at `offset`, which must end before `end`."""
        if offset < 0 or offset >= min(end, self.size):
            raise ElfFormatError(f"{what}: string offset outside the table")
        out = []
        pos = offset
        limit = min(end, self.size)
        while pos < limit:
            index = pos // self.BLOCK
            blk = self._block(index)
            start = pos - index * self.BLOCK
            stop = blk.find(b"\0", start)
            if stop >= 0:
                out.append(blk[start:stop])
                break
            if not blk:
                break
            out.append(blk[start:])
            pos = (index + 1) * self.BLOCK
        return b"".join(out)[: limit - offset]


def _parse(host_path: str, size: int) -> ElfInfo:
    fd = os.open(host_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        head = os.pread(fd, 4096, 0)
        return _parse_fd(_Reader(fd, size, head))
    except struct.error as exc:  # a table shorter than its header says
        raise ElfFormatError(f"truncated: {exc}") from None
    finally:
        os.close(fd)


def _parse_fd(r: _Reader) -> ElfInfo:
    elfclass, data, osabi, abiversion = _read_ident(r)
    end = "<" if data == 1 else ">"
    is64 = elfclass == 2
    e_type, e_machine, e_flags, e_phnum, phent, phdrs = _read_header(r, end, is64)
    interp, dynamic, loads = _read_segments(r, end, is64, e_phnum, phent, phdrs)
    dyn = _NO_DYNAMIC if dynamic is None else _read_dynamic(r, end, is64, loads, *dynamic)
    return ElfInfo(
        elfclass=elfclass, data=data, osabi=osabi, abiversion=abiversion, e_type=e_type, machine=e_machine,
        e_flags=e_flags, interp=interp, has_dynamic=dynamic is not None, deps=dyn.deps, soname=dyn.soname,
        rpath=dyn.rpath, runpath=dyn.runpath, flags_1=dyn.flags_1, verneed=dyn.verneed, verdef=dyn.verdef,
    )


def _read_ident(r: _Reader) -> tuple[int, int, int, int]:
    """e_ident, checked as `open_verify` does: (class, data encoding, OSABI, ABI version)."""
    head = r.head
    if len(head) < 4 or head[:4] != ELF_MAGIC:
        raise ElfFormatError("invalid ELF header (bad magic)")
    if r.size < EHDR_MIN or len(head) < EHDR_MIN:
        raise ElfFormatError("file too short")
    elfclass, data, ei_version, osabi, abiversion = head[4], head[5], head[6], head[7], head[8]
    if elfclass not in (1, 2):
        raise ElfFormatError(f"invalid ELF class {elfclass}")
    if data not in (1, 2):
        raise ElfFormatError(f"invalid ELF data encoding {data}")
    if ei_version != 1:
        raise ElfFormatError(f"invalid ELF version {ei_version}")
    if any(head[9:16]):
        raise ElfFormatError("non-zero ELF ident padding")
    return elfclass, data, osabi, abiversion


def _read_header(r: _Reader, end: str, is64: bool) -> tuple[int, int, int, int, int, bytes]:
    """The rest of the ELF header and the program header table: (type, machine, flags, count, entry size, table)."""
    head = r.head
    if is64:
        (e_type, e_machine, e_version, _entry, e_phoff, e_shoff, e_flags, _ehsize, e_phentsize, e_phnum,
         _shentsize, _shnum, _shstrndx) = struct.unpack_from(end + "HHIQQQIHHHHHH", head, 16)
    else:
        (e_type, e_machine, e_version, _entry, e_phoff, e_shoff, e_flags, _ehsize, e_phentsize, e_phnum,
         _shentsize, _shnum, _shstrndx) = struct.unpack_from(end + "HHIIIIIHHHHHH", head, 16)
    if e_version != 1:
        raise ElfFormatError(f"invalid e_version {e_version}")
    if e_type not in (ET_EXEC, ET_DYN):
        raise ElfFormatError(f"e_type {e_type} is neither ET_EXEC nor ET_DYN")
    phent = 56 if is64 else 32
    if e_phentsize != phent:
        raise ElfFormatError(f"e_phentsize {e_phentsize} should be {phent}")
    if e_phnum == PN_XNUM:
        # The real count lives in sh_info of section header 0.
        sh0 = r.read(e_shoff, 64 if is64 else 40, "section header 0")
        e_phnum = struct.unpack_from(end + "I", sh0, 44 if is64 else 28)[0]
    phdrs = r.read(e_phoff, e_phnum * phent, "program headers")
    return e_type, e_machine, e_flags, e_phnum, phent, phdrs


def _read_segments(r: _Reader, end: str, is64: bool, e_phnum: int, phent: int,
                   phdrs: bytes) -> tuple[str | None, tuple[int, int] | None, list[tuple[int, int, int]]]:
    """PT_INTERP, the first PT_DYNAMIC (offset, size) and the PT_LOAD segments (vaddr, offset, filesz)."""
    interp = None
    dynamic: tuple[int, int] | None = None
    loads: list[tuple[int, int, int]] = []  # (vaddr, offset, filesz)
    fmt = end + ("IIQQQQQQ" if is64 else "IIIIIIII")
    for i in range(e_phnum):
        f = struct.unpack_from(fmt, phdrs, i * phent)
        if is64:
            p_type, p_offset, p_vaddr, p_filesz = f[0], f[2], f[3], f[5]
        else:
            p_type, p_offset, p_vaddr, p_filesz = f[0], f[1], f[2], f[4]
        if p_type == PT_LOAD:
            loads.append((p_vaddr, p_offset, p_filesz))
        elif p_type == PT_INTERP and interp is None:
            raw = r.read(p_offset, p_filesz, "PT_INTERP")
            interp = _decode(raw.split(b"\0", 1)[0])
        elif p_type == PT_DYNAMIC and dynamic is None:
            dynamic = (p_offset, p_filesz)
    return interp, dynamic, loads


class _Dynamic(NamedTuple):
    """What PT_DYNAMIC says, strings resolved."""

    deps: tuple[tuple[str, str], ...] = ()
    soname: str | None = None
    rpath: str | None = None
    runpath: str | None = None
    flags_1: int = 0
    verneed: tuple = ()
    verdef: frozenset[str] = frozenset()


_NO_DYNAMIC = _Dynamic()


def _read_dynamic(r: _Reader, end: str, is64: bool, loads: list[tuple[int, int, int]], dyn_off: int,
                  dyn_size: int) -> _Dynamic:
    deps: list[tuple[str, str]] = []
    soname = rpath = runpath = None
    verneed: tuple = ()
    verdef: frozenset[str] = frozenset()
    entsize = 16 if is64 else 8
    count = min(dyn_size // entsize, MAX_DYN_ENTRIES)
    raw = r.read(dyn_off, count * entsize, "PT_DYNAMIC")
    tags: list[tuple[int, int]] = []
    dfmt = end + ("qQ" if is64 else "iI")
    for tag, val in struct.iter_unpack(dfmt, raw):
        if tag == DT_NULL:
            break
        tags.append((tag, val))
    values: dict[int, int] = {}
    for tag, val in tags:
        values.setdefault(tag, val)
    if DT_STRTAB in values:
        strtab_off = _vaddr_to_offset(loads, values[DT_STRTAB])
        strsz = values.get(DT_STRSZ, 0)
        strtab_end = strtab_off + strsz if strsz else r.size

        def string(off: int) -> str:
            return _decode(r.cstring(strtab_off + off, strtab_end, "DT_STRTAB"))

        for tag, val in tags:
            kind = DEP_TAGS.get(tag)
            if kind:
                deps.append((kind, string(val)))
        if DT_SONAME in values:
            soname = string(values[DT_SONAME])
        if DT_RPATH in values:
            rpath = string(values[DT_RPATH])
        if DT_RUNPATH in values:
            runpath = string(values[DT_RUNPATH])
        if DT_VERNEED in values:
            verneed = _read_verneed(r, end, loads, values[DT_VERNEED], values.get(DT_VERNEEDNUM, 0), string)
        if DT_VERDEF in values:
            verdef = _read_verdef(r, end, loads, values[DT_VERDEF], values.get(DT_VERDEFNUM, 0), string)
    elif any(t in DEP_TAGS or t in (DT_SONAME, DT_RPATH, DT_RUNPATH) for t, _ in tags):
        raise ElfFormatError("PT_DYNAMIC has strings but no DT_STRTAB")
    flags_1 = values.get(DT_FLAGS_1, 0)
    return _Dynamic(tuple(deps), soname, rpath, runpath, flags_1, verneed, verdef)


def _decode(raw: bytes) -> str:
    # Paths are bytes to the kernel; surrogateescape round-trips any non-UTF-8 name.
    return raw.decode("utf-8", "surrogateescape")


def _vaddr_to_offset(loads: list[tuple[int, int, int]], addr: int) -> int:
    for vaddr, offset, filesz in loads:
        if vaddr <= addr < vaddr + filesz:
            return addr - vaddr + offset
    raise ElfFormatError(f"address {addr:#x} is not inside any PT_LOAD segment")


def _read_verneed(r: _Reader, end: str, loads, addr: int, num: int, string) -> tuple:
    out = []
    off = _vaddr_to_offset(loads, addr)
    for _ in range(min(num, MAX_VERSION_RECORDS)):
        _vn_version, vn_cnt, vn_file, vn_aux, vn_next = struct.unpack(end + "HHIII", r.read(off, 16, "verneed"))
        versions = []
        aoff = off + vn_aux
        for _ in range(min(vn_cnt, MAX_VERSION_RECORDS)):
            _hash, flags, _other, name, anext = struct.unpack(end + "IHHII", r.read(aoff, 16, "vernaux"))
            versions.append((string(name), bool(flags & VER_FLG_WEAK)))
            if not anext:
                break
            aoff += anext
        out.append((string(vn_file), tuple(versions)))
        if not vn_next:
            break
        off += vn_next
    return tuple(out)


def _read_verdef(r: _Reader, end: str, loads, addr: int, num: int, string) -> frozenset[str]:
    names = set()
    off = _vaddr_to_offset(loads, addr)
    for _ in range(min(num, MAX_VERSION_RECORDS)):
        _ver, _flags, _ndx, cnt, _hash, aux, nxt = struct.unpack(end + "HHHHIII", r.read(off, 20, "verdef"))
        if cnt:
            (name,) = struct.unpack(end + "I", r.read(off + aux, 4, "verdaux"))
            names.add(string(name))
        if not nxt:
            break
        off += nxt
    return frozenset(names)
