"""Locales (docs/loader.md#r8).

glibc has only `C` (= `POSIX`) built in; `C.UTF-8` too is data, `/usr/lib/locale/C.utf8` (Debian's libc-bin
ships it; glibc 2.35+ can build it but does not compile it in). `setlocale(LC_ALL, "en_US.UTF-8")` looks in
the archive `/usr/lib/locale/locale-archive` first, then for a directory `/usr/lib/locale/<name>` holding
`LC_CTYPE`, `LC_TIME`... under the name as given and with its codeset normalized (`en_US.utf8`); with
`LOCPATH` set, only in the directories it lists. Nothing found is not an error for glibc: setlocale returns
NULL and the program carries on in `C` (perl warns "Setting locale failed").

A locale directory is copied as it is. A locale that is only in the archive brings the archive whole (it
is one file; the pipeline carries generated files as text, so minibuild does not cut it). The codeset of
each locale (LC_CTYPE's `CODESET` item) is returned: libc converts a non-UTF-8 locale's multibyte text
through that charset's gconv module, which `plan_gconv` then adds.
"""

from __future__ import annotations

import difflib
import mmap
import stat
import struct

from minibuild.elf.sysroot import Sysroot
from minibuild.errors import InputError
from minibuild.image.runtime.copy import copy_path, copy_tree
from minibuild.image.runtime.model import RuntimePlan, TreeSpec

LOCALE_DIR = "/usr/lib/locale"
ARCHIVE = f"{LOCALE_DIR}/locale-archive"
ALIASES = "/usr/share/locale/locale.alias"
TRIGGERS = frozenset({"setlocale", "newlocale"})
BUILTIN = frozenset({"C", "POSIX"})
# The variables that name a locale, strongest first: LC_ALL overrides everything, LANG is the fallback.
CATEGORIES = ("LC_CTYPE", "LC_NUMERIC", "LC_TIME", "LC_COLLATE", "LC_MONETARY", "LC_MESSAGES", "LC_PAPER",
              "LC_NAME", "LC_ADDRESS", "LC_TELEPHONE", "LC_MEASUREMENT", "LC_IDENTIFICATION")

_LC_CTYPE_MAGIC = 0x20090720  # locale/localeinfo.h: the magic of an LC_CTYPE file
_CODESET_ITEM = 14  # langinfo.h: CODESET = _NL_CTYPE_CODESET_NAME, item 14 of LC_CTYPE (an ABI constant)
_ARCHIVE_MAGIC = 0xDE020109  # locale/locarchive.h: AR_MAGIC
_LC_LAST = 13  # __LC_LAST: the records of a locrecent, LC_ALL's (6) unused


def env_locales(env: dict[str, str]) -> list[str]:
    """The locales an image's environment selects, as glibc's setlocale(LC_ALL, "") reads it."""
    if env.get("LC_ALL"):
        names = [env["LC_ALL"]]
    else:
        names = [env[c] for c in CATEGORIES if env.get(c)]
        if env.get("LANG") and not all(env.get(c) for c in CATEGORIES):
            names.append(env["LANG"])
    return [n for n in dict.fromkeys(names) if n not in BUILTIN]


def normalize_codeset(codeset: str) -> str:
    """glibc's _nl_normalize_codeset: letters lowered, digits kept, the rest dropped; all digits get `iso`."""
    kept = "".join(c.lower() for c in codeset if c.isascii() and c.isalnum())
    return "iso" + kept if kept.isdigit() else kept


def candidates(name: str) -> list[str]:
    """The names glibc tries for `name`: as given, then with the codeset normalized (`en_US.UTF-8` -> `en_US.utf8`)."""
    out = [name]
    base, dot, rest = name.partition(".")
    if dot:
        codeset, at, modifier = rest.partition("@")
        out.append(f"{base}.{normalize_codeset(codeset)}{at}{modifier}")
    return list(dict.fromkeys(out))


