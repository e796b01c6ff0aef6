"""Build tiny ELF fixtures with the system compilers (gcc, musl-gcc, aarch64-linux-gnu-gcc, patchelf)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


def run(*argv: str, cwd: str | os.PathLike | None = None) -> str:
    p = subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p.stdout


def _dtags(rpath: str | None, runpath: str | None) -> list[str]:
    out = []
    if rpath is not None:
        out.append(f"-Wl,--disable-new-dtags,-rpath,{rpath}")
    if runpath is not None:
        out.append(f"-Wl,--enable-new-dtags,-rpath,{runpath}")
    return out


def shared(out: Path, *, soname: str | None = None, deps: tuple[Path | str, ...] = (), rpath: str | None = None,
           runpath: str | None = None, cc: str = "gcc", source: str | None = None, extra: tuple[str, ...] = ()) -> Path:
    """A shared library exporting `int f_<stem>(void)`; `deps` become DT_NEEDED (their soname)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    stem = out.name.split(".so")[0].replace("-", "_").replace(".", "_")
    src = out.with_name(out.name + ".c")
    src.write_text(source or f"int f_{stem}(void) {{ return 42; }}\n")
    argv = [cc, "-shared", "-fPIC", "-o", str(out), str(src), "-Wl,--no-as-needed", "-Wl,--allow-shlib-undefined"]
    if soname:
        argv.append(f"-Wl,-soname,{soname}")
    argv += _dtags(rpath, runpath) + [str(d) for d in deps] + list(extra)
    run(*argv)
    src.unlink()
    return out


def executable(out: Path, *, deps: tuple[Path | str, ...] = (), rpath: str | None = None,
               runpath: str | None = None, cc: str = "gcc", source: str | None = None,
               extra: tuple[str, ...] = ()) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    src = out.with_name(out.name + ".c")
    src.write_text(source or "int main(void) { return 0; }\n")
    argv = [cc, "-o", str(out), str(src), "-Wl,--no-as-needed", "-Wl,--allow-shlib-undefined"]
    argv += _dtags(rpath, runpath) + [str(d) for d in deps] + list(extra)
    run(*argv)
    src.unlink()
    return out


def patchelf(*args: str) -> None:
    run("patchelf", *args)


def i386_shared(out: Path, soname: str) -> Path:
    """A 32-bit x86 shared object needing no 32-bit libc or crt files: `as --32` + `ld -m elf_i386`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    src = out.with_name(out.name + ".s")
    obj = out.with_name(out.name + ".o")
    src.write_text(".text\n.globl f32\n.type f32, @function\nf32:\n  movl $32, %eax\n  ret\n")
    run("as", "--32", "-o", str(obj), str(src))
    run("ld", "-m", "elf_i386", "-shared", "-soname", soname, "-o", str(out), str(obj))
    src.unlink()
    obj.unlink()
    return out
