"""The dynamic symbols an ELF object imports: the undefined entries of `.dynsym`.

`minibuild.elf.parse` reads only what the loader reads (headers, PT_DYNAMIC, version tables); runtime
detection also needs the imported names (ELF.md section 7: `pthread_cancel` means libgcc_s.so.1 will be
dlopened). They are read with pyelftools from the `.dynsym` section, or, when the section headers were
stripped, from the symbol table PT_DYNAMIC points at. Results are cached per process by file identity.
"""

from __future__ import annotations

import os

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
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        with open(host_path, "rb") as f:
            elf = ELFFile(f)
            table = elf.get_section_by_name(".dynsym")
            if table is None:
                table = next((seg for seg in elf.iter_segments() if seg["p_type"] == "PT_DYNAMIC"), None)
            if table is None:
                return frozenset()
            return frozenset(sym.name for sym in table.iter_symbols()
                             if sym.name and sym["st_shndx"] == "SHN_UNDEF")
    except (ELFError, OSError, ValueError, KeyError, AttributeError):
        return frozenset()