def ctype_codeset(data: bytes | memoryview | mmap.mmap, offset: int = 0) -> str | None:
    """The CODESET of an LC_CTYPE file (or record of the archive) starting at `offset`, or None if unreadable."""
    try:
        magic, count = struct.unpack_from("<II", data, offset)
        if magic != _LC_CTYPE_MAGIC or count <= _CODESET_ITEM:
            return None
        (item,) = struct.unpack_from("<I", data, offset + 8 + 4 * _CODESET_ITEM)
        start = offset + item
        end = bytes(data[start:start + 256]).index(b"\0")
        return bytes(data[start:start + end]).decode("ascii")
    except (struct.error, ValueError, UnicodeDecodeError):
        return None


def archive_locales(host_path: str) -> dict[str, str | None]:
    """The locales of a locale-archive (locarchive.h): {name: codeset}. Empty if it is not one."""
    try:
        with open(host_path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            header = struct.unpack_from("<14I", data, 0)
            if header[0] != _ARCHIVE_MAGIC:
                return {}
            namehash_offset, _used, namehash_size = header[2:5]
            out: dict[str, str | None] = {}
            for i in range(namehash_size):
                _hash, name_offset, locrec_offset = struct.unpack_from("<3I", data, namehash_offset + 12 * i)
                if name_offset == 0:
                    continue
                name = bytes(data[name_offset:data.find(b"\0", name_offset)]).decode("utf-8", "replace")
                ctype_offset, _len = struct.unpack_from("<II", data, locrec_offset + 4)  # record[LC_CTYPE = 0]
                out[name] = ctype_codeset(data, ctype_offset)
            return out
    except (OSError, ValueError, struct.error):
        return {}


def _aliases(fs: Sysroot) -> dict[str, str]:
    """locale.alias: lower-cased alias -> locale (glibc compares aliases without regard to case)."""
    text = fs.read_text(ALIASES) or ""
    out: dict[str, str] = {}
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) >= 2:
            out.setdefault(words[0].lower(), words[1])
    return out


def _is_dir(fs: Sysroot, path: str) -> bool:
    look = fs.lookup(path)
    return look.st is not None and stat.S_ISDIR(look.st.st_mode)


def plan_locales(plan: RuntimePlan, fs: Sysroot, *, want: bool | tuple[str, ...] | None, glibc: bool,
                 importers: list[str], env: dict[str, str]) -> dict[str, str]:
    """Add the locales; returns the codesets they use, each with why (for gconv modules)."""
    if want is False:
        return {}
    explicit = isinstance(want, tuple)
    if not glibc:
        if want is not None:
            raise InputError("`locales`: the closure has no glibc `libc.so.6`; these are glibc's locales",
                             hint="musl reads MUSL_LOCPATH, not /usr/lib/locale: ship its files with `files`")
        return {}
    locpath = [d for d in env.get("LOCPATH", "").split(":") if d.startswith("/")]
    dirs = locpath or [LOCALE_DIR]
    codesets: dict[str, str] = {}
    if want is True:
        for d in dirs:
            if not copy_tree(fs, TreeSpec(d, (), "locales (locales = true)"), plan):
                raise InputError(f"`locales = true` but `{d}` is not a directory in sysroot `{fs.root}`")
            for name in fs.listdir(d):
                codeset = ctype_codeset(fs.read_bytes(f"{d}/{name}/LC_CTYPE") or b"") if _is_dir(fs, f"{d}/{name}") \
                    else None
                if codeset:
                    codesets.setdefault(codeset, f"charset of locale {name}")
        if not locpath:
            for name, codeset in _archive(fs).items():
                if codeset:
                    codesets.setdefault(codeset, f"charset of locale {name}")
        copy_path(fs, ALIASES, "locale aliases (locales = true)", plan)
        return codesets
    if isinstance(want, tuple):  # explicit
        names = list(dict.fromkeys(want))
        for name in names:
            if not name or "/" in name or name.startswith("."):
                raise InputError(f"`locales`: `{name}` is not a locale name such as `en_US.UTF-8`")
    else:
        names = env_locales(env) if importers else []
    archive: dict[str, str | None] | None = None
    aliases: dict[str, str] | None = None

    def find(locale: str, reason: str) -> tuple[str | None, str | None]:
        """A locale directory, or the archive when only it holds the locale (then copied); and its codeset."""
        nonlocal archive
        found, codeset = _find_dir(fs, dirs, locale)
        if found is None and not locpath:
            archive = _archive(fs) if archive is None else archive
            hit = next((c for c in candidates(locale) if c in archive), None)
            if hit is not None:
                _copy_archive(plan, fs, archive, locale, reason)
                return ARCHIVE, archive[hit]
        return found, codeset

    for name in names:
        if name in BUILTIN:
            continue
        reason = f"locale {name}" + ("" if explicit else f" (of the image's environment, for {importers[0]})")
        found, codeset = find(name, reason)
        if found is None:
            aliases = _aliases(fs) if aliases is None else aliases
            target = aliases.get(name.lower())
            if target is not None:
                found, codeset = find(target, reason)
                if found is not None:
                    copy_path(fs, ALIASES, f"alias of {name}", plan)
        if found is None:
            _missing(plan, fs, dirs, name, explicit, archive if archive is not None else _archive(fs), locpath)
            continue
        if found != ARCHIVE:
            copy_path(fs, found, reason, plan, follow_dir=True)
        if codeset:
            codesets.setdefault(codeset, f"charset {codeset} of locale {name}")
    return codesets


