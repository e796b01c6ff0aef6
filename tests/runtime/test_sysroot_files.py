"""`files` from the sysroot (`{ src, from = "sysroot", dest?, owner?, mode? }`) in the real engine: the bytes, mode and
owner the host's file and `getent` give (docs/runtime.md, "files from the sysroot")."""

from __future__ import annotations

import os
import subprocess

import pytest

IMAGE = """
[[image]]
name = "sf"
binaries = ["/usr/bin/stat"]
entrypoint = ["/usr/bin/stat", "-c", "%u:%g %a %s"]
files = [
  { src = "/etc/nginx/mime.types", from = "sysroot" },
  { src = "/etc/nginx/mime.types", from = "sysroot", dest = "/srv/", owner = "www-data", mode = "0600" },
  { src = "/usr/bin/id", from = "sysroot" },
]
tag = "minibuild-test/sysroot-files:latest"
"""


def _getent(db: str, key: str) -> list[str]:
    return subprocess.run(["getent", db, key], capture_output=True, text=True, check=True).stdout.strip().split(":")


@pytest.mark.docker
def test_sysroot_files_in_the_engine(workspace, cli, docker_engine, tmp_path):
    workspace.write("app/BUILD.toml", IMAGE)
    r = cli("build", "//app:sf", cwd=workspace.root)
    assert r.returncode == 0, r.stderr
    image = "minibuild-test/sysroot-files:latest"
    host = os.stat("/etc/nginx/mime.types")
    www = _getent("passwd", "www-data")
    for path, want in {"/etc/nginx/mime.types": f"0:0 {host.st_mode & 0o7777:o} {host.st_size}",
                       "/srv/mime.types": f"{www[2]}:{www[3]} 600 {host.st_size}"}.items():
        out = subprocess.run([docker_engine, "run", "--rm", image, path], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and out.stdout == want + "\n", (path, out.stdout, out.stderr)
    # The bytes, as `docker cp` takes them out of a container.
    container = subprocess.run([docker_engine, "create", image], capture_output=True, text=True,
                               check=True).stdout.strip()
    try:
        subprocess.run([docker_engine, "cp", f"{container}:/etc/nginx/mime.types", str(tmp_path / "m")], check=True)
    finally:
        subprocess.run([docker_engine, "rm", container], capture_output=True)
    assert (tmp_path / "m").read_bytes() == open("/etc/nginx/mime.types", "rb").read()
    # An ELF file at its own path comes with its closure: it runs.
    ran = subprocess.run([docker_engine, "run", "--rm", "--entrypoint", "/usr/bin/id", image, "-u"],
                         capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0 and ran.stdout == "0\n", ran.stderr


def test_bad_sysroot_files_are_exit_2(workspace, cli):
    cases = {
        '{ src = "/etc/nginx/mime.typo", from = "sysroot" }': ("files[0]: `/etc/nginx/mime.typo` is not in sysroot "
                                                             "`/`"),
        '{ src = "/etc/nginx", from = "sysroot" }': "`/etc/nginx` is a directory in sysroot `/`; `files` takes files",
        '{ src = "mime.types", from = "sysroot" }': 'with `from = "sysroot"`, `src` is an absolute path of the sysroot',
        '{ src = "/etc/hosts", from = "host" }': "files[0].from",
    }
    for entry, message in cases.items():
        workspace.write("app/BUILD.toml", f'[[image]]\nname = "i"\nbinaries = ["/bin/dash"]\nfiles = [{entry}]\n')
        r = cli("build", "//app:i", "--no-load", cwd=workspace.root)
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, (entry, r.stderr)
    workspace.write("app/BUILD.toml", '[[image]]\nname = "i"\nfiles = [{ src = "/etc/nginx", from = "sysroot" }]\n')
    r = cli("build", "//app:i", "--no-load", cwd=workspace.root)
    assert 'hint: copy a directory with `trees = [{ src = "/etc/nginx" }]`' in r.stderr, r.stderr


@pytest.mark.docker
def test_an_elf_file_copied_to_another_dest_comes_with_its_closure_and_runs(workspace, cli, docker_engine):
    workspace.write("app/BUILD.toml", """
[[image]]
name = "awk"
files = [{ src = "/usr/bin/mawk", from = "sysroot", dest = "/usr/local/bin/awk" }]
entrypoint = ["/usr/local/bin/awk"]
tag = "minibuild-test/sysroot-files-awk:latest"
""")
    r = cli("build", "//app:awk", cwd=workspace.root)
    assert r.returncode == 0, r.stderr
    program = 'BEGIN { print sqrt(1764), toupper("ok") }'
    expected = subprocess.run(["/usr/bin/mawk", program], capture_output=True, text=True, check=True).stdout
    out = subprocess.run([docker_engine, "run", "--rm", "minibuild-test/sysroot-files-awk:latest",
                          program], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout == expected == "42 OK\n", (out.stdout, out.stderr)
