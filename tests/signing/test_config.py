"""`[signing]` in workspace.toml: the key every push signs with and what it attaches; `--no-sign`, `--attach`."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.signing.conftest import SPDX, attestations, keygen, password_env, push_signed, tag_of

pytestmark = pytest.mark.registry

BUILD = ('[[image]]\nname = "a"\nbinaries = ["/bin/bash"]\n'
         'files = [{ src = "a", dest = "/stamp", mode = "0644" }]\n')


@pytest.fixture
def configured(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a").write_text(f"a {uuid.uuid4().hex}\n")
    (tmp_path / "img" / "BUILD.toml").write_text(BUILD)
    keys = keygen(tmp_path, "team")

    def write(signing: str) -> None:
        (tmp_path / "workspace.toml").write_text(f'[workspace]\nname = "cfg"\n\n[signing]\n{signing}')

    return tmp_path, keys, write


def test_the_signing_table_names_the_key_and_what_to_attach(configured, plain_registry, cli):
    root, keys, write = configured
    write('key = "team.key"\nattach = ["signature", "sbom"]\nbuilder_id = "https://ci.example.invalid/runner"\n')
    pushed = push_signed(root, "//img:a", None)
    assert plain_registry.manifest(pushed.repo, tag_of(pushed.digest, "sig")) is not None
    assert [a.statement["predicateType"] for a in attestations(plain_registry, pushed.repo, pushed.digest)] == [SPDX]
    r = cli("verify", pushed.ref, "--key", str(keys.public), "--type", "sbom", cwd=root)
    assert r.returncode == 0, r.stderr
    unsigned = push_signed(root, "//img:a", None, "--no-sign")
    assert plain_registry.manifest(unsigned.repo, tag_of(unsigned.digest, "sig")) is None
    assert "signing" not in unsigned.out
    chosen = push_signed(root, "//img:a", None, "--attach", "provenance")
    [prov] = attestations(plain_registry, chosen.repo, chosen.digest)
    assert prov.statement["predicate"]["runDetails"]["builder"]["id"] == "https://ci.example.invalid/runner"
    assert plain_registry.manifest(chosen.repo, tag_of(chosen.digest, "sig")) is None  # not asked for


def test_bad_signing_settings_are_refused_before_the_build(configured, cli, registry):
    root, keys, write = configured
    write('key = "team.key"\nattach = ["signature", "sboms"]\n')
    r = cli("push", "//img:a", "--to", f"{registry}/minibuild-test/never:1", cwd=root, env=password_env())
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "workspace.toml" in r.stderr and "`sboms` is not one of" in r.stderr
    write('attach = ["signature"]\n')
    r = cli("push", "//img:a", "--to", f"{registry}/minibuild-test/never:1", "--attach", "signature,bogus",
            cwd=root, env=password_env())
    assert r.returncode == 2 and "`--attach signature,bogus`: `bogus` is not one of" in r.stderr
    r = cli("push", "//img:a", "--to", f"{registry}/minibuild-test/never:1", "--attach", "sbom", cwd=root,
            env=password_env())
    assert r.returncode == 2 and "`--attach` needs a key to sign with" in r.stderr
    for option in (["--sign", str(keys.private)], ["--attach", "sbom"]):
        r = cli("push", "//img:a", "--to", f"{registry}/minibuild-test/never:1", "--no-sign", *option, cwd=root,
                env=password_env())
        assert r.returncode == 2 and f"`{option[0]}` and `--no-sign` contradict each other" in r.stderr, r.stderr
    write('key = "missing.key"\n')
    r = cli("push", "//img:a", "--to", f"{registry}/minibuild-test/never:1", cwd=root, env=password_env())
    assert r.returncode == 2 and "cannot read the private key" in r.stderr and "pushing" not in r.stderr
    assert "--> workspace.toml:5, attribute `signing.key`" in r.stderr and "hint: " in r.stderr
    assert json.dumps(r.stderr).count("Traceback") == 0
