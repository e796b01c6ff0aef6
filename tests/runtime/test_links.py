"""`links`: symlinks the image declares (Debian's `/var/run -> /run`, which base-files ships), with what the image puts
below one made through it; read back in the real engine by `readlink` and `stat` (docs/runtime.md, "links")."""

from __future__ import annotations

import subprocess

import pytest

IMAGE = """
[[image]]
name = "l"
binaries = ["/usr/bin/stat", "/usr/bin/readlink"]
entrypoint = ["/usr/bin/stat"]
links = [{ path = "/var/run", target = "/run" }, { path = "/srv/current", target = "releases/1" }]
dirs = [{ path = "/var/run/app", owner = "www-data", mode = "2775" }, { path = "/srv/releases/1" }]
tag = "minibuild-test/links:latest"
"""


def _run(docker: str, *args: str) -> str:
    out = subprocess.run([docker, "run", "--rm", *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.docker
def test_links_are_in_the_image_and_paths_below_them_are_made_through_them(workspace, cli, docker_engine):
    workspace.write("app/BUILD.toml", IMAGE)
    r = cli("build", "//app:l", cwd=workspace.root)
    assert r.returncode == 0, r.stderr
    image = "minibuild-test/links:latest"
    readlink = ["--entrypoint", "/usr/bin/readlink", image]
    assert _run(docker_engine, *readlink, "/var/run") == "/run\n"
    assert _run(docker_engine, *readlink, "/srv/current") == "releases/1\n"
    assert _run(docker_engine, *readlink, "-f", "/var/run/app") == "/run/app\n"
    www = subprocess.run(["id", "-u", "www-data"], capture_output=True, text=True, check=True).stdout.strip()
    assert _run(docker_engine, image, "-c", "%F %u %a", "/run/app") == f"directory {www} 2775\n"
    assert _run(docker_engine, image, "-L", "-c", "%F", "/srv/current") == "directory\n"


@pytest.mark.parametrize(("attrs", "message"), [
    ('links = [{ path = "/", target = "/run" }]', "a link cannot replace `/`"),
    ('links = [{ path = "var/run", target = "/run" }]', "link `var/run` must be an absolute path"),
    ('links = [{ path = "/a", target = "" }]', "a link's target is a non-empty path"),
    ('links = [{ path = "/a", target = "/b" }, { path = "/a/", target = "/c" }]', "link `/a` is listed twice"),
    ('links = [{ path = "/usr/bin/stat", target = "/bin/true" }]', "two different contents for `/usr/bin/stat`"),
])
def test_bad_links_are_exit_2(workspace, cli, attrs, message):
    workspace.write("app/BUILD.toml", f'[[image]]\nname = "i"\nbinaries = ["/usr/bin/stat"]\n{attrs}\n')
    r = cli("build", "//app:i", "--no-load", cwd=workspace.root)
    assert r.returncode == 2 and message in " ".join(r.stderr.split()) and "Traceback" not in r.stderr, r.stderr
