"""glibc's iconv modules (docs/loader.md#r3).

`iconv_open` converts between UTF-8, UCS-2, UCS-4 and ASCII (and their aliases, `BUILTIN` below) with code
compiled into libc.so.6; every other charset, ISO-8859-1 and UTF-16 included, is a module `<NAME>.so` of
the gconv directory (`/usr/lib/x86_64-linux-gnu/gconv` on Debian), found through the configuration files
`gconv-modules` and `gconv-modules.d/*.conf` (or their compiled form `gconv-modules.cache`) and dlopened by
full path. Without it `iconv_open` fails with EINVAL. libc itself converts the charset of a non-UTF-8
locale (`de_DE.ISO-8859-1`) through the same modules (mbstowcs fails without it): `plan_locales` asks
for those.

A module is resolved as an ELF root: `EUC-JP.so` NEEDs `libJIS.so` through RUNPATH `$ORIGIN`. For a set
of modules the configuration files naming them are copied (the main `gconv-modules` alone is 4 KB and
configures the default set); the cache, which indexes every module of the directory, only comes with
`gconv = true`, which copies the directory whole.
"""

from __future__ import annotations

import difflib
import os
import posixpath
import re
from dataclasses import dataclass, field

from minibuild.elf.parse import FileKey, file_key
from minibuild.elf.sysroot import Sysroot
from minibuild.errors import InputError
from minibuild.image.runtime.copy import copy_path, copy_tree
from minibuild.image.runtime.model import RuntimePlan, TreeSpec

TRIGGERS = frozenset({"iconv_open"})
# glibc's iconv/gconv_builtin.h (unchanged from 2.x to 2.40): names iconv_open accepts with no module.
BUILTIN = frozenset({
    "ISO-10646/UCS4", "UCS4", "UCS-4", "UCS-4BE", "CSUCS4", "ISO-10646", "10646-1:1993", "10646-1:1993/UCS4",
    "OSF00010104", "OSF00010105", "OSF00010106", "UCS-4LE", "WCHAR_T",
    "ISO-10646/UTF8", "UTF8", "UTF-8", "ISO-IR-193", "OSF05010001", "ISO-10646/UTF-8",
    "ISO-10646/UCS2", "UCS2", "UCS-2", "OSF00010100", "OSF00010101", "OSF00010102",
    "UNICODELITTLE", "UNICODEBIG", "UCS-2LE", "UCS-2BE",
    "ANSI_X3.4-1968", "ANSI_X3.4", "ISO-IR-6", "ANSI_X3.4-1986", "ISO_646.IRV:1991", "ASCII", "ISO646-US",
    "US-ASCII", "US", "IBM367", "CP367", "CSASCII", "OSF00010020",
})
# The auto set: the charsets most conversions outside Unicode involve (Windows and Java interchange, legacy
# Western European text). Each name brings its module, its LE/BE variants come with it (UTF-16.so serves
# UTF-16, UTF-16LE and UTF-16BE).
DEFAULT = ("ISO-8859-1", "ISO-8859-15", "CP1252", "UTF-16", "UTF-32")
CONFIG = "gconv-modules"
CONFIG_DIR = "gconv-modules.d"


@dataclass
class GconvConfig:
    """What the configuration files of one gconv directory say: names, aliases, and module files."""

    directory: str
    aliases: dict[str, tuple[str, str]] = field(default_factory=dict)  # ALIAS -> (CHARSET, config file)
    modules: dict[str, dict[str, str]] = field(default_factory=dict)  # CHARSET -> {module path: config file}

    def names(self) -> list[str]:
        return sorted(set(self.aliases) | set(self.modules))

    def lookup(self, name: str) -> tuple[str, dict[str, str], set[str]] | None:
        """(charset, {module: config file}, config files used), or None for a name no file configures."""
        key = normalize(name)
        files: set[str] = set()
        charset = key
        if key in self.aliases:
            charset, conf = self.aliases[key]
            files.add(conf)
        modules = self.modules.get(charset)
        if not modules:
            return None
        return charset, modules, files | set(modules.values())


def normalize(name: str) -> str:
    """The key glibc looks a charset up by: upper case, without `//TRANSLIT`-style suffixes and trailing `/`."""
    upper = name.strip().upper()
    if "//" in upper:
        upper = upper.split("//", 1)[0]
    return upper.rstrip("/")


def builtin(name: str) -> bool:
    return normalize(name) in BUILTIN


def parse_config(text: str, directory: str, conf: str, into: GconvConfig) -> None:
    """Add the `alias` and `module` lines of one configuration file (gconv_conf.c's format) to `into`."""
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) >= 3 and words[0] == "alias":
            into.aliases.setdefault(normalize(words[1]), (normalize(words[2]), conf))
        elif len(words) >= 4 and words[0] == "module":
            module = words[3] if words[3].startswith("/") else posixpath.join(directory, words[3])
            if not module.endswith(".so"):
                module += ".so"
            for charset in (normalize(words[1]), normalize(words[2])):
                if charset != "INTERNAL":
                    into.modules.setdefault(charset, {}).setdefault(module, conf)


