"""Secrets that come in a Debian package stop the build as those of the workspace do (docs/runtime.md, "Secrets"):
a package of the loopback repository ships a key made by openssl (as `TLS.KEY`) and a `.pgpass`, and an image copies
its directory with `trees`."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.packages.conftest import workspace_toml
from tests.packages.repo import Repo, Synthetic

BUILD = '[[image]]\nname = "app"\nsysroot = "test"\ntrees = [{ src = "/usr/share/syn-secret" }]\n'


@pytest.fixture
def secret_repo(tmp_path: Path, keys: dict[str, Path]) -> Iterator[tuple[Repo, bytes]]:
    key = subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
                         capture_output=True, check=True).stdout
    deb = Synthetic("syn-secret", arch="all", files={
        "/usr/share/syn-secret/TLS.KEY": key, "/usr/share/syn-secret/.pgpass": b"db:5432:app:app:hunter2\n",
        "/usr/share/syn-secret/README": b"a package that ships what it should not\n"}).build(tmp_path)
    repo = Repo(tmp_path / "repo", keys["archive"])
    repo.add(deb)
    repo.publish()
    repo.serve()
    yield repo, key
    repo.stop()


def test_a_packaged_key_and_pgpass_stop_the_build_until_allowed(secret_repo, tmp_path):
    repo, key = secret_repo
    ws = tmp_path / "ws"
    (ws / "img").mkdir(parents=True)
    (ws / "workspace.toml").write_text(workspace_toml(repo, ["syn-secret"]))
    (ws / "img/BUILD.toml").write_text(BUILD)
    assert run_cli("lock", cwd=ws).returncode == 0
    r = run_cli("build", "//img:app", "--no-load", cwd=ws)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    text = " ".join(r.stderr.split())
    assert "`/usr/share/syn-secret/TLS.KEY` looks like a secret: a PEM private key block (`PRIVATE KEY`) at offset 0" \
        in text, text
    assert "`/usr/share/syn-secret/.pgpass` looks like a secret: a well-known credential file name" in text
    assert "README" not in text
    [line] = [x.strip() for x in r.stderr.splitlines() if x.strip().startswith("allow_secrets = [")]
    assert line == 'allow_secrets = ["/usr/share/syn-secret/.pgpass", "/usr/share/syn-secret/TLS.KEY"]'
    (ws / "img/BUILD.toml").write_text(BUILD + line + "\n")
    ok = run_cli("build", "//img:app", "--no-load", "--json", cwd=ws)
    assert ok.returncode == 0, ok.stderr
