"""`binaries = ["//tools:hello"]`: a genrule's program is shipped with its own ELF closure."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

import pytest

HELLO = ('#include <stdio.h>\n#include <math.h>\n'
         'int main(int c, char **v) { printf("hello %d %.0f\\n", c, sqrt(c * 8.0)); return 0; }\n')


@pytest.fixture
def ws(workspace):
    workspace.write("tools/hello.c", HELLO)
    workspace.write("tools/BUILD.toml", '[[genrule]]\nname = "hello"\nsrcs = ["hello.c"]\nouts = ["hello"]\n'
                                        'cmd = "cc -O2 -o $(OUT) $(SRC) -lm"\n')
    workspace.write("img/BUILD.toml", '[[image]]\nname = "hello"\nbinaries = ["//tools:hello"]\n')
    return workspace


def _names(root: Path, target: dict) -> dict[str, int]:
    out = {}
    for layer in target["layers"]:
        with tarfile.open(root / target["oci"] / "blobs/sha256" / layer["digest"].split(":")[1]) as tar:
            out.update({m.name: m.mode for m in tar.getmembers()})
    return out


def test_label_binary_brings_its_closure(ws, cli):
    r = cli("build", "//img:hello", "//tools:hello", "--json", "--no-load", cwd=ws.root)
    assert r.returncode == 0, r.stderr
    names = _names(ws.root, next(t for t in r.json()["targets"] if t["label"] == "//img:hello"))
    assert names["usr/local/bin/hello"] & 0o777 == 0o755
    # libm comes from the program's own DT_NEEDED, as the real loader would resolve it.
    ldd = subprocess.run(["ldd", str(ws.root / ".minibuild/out/tools/hello/hello")], capture_output=True, text=True)
    assert "libm.so.6" in ldd.stdout
    assert "usr/lib/x86_64-linux-gnu/libm.so.6" in names and "usr/lib/x86_64-linux-gnu/libc.so.6" in names
    again = cli("build", "//img:hello", "--json", "--no-load", cwd=ws.root)
    assert again.json()["actions"]["run"] == 0
    ws.write("tools/hello.c", HELLO.replace("hello", "bye"))
    third = cli("build", "//img:hello", "--json", "--no-load", cwd=ws.root)
    assert third.json()["actions"]["run"] >= 3  # the genrule, then the closure, layers and image


def test_image_is_not_a_program(ws, cli):
    ws.write("img/BUILD.toml", '[[image]]\nname = "a"\nbinaries = ["/bin/sh"]\n\n'
                               '[[image]]\nname = "b"\nbinaries = [":a"]\n')
    r = cli("build", "//img:b", "--no-load", cwd=ws.root)
    assert r.returncode == 2 and "is not a program" in r.stderr and "binaries[0]" in r.stderr, r.stderr


@pytest.mark.docker
def test_label_binary_runs(ws, cli, docker_engine):
    r = cli("build", "//img:hello", cwd=ws.root)
    assert r.returncode == 0, r.stderr
    out = subprocess.run([docker_engine, "run", "--rm", "img/hello:latest", "x"], capture_output=True, text=True)
    assert out.stdout.strip() == "hello 2 4", out.stderr