def read_config(fs: Sysroot, directory: str) -> GconvConfig | None:
    """The configuration of `directory` in the sysroot: `gconv-modules`, then `gconv-modules.d/*.conf`."""
    config = GconvConfig(directory)
    paths = [f"{directory}/{CONFIG}"]
    paths += [f"{directory}/{CONFIG_DIR}/{n}" for n in fs.listdir(f"{directory}/{CONFIG_DIR}") if n.endswith(".conf")]
    found = False
    for path in paths:
        text = fs.read_text(path, limit=16 << 20)
        if text is not None:
            found = True
            parse_config(text, directory, path, config)
    return config if found else None


_DIRS: dict[FileKey, str | None] = {}
_CACHE_PATH = re.compile(rb"\x00(/[\x21-\x7e]+?)/gconv-modules\.cache\x00")


def gconv_directory(fs: Sysroot, libc_realpath: str) -> str:
    """The gconv directory compiled into libc.so.6 (GCONV_DIR), or `<libc's directory>/gconv`."""
    host = fs.host(libc_realpath)
    try:
        st = os.stat(host)
    except OSError:
        return posixpath.join(posixpath.dirname(libc_realpath), "gconv")
    key = file_key(st)
    if key not in _DIRS:
        try:
            with open(host, "rb") as f:
                match = _CACHE_PATH.search(f.read())
        except OSError:
            match = None
        _DIRS[key] = match.group(1).decode() if match else None
    return _DIRS[key] or posixpath.join(posixpath.dirname(libc_realpath), "gconv")


def plan_gconv(plan: RuntimePlan, fs: Sysroot, *, want: bool | tuple[str, ...] | None, libc_realpath: str | None,
               importers: list[str], charsets: dict[str, str]) -> None:
    """`importers`: closure objects importing iconv_open; `charsets`: more names needed, with why (locales)."""
    if want is False:
        return
    explicit = isinstance(want, tuple)
    named: tuple[str, ...] = want if isinstance(want, tuple) else ()  # the charsets `gconv` lists
    if libc_realpath is None:
        if want is not None:
            raise InputError("`gconv`: the closure has no glibc `libc.so.6`; gconv modules are glibc's",
                             hint="musl's iconv is built into its libc: leave `gconv` out")
        return
    directory = gconv_directory(fs, libc_realpath)
    if want is True:
        if not copy_tree(fs, TreeSpec(directory, (), "gconv modules (gconv = true)"), plan):
            raise InputError(f"`gconv = true` but `{directory}` is not in sysroot `{fs.root}`")
        return
    wanted: dict[str, str] = {}
    if explicit:
        for name in named:
            if not normalize(name):
                raise InputError(f"`gconv`: `{name}` is not a charset name such as `UTF-16`")
            wanted.setdefault(name, f"gconv module for {name}")
    elif importers:
        for name in DEFAULT:
            wanted[name] = f"gconv module for {name} (iconv_open in {importers[0]})"
    for name, why in charsets.items():
        wanted.setdefault(name, why)
    wanted = {n: why for n, why in wanted.items() if not builtin(n)}
    if not wanted:
        return
    config = read_config(fs, directory)
    if config is None:
        message = f"no gconv configuration (`{directory}/{CONFIG}`) in sysroot `{fs.root}`"
        if explicit:
            raise InputError(f"`gconv`: {message}", hint="install glibc's gconv modules (Debian: libc6) in the sysroot")
        plan.warnings.append(f"{message}: iconv_open works for UTF-8, UCS-2, UCS-4 and ASCII only")
        return
    confs: set[str] = set()
    for name, why in wanted.items():
        found = config.lookup(name)
        if found is None:
            message = f"`gconv`: no module of `{directory}` in sysroot `{fs.root}` converts `{name}`"
            if explicit and name in named:
                close = difflib.get_close_matches(normalize(name), config.names() + sorted(BUILTIN), n=3)
                raise InputError(message, hint=f"did you mean {', '.join(f'`{c}`' for c in close)}?" if close
                                 else "`iconv -l` lists the names glibc knows")
            plan.warnings.append(message)
            continue
        charset, modules, files = found
        for module in sorted(modules):
            if copy_path(fs, module, why, plan) is None:
                message = f"`gconv`: `{module}` (for `{charset}`) is named by {modules[module]} but is not in " \
                          f"sysroot `{fs.root}`"
                if explicit and name in named:
                    raise InputError(message)
                plan.warnings.append(message)
        confs |= files
    for conf in sorted(confs):
        copy_path(fs, conf, "gconv configuration", plan)
