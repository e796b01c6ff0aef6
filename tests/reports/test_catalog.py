"""examples/catalog: every image of the catalog builds, and runs in the engine."""

from __future__ import annotations

import subprocess
import tomllib

import pytest

from tests.conftest import run_cli
from tests.reports.conftest import CATALOG


def _declared() -> set[str]:
    labels = set()
    for build_file in CATALOG.rglob("BUILD.toml"):
        package = build_file.parent.relative_to(CATALOG).as_posix()
        for image in tomllib.loads(build_file.read_text())["image"]:
            labels.add(f"//{package}:{image['name']}")
    return labels


def test_catalog_declares_at_least_30_images_in_packages():
    labels = _declared()
    assert len(labels) >= 30
    assert len({label.split(":")[0] for label in labels}) >= 4


def test_every_image_builds(catalog):
    root, out = catalog
    built = {t["label"]: t for t in out["targets"]}
    assert set(built) == _declared()
    for label, t in built.items():
        assert t["kind"] == "image", label
        assert t["digest"].startswith("sha256:") and t["files"] > 0, label
        assert (root / t["tarball"]).is_file() and (root / t["oci"] / "index.json").is_file(), label
    # The loader+libc layer is one blob for the whole catalog.
    assert len({t["layers"][0]["digest"] for t in built.values()}) == 1


@pytest.mark.docker
def test_every_image_runs(catalog, docker_engine):
    root, _ = catalog
    r = run_cli("load", "//...", cwd=root)
    assert r.returncode == 0, r.stderr
    failed = []
    for label in sorted(_declared()):
        tag = label[2:].replace(":", "/") + ":latest"
        proc = subprocess.run([docker_engine, "run", "--rm", "--network", "none", tag], capture_output=True,
                              text=True, timeout=60)
        if proc.returncode != 0 or not proc.stdout.strip():
            failed.append(f"{label}: exit {proc.returncode}: {proc.stderr.strip()[:200]}")
    subprocess.run([docker_engine, "rmi", *(lbl[2:].replace(":", "/") + ":latest" for lbl in _declared())],
                   capture_output=True)
    assert not failed, "\n".join(failed)
