"""`packages` on a host sysroot: the image holds what `dpkg -L` lists, as the host has it, without documentation
(docs/runtime.md, "packages"). nginx-common comes with nginx-light (scripts/test.sh installs it), sed is Essential."""

from __future__ import annotations

import json
import subprocess

import pytest

from minibuild.image.runtime.packages import is_doc

IMAGE = """
[[image]]
name = "pk"
binaries = ["/usr/bin/stat"]
entrypoint = ["/usr/bin/stat", "-c", "%n|%F|%a|%s"]
packages = ["nginx-common", { name = "sed", docs = true }]
tag = "minibuild-test/packages:latest"
"""


def _dpkg_list(package: str) -> list[str]:
    out = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line.startswith("/") and line != "/."]


def _stat_lines(text: str) -> list[str]:
    # A directory's size is its file system's business: compare type, mode and owner only.
    return [line.rsplit("|", 1)[0] if "|directory|" in line else line for line in text.splitlines()]


@pytest.mark.docker
def test_the_image_holds_what_dpkg_lists(workspace, cli, docker_engine):
    workspace.write("app/BUILD.toml", IMAGE)
    r = cli("build", "//app:pk", cwd=workspace.root)
    assert r.returncode == 0, r.stderr
    image = "minibuild-test/packages:latest"
    nginx = _dpkg_list("nginx-common")
    kept = [p for p in nginx if not is_doc(p)]
    dropped = [p for p in nginx if is_doc(p) and p.startswith("/usr/share/doc/")]
    assert kept and dropped  # the package has both: the test can tell them apart
    sed = _dpkg_list("sed")
    paths = kept + sed  # sed with its documentation, man page and translations
    host = subprocess.run(["stat", "-c", "%n|%F|%a|%s", *paths], capture_output=True, text=True, check=True)
    inside = subprocess.run([docker_engine, "run", "--rm", image, *paths], capture_output=True, text=True,
                            timeout=120)
    assert inside.returncode == 0, inside.stderr
    assert _stat_lines(inside.stdout) == _stat_lines(host.stdout)
    # Everything is root's, as the package's data.tar has it (a maintainer script's chown is not run: `dirs`).
    owners = subprocess.run([docker_engine, "run", "--rm", "--entrypoint", "/usr/bin/stat", image, "-c", "%u:%g",
                             *paths], capture_output=True, text=True, timeout=120)
    assert set(owners.stdout.split()) == {"0:0"}, owners.stdout
    gone = subprocess.run([docker_engine, "run", "--rm", image, *dropped], capture_output=True, text=True,
                          timeout=120)
    assert gone.returncode == 1 and gone.stdout == "" and gone.stderr.count("No such file") == len(dropped), \
        gone.stderr
    # sed's ELF closure came along: it runs.
    ran = subprocess.run([docker_engine, "run", "--rm", "--entrypoint", "/bin/sed", image, "--version"],
                         capture_output=True, text=True, timeout=120)
    host_sed = subprocess.run(["/bin/sed", "--version"], capture_output=True, text=True, check=True).stdout
    assert ran.returncode == 0 and ran.stdout == host_sed, ran.stderr
    # Each file says where it came from, in the size table and in `why`.
    summary = json.loads(next(workspace.root.glob("**/app/pk/summary.json")).read_text())
    reasons = {f["path"]: f["reason"] for f in summary["files"]}
    assert reasons["/etc/nginx/mime.types"] == "package: nginx-common"
    assert "/etc/nginx/mime.types" in r.stdout + r.stderr and "package: nginx-common" in r.stdout + r.stderr
    why = cli("why", "//app:pk", "/etc/nginx/mime.types", cwd=workspace.root)
    assert why.returncode == 0 and "/etc/nginx/mime.types: package: nginx-common" in why.stdout + why.stderr
    why = cli("why", "//app:pk", "/bin/sed", "--json", cwd=workspace.root)
    assert why.returncode == 0 and json.loads(why.stdout)[0].endswith("(package: sed)"), why.stdout


def test_an_unknown_package_is_exit_2_naming_the_database(workspace, cli):
    workspace.write("app/BUILD.toml", '[[image]]\nname = "i"\npackages = ["nginx-comon"]\n')
    r = cli("build", "//app:i", "--no-load", cwd=workspace.root)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "`packages` names `nginx-comon`, which is not installed in sysroot `/` (its dpkg database " \
           "`/var/lib/dpkg/status`)" in r.stderr, r.stderr
    assert "close names: `nginx-common`" in r.stderr
    cases = {
        'packages = ["Not A Name"]': "must be a Debian package name",
        'packages = ["sed", { name = "sed" }]': "package `sed` is listed twice",
        'packages = [{ name = "sed", doc = true }]': "unknown attribute `packages[0].doc`",
    }
    for attrs, message in cases.items():
        workspace.write("app/BUILD.toml", f'[[image]]\nname = "i"\n{attrs}\n')
        r = cli("build", "//app:i", "--no-load", cwd=workspace.root)
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, (attrs, r.stderr)


def test_a_sysroot_without_a_dpkg_database_is_exit_2(workspace, cli, tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    workspace.write("app/BUILD.toml", f'[[image]]\nname = "i"\nsysroot = "{root}"\npackages = ["sed"]\n')
    r = cli("build", "//app:i", "--no-load", cwd=workspace.root)
    assert r.returncode == 2 and "has no dpkg database (`/var/lib/dpkg/status`)" in r.stderr, r.stderr
