"""The catalog example, copied to a temporary directory and built once per session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli

CATALOG = REPO / "examples" / "catalog"


@pytest.fixture(scope="session")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """(root of a built copy of examples/catalog, the `build //... --no-load --json` output)."""
    root = tmp_path_factory.mktemp("catalog") / "catalog"
    shutil.copytree(CATALOG, root, ignore=shutil.ignore_patterns(".minibuild"))
    r = run_cli("build", "//...", "--no-load", "--json", cwd=root)
    assert r.returncode == 0, r.stderr
    return root, r.json()
