"""examples/catalog built in three generations (each changes a label of every image, so each adds an `image.tar`,
config and manifest per image and keeps the closures and layers), measured with `du -sb` after each build."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli

CATALOG = REPO / "examples" / "catalog"


def du(path: Path) -> int:
    """Bytes under `path` as GNU du counts them (apparent sizes, a hard-linked file once)."""
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True).stdout
    return int(out.split()[0])


def set_generation(root: Path, generation: int) -> None:
    """Label every image of the catalog with `generation` (its config, manifest and image.tar change)."""
    for build in root.glob("*/BUILD.toml"):
        text = re.sub(r'\nlabels = \{ generation = "\d+" \}', "", build.read_text())
        build.write_text(re.sub(r'(\nname = "[^"]*")', rf'\1\nlabels = {{ generation = "{generation}" }}', text))


def build(root: Path, env: dict[str, str] | None = None) -> dict:
    r = run_cli("build", "//...", "--no-load", "--json", cwd=root, env=env)
    assert r.returncode == 0, r.stderr
    return r.json()


def digests(built: dict) -> dict[str, str]:
    return {t["label"]: t["digest"] for t in built["targets"]}


def entries(cache: Path) -> dict[str, dict]:
    """Every action entry on disk, read with json (not through minibuild): `{"check": ..., "entry": {...}}`."""
    return {p.stem: json.loads(p.read_text())["entry"] for p in (cache / "ac").glob("*/*.json")}


def blob_names(cache: Path) -> set[str]:
    return {"sha256:" + p.name for p in (cache / "cas" / "sha256").glob("*/*")}


@dataclass(frozen=True)
class Generations:
    root: Path  # built three times; tests work on copies
    sizes: tuple[int, ...]  # du -sb of .minibuild/cache after each generation
    built: tuple[dict, ...]  # `build --json` of each generation

    def copy(self, dest: Path) -> Path:
        """The built workspace, hard links between the out tree and the store kept (`cp -a`), its stored analysis
        too (it names the files it came from by their path in the workspace: the copy checks its own)."""
        subprocess.run(["cp", "-a", str(self.root), str(dest)], check=True)
        return dest


@pytest.fixture(scope="session")
def generations(tmp_path_factory: pytest.TempPathFactory) -> Generations:
    root = tmp_path_factory.mktemp("generations") / "catalog"
    shutil.copytree(CATALOG, root, ignore=shutil.ignore_patterns(".minibuild"))
    sizes, built = [], []
    for generation in (1, 2, 3):
        set_generation(root, generation)
        built.append(build(root))
        sizes.append(du(root / ".minibuild" / "cache"))
    assert built[1]["actions"]["run"] == built[2]["actions"]["run"] == len(built[0]["targets"])  # one an image
    return Generations(root, tuple(sizes), tuple(built))
