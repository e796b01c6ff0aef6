"""InRelease: signatures checked by gpgv (good, wrong key, altered text, unsigned additions), the Release's
hashes and the indices checked against them, the host's apt sources read for the mirror."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from minibuild.cache import Cache
from minibuild.errors import BuildError, InputError
from minibuild.packages import release, sources
from minibuild.packages.archive import Archive, load_release, load_universe
from tests.packages.repo import SUITE, Repo, run


def _inrelease(repo: Repo) -> bytes:
    return (repo.root / "dists" / SUITE / "InRelease").read_bytes()


def test_a_good_signature_gives_the_signed_text(shared_repo):
    signed = release.verify(_inrelease(shared_repo), (str(shared_repo.keyring),), "InRelease")
    assert signed.decode() == (shared_repo.root / "dists" / SUITE / "Release").read_text()


def test_the_release_lists_what_sha256sum_says(shared_repo):
    dists = shared_repo.root / "dists" / SUITE
    parsed = release.parse((dists / "Release").read_text(), "Release")
    listed = run("sha256sum", *(f"main/binary-amd64/Packages{s}" for s in ("", ".gz", ".xz")), cwd=dists)
    for line in listed.splitlines():
        digest, name = line.split()
        assert parsed.files[name].sha256 == digest
        assert parsed.files[name].size == (dists / name).stat().st_size
    assert parsed.index("main/binary-amd64").path == "main/binary-amd64/Packages.xz"
    assert (parsed.suite, parsed.codename, parsed.architectures) == (SUITE, SUITE, ("amd64",))


def test_a_signature_by_another_key_is_refused(shared_repo, keys, tmp_path):
    other = subprocess.run(["gpg", "--homedir", str(keys["other"]), "--batch", "--clearsign", "-o", "-",
                            str(shared_repo.root / "dists" / SUITE / "Release")], capture_output=True, check=True)
    with pytest.raises(BuildError) as err:
        release.verify(other.stdout, (str(shared_repo.keyring),), "http://x/InRelease")
    assert "refusing `http://x/InRelease`: it is signed by a key the keyring does not hold" in err.value.message


def test_altered_signed_text_is_refused(shared_repo):
    data = _inrelease(shared_repo).replace(b"Suite: mbtest", b"Suite: mbtesX")
    with pytest.raises(BuildError, match="does not verify"):
        release.verify(data, (str(shared_repo.keyring),), "InRelease")


def test_unsigned_text_beside_the_signature_is_refused(shared_repo):
    data = b"SHA256:\n 00 1 main/evil\n" + _inrelease(shared_repo)
    with pytest.raises(BuildError, match="not one OpenPGP clear-signed message"):
        release.verify(data, (str(shared_repo.keyring),), "InRelease")


def test_an_armoured_keyring_is_read(shared_repo, keys, tmp_path):
    armoured = tmp_path / "archive.asc"
    armoured.write_bytes(subprocess.run(["gpg", "--homedir", str(keys["archive"]), "--armor", "--export"],
                                        capture_output=True, check=True).stdout)
    assert release.verify(_inrelease(shared_repo), (str(armoured),), "InRelease")


def test_debians_own_keyring_refuses_the_test_archive(shared_repo):
    with pytest.raises(BuildError, match="does not hold"):
        release.verify(_inrelease(shared_repo), release.DEFAULT_KEYRINGS, "InRelease")


def test_an_index_that_differs_from_the_release_is_refused(repo, tmp_path):
    index = repo.root / "dists" / SUITE / "main" / "binary-amd64" / "Packages.xz"
    index.write_bytes(index.read_bytes()[:-8] + b"tampered")
    archive = Archive(repo.url, SUITE, (str(repo.keyring),))
    cache = Cache(str(tmp_path / "cache"))
    with pytest.raises(BuildError) as err:
        load_universe(archive, load_release(archive, cache), ("main",), "amd64", cache)
    assert "is not the file the Release names: refused, nothing stored" in err.value.message
    assert list(cache.blobs()) == []


def test_a_release_of_another_suite_or_expired_is_refused(shared_repo, tmp_path):
    archive = Archive(shared_repo.url, SUITE, (str(shared_repo.keyring),))
    parsed = load_release(archive, Cache(str(tmp_path / "c")))
    with pytest.raises(BuildError, match="not of `bookworm`"):
        release.check(parsed, "bookworm", "x", 0)
    expired = release.Release(**{**parsed.__dict__, "valid_until": "Sat, 01 Jan 2000 00:00:00 UTC"})
    with pytest.raises(BuildError, match="expired"):
        release.check(expired, SUITE, "x", 1e9)


def test_the_mirror_comes_from_the_apt_sources(tmp_path: Path):
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    (apt / "sources.list").write_text("# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://one.example/debian "
                                      "bookworm main\n")
    (apt / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://two.example/debian\nSuites: trixie trixie-updates\nComponents: main\n\n"
        "Types: deb\nURIs: http://sec.example/debian-security\nSuites: trixie-security\nComponents: main\n")
    assert sources.mirror_for("bookworm", str(apt)) == "http://one.example/debian"
    assert sources.mirror_for("trixie", str(apt)) == "http://two.example/debian"
    assert sources.mirror_for("sid", str(apt)) == "http://one.example/debian"
    (apt / "sources.list").unlink()
    (apt / "sources.list.d" / "debian.sources").write_text("Types: deb-src\nURIs: http://src.example/\n")
    with pytest.raises(InputError, match="no Debian mirror"):
        sources.mirror_for("bookworm", str(apt))


def test_this_machines_apt_names_a_mirror_that_serves_its_suite():
    """What the end-to-end test relies on, read by apt itself (`apt-get indextargets`)."""
    out = run("apt-get", "indextargets", "--format", "$(REPO_URI) $(RELEASE)", "Created-By: Packages")
    suite = run("sh", "-c", ". /etc/os-release && echo $VERSION_CODENAME").strip()
    uris = {line.split()[0].rstrip("/") for line in out.splitlines() if line.split()[1:] == [suite]}
    assert sources.mirror_for(suite) in uris
    assert hashlib  # noqa: B018 - keeps the import for readers comparing digests by hand
