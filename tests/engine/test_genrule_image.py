"""A genrule compiles a C program with the host's `cc`; an image ships it; the real engine runs it."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.engine.helpers import image_files, out_dir

HELLO_C = """\
#include <stdio.h>
int main(int argc, char **argv) {
    printf("hello from a genrule, %d args\\n", argc - 1);
    return 0;
}
"""

TOOLS = """\
[[genrule]]
name = "hello"
srcs = ["hello.c"]
outs = ["hello"]
cmd = "cc -O2 -o $(OUT) $(SRC)"
"""

IMAGES = """\
[[image]]
name = "hello"
binaries = ["/bin/sh"]
files = [{ src = "//tools:hello", dest = "/usr/local/bin/hello", mode = "0755" }]
entrypoint = ["/usr/local/bin/hello"]
"""


@pytest.fixture
def hello_ws(workspace):
    if shutil.which("cc") is None:
        pytest.fail("no `cc` on this machine (scripts/test.sh installs build-essential)")
    workspace.write("tools/BUILD.toml", TOOLS)
    workspace.write("tools/hello.c", HELLO_C)
    workspace.write("images/BUILD.toml", IMAGES)
    return workspace


def test_compiled_program_is_in_the_image(hello_ws, cli):
    r = cli("build", "//images:hello", "//tools:hello", "--json", "--no-load", cwd=hello_ws.root)
    assert r.returncode == 0, r.stderr
    built = out_dir(hello_ws.root, "//tools:hello") / "hello"
    # The genrule's output is a program that runs on this host (a copy: see the test below)...
    runnable = hello_ws.root / "hello-copy"
    shutil.copyfile(built, runnable)
    runnable.chmod(0o755)
    ran = subprocess.run([str(runnable), "x"], capture_output=True, text=True)
    assert ran.stdout == "hello from a genrule, 1 args\n"
    # ...and the image holds those exact bytes, executable.
    mode, data = image_files(out_dir(hello_ws.root, "//images:hello") / "oci")["/usr/local/bin/hello"]
    assert data == built.read_bytes()
    assert mode & 0o777 == 0o755


def test_executable_genrule_output_stays_executable(hello_ws, cli):
    r = cli("build", "//tools:hello", "--no-load", cwd=hello_ws.root)
    assert r.returncode == 0, r.stderr
    built = out_dir(hello_ws.root, "//tools:hello") / "hello"
    ran = subprocess.run([str(built)], capture_output=True, text=True)
    assert ran.stdout == "hello from a genrule, 0 args\n"


@pytest.mark.docker
def test_compiled_program_runs_in_docker(hello_ws, cli, docker_engine):
    r = cli("build", "//images:hello", "--json", cwd=hello_ws.root)
    assert r.returncode == 0, r.stderr
    [target] = r.json()["targets"]
    assert target["loaded"] in ("loaded", "already loaded")
    run = subprocess.run([docker_engine, "run", "--rm", target["tag"], "a", "b"], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout == "hello from a genrule, 2 args\n"
    explicit = subprocess.run([docker_engine, "run", "--rm", "--entrypoint", "/usr/local/bin/hello", target["tag"]],
                              capture_output=True, text=True, timeout=120)
    assert explicit.stdout == "hello from a genrule, 0 args\n"

    # Edit the program: the genrule and the image rebuild, and the engine runs the new one.
    hello_ws.write("tools/hello.c", HELLO_C.replace("hello from", "goodbye from"))
    r = cli("build", "//images:hello", "--json", cwd=hello_ws.root)
    assert r.returncode == 0, r.stderr
    run = subprocess.run([docker_engine, "run", "--rm", target["tag"]], capture_output=True, text=True, timeout=120)
    assert run.stdout == "goodbye from a genrule, 0 args\n"
