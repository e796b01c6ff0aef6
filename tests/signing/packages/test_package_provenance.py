"""The provenance of an image on a package sysroot names the lock file and every `.deb` the sysroot was unpacked
from, with their digests: checked against `sha256sum` of the lock and of the repository's own `.deb` files."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli
from tests.packages.image_reading import sha256sum
from tests.signing.conftest import SLSA, attestations, keygen, push_signed

pytestmark = pytest.mark.registry

JQ = '[[image]]\nname = "jq"\nbinaries = ["/usr/bin/jq"]\nsysroot = "test"\n'


def test_provenance_names_the_lock_and_every_deb(pkg_ws, repo, plain_registry, tmp_path):
    pkg_ws.write(["jq"], JQ)
    assert run_cli("lock", cwd=pkg_ws.root).returncode == 0
    signer = keygen(tmp_path, "pkg")
    pushed = push_signed(pkg_ws.root, "//images:jq", signer.private)
    [prov] = [a for a in attestations(plain_registry, pushed.repo, pushed.digest)
              if a.statement["predicateType"] == SLSA]
    deps = prov.statement["predicate"]["buildDefinition"]["resolvedDependencies"]
    [lock] = [d for d in deps if d["name"] == "minibuild.lock"]
    assert lock["digest"] == {"sha256": sha256sum(pkg_ws.root / "minibuild.lock")}
    locked = json.loads((pkg_ws.root / "minibuild.lock").read_text())["sysroots"]["test"]["resolved"]["amd64"]
    debs = {d["name"]: d for d in deps if d["name"].endswith(".deb")}
    assert len(debs) == len(locked)
    for p in locked:
        entry = debs[p["path"].rsplit("/", 1)[1]]
        assert entry["digest"] == {"sha256": sha256sum(repo.root / p["path"])}
        assert entry["uri"] == f"{repo.url.rstrip('/')}/{p['path']}"
        assert entry["annotations"]["package"] == p["name"]
    r = run_cli("verify", pushed.ref, "--key", str(signer.public), cwd=pkg_ws.root)
    assert r.returncode == 0, r.stderr
    assert f"{len(deps)} inputs ({len(locked)} .deb)" in r.stdout
