"""`dpkg_status` and `minibuild sbom` of an image built from the host sysroot: what they say of each file is what
this machine's dpkg says (`dpkg -S`, `dpkg-query -W`, `dpkg-query --control-show ... md5sums`)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests.conftest import run_cli
from tests.packages.image_reading import FIELDS, STATUS_D, dpkg_reads, layout_files, md5
from tests.packages.repo import run

pytestmark = pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="needs a Debian host (dpkg-query)")
BASH = '[[image]]\nname = "bash"\nbinaries = ["/bin/bash"]\ndpkg_status = true\n'


def _dpkg_owner(path: str) -> str | None:
    """The package dpkg says installed `path` (either spelling of merged /usr), without its `:arch`."""
    forms = [path, path[4:]] if path.startswith(("/usr/bin/", "/usr/sbin/", "/usr/lib")) else [path]
    for form in forms:
        proc = subprocess.run(["dpkg", "-S", form], capture_output=True, text=True)
        if proc.returncode == 0:
            return proc.stdout.split(": ", 1)[0].split(":")[0]
    return None


def test_the_status_files_are_this_machines_dpkg_database(workspace, tmp_path):
    workspace.write("images/BUILD.toml", BASH)
    r = run_cli("build", "//images:bash", "--no-load", "--json", cwd=workspace.root)
    assert r.returncode == 0, r.stderr
    files = layout_files(workspace.root / ".minibuild/out/images/bash/oci")
    status = {p[len(STATUS_D):]: d for p, d in files.items() if p.startswith(STATUS_D)}
    owners = {p: o for p in files if not p.startswith(STATUS_D) and (o := _dpkg_owner(p))}
    packages = set(owners.values())
    assert {"bash", "libc6", "libtinfo6"} <= packages
    assert {n for n in status if not n.endswith(".md5sums")} == packages
    read = dpkg_reads([status[n] for n in sorted(packages)], tmp_path / "admin")
    for name in packages:
        assert read[name] == "ii |" + run("dpkg-query", "-W", f"--showformat={FIELDS}", name), name
        assert b"\nConffiles:" not in status[name]  # they name files the image does not have
        recorded = {"/" + line.split("  ", 1)[1]: line.split("  ", 1)[0]
                    for line in run("dpkg-query", "--control-show", name, "md5sums").splitlines()}
        ours = dict(line.split("  ", 1)[::-1] for line in status[f"{name}.md5sums"].decode().splitlines())
        assert ours, name
        for rel, digest in ours.items():
            assert owners["/" + rel] == name
            spelled = next(f for f in ("/" + rel, "/" + rel[4:]) if f in recorded)
            assert digest == md5(files["/" + rel]) == recorded[spelled], rel

    # the SBOM names the same packages, at the versions dpkg has
    r = run_cli("sbom", "//images:bash", cwd=workspace.root)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    versions = {p["name"]: p["versionInfo"] for p in doc["packages"] if p["SPDXID"] != "SPDXRef-Image"}
    assert set(versions) == packages
    for name, version in versions.items():
        assert version == run("dpkg-query", "-W", "--showformat=${Version}", name)
