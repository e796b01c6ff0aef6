"""Fetching `.deb` files (digests checked before anything is stored, retries, a server gone, --offline) and
unpacking them, compared with what `dpkg-deb --fsys-tarfile | tar -x` lays out."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import stat
from pathlib import Path

import pytest

from minibuild.cache import Cache
from minibuild.digest import StatCache
from minibuild.errors import BuildError
from minibuild.packages import fetch, http, locking, tree
from minibuild.packages.lockfile import LockedPackage
from minibuild.packages.spec import Request, SysrootSpec
from tests.packages.repo import SUITE, Repo, apt_download, run

FAST = http.Retry(attempts=3, backoff=0.01, connect_timeout=2, read_timeout=5)


def _locked(repo: Repo, cache: Cache, packages: list[str]) -> tuple[LockedPackage, ...]:
    spec = SysrootSpec("t", Request(SUITE, ("main",), ("amd64",), tuple(packages)), repo.url, (str(repo.keyring),))
    lock, _ = locking.lock([spec], None, cache)
    return lock.sysroots["t"].resolved["amd64"]


@pytest.fixture
def cache(tmp_path: Path) -> Cache:
    return Cache(str(tmp_path / "cache"))


def _fetch(repo: Repo, cache: Cache, packages, **kw):
    return fetch.fetch(packages, lambda: repo.url, cache, StatCache(), retry=FAST, **kw)


def _debs_fetched(repo: Repo) -> list[str]:
    assert repo.server is not None
    return [r for r in repo.server.requests if r.endswith(".deb")]


def test_every_package_is_stored_under_its_sha256(repo, cache):
    locked = _locked(repo, cache, ["jq"])
    assert len(_fetch(repo, cache, locked)) == len(locked)
    for p in locked:
        assert run("sha256sum", cache.blob_path("sha256:" + p.sha256)).split()[0] == p.sha256
    assert _fetch(repo, cache, locked) == []  # all there: nothing downloaded again
    assert len(_debs_fetched(repo)) == len(locked)


def test_a_tampered_deb_is_refused_and_nothing_stored(repo, cache):
    locked = _locked(repo, cache, ["hello"])
    hello = next(p for p in locked if p.name == "hello")
    deb = repo.root / hello.path
    data = bytearray(deb.read_bytes())
    data[-100] ^= 0xFF  # same size, other bytes
    deb.write_bytes(bytes(data))
    actual = run("sha256sum", deb).split()[0]
    with pytest.raises(BuildError) as err:
        _fetch(repo, cache, [hello])
    assert err.value.message == f"`{repo.url}/{hello.path}` is not the file the lock names: refused, nothing stored"
    assert err.value.causes == (f"expected sha256 {hello.sha256} ({hello.size} bytes)",
                                f"actual   sha256 {actual} ({hello.size} bytes)")
    assert not cache.has_blob("sha256:" + hello.sha256) and not cache.has_blob("sha256:" + actual)
    assert os.listdir(os.path.join(cache.root, "tmp")) == []


def test_a_connection_cut_mid_download_is_retried_then_a_clear_error(repo, cache):
    locked = _locked(repo, cache, ["hello"])
    libc = next(p for p in locked if p.name == "libc6")
    assert repo.server is not None
    repo.server.faults["cut"] = {os.path.basename(libc.path): libc.size // 2}
    with pytest.raises(BuildError) as err:
        _fetch(repo, cache, [libc])
    assert err.value.message.startswith(f"cannot download `{repo.url}/{libc.path}`:")
    assert "(tried 3 times)" in err.value.message
    assert len(_debs_fetched(repo)) == 3
    assert not cache.has_blob("sha256:" + libc.sha256)
    repo.server.faults["cut"] = {}
    repo.server.faults["fail"] = {os.path.basename(libc.path): 2}  # two 503s, then the file
    assert _fetch(repo, cache, [libc]) == [libc]


def test_a_server_gone_is_retried_then_a_clear_error(repo, cache):
    locked = _locked(repo, cache, ["hello"])
    repo.stop()
    with pytest.raises(BuildError) as err:
        _fetch(repo, cache, locked)
    assert "downloads failed" in err.value.message or "cannot download" in err.value.message
    assert all("tried 3 times" in c for c in err.value.causes) and "Connection" in err.value.causes[0]
    assert list(cache.blobs()) == [b for b in cache.blobs() if not b.endswith(tuple(p.sha256 for p in locked))]


def test_offline_uses_the_store_only_and_lists_what_is_missing(repo, cache, monkeypatch):
    locked = _locked(repo, cache, ["jq"])
    monkeypatch.setenv(fetch.OFFLINE_ENV, "1")
    with pytest.raises(BuildError) as err:
        _fetch(repo, cache, locked)
    assert err.value.message == f"--offline, and {len(locked)} package(s) of the lock are not in the cache"
    assert f"jq_{next(p.version for p in locked if p.name == 'jq')}_amd64.deb" in "\n".join(err.value.causes)
    assert _debs_fetched(repo) == []
    monkeypatch.delenv(fetch.OFFLINE_ENV)
    _fetch(repo, cache, locked)
    monkeypatch.setenv(fetch.OFFLINE_ENV, "1")
    assert _fetch(repo, cache, locked) == []


def test_a_second_workspace_takes_the_debs_from_the_shared_store(repo, tmp_path):
    first, second = Cache(str(tmp_path / "one")), Cache(str(tmp_path / "two"))
    locked = _locked(repo, first, ["jq"])
    assert len(_fetch(repo, first, locked)) == len(locked)
    served = len(_debs_fetched(repo))
    assert _fetch(repo, second, locked) == []  # nothing downloaded: all from the shared store
    assert len(_debs_fetched(repo)) == served
    for p in locked:  # each one the file the lock names, checked by an independent hash
        assert run("sha256sum", second.blob_path("sha256:" + p.sha256)).split()[0] == p.sha256
        assert os.stat(second.blob_path("sha256:" + p.sha256)).st_ino != \
            os.stat(first.blob_path("sha256:" + p.sha256)).st_ino


def test_a_damaged_file_in_the_shared_store_is_downloaded_again(repo, tmp_path, monkeypatch):
    first, second = Cache(str(tmp_path / "one")), Cache(str(tmp_path / "two"))
    locked = _locked(repo, first, ["hello"])
    _fetch(repo, first, locked)
    shared = [path for path in Path(os.environ[fetch.SHARED_ENV]).rglob("*.deb")]
    assert len(shared) == len(locked)
    for path in shared:
        data = bytearray(path.read_bytes())
        data[-100] ^= 0xFF
        path.write_bytes(bytes(data))
    served = len(_debs_fetched(repo))
    assert len(_fetch(repo, second, locked)) == len(locked)  # each refused, then downloaded
    assert len(_debs_fetched(repo)) == served + len(locked)
    for p in locked:
        assert run("sha256sum", second.blob_path("sha256:" + p.sha256)).split()[0] == p.sha256
    monkeypatch.setenv(fetch.SHARED_ENV, "off")
    third = Cache(str(tmp_path / "three"))
    assert len(_fetch(repo, third, locked)) == len(locked)


def test_downloads_report_their_progress(repo, cache):
    locked = _locked(repo, cache, ["jq"])
    said: list[str] = []
    _fetch(repo, cache, locked, progress=said.append)
    total = sum(p.size for p in locked)
    assert said[-1] == f"downloading {len(locked)}/{len(locked)} packages, {total / 1e6:.1f}/{total / 1e6:.1f} MB"


def _entries(root: Path) -> dict[str, tuple]:
    """Every path below `root`: kind, link target or content, permission bits."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = "/" + str(path.relative_to(root))
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                found[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                found[rel] = ("dir",)
            else:
                found[rel] = ("file", path.read_bytes(), stat.S_IMODE(st.st_mode) & 0o1777, st.st_ino)
    return found


def test_the_tree_is_what_tar_extracts_on_merged_usr(repo, cache, tmp_path):
    locked = _locked(repo, cache, ["jq", "syn-app", "syn-files", "syn-gz", "syn-zst"])
    _fetch(repo, cache, locked)
    ours = Path(tree.ensure_tree(cache, "amd64", locked))
    reference = tmp_path / "reference"
    reference.mkdir()
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):  # as debootstrap makes them (next test)
        (reference / "usr" / name).mkdir(parents=True)
        (reference / name).symlink_to(f"usr/{name}")
    for p in sorted(locked, key=lambda p: p.name):
        tar = run("sh", "-c", 'dpkg-deb --fsys-tarfile "$1" | tar -x --keep-directory-symlink -C "$2"', "-",
                  cache.blob_path("sha256:" + p.sha256), reference)
        assert tar == ""
    mine, theirs = _entries(ours), _entries(reference)
    inode = {k: v[3] for k, v in theirs.items() if v[0] == "file"}
    assert {k: v[:3] for k, v in mine.items()} == {k: v[:3] for k, v in theirs.items()}
    # tar keeps the setuid bit, the tree does not
    assert stat.S_IMODE((reference / "usr/sbin/syn-suid").stat().st_mode) == 0o4755
    assert stat.S_IMODE((ours / "usr/sbin/syn-suid").stat().st_mode) == 0o755
    assert (ours / "usr/share/syn/one").stat().st_ino == (ours / "usr/share/syn/two").stat().st_ino
    assert inode["/usr/share/syn/one"] == inode["/usr/share/syn/two"]
    assert (ours / "usr/bin/syn-script").is_file() and (ours / "bin").is_symlink()
    owners = json.loads(Path(ours.as_posix() + ".owners.json").read_text())
    assert owners["/usr/bin/jq"] == "jq" and owners["/bin/syn-script"] == "syn-files"
    assert tree.ensure_tree(cache, "amd64", locked) == str(ours)  # whole or absent: made once


