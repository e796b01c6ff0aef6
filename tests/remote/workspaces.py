"""Small workspaces the remote cache tests build: made by the test, so every clone is byte for byte the same."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

HELLO_C = '#include <stdio.h>\nint main(void){puts("hello from a genrule");return 0;}\n'


def make_team_workspace(root: Path, images: int = 3) -> Path:
    """A workspace of `images` images over /usr/bin programs, a genrule that compiles a C program shipped in
    one of them, and a `files` group shared by all: every kind of action minibuild has, in a few seconds."""
    programs = ["/usr/bin/true", "/usr/bin/env", "/usr/bin/cat", "/usr/bin/ls", "/usr/bin/sort", "/usr/bin/grep"]
    root.mkdir(parents=True)
    (root / "workspace.toml").write_text('[workspace]\nname = "team"\nsysroot = "/"\n')
    (root / "app").mkdir()
    (root / "app" / "hello.c").write_text(HELLO_C)
    (root / "app" / "motd").write_text("built once for the whole team\n")
    rules = ['[[genrule]]\nname = "hello"\nsrcs = ["hello.c"]\nouts = ["hello"]\ncmd = "cc -O1 -o $(OUT) $(SRC)"\n',
             '[[files]]\nname = "etc"\nfiles = [{ src = "motd", dest = "/etc/motd" }]\n',
             '[[image]]\nname = "hello_image"\nbinaries = [":hello"]\nfiles = [{ src = ":etc" }]\n']
    for i in range(images - 1):
        prog = programs[i % len(programs)]
        rules.append(f'[[image]]\nname = "img{i}"\nbinaries = ["{prog}"]\nfiles = [{{ src = ":etc" }}]\n')
    (root / "app" / "BUILD.toml").write_text("\n".join(rules))
    return root


def make_sysroot_workspace(root: Path) -> Path:
    """A workspace whose sysroot is a folder inside it (`sysroot = "sysroot"`): bash and its libraries."""
    root.mkdir(parents=True)
    (root / "workspace.toml").write_text('[workspace]\nname = "inside"\nsysroot = "sysroot"\n')
    for path in _closure_of("/bin/bash"):
        dest = root / "sysroot" / path.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest)
    (root / "app").mkdir()
    (root / "app" / "BUILD.toml").write_text('[[image]]\nname = "bash"\nbinaries = ["/bin/bash"]\n')
    return root


def _closure_of(program: str) -> list[str]:
    """The program and what `ldd` (the real loader, an independent source) says it loads."""
    out = subprocess.run(["ldd", program], capture_output=True, text=True, check=True).stdout
    paths = [program]
    for line in out.splitlines():
        parts = line.split()
        if "=>" in parts and len(parts) > 2 and parts[2].startswith("/"):
            paths.append(parts[2])
        elif parts and parts[0].startswith("/"):
            paths.append(parts[0])
    return paths


def minibuild(cwd: Path, *args: str, env: dict[str, str] | None = None,
              timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`python -m minibuild ARGS` in `cwd`, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "minibuild", *args], cwd=cwd, env=cli_env(env), capture_output=True,
                          text=True, timeout=timeout)


def cli_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment minibuild runs in for these tests: no colour, and wide, so one warning is one line."""
    return {**os.environ, "NO_COLOR": "1", "COLUMNS": "1000", **(env or {})}
