"""Fixtures of the oci tests."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest


@pytest.fixture(scope="session")
def skopeo():
    """Run skopeo (the independent oracle); a missing skopeo fails the test rather than skipping it."""
    exe = shutil.which("skopeo")
    if exe is None:
        pytest.fail(
            "skopeo is not installed; the OCI format tests need it as an independent check (apt skopeo)"
        )

    def run(*args: str, parse: bool = False):
        proc = subprocess.run(
            [exe, "--insecure-policy", *args], capture_output=True, timeout=300, check=False
        )
        if proc.returncode != 0:
            pytest.fail(f"skopeo {' '.join(args)} failed:\n{proc.stderr.decode(errors='replace')}")
        return json.loads(proc.stdout) if parse else proc.stdout

    return run