def test_merged_usr_links_are_debootstraps(tmp_path):
    """The library directories linked into /usr per architecture, read from debootstrap's own script."""
    [deb] = apt_download(["debootstrap"], tmp_path / "dl")
    run("dpkg-deb", "-x", deb, tmp_path / "x")
    script = (tmp_path / "x" / "usr/share/debootstrap/functions").read_text()
    body = script[script.index("setup_merged_usr()"):]
    body = body[body.index("case $ARCH in"):]
    body = body[:body.index("esac")]
    table = {pattern: tuple(dirs.split()) for patterns, dirs in re.findall(r'([\w*|]+)\)\s*link_dir="([^"]*)"', body)
             for pattern in patterns.split("|")}
    assert table["amd64"] and table["s390x"]
    for arch in ("amd64", "i386", "ppc64el", "s390x", "arm64", "armhf", "riscv64"):
        expected = next((dirs for pattern, dirs in table.items() if fnmatch.fnmatch(arch, pattern)), ())
        assert tree.MERGED_LIB_DIRS.get(arch, ()) == expected, arch


def test_the_ca_bundle_is_the_one_update_ca_certificates_made_on_this_machine(tmp_path, cache):
    """The host's /etc/ssl/certs/ca-certificates.crt was written by the real update-ca-certificates (from the same
    ca-certificates version, downloaded here); it appends the administrator's certificates of
    /usr/local/share/ca-certificates after Debian's, which are the tree's bundle."""
    version = run("dpkg-query", "-W", "-f", "${Version}", "ca-certificates")
    [deb] = apt_download([f"ca-certificates={version}"], tmp_path / "dl")
    sha = run("sha256sum", deb).split()[0]
    cache.put_file(str(deb), "sha256:" + sha)
    locked = LockedPackage("ca-certificates", version, "all", "ca-certificates", "x", os.path.getsize(
        cache.blob_path("sha256:" + sha)), sha)
    ours = (Path(tree.ensure_tree(cache, "amd64", [locked])) / "etc/ssl/certs/ca-certificates.crt").read_bytes()
    local = b""
    for crt in sorted(run("find", "-L", "/usr/local/share/ca-certificates", "-type", "f", "-name", "*.crt")
                      .split("\n")) if Path("/usr/local/share/ca-certificates").is_dir() else []:
        if crt:
            data = Path(crt).read_bytes()
            local += data if data.endswith(b"\n") else data + b"\n"
    host = Path("/etc/ssl/certs/ca-certificates.crt").read_bytes()
    assert host.endswith(local) and host[:len(host) - len(local)] == ours
    assert ours.count(b"BEGIN CERTIFICATE") > 100
