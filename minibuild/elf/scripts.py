"""`#!` scripts as programs (docs/loader.md, rules S1-S6): the kernel's reading of the `#!` line,
the interpreter as a root of its own, and the program `#!/usr/bin/env NAME` runs, found on the image's PATH.
"""

from __future__ import annotations

import posixpath
import stat
from typing import TYPE_CHECKING

from minibuild.elf.model import DEFAULT_PATH
from minibuild.elf.sysroot import Lookup, Sysroot
from minibuild.errors import ElfError

SCRIPT_BUF = 256  # BINPRM_BUF_SIZE since Linux 5.1
MAX_SCRIPT_DEPTH = 4  # the kernel gives up (ELOOP) beyond this many nested interpreters


class ScriptRoots:
    """S2-S6 for `Resolver`: a script root brings its interpreter, and `env`'s program (`add_root` each)."""

    fs: Sysroot
    env: dict[str, str]
    workdir: str
    warnings: list[str]
    scripts: list[tuple[str, str]]

    if TYPE_CHECKING:
        # provided by `Resolver`
        def add_root(self, path: str, reason: str, depth: int, via: str | None = None) -> None: ...

    def add_script(self, path: str, look: Lookup, head: bytes, depth: int) -> None:
        if depth >= MAX_SCRIPT_DEPTH:
            raise ElfError(f"`{path}`: too many levels of `#!` interpreters (the kernel stops at "
                           f"{MAX_SCRIPT_DEPTH})")
        interp, arg = parse_shebang(head)
        if interp is None:
            raise ElfError(f"`{path}` has a `#!` line the kernel cannot execute (no interpreter name, or "
                           f"the name is cut off at {SCRIPT_BUF} bytes)")
        assert look.st is not None
        if not look.st.st_mode & 0o111:
            self.warnings.append(f"script `{path}` is not executable: the kernel will refuse to run it")
        line = f"#!{interp}" + (f" {arg}" if arg else "")
        ilook = self.fs.lookup(interp, self.workdir)
        if ilook.realpath is None:
            hint = None
            if "\r" in interp or (arg and arg.endswith("\r")):
                hint = "the script has CRLF line endings; the kernel keeps the `\\r`"
            raise ElfError(f"interpreter `{interp}` of script `{path}` does not exist in sysroot `{self.fs.root}`",
                           hint=hint)
        self.scripts.append((path, interp))
        self.add_root(interp, f"interpreter of script {path}", depth + 1, via=path)
        self.warnings.append(f"`{path}` is a `#!` script: its closure covers the interpreter `{interp}`, "
                             f"not the programs the script runs")
        if posixpath.basename(interp) == "env" and arg is not None:
            name = env_program(arg)
            if name is None:
                self.warnings.append(f"`{path}`: cannot tell which program `{line}` runs")
                return
            found = self.find_on_path(name, path, line)
            self.scripts.append((path, found))
            self.add_root(found, f"run by `env` for script {path}", depth + 1, via=path)

    def find_on_path(self, name: str, script: str, line: str) -> str:
        if "/" in name:
            return name if name.startswith("/") else posixpath.join(self.workdir, name)
        search = self.env.get("PATH", DEFAULT_PATH)
        tried = []
        for d in search.split(":"):
            d = d or "."
            cand = posixpath.join(d if d.startswith("/") else posixpath.join(self.workdir, d), name)
            tried.append(cand)
            look = self.fs.lookup(cand, self.workdir)
            st = look.st
            if look.realpath and st and stat.S_ISREG(st.st_mode) and st.st_mode & 0o111:
                return cand
        raise ElfError(
            f"`{name}` (run by `{line}` in script `{script}`) is not on the image PATH in sysroot `{self.fs.root}`",
            causes=tuple(f"not found: `{t}`" for t in tried),
            hint="set `PATH` in the image environment, or use an absolute interpreter path",
        )


def parse_shebang(head: bytes) -> tuple[str | None, str | None]:
    """S1: the kernel's reading of a `#!` line (fs/binfmt_script.c): (interpreter, optional argument)."""
    buf = head[:SCRIPT_BUF].ljust(SCRIPT_BUF, b"\0")  # the kernel's buffer is zero-filled past EOF
    if buf[:2] != b"#!":
        return None, None
    buf_end = SCRIPT_BUF - 1
    i_end = buf.find(b"\n")
    if i_end < 0:
        first = _next_non_spacetab(buf, 2, buf_end)
        if first is None or _next_terminator(buf, first, buf_end) is None:
            return None, None  # all blank, or the interpreter name may be truncated: ENOEXEC
        i_end = buf_end
    while i_end > 2 and buf[i_end - 1] in b" \t":
        i_end -= 1
    i_name = _next_non_spacetab(buf, 2, i_end)
    if i_name is None or i_name == i_end:
        return None, None
    i_sep = _next_terminator(buf, i_name, i_end)
    i_arg = None
    if i_sep is not None and buf[i_sep] != 0:
        i_arg = _next_non_spacetab(buf, i_sep, i_end)
    name = buf[i_name : i_sep if i_sep is not None else i_end]
    if not name:
        return None, None  # the kernel would try to open "" (ENOENT)
    arg = buf[i_arg:i_end].split(b"\0", 1)[0] if i_arg is not None else b""
    return name.decode("utf-8", "surrogateescape"), arg.decode("utf-8", "surrogateescape") or None


def _next_non_spacetab(buf: bytes, first: int, last: int) -> int | None:
    for i in range(first, last + 1):
        if buf[i] not in b" \t":
            return i
    return None


def _next_terminator(buf: bytes, first: int, last: int) -> int | None:
    for i in range(first, last + 1):
        if buf[i] in b" \t\0":
            return i
    return None


def env_program(arg: str) -> str | None:
    """S3: the program `#!/usr/bin/env ARG` runs, skipping options and VAR=value assignments."""
    words = arg.split()
    i = 0
    while i < len(words):
        w = words[i]
        if w.startswith("-S") or w.startswith("--split-string"):
            rest = w[2:] if w.startswith("-S") else w.partition("=")[2]
            words = words[:i] + ([rest] if rest else []) + words[i + 1 :]
            continue
        if w in ("-u", "--unset", "-C", "--chdir"):
            i += 2
            continue
        if w.startswith("-") or ("=" in w and not w.startswith("=")):
            i += 1
            continue
        return w
    return None
