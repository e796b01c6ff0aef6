"""Shared fixtures: run the CLI as a user would, and reach the real Docker engine.

A test that needs Docker never silently skips where Docker is required (CI, or
MINIBUILD_REQUIRE_DOCKER=1, which scripts/test.sh sets): it fails instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _own_deb_store(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test its own shared `.deb` store (minibuild/packages/fetch.py), so no test finds what another one,
    or an earlier run, downloaded; the tests of the shared store itself point two workspaces at one."""
    monkeypatch.setenv("MINIBUILD_DEB_CACHE", str(tmp_path_factory.mktemp("debs")))


def docker_required() -> bool:
    return os.environ.get("MINIBUILD_REQUIRE_DOCKER") == "1" or os.environ.get("CI") == "true"


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> dict:
        return json.loads(self.stdout)


def run_cli(*args: str, cwd: str | os.PathLike[str], env: dict[str, str] | None = None,
            timeout: float = 600) -> CliResult:
    """`python -m minibuild ARGS` in `cwd`, the way a user runs it."""
    proc = subprocess.run([sys.executable, "-m", "minibuild", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **(env or {})}, timeout=timeout)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def workspace(tmp_path: Path):
    """An empty workspace; write BUILD.toml files into it with `write(path, text)`."""

    class Ws:
        root = tmp_path

        def write(self, rel: str, text: str) -> Path:
            path = tmp_path / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            return path

    (tmp_path / "workspace.toml").write_text('[workspace]\nname = "test"\n')
    return Ws()


@pytest.fixture(scope="session")
def docker_engine():
    """The `docker` CLI against a running engine; fails (not skips) where Docker is required."""
    docker = shutil.which("docker")
    ok = docker is not None and subprocess.run([docker, "info"], capture_output=True).returncode == 0
    if not ok:
        message = "no running Docker engine (scripts/test.sh starts one)"
        if docker_required():
            pytest.fail(message)
        pytest.skip(message)
    return docker


def clone_repo(dest: Path) -> Path:
    """A fresh clone of this repository's committed state plus the working tree's changes to tracked files."""
    subprocess.run(["git", "clone", "-q", str(REPO), str(dest)], check=True)
    diff = subprocess.run(["git", "diff", "HEAD"], cwd=REPO, capture_output=True, check=True).stdout
    if diff:
        subprocess.run(["git", "apply", "-"], cwd=dest, input=diff, check=True)
    return dest
