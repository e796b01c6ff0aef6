"""Helpers for runtime tests that run programs the way an image would: in a root file system made from a plan.

`materialize` writes a program's ELF closure and a runtime plan (with the closures of its ELF roots) into a
directory; `run_in` runs a command chrooted there, so glibc sees exactly what the image would hold.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from minibuild import elf
from minibuild.elf.sysroot import Sysroot
from minibuild.image import runtime


def compile_c(source: Path, out: Path) -> Path:
    subprocess.run(["cc", "-O2", "-o", str(out), str(source)], check=True)
    return out


def copy_host_path(root: Path, path: str) -> None:
    """Copy one host path into `root` as it is: a symlink stays a symlink (its target copied too)."""
    dest = root / path.lstrip("/")
    if os.path.lexists(dest):
        return
    parent = os.path.dirname(path)
    if parent != "/":
        copy_host_path(root, parent)
    if os.path.islink(path):
        target = os.readlink(path)
        os.symlink(target, dest)
        copy_host_path(root, os.path.normpath(os.path.join(os.path.dirname(path), target)))
    elif os.path.isdir(path):
        dest.mkdir()
    else:
        shutil.copy2(path, dest)


def sysroot_workspace(ws: Path, sysroot: Path | str, build: str) -> Path:
    """A workspace at `ws` whose sysroot is `sysroot`, with one package `app` holding `build` as BUILD.toml."""
    (ws / "app").mkdir(parents=True)
    (ws / "workspace.toml").write_text(f'[workspace]\nname = "t"\nsysroot = "{sysroot}"\n')
    (ws / "app/BUILD.toml").write_text(build)
    return ws


def glibc_sysroot(root: Path) -> Path:
    """A Debian-shaped sysroot holding only the host's loader and libc (in usr/lib/x86_64-linux-gnu, with the
    /lib and /lib64 links of merged /usr) and an empty usr/bin; returns its library directory."""
    libdir = root / "usr/lib/x86_64-linux-gnu"
    libdir.mkdir(parents=True)
    (root / "usr/bin").mkdir(parents=True)
    os.symlink("usr/lib", root / "lib")
    os.symlink("usr/lib", root / "lib64")
    for name in ("libc.so.6", "ld-linux-x86-64.so.2"):
        shutil.copy2(f"/lib/x86_64-linux-gnu/{name}", libdir / name)
    os.symlink("x86_64-linux-gnu/ld-linux-x86-64.so.2", root / "usr/lib/ld-linux-x86-64.so.2")
    return libdir


def host_sysroot(root: Path, programs: dict[str, Path], paths: tuple[str, ...] = ()) -> Path:
    """A sysroot holding `programs` ({in-image path: host file}) with their closures, and host `paths` as they are."""
    root.mkdir(parents=True, exist_ok=True)
    for dest, src in programs.items():
        (root / dest.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, root / dest.lstrip("/"))
    for entry in elf.resolve([str(p) for p in programs.values()], "/").entries:
        if not entry.path.startswith(tuple(str(p) for p in programs.values())):
            copy_host_path(root, entry.path)
    for path in paths:
        if os.path.isdir(path) and not os.path.islink(path):
            copy_host_path(root, os.path.dirname(path))
            shutil.copytree(path, root / path.lstrip("/"), symlinks=True, dirs_exist_ok=True)
        else:
            copy_host_path(root, path)
    return root


def plan_for(sysroot: str, programs: list[str], **options) -> tuple[runtime.RuntimePlan, elf.Closure]:
    """The runtime plan of `programs` (in-image paths), rounds repeated as the build does, and the final closure."""
    fs = Sysroot(sysroot)
    roots = list(programs)
    for _ in range(8):
        closure = elf.resolve(roots, sysroot)
        plan = runtime.plan(closure, fs, runtime.RuntimeOptions(**options))
        new = sorted(r for r in plan.elf_roots if r not in roots)
        if not new:
            return plan, closure
        roots += new
    raise AssertionError("runtime roots did not settle")


def materialize(dest: Path, sysroot: str, plan: runtime.RuntimePlan, closure: elf.Closure) -> Path:
    """Write the closure's entries and the plan's files into `dest`, as an image would hold them."""
    entries = [(e.path, e.kind, e.mode, e.source, e.target) for e in closure.entries]
    entries += [(f.path, f.kind, f.mode, f.source, f.target) for f in plan.files.values()]
    for path, kind, mode, source, target in sorted(entries):
        out = dest / path.lstrip("/")
        if os.path.lexists(out):
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        if kind == "dir":
            out.mkdir(mode=0o755)
        elif kind == "symlink":
            os.symlink(target, out)
        else:
            data = plan.files[path].data if path in plan.files and plan.files[path].data is not None else None
            if data is not None:
                out.write_bytes(data)
            else:
                shutil.copyfile(source, out)
            os.chmod(out, mode or 0o644)
    return dest


def run_in(root: Path, argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `argv` chrooted in `root` (as root, or in a user namespace), with a clean environment."""
    chroot = shutil.which("chroot") or "/usr/sbin/chroot"
    chroot_argv = [chroot, str(root)] if os.geteuid() == 0 else [shutil.which("unshare") or "unshare", "-r", chroot,
                                                                 str(root)]
    return subprocess.run([*chroot_argv, *argv], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", **(env or {})})
