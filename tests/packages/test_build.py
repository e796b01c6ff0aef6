"""Images built from a package sysroot of the loopback repository, as a user builds them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from tests.conftest import run_cli

JQ = '[[image]]\nname = "jq"\nbinaries = ["/usr/bin/jq"]\nsysroot = "test"\n'


def _build(ws, *args):
    return run_cli("build", "//images:jq", "--no-load", "--json", *args, cwd=ws.root)


def _files(ws) -> set[str]:
    summary = json.loads((ws.root / ".minibuild/out/images/jq/summary.json").read_text())
    return {f["path"] for f in summary["files"]}


def test_an_image_from_locked_packages(pkg_ws, repo):
    pkg_ws.write(["jq"], JQ)
    assert run_cli("lock", cwd=pkg_ws.root).returncode == 0
    r = _build(pkg_ws)
    assert r.returncode == 0, r.stderr
    files = _files(pkg_ws)
    assert {"/usr/bin/jq", "/usr/lib/x86_64-linux-gnu/libc.so.6"} <= files
    # what the real loader maps, run on the unpacked tree (ld.so --list, with the tree's own directories)
    tree = next((pkg_ws.root / ".minibuild/cache/sysroots").glob("*[!n]"))
    ldso = subprocess.run([str(tree / "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"), "--library-path",
                           f"{tree}/usr/lib/x86_64-linux-gnu", "--list", str(tree / "usr/bin/jq")],
                          capture_output=True, text=True, check=True).stdout
    loaded = [line.split("=>")[1].split()[0] for line in ldso.splitlines() if "=>" in line]
    real = {os.path.realpath(p).removeprefix(str(tree)) for p in loaded}
    assert len(real) == 5 and real <= files  # libjq, libonig, libm, libc and the loader
    digest = r.json()["targets"][0]["digest"]
    # a second build is a no-op with the same digest
    again = _build(pkg_ws)
    assert again.json()["actions"]["run"] == 0 and again.json()["targets"][0]["digest"] == digest


@pytest.mark.docker
def test_the_image_runs(pkg_ws, repo, docker_engine):
    pkg_ws.write(["jq"], JQ.replace('sysroot = "test"', 'sysroot = "test"\ntag = "minibuild-test/pkg-jq:1"'))
    assert run_cli("lock", cwd=pkg_ws.root).returncode == 0
    r = run_cli("build", "//images:jq", cwd=pkg_ws.root)
    assert r.returncode == 0, r.stderr
    out = subprocess.run([docker_engine, "run", "--rm", "minibuild-test/pkg-jq:1", "--version"], capture_output=True,
                         text=True)
    assert out.returncode == 0 and out.stdout.startswith("jq-1.")
    subprocess.run([docker_engine, "rmi", "-f", "minibuild-test/pkg-jq:1"], capture_output=True)


def test_a_stale_or_missing_lock_stops_the_build(pkg_ws):
    pkg_ws.write(["jq"], JQ)
    r = _build(pkg_ws)
    assert r.returncode == 2
    assert "`minibuild.lock` is stale: there is no `minibuild.lock`" in r.stderr
    assert "hint: run `minibuild lock`" in r.stderr and "Traceback" not in r.stderr
    assert run_cli("lock", cwd=pkg_ws.root).returncode == 0
    pkg_ws.write(["jq", "hello"], JQ)
    r = _build(pkg_ws)
    assert r.returncode == 2
    assert "sysroot `test` changed since it was locked (packages added: hello)" in r.stderr


def test_offline_builds_from_the_cache_and_names_what_is_missing(pkg_ws, repo):
    pkg_ws.write(["jq"], JQ)
    assert run_cli("lock", cwd=pkg_ws.root).returncode == 0
    r = _build(pkg_ws, "--offline")
    assert r.returncode == 1
    assert "--offline, and 6 package(s) of the lock are not in the cache" in r.stderr
    assert "caused by: jq_1." in r.stderr and "hint: build once without `--offline`" in r.stderr
    assert _build(pkg_ws).returncode == 0
    digest = json.loads(_build(pkg_ws).stdout)["targets"][0]["digest"]
    # the unpacked tree and every action gone, the .deb files kept: --offline builds it all again, no request
    shutil.rmtree(pkg_ws.root / ".minibuild/cache/sysroots")
    shutil.rmtree(pkg_ws.root / ".minibuild/cache/ac")
    before = len(repo.server.requests)
    r = _build(pkg_ws, "--offline")
    assert r.returncode == 0, r.stderr
    assert r.json()["targets"][0]["digest"] == digest
    assert len(repo.server.requests) == before


def test_a_tampered_deb_fails_the_build_and_is_not_stored(pkg_ws, repo):
    pkg_ws.write(["jq"], JQ)
    assert run_cli("lock", cwd=pkg_ws.root).returncode == 0
    locked = {p["name"]: p for p in json.loads((pkg_ws.root / "minibuild.lock").read_text())
              ["sysroots"]["test"]["resolved"]["amd64"]}
    deb = repo.root / locked["libonig5"]["path"]
    deb.write_bytes(deb.read_bytes()[:-1] + b"!")
    r = _build(pkg_ws)
    assert r.returncode == 1
    assert f"`{repo.url}/{locked['libonig5']['path']}` is not the file the lock names: refused, nothing stored" \
        in r.stderr
    assert f"expected sha256 {locked['libonig5']['sha256']}" in r.stderr
    blob = pkg_ws.root / ".minibuild/cache/cas/sha256" / locked["libonig5"]["sha256"][:2] / locked["libonig5"]["sha256"]
    assert not blob.exists()


def test_sysroot_attribute_errors(pkg_ws):
    pkg_ws.write(["jq"], JQ.replace('sysroot = "test"', 'sysroot = "tset"'))
    r = _build(pkg_ws)
    assert r.returncode == 2
    assert "no package sysroot `tset` in workspace.toml" in r.stderr
    assert "--> images/BUILD.toml:4, target `//images:jq`, attribute `sysroot`" in r.stderr
    pkg_ws.write(["jq"], JQ + 'platforms = ["linux/arm64"]\n')
    r = _build(pkg_ws)
    assert r.returncode == 2 and "sysroot `test` has no architecture `arm64` for platform `linux/arm64`" in r.stderr


def test_the_workspace_default_can_be_a_package_sysroot(pkg_ws):
    pkg_ws.write(["jq"], JQ.replace('sysroot = "test"\n', ""))
    (pkg_ws.root / "workspace.toml").write_text((pkg_ws.root / "workspace.toml").read_text()
                                                .replace('name = "pkgtest"', 'name = "pkgtest"\nsysroot = "test"'))
    assert run_cli("lock", cwd=pkg_ws.root).returncode == 0
    r = _build(pkg_ws)
    assert r.returncode == 0, r.stderr
    assert "/usr/bin/jq" in _files(pkg_ws)


def test_a_binary_no_locked_package_ships_names_the_one_that_does(pkg_ws, repo):
    pkg_ws.write(["jq"], JQ + '\n[[image]]\nname = "hello"\nbinaries = ["/usr/bin/hello", "/bin/syn-script"]\n'
                 'sysroot = "test"\n')
    assert run_cli("lock", cwd=pkg_ws.root).returncode == 0
    r = run_cli("build", "//images:hello", "--no-load", "--offline", cwd=pkg_ws.root)
    assert r.returncode == 1  # offline and nothing fetched yet
    _build(pkg_ws)  # the .deb files are in the cache now; the Contents index is not
    r = run_cli("build", "//images:hello", "--no-load", "--offline", cwd=pkg_ws.root)
    assert r.returncode == 2
    assert "`/usr/bin/hello` is in no package of sysroot `test` (amd64) (nor are `/bin/syn-script`)" in r.stderr
    assert "hint: add the package that ships it to `packages` of `[sysroots.test]` (`apt-file search " \
           "/usr/bin/hello` names it)" in r.stderr
    r = run_cli("build", "//images:hello", "--no-load", cwd=pkg_ws.root)
    assert r.returncode == 2
    # what apt-ftparchive's Contents index says ships them
    assert "caused by: `/usr/bin/hello` is shipped by `hello` in `mbtest`" in r.stderr
    assert "caused by: `/bin/syn-script` is shipped by `syn-files` in `mbtest`" in r.stderr
    assert "hint: add `hello` to `packages` of `[sysroots.test]` in workspace.toml, then run `minibuild lock`" \
        in r.stderr and "Traceback" not in r.stderr


def test_why_size_and_probe_work_on_a_package_sysroot(pkg_ws):
    pkg_ws.write(["jq"], JQ + 'probe = [["/usr/bin/jq", "--version"]]\n')
    assert run_cli("lock", cwd=pkg_ws.root).returncode == 0
    r = _build(pkg_ws)
    assert r.returncode == 0, r.stderr
    closure = json.loads((pkg_ws.root / ".minibuild/out/images/jq/closure.json").read_text())
    assert closure["probe"][0]["exit_code"] == 0 and closure["probe"][0]["output"].startswith("jq-1.")
    onig = next(f for f in _files(pkg_ws) if "/libonig.so." in f and f.count(".") > 3)
    why = run_cli("why", "//images:jq", onig, cwd=pkg_ws.root)
    assert why.returncode == 0 and "DT_NEEDED `libonig.so.5`" in why.stdout + why.stderr
    size = run_cli("size", "//images:jq", "--json", cwd=pkg_ws.root)
    assert size.returncode == 0 and size.json()["total"]["images"] == 1
