"""Files a program opens at run time that its ELF closure does not name (docs/loader.md#sec-7).

`plan(closure, fs, options)` looks at a resolved closure (sonames, imported symbols, program names) and
returns what to add: sysroot files and trees, generated files, and more ELF roots (NSS modules,
libgcc_s.so.1, gconv modules, Python extension modules) whose own closures the caller resolves. One module
per concern: nss, libgcc, certs, zoneinfo, terminfo, locales, gconv, python; `copy` walks the sysroot,
`symbols` reads imports, `ldcache` writes /etc/ld.so.cache.
"""

from __future__ import annotations

import functools
import posixpath

from minibuild.elf import Closure
from minibuild.elf.parse import ElfFormatError, read_elf
from minibuild.elf.sysroot import Sysroot
from minibuild.entry import TreeEntry
from minibuild.errors import InputError
from minibuild.image.runtime.certs import plan_certs
from minibuild.image.runtime.copy import copy_tree
from minibuild.image.runtime.gconv import TRIGGERS as GCONV_TRIGGERS
from minibuild.image.runtime.gconv import plan_gconv
from minibuild.image.runtime.libgcc import SONAME as LIBGCC
from minibuild.image.runtime.libgcc import TRIGGERS as LIBGCC_TRIGGERS
from minibuild.image.runtime.libgcc import plan_libgcc
from minibuild.image.runtime.locales import TRIGGERS as LOCALE_TRIGGERS
from minibuild.image.runtime.locales import plan_locales
from minibuild.image.runtime.model import RuntimeOptions, RuntimePlan, TreeSpec
from minibuild.image.runtime.nss import plan_nss
from minibuild.image.runtime.packages import plan_packages
from minibuild.image.runtime.python import plan_python
from minibuild.image.runtime.shell import TRIGGERS as SHELL_TRIGGERS
from minibuild.image.runtime.shell import plan_shell
from minibuild.image.runtime.symbols import imported_symbols
from minibuild.image.runtime.sysroot_files import plan_sysroot_files
from minibuild.image.runtime.terminfo import plan_terminfo
from minibuild.image.runtime.zoneinfo import plan_tzdata

__all__ = ["TreeEntry", "RuntimeOptions", "RuntimePlan", "TreeSpec", "plan"]

# Where libc's dlopen of a bare name ends up when nothing else names a directory: libc's own directory
# (a multiarch dir on Debian) first, then the other default directories.
_DEFAULT_DIRS = ("/lib64", "/usr/lib64", "/lib", "/usr/lib")


def plan(closure: Closure, fs: Sysroot, options: RuntimeOptions) -> RuntimePlan:
    """What to add to an image for `closure`. Pure over the sysroot: every path looked at is in `fs.probed`."""
    out = RuntimePlan()
    objects = closure.objects
    sonames = {o.soname or posixpath.basename(o.path) for o in objects if not o.is_interpreter}
    sonames |= {n for o in objects for n in o.names if "/" not in n}
    libc = next((o for o in objects if o.soname == "libc.so.6" or "libc.so.6" in o.names), None)

    def find_lib(name: str) -> str | None:
        dirs = ([posixpath.dirname(libc.path)] if libc else []) + list(_DEFAULT_DIRS)
        for d in dirs:
            look = fs.lookup(f"{d}/{name}")
            if look.realpath is not None:
                return f"{d}/{name}"
        return None

    importers: dict[str, list[str]] = {}
    for o in objects:
        if o.is_interpreter:
            continue
        for sym in imported_symbols(fs.host(o.realpath)) & (LIBGCC_TRIGGERS | GCONV_TRIGGERS | LOCALE_TRIGGERS
                                                            | SHELL_TRIGGERS):
            importers.setdefault(sym, []).append(o.path)

    def users(triggers: frozenset[str]) -> list[str]:
        return sorted({o for sym in triggers for o in importers.get(sym, ())})

    plan_nss(out, libc_path=libc.path if libc else None, builtin_files_dns=_glibc_at_least(fs, libc, "2.34"),
             want=options.nsswitch, user_conf=options.nsswitch_conf, find_lib=find_lib)
    plan_libgcc(out, want=options.libgcc_s, importers=importers, have=LIBGCC in sonames, find_lib=find_lib)
    plan_certs(out, fs, want=options.ca_certificates, sonames=sonames)
    plan_tzdata(out, fs, want=options.tzdata, tz=dict(options.env).get("TZ"))
    plan_terminfo(out, fs, want=options.terminfo, sonames=sonames)
    # A non-UTF-8 locale's charset is converted by libc through its gconv module: locales come first.
    charsets = plan_locales(out, fs, want=options.locales, glibc=libc is not None, importers=users(LOCALE_TRIGGERS),
                            env=dict(options.env))
    plan_gconv(out, fs, want=options.gconv, libc_realpath=libc.realpath if libc else None,
               importers=users(GCONV_TRIGGERS), charsets=charsets)
    executables = [o.realpath for o in objects if o.loader is None and not o.is_interpreter and o.path in closure.roots]
    plan_python(out, fs, executables=executables, mode=options.python_stdlib, packages=options.python_packages)
    for spec in options.trees:
        if not copy_tree(fs, TreeSpec(spec.src, spec.exclude, f"tree {spec.src}", spec.include), out):
            raise InputError(f"`trees`: `{spec.src}` is not a directory in sysroot `{fs.root}`")
    plan_packages(out, fs, options.packages)
    plan_sysroot_files(out, fs, options.sysroot_files, options.sysroot_name or fs.root)
    plan_shell(out, fs, options.shell, importers, options.sysroot_name or fs.root)
    return out


@functools.cache
def _glibc_at_least(fs: Sysroot, libc, version: str) -> bool:
    """Whether libc.so.6 defines the symbol version GLIBC_<version> (it defines every earlier one too)."""
    if libc is None:
        return False
    try:
        return f"GLIBC_{version}" in read_elf(fs.host(libc.realpath)).verdef
    except (OSError, ElfFormatError):
        return False
