"""End to end against the Debian mirror this machine's apt uses (never written here: minibuild reads it from the
apt sources): lock bash for bookworm amd64 and arm64, build (with its dpkg status), run the amd64 image in Docker,
inspect the arm64 manifest with skopeo, check each platform's SBOM and status files against the downloaded .deb
files, and build again in a second clone with a cold cache: the same digests.

Needs the network to reach the mirror; where it cannot, this fails (it does not skip)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.packages.image_reading import STATUS_D, layout_files, purl, sha256sum
from tests.packages.repo import run

WORKSPACE = """[workspace]
name = "mirror-e2e"
sysroot = "bookworm"

[sysroots.bookworm]
debian = { suite = "bookworm", components = ["main"], architectures = ["amd64", "arm64"] }
packages = ["bash"]
"""
BUILD = """[[image]]
name = "bash"
binaries = ["/bin/bash"]
platforms = ["linux/amd64", "linux/arm64"]
tag = "minibuild-test/mirror-bash:1"
dpkg_status = true
"""


def _git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args], cwd=cwd, check=True,
                   capture_output=True)


def _digests(root: Path) -> dict[str, str]:
    layout = root / ".minibuild/out/images/bash/oci"
    index = json.loads((layout / "index.json").read_text())
    [top] = index["manifests"]
    inner = json.loads((layout / "blobs/sha256" / top["digest"].split(":")[1]).read_text())
    return {"index": top["digest"], **{m["platform"]["architecture"]: m["digest"] for m in inner["manifests"]}}


def _provenance(root: Path, docker_engine: str) -> None:
    """Each platform's SBOM names the .deb files the build downloaded (`sha256sum`, `dpkg-deb --show` of the copies in
    the cache), its status files name the same packages, and the engine reads them in the image."""
    out = subprocess.run([docker_engine, "run", "--rm", "minibuild-test/mirror-bash:1", "-c",
                          'while IFS= read -r line; do echo "$line"; done < /var/lib/dpkg/status.d/bash'],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert {"Package: bash", "Status: install ok installed", "Architecture: amd64"} <= set(out.stdout.splitlines())
    for arch in ("amd64", "arm64"):
        r = run_cli("sbom", "//images:bash", "--platform", f"linux/{arch}", "--format", "cyclonedx", cwd=root)
        assert r.returncode == 0, r.stderr
        packages = {c["name"]: c for c in r.json()["components"] if c["type"] != "file"}
        assert {"bash", "libc6", "libtinfo6"} <= set(packages)
        status = {p[len(STATUS_D):] for p in layout_files(root / ".minibuild/out/images/bash/oci", arch)
                  if p.startswith(STATUS_D)}
        assert {n for n in status if not n.endswith(".md5sums")} == set(packages)
        for name, c in packages.items():
            [digest] = [h["content"] for h in c["hashes"]]
            deb = root / ".minibuild/cache/cas/sha256" / digest[:2] / digest
            assert sha256sum(deb) == digest
            shown, version, deb_arch = run("dpkg-deb", "--show", "--showformat=${Package} ${Version} ${Architecture}",
                                           deb).split()
            assert (shown, version) == (name, c["version"]) and deb_arch in (arch, "all")
            assert c["purl"] == purl(name, version, deb_arch)
            assert c["externalReferences"][0]["url"].endswith(f"/{name}_{version.split(':')[-1]}_{deb_arch}.deb")


@pytest.mark.docker
def test_bash_from_the_mirror_locked_built_run_and_rebuilt_elsewhere(tmp_path, docker_engine):
    first = tmp_path / "first"
    (first / "images").mkdir(parents=True)
    (first / "workspace.toml").write_text(WORKSPACE)
    (first / "images" / "BUILD.toml").write_text(BUILD)
    (first / ".gitignore").write_text(".minibuild/\n")
    lock = run_cli("lock", cwd=first, timeout=900)
    assert lock.returncode == 0, lock.stderr
    locked = json.loads((first / "minibuild.lock").read_text())["sysroots"]["bookworm"]["resolved"]
    assert {"bash", "libc6", "libtinfo6"} <= {p["name"] for p in locked["amd64"]}
    assert {p["architecture"] for p in locked["arm64"]} <= {"arm64", "all"}
    assert "://" not in (first / "minibuild.lock").read_text()  # no mirror in the lock

    build = run_cli("build", "//images:bash", "--json", cwd=first, timeout=900)
    assert build.returncode == 0, build.stderr
    out = subprocess.run([docker_engine, "run", "--rm", "minibuild-test/mirror-bash:1", "-c",
                          'echo "$BASH_VERSION" && echo $((6 * 7))'], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    version = next(p["version"] for p in locked["amd64"] if p["name"] == "bash")
    assert out.stdout.splitlines()[0].startswith(version.split("-")[0].split("+")[0])
    assert out.stdout.splitlines()[1] == "42"

    layout = first / ".minibuild/out/images/bash/oci"
    arm = json.loads(subprocess.run(["skopeo", "inspect", "--override-arch", "arm64", f"oci:{layout}"],
                                    capture_output=True, text=True, check=True).stdout)
    assert (arm["Architecture"], arm["Os"]) == ("arm64", "linux")
    digests = _digests(first)
    assert arm["Digest"] == digests["index"]  # skopeo names the image by its index
    arm_config = json.loads(subprocess.run(["skopeo", "inspect", "--override-arch", "arm64", "--config",
                                           f"oci:{layout}"], capture_output=True, text=True, check=True).stdout)
    assert arm_config["architecture"] == "arm64" and len(arm["Layers"]) >= 2
    _provenance(first, docker_engine)

    _git("init", "-q", cwd=first)
    _git("add", ".", cwd=first)
    _git("commit", "-q", "-m", "locked bash", cwd=first)
    second = tmp_path / "second"
    _git("clone", "-q", str(first), str(second), cwd=tmp_path)
    assert not (second / ".minibuild").exists()
    assert run_cli("lock", "--check", cwd=second).returncode == 0
    again = run_cli("build", "//images:bash", "--no-load", "--json", cwd=second, timeout=900)
    assert again.returncode == 0, again.stderr
    assert _digests(second) == digests
    subprocess.run([docker_engine, "rmi", "-f", "minibuild-test/mirror-bash:1"], capture_output=True)


def test_the_locked_catalog_example_builds_from_its_lock(tmp_path):
    """examples/catalog-bookworm, as committed (lock included), in a fresh copy: every image builds from the
    locked packages, none of them taken from this machine."""
    example = Path(__file__).resolve().parents[2] / "examples" / "catalog-bookworm"
    copy = tmp_path / "catalog"
    shutil.copytree(example, copy, symlinks=False, ignore=shutil.ignore_patterns(".minibuild"))
    assert run_cli("lock", "--check", cwd=copy).returncode == 0
    r = run_cli("build", "//...", "--no-load", "--json", cwd=copy, timeout=1800)
    assert r.returncode == 0, r.stderr
    targets = r.json()["targets"]
    assert len(targets) == 35
    closures = list((copy / ".minibuild/out").rglob("closure.json"))
    sources = {e["source"] for c in closures for e in json.loads(c.read_text())["entries"] if e.get("source")}
    assert sources and all(s.startswith(".minibuild/cache/sysroots/") for s in sources)