def _find_dir(fs: Sysroot, dirs: list[str], name: str) -> tuple[str | None, str | None]:
    for d in dirs:
        for candidate in candidates(name):
            path = f"{d}/{candidate}"
            if _is_dir(fs, path):
                return path, ctype_codeset(fs.read_bytes(f"{path}/LC_CTYPE") or b"")
    return None, None


def _archive(fs: Sysroot) -> dict[str, str | None]:
    look = fs.lookup(ARCHIVE)
    if look.realpath is None or look.st is None or not stat.S_ISREG(look.st.st_mode):
        return {}
    return archive_locales(fs.host(look.realpath))


def _copy_archive(plan: RuntimePlan, fs: Sysroot, archive: dict[str, str | None], name: str, reason: str) -> None:
    if ARCHIVE in plan.files:
        return
    copy_path(fs, ARCHIVE, reason + " (in the locale archive)", plan)
    entry = plan.files.get(fs.lookup(ARCHIVE).realpath or ARCHIVE)
    others = len(archive) - 1
    if others > 0 and entry is not None:
        plan.warnings.append(
            f"`locales`: `{name}` is only in `{ARCHIVE}`, copied whole ({entry.size:,} bytes, {len(archive)} locales); "
            f"`localedef --no-archive` in the sysroot makes a directory `{LOCALE_DIR}/<name>` that ships alone")


def _missing(plan: RuntimePlan, fs: Sysroot, dirs: list[str], name: str, explicit: bool,
             archive: dict[str, str | None], locpath: list[str]) -> None:
    where = " or ".join(f"`{d}`" for d in dirs) + ("" if locpath else f" or `{ARCHIVE}`")
    message = f"`locales`: locale `{name}` is not in {where} of sysroot `{fs.root}`"
    if not explicit:
        plan.warnings.append(f"{message}; setlocale fails and the program runs in the `C` locale")
        return
    have = sorted({n for d in dirs for n in fs.listdir(d) if _is_dir(fs, f"{d}/{n}")} | set(archive))
    close = difflib.get_close_matches(name, have, n=3) or difflib.get_close_matches(candidates(name)[-1], have, n=3)
    if close:
        hint = f"did you mean {', '.join(f'`{c}`' for c in close)}?"
    else:
        hint = (f"the sysroot has {', '.join(f'`{h}`' for h in have)}; " if have else "") + \
            "generate it in the sysroot: `localedef -i en_US -f UTF-8 --no-archive <sysroot>/usr/lib/locale/en_US.utf8`"
    raise InputError(message, hint=hint)
