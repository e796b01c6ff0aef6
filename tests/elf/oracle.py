"""The real loader as an oracle (docs/loader.md#sec-11): run it in trace mode and parse what it prints.

Independent of minibuild.elf on purpose: expected results in the tests come from here, never from
the implementation under test.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field

GLIBC_LOADER = "/lib64/ld-linux-x86-64.so.2"
VIRTUAL = {"linux-vdso.so.1", "linux-gate.so.1"}
STATIC = ""  # interp_of() for a file without PT_INTERP and PT_DYNAMIC

_ARROW = re.compile(r"^\t(\S+) => (.+?)(?: \(0x[0-9a-f]+\))?$")
_BARE = re.compile(r"^\t(\S+) \(0x[0-9a-f]+\)$")
_VERSION = re.compile(r": version `[^']+' not found")


@dataclass
class Trace:
    needed: dict[str, str | None] = field(default_factory=dict)  # name -> path as printed, None = not found
    missing: set[str] = field(default_factory=set)  # every name printed as `not found` (it may also be found later)
    bare: list[str] = field(default_factory=list)  # "/abs (0x..)" lines: the loader or slashed DT_NEEDED
    static: bool = False
    fatal: str | None = None
    stdout: str = ""
    stderr: str = ""


def parse_trace(stdout: str, stderr: str = "", rc: int = 0) -> Trace:
    t = Trace(stdout=stdout, stderr=stderr)
    if "statically linked" in stdout or "not a dynamic executable" in stdout + stderr:
        t.static = True
        return t
    for line in (stdout + "\n" + stderr).splitlines():
        if _VERSION.search(line):  # trace mode reports G17 failures and goes on listing
            t.fatal = line.strip()
    for line in stdout.splitlines():
        m = _ARROW.match(line)
        if m:
            name, target = m.group(1), m.group(2)
            if name in VIRTUAL:
                continue
            if target == "not found":
                t.missing.add(name)
                t.needed.setdefault(name, None)
            elif t.needed.get(name) is None:
                t.needed[name] = target
            continue
        m = _BARE.match(line)
        if m:
            name = m.group(1)
            if name in VIRTUAL:
                continue
            if "/" in name:
                t.bare.append(name)
            else:
                t.needed.setdefault(name, name)  # found under a relative search dir (runpath_cwd)
    if t.fatal:
        pass
    elif "error while loading shared libraries" in stderr or (rc not in (0, 1) and not t.needed and not t.bare):
        t.fatal = stderr.strip() or f"exit status {rc}"
    elif stderr.strip() and not stdout.strip():
        t.fatal = stderr.strip()
    return t


def trace_exec(path: str, cwd: str = "/", env: dict[str, str] | None = None, timeout: float = 30) -> Trace:
    """docs/loader.md#sec-11 step 3b: the kernel execs PATH (correct $ORIGIN even through symlinks), ld.so only traces.

    Only for programs whose PT_INTERP is the glibc loader: anything else would really run.
    """
    e = {"LD_TRACE_LOADED_OBJECTS": "1", **(env or {})}
    p = subprocess.run([path], env=e, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                       errors="surrogateescape")
    t = parse_trace(p.stdout, p.stderr, p.returncode)
    if p.returncode == 5 and not p.stdout:  # secure mode refuses to trace: fall back to 3a
        return trace_list(os.path.realpath(path), cwd, env, timeout)
    return t


def trace_list(path: str, cwd: str = "/", env: dict[str, str] | None = None, timeout: float = 30,
               loader: str = GLIBC_LOADER) -> Trace:
    """docs/loader.md#sec-11 step 3a: `ld.so --list PATH` (what ldd does).

    Main's $ORIGIN comes from the argument string.
    """
    p = subprocess.run([loader, "--list", path], env=dict(env or {}), cwd=cwd, capture_output=True, text=True,
                       timeout=timeout, errors="surrogateescape")
    return parse_trace(p.stdout, p.stderr, p.returncode)


def glibc_diagnostics(loader: str = GLIBC_LOADER) -> dict[str, str]:
    """`ld.so --list-diagnostics` key="value" lines (platform, $LIB, hwcaps subdirs)."""
    p = subprocess.run([loader, "--list-diagnostics"], capture_output=True, text=True, timeout=30)
    out = {}
    for line in p.stdout.splitlines():
        m = re.match(r'^([\w.\[\]]+)="?(.*?)"?$', line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def glibc_cpu_level(loader: str = GLIBC_LOADER) -> str | None:
    """The best glibc-hwcaps subdirectory this CPU supports, from `ld.so --help`."""
    p = subprocess.run([loader, "--help"], capture_output=True, text=True, timeout=30)
    for line in p.stdout.splitlines():
        m = re.match(r"^\s+(\S+) \(supported, searched\)", line)
        if m and "hwcaps" not in m.group(1) and m.group(1).startswith("x86-64-v"):
            return m.group(1)
    return "x86-64-v1"


def interp_of(path: str) -> tuple[bool, str | None]:
    """(is a loadable ELF object, PT_INTERP) read with pyelftools, independently of minibuild.elf."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        with open(path, "rb") as fh:
            if fh.read(4) != b"\x7fELF":
                return False, None
            fh.seek(0)
            elf = ELFFile(fh)
            if elf["e_type"] not in ("ET_EXEC", "ET_DYN"):
                return False, None
            dynamic = False
            for seg in elf.iter_segments():
                if seg["p_type"] == "PT_INTERP":
                    return True, seg.get_interp_name()
                dynamic = dynamic or seg["p_type"] == "PT_DYNAMIC"
            return True, None if dynamic else STATIC
    except (ELFError, OSError, ValueError):
        return False, None


def trace(path: str, cwd: str = "/", env: dict[str, str] | None = None, timeout: float = 30) -> Trace | None:
    """The oracle for one file, as docs/loader.md#sec-11 step 3 prescribes; None if there is no safe oracle."""
    ok, interp = interp_of(path)
    if not ok:
        return None
    if interp == STATIC:  # `ld.so --list` would run it; ldd says "not a dynamic executable"
        return Trace(static=True)
    if interp == GLIBC_LOADER and os.access(path, os.X_OK):
        return trace_exec(path, cwd, env, timeout)
    if interp is None or interp == GLIBC_LOADER:
        return trace_list(path, cwd, env, timeout)
    return None
