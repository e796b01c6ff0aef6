"""What the genrule tests check with means of their own: a file's stat and bytes, the processes running
(`ps`), what the cache holds (`os.walk`), never minibuild's word."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def fingerprint(path: Path) -> tuple[int, int, int, int, bytes]:
    """Mode, links, size, mtime and bytes of a file: what a build must leave as it found it."""
    st = os.lstat(path)
    return st.st_mode, st.st_nlink, st.st_size, st.st_mtime_ns, path.read_bytes()


def processes_with(marker: str) -> list[str]:
    """The command lines of the processes of this machine that contain `marker` (as `ps` lists them)."""
    ps = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True, check=True).stdout
    return [line.strip() for line in ps.splitlines() if marker in line and "ps -eo" not in line]


def scratch_left(root: Path) -> list[str]:
    """What runs left in the cache's scratch directory."""
    tmp = root / ".minibuild" / "cache" / "tmp"
    return sorted(os.listdir(tmp)) if tmp.is_dir() else []


def links_in_store(root: Path) -> list[str]:
    """Symbolic links anywhere in the content-addressed store (it must hold regular files only)."""
    found = []
    for top, dirs, files in os.walk(root / ".minibuild" / "cache" / "cas"):
        found += [os.path.join(top, n) for n in dirs + files if os.path.islink(os.path.join(top, n))]
    return found
