# ruff: noqa: E501 - TOML inline tables are one line each
"""`image_test` `files` checks with `owner`: the uid and gid of the engine's archive header of the path, names looked
up in the image's own /etc/passwd and /etc/group (docs/image_test.md). Expected ids come from `getent` on the host,
whose accounts the host sysroot's image copies."""

from __future__ import annotations

import subprocess

import pytest

IMAGE = """
[[image]]
name = "owned"
binaries = ["/bin/dash"]
users = ["www-data", { name = "mbowner", uid = 4321, gid = 8765 }]
dirs = [{ path = "/srv/www", owner = "www-data", mode = "0750" }, { path = "/srv/mine", owner = "mbowner" }]
files = [{ src = "conf", dest = "/etc/app.conf", owner = "4321:0", mode = "0640" }]
tag = "minibuild-test/image-test-owner:latest"

[[image_test]]
name = "t"
image = ":owned"
files = [
    { path = "/srv/www", owner = "www-data" },
    { path = "/srv/www", owner = "www-data:www-data", mode = "0750" },
    { path = "/srv/www", owner = "WWW" },
    { path = "/srv/mine", owner = "mbowner" },
    { path = "/srv/mine", owner = "4321:8765" },
    { path = "/etc/app.conf", owner = "mbowner:root", contains = "^setting = 1$" },
    { path = "/etc/passwd", owner = "root" },
    { path = "/etc/passwd", owner = "0" },
    { path = "/srv/www", owner = "root" },
    { path = "/srv/mine", owner = "nosuch" },
    { path = "/srv/mine", owner = "mbowner:nogroup0" },
    { path = "/etc/app.conf", owner = "4321:8765" },
]
"""


def _ids(name: str) -> str:
    fields = subprocess.run(["getent", "passwd", name], capture_output=True, text=True, check=True).stdout.split(":")
    return f"{fields[2]}:{fields[3]}"


@pytest.mark.docker
def test_owner_checks_read_the_engines_headers(workspace, cli, docker_engine):
    www = _ids("www-data")
    workspace.write("app/conf", "setting = 1\n")
    workspace.write("app/BUILD.toml", IMAGE.replace('"WWW"', f'"{www}"'))
    r = cli("test", "//app:t", "--json", cwd=workspace.root)
    assert r.returncode == 1, r.stderr
    [test] = r.json()["tests"]
    checks = {c["check"]: c for c in test["checks"]}
    results = [(checks[f"files[{i}]"]["passed"], checks[f"files[{i}]"]["message"]) for i in range(12)]
    assert all(passed for passed, _ in results[:8]), results[:8]
    assert results[0][1] == f"directory, mode 0750, owner {www}"
    assert results[8] == (False, f"owner {www}, expected 0:0 (`root`)")
    assert results[9] == (False, "owner `nosuch` is not in the image's /etc/passwd")
    assert results[10] == (False, "group `nogroup0` is not in the image's /etc/group")
    assert results[11] == (False, "owner 4321:0, expected 4321:8765 (`4321:8765`)")


@pytest.mark.parametrize(("body", "needle"), [
    ('files = [{ path = "/x", exists = false, owner = "root" }]', "cannot have `mode`, `contains` or `owner`"),
    ('files = [{ path = "/x", owner = "a b" }]', "owner `a b` must be"),
    ('files = [{ path = "/x", owner = "" }]', "owner must be"),
])
def test_owner_attribute_errors(workspace, cli, body, needle):
    workspace.write("app/BUILD.toml", IMAGE.split("[[image_test]]")[0] + f'\n[[image_test]]\nname = "t"\nimage = ":owned"\n{body}\n')
    r = cli("test", "//app:t", cwd=workspace.root)
    assert r.returncode == 2 and needle in r.stderr and "Traceback" not in r.stderr, r.stderr
