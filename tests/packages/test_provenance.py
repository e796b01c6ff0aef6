"""Provenance of an image built from a package sysroot of the loopback repository: `minibuild sbom` names, for every
file, the package that shipped it with its version, architecture, `.deb` sha256, URL and purl, and `dpkg_status`
writes the distroless status.d layout. Expected values come from the `.deb` files themselves (`dpkg-deb`,
`sha256sum`), from the repository's HTTP server, and from dpkg-query reading the status files the image holds."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tarfile
import urllib.request

import pytest

from tests.conftest import run_cli
from tests.packages.image_reading import (
    STATUS_D,
    deb_md5sums,
    deb_show,
    dpkg_reads,
    layout_files,
    md5,
    purl,
    sha256sum,
    shipped,
)

JQ = '[[image]]\nname = "jq"\nbinaries = ["/usr/bin/jq"]\nsysroot = "test"\n'


def _locked(ws) -> dict[str, dict]:
    lock = json.loads((ws.root / "minibuild.lock").read_text())
    return {p["name"]: p for p in lock["sysroots"]["test"]["resolved"]["amd64"]}


def _expected_owners(repo, locked: dict[str, dict], files: dict[str, bytes]) -> dict[str, str]:
    """{image file: the one locked package whose .deb ships it}, by `dpkg-deb -c` of each .deb."""
    ships = {name: shipped(repo.root / p["path"]) for name, p in locked.items()}
    owners = {}
    for path in files:
        by = [name for name, paths in ships.items() if path in paths]
        assert len(by) <= 1, (path, by)
        if by:
            owners[path] = by[0]
    return owners


def _build(ws, *args: str):
    r = run_cli("build", "//images:jq", "--no-load", "--json", *args, cwd=ws.root)
    assert r.returncode == 0, r.stderr
    return r.json()["targets"][0]["digest"]


def test_the_sbom_names_each_files_package_from_the_lock(pkg_ws, repo, tmp_path):
    pkg_ws.write(["jq"], JQ)
    assert run_cli("lock", cwd=pkg_ws.root).returncode == 0
    r = run_cli("sbom", "//images:jq", "-o", str(tmp_path / "jq.spdx.json"), cwd=pkg_ws.root)
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path / "jq.spdx.json").read_text())
    locked = _locked(pkg_ws)
    files = layout_files(pkg_ws.root / ".minibuild/out/images/jq/oci")
    owners = _expected_owners(repo, locked, files)
    assert {"jq", "libjq1", "libonig5", "libc6"} <= set(owners.values())
    tree = next(p for p in (pkg_ws.root / ".minibuild/cache/sysroots").iterdir() if p.is_dir())
    assert not (tree / "var/lib/dpkg/status").exists()  # no dpkg database to read: the lock says it all

    packages = {p["SPDXID"]: p for p in doc["packages"]}
    by_id = {f["SPDXID"]: f["fileName"][1:] for f in doc["files"]}
    contains = {by_id[r["relatedSpdxElement"]]: r["spdxElementId"] for r in doc["relationships"]
                if r["relationshipType"] == "CONTAINS" and r["relatedSpdxElement"] in by_id}
    assert set(contains) == set(files)
    for path, spdx_id in contains.items():
        if path not in owners:
            assert spdx_id == "SPDXRef-Image", path  # made by minibuild, owned by no package
            continue
        p = packages[spdx_id]
        deb = repo.root / locked[owners[path]]["path"]
        name, version, arch = subprocess.run(["dpkg-deb", "-f", str(deb), "Package", "Version", "Architecture"],
                                             capture_output=True, text=True, check=True).stdout.split("\n")[:3]
        assert (p["name"], p["versionInfo"]) == (name.split(": ")[1], version.split(": ")[1]), path
        arch = arch.split(": ")[1]
        assert p["externalRefs"][0]["referenceLocator"] == purl(p["name"], p["versionInfo"], arch)
        assert p["checksums"] == [{"algorithm": "SHA256", "checksumValue": sha256sum(deb)}]
        assert p["packageFileName"] == deb.name
        # the download location is the .deb the server has, byte for byte
        with urllib.request.urlopen(p["downloadLocation"], timeout=10) as response:
            assert hashlib.sha256(response.read()).hexdigest() == sha256sum(deb)

    r = run_cli("sbom", "//images:jq", "--format", "cyclonedx", cwd=pkg_ws.root)
    assert r.returncode == 0, r.stderr
    components = {c["name"]: c for c in r.json()["components"] if c["type"] != "file"}
    for name in set(owners.values()):
        deb = repo.root / locked[name]["path"]
        assert components[name]["hashes"] == [{"alg": "SHA-256", "content": sha256sum(deb)}]
        assert components[name]["externalReferences"] == [{"type": "distribution",
                                                           "url": f"{repo.url}/{locked[name]['path']}"}]
        assert {f["name"] for f in components[name]["components"]} == {p for p, n in owners.items() if n == name}


def _status_d(files: dict[str, bytes]) -> dict[str, bytes]:
    return {path[len(STATUS_D):]: data for path, data in files.items() if path.startswith(STATUS_D)}


def test_dpkg_status_lists_exactly_the_packages_of_the_images_files(pkg_ws, repo, tmp_path):
    pkg_ws.write(["jq"], JQ + "dpkg_status = true\n")
    assert run_cli("lock", cwd=pkg_ws.root).returncode == 0
    _build(pkg_ws)
    locked = _locked(pkg_ws)
    files = layout_files(pkg_ws.root / ".minibuild/out/images/jq/oci")
    status = _status_d(files)
    owners = _expected_owners(repo, locked, {p: d for p, d in files.items() if not p.startswith(STATUS_D)})
    packages = set(owners.values())
    assert {n for n in status if not n.endswith(".md5sums")} == packages
    # dpkg reads the paragraphs as installed packages with every field the .deb's control file has
    read = dpkg_reads([status[name] for name in sorted(packages)], tmp_path / "admin")
    for name in packages:
        assert read[name] == "ii |" + deb_show(repo.root / locked[name]["path"]), name
    for name in packages:
        theirs = deb_md5sums(repo.root / locked[name]["path"])
        ours = dict(line.split("  ", 1)[::-1] for line in status.get(f"{name}.md5sums", b"").decode().splitlines())
        mine = {p for p, n in owners.items() if n == name}
        assert {"/" + p for p in ours} == {p for p in mine if p in theirs}, name
        for rel, digest in ours.items():
            assert digest == md5(files["/" + rel]) == theirs["/" + rel], rel


def test_dpkg_status_changes_the_digest_only_when_set_and_is_reproducible(pkg_ws, repo, tmp_path):
    pkg_ws.write(["jq"], JQ)
    assert run_cli("lock", cwd=pkg_ws.root).returncode == 0
    plain = _build(pkg_ws)
    pkg_ws.write(["jq"], JQ + "dpkg_status = false\n")
    assert _build(pkg_ws) == plain
    pkg_ws.write(["jq"], JQ + "dpkg_status = true\n")
    with_status = _build(pkg_ws)
    assert with_status != plain
    assert any(p.startswith(STATUS_D) for p in layout_files(pkg_ws.root / ".minibuild/out/images/jq/oci"))
    pkg_ws.clean_cache()
    assert _build(pkg_ws) == with_status  # cold cache, everything made again
    elsewhere = tmp_path / "elsewhere"  # another directory, its own cache: another clone
    shutil.copytree(pkg_ws.root, elsewhere, ignore=shutil.ignore_patterns(".minibuild"))
    r = run_cli("build", "//images:jq", "--no-load", "--json", cwd=elsewhere)
    assert r.returncode == 0, r.stderr
    assert r.json()["targets"][0]["digest"] == with_status


def test_a_wrong_type_is_one_message(pkg_ws):
    for value in ('"maybe"', "[true]", "{ on = true }"):
        pkg_ws.write(["jq"], JQ + f"dpkg_status = {value}\n")
        r = run_cli("build", "//images:jq", "--no-load", cwd=pkg_ws.root)
        assert r.returncode == 2, (value, r.stderr)
        assert "attribute `dpkg_status`" in r.stderr and "--> images/BUILD.toml:5" in r.stderr
        assert "Traceback" not in r.stderr


def test_a_host_sysroot_without_a_dpkg_database_is_refused(workspace):
    workspace.write("workspace.toml", '[workspace]\nname = "test"\nsysroot = "empty"\n')
    workspace.write("empty/keep", "")
    workspace.write("a.txt", "a\n")
    workspace.write("BUILD.toml", '[[image]]\nname = "x"\ndpkg_status = true\n'
                                  'files = [{ src = "a.txt", dest = "/a.txt" }]\n')
    r = run_cli("build", "//:x", "--no-load", cwd=workspace.root)
    assert r.returncode == 2, r.stderr
    assert "`//:x` sets `dpkg_status`, but sysroot `empty` has no dpkg database (`var/lib/dpkg/status`)" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.docker
def test_the_engine_sees_the_status_files(pkg_ws, repo, docker_engine, tmp_path):
    tag = "minibuild-test/pkg-jq-status:1"
    pkg_ws.write(["jq"], JQ + f'dpkg_status = true\ntag = "{tag}"\n')
    assert run_cli("lock", cwd=pkg_ws.root).returncode == 0
    r = run_cli("build", "//images:jq", cwd=pkg_ws.root)
    assert r.returncode == 0, r.stderr
    container = subprocess.run([docker_engine, "create", tag], capture_output=True, text=True, check=True).stdout
    try:
        exported = tmp_path / "fs.tar"
        subprocess.run([docker_engine, "export", "-o", str(exported), container.strip()], check=True)
        with tarfile.open(exported) as tar:
            engine = {"/" + m.name: tar.extractfile(m).read() for m in tar  # type: ignore[union-attr]
                      if m.isfile() and ("/" + m.name).startswith(STATUS_D)}
    finally:
        subprocess.run([docker_engine, "rm", "-f", container.strip()], capture_output=True)
        subprocess.run([docker_engine, "rmi", "-f", tag], capture_output=True)
    layout = {p: d for p, d in layout_files(pkg_ws.root / ".minibuild/out/images/jq/oci").items()
              if p.startswith(STATUS_D)}
    assert engine == layout and f"{STATUS_D}jq" in engine
    assert b"\nStatus: install ok installed\n" in engine[f"{STATUS_D}libc6"]
