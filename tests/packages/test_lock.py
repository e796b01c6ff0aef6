"""`minibuild lock` as a user runs it, against the loopback repository."""

from __future__ import annotations

import json

from tests.conftest import run_cli
from tests.packages.repo import SUITE, Apt, Synthetic, run


def _lock(ws, *args):
    return run_cli("lock", *args, cwd=ws.root)


def _resolved(ws, arch="amd64"):
    data = json.loads((ws.root / "minibuild.lock").read_text())
    return {p["name"]: p for p in data["sysroots"]["test"]["resolved"][arch]}


def test_lock_writes_what_apt_would_install_pinned_by_sha256(pkg_ws, repo, tmp_path):
    pkg_ws.write(["jq", "syn-app"])
    r = _lock(pkg_ws)
    assert r.returncode == 0, r.stderr
    assert "test (amd64): + jq 1.6" in r.stderr
    locked = _resolved(pkg_ws)
    expected = Apt(repo, tmp_path / "apt").install(["jq", "syn-app"])
    assert {n: p["version"] for n, p in locked.items()} == expected
    # every entry as dpkg-scanpackages indexed it, and the file in the pool of that size
    index = (repo.root / "dists" / SUITE / "main" / "binary-amd64" / "Packages").read_text()
    for p in locked.values():
        deb = repo.root / p["path"]
        assert deb.stat().st_size == p["size"]
        assert run("sha256sum", deb).split()[0] == p["sha256"]
        assert f"SHA256: {p['sha256']}" in index and f"Filename: {p['path']}" in index
    assert locked["libc6"]["pulled_by"] == ["jq", "libgcc-s1", "libjq1", "libonig5"]
    assert locked["jq"]["requested"] and not locked["libc6"]["requested"]
    assert locked["libc6"]["source"] == "glibc"
    assert repo.url not in (pkg_ws.root / "minibuild.lock").read_text()  # the mirror is never written
    [contents] = json.loads((pkg_ws.root / "minibuild.lock").read_text())["sysroots"]["test"]["contents"]["amd64"]
    assert contents["path"] == "main/Contents-amd64.gz"
    assert contents["sha256"] == run("sha256sum", repo.root / "dists" / SUITE / contents["path"]).split()[0]


def test_the_lock_is_stable_and_check_sees_staleness(pkg_ws):
    pkg_ws.write(["hello"])
    assert _lock(pkg_ws).returncode == 0
    first = (pkg_ws.root / "minibuild.lock").read_bytes()
    again = _lock(pkg_ws)
    assert "unchanged: minibuild.lock" in again.stderr
    assert _lock(pkg_ws, "--update").returncode == 0
    assert (pkg_ws.root / "minibuild.lock").read_bytes() == first
    assert _lock(pkg_ws, "--check").returncode == 0
    pkg_ws.write(["hello", "jq"])
    check = _lock(pkg_ws, "--check")
    assert check.returncode == 1
    assert "sysroot `test` changed since it was locked (packages added: jq)" in check.stderr
    assert (pkg_ws.root / "minibuild.lock").read_bytes() == first  # --check changes nothing


def test_update_of_one_package_moves_only_it(pkg_ws, repo, debs):
    pkg_ws.write(["syn-app"])
    assert _lock(pkg_ws).returncode == 0
    assert _resolved(pkg_ws)["syn-liba"]["version"] == "3.0~rc1"
    # the archive gets a newer syn-tool and syn-pre; only syn-tool is updated
    built = [Synthetic("syn-tool", "1.1", fields={"Multi-Arch": "allowed"}).build(repo.root),
             Synthetic("syn-pre", "1.1", arch="all").build(repo.root)]
    repo.add(*built)
    repo.publish()
    r = _lock(pkg_ws, "--update", "syn-tool")
    assert r.returncode == 0, r.stderr
    locked = _resolved(pkg_ws)
    assert (locked["syn-tool"]["version"], locked["syn-pre"]["version"]) == ("1.1", "1.0")
    assert "test (amd64): ~ syn-tool 1.0 -> 1.1" in r.stderr
    assert _lock(pkg_ws, "--update").returncode == 0
    assert _resolved(pkg_ws)["syn-pre"]["version"] == "1.1"
    bad = _lock(pkg_ws, "--update", "nope")
    assert bad.returncode == 2 and "`nope` is in no locked sysroot" in bad.stderr


def test_an_unresolvable_dependency_prints_the_chain(pkg_ws):
    pkg_ws.write(["hello", "syn-top"])
    r = _lock(pkg_ws)
    assert r.returncode == 2
    assert "error: sysroot `test`: cannot resolve `syn-missing (>= 1)` for architecture `amd64` (needed by " \
           "`syn-top`)" in r.stderr
    assert "caused by: `syn-top 1.0` depends on `syn-middle`" in r.stderr
    assert "caused by: `syn-middle 1.0` depends on `syn-missing (>= 1)`" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (pkg_ws.root / "minibuild.lock").exists()


def test_a_bad_signature_is_refused_and_nothing_written(pkg_ws, repo, keys):
    pkg_ws.write(["hello"])
    assert _lock(pkg_ws).returncode == 0
    before = (pkg_ws.root / "minibuild.lock").read_bytes()
    repo.publish(signer=keys["other"])  # now signed by a key the workspace's keyring does not hold
    r = _lock(pkg_ws, "--update")
    assert r.returncode == 1
    assert f"error: refusing `{repo.url}/dists/{SUITE}/InRelease`: it is signed by a key the keyring does not " \
           "hold" in r.stderr
    assert (pkg_ws.root / "minibuild.lock").read_bytes() == before


def test_bad_sysroot_tables_are_one_message_with_the_line(pkg_ws):
    pkg_ws.write(["Bad_Name"])
    r = _lock(pkg_ws)
    assert r.returncode == 2
    assert "`Bad_Name` is not a Debian package name" in r.stderr
    assert "--> workspace.toml:6, attribute `sysroots.test.packages" in r.stderr
    assert "Traceback" not in r.stderr
    (pkg_ws.root / "workspace.toml").write_text('[sysroots.x]\ndebian = { suite = "bookworm" }\npackages = ["a"]\n')
    r = _lock(pkg_ws)
    assert r.returncode == 2 and "missing required attribute `sysroots.x.debian.architectures`" in r.stderr


def test_no_sysroot_to_lock_is_an_error(workspace):
    r = run_cli("lock", cwd=workspace.root)
    assert r.returncode == 2 and "declares no package sysroot" in r.stderr


def test_a_damaged_lock_is_one_message_and_update_writes_it_anew(pkg_ws):
    pkg_ws.write(["hello"])
    (pkg_ws.root / "minibuild.lock").write_text('{"lock_version": 1, "sysroots": {"test": {}}}')
    for args in ((), ("--check",), ("--update", "hello")):
        r = _lock(pkg_ws, *args)
        assert r.returncode == 2 and "Traceback" not in r.stderr
        assert "`minibuild.lock` is not a lock minibuild can read: missing key 'resolved'" in r.stderr
        assert "hint: write it again with `minibuild lock --update`" in r.stderr
    r = _lock(pkg_ws, "--update")
    assert r.returncode == 0 and "writing it anew" in r.stderr
    assert "hello" in _resolved(pkg_ws)
