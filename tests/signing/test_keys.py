"""`minibuild keygen` and the formats, checked with openssl and byte for byte against cosign's payload."""

from __future__ import annotations

import json
import stat
import subprocess

from minibuild.oci.cosign import parse_payload, signature_tag, simple_signing_payload
from tests.signing.conftest import PASSWORD, keygen, password_env


def test_keygen_writes_a_p256_pair_openssl_reads_with_the_password(tmp_path, cli):
    keys = keygen(tmp_path, "k")
    assert stat.S_IMODE(keys.private.stat().st_mode) == 0o600
    assert keys.private.read_text().startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
    assert PASSWORD.encode() not in keys.private.read_bytes()
    text = subprocess.run(["openssl", "pkey", "-in", keys.private, "-passin", "env:MINIBUILD_SIGNING_PASSWORD",
                           "-noout", "-text"], capture_output=True, text=True, env=password_env(), check=True)
    assert "NIST CURVE: P-256" in text.stdout
    public = subprocess.run(["openssl", "pkey", "-in", keys.private, "-passin", "env:MINIBUILD_SIGNING_PASSWORD",
                             "-pubout"], capture_output=True, text=True, env=password_env(), check=True)
    assert public.stdout == keys.public.read_text()
    wrong = subprocess.run(["openssl", "pkey", "-in", keys.private, "-passin", "pass:wrong", "-noout"],
                           capture_output=True)
    assert wrong.returncode != 0


def test_force_writes_the_new_private_key_into_a_file_only_its_owner_reads(tmp_path, monkeypatch):
    import argparse
    import os

    from minibuild.cli.commands import keygen as command

    old = tmp_path / "k.key"
    old.write_text("an old key\n")
    old.chmod(0o644)
    modes = {}
    real_fdopen = os.fdopen

    def fdopen(fd, *args, **kwargs):  # the mode of the file at the moment the key's bytes go in
        modes.setdefault("first", stat.S_IMODE(os.fstat(fd).st_mode))
        return real_fdopen(fd, *args, **kwargs)

    monkeypatch.setattr(os, "fdopen", fdopen)
    monkeypatch.setenv("MINIBUILD_SIGNING_PASSWORD", PASSWORD)
    assert command.run(argparse.Namespace(output_key_prefix=str(tmp_path / "k"), force=True)) == 0
    assert modes["first"] == 0o600
    assert stat.S_IMODE(old.stat().st_mode) == 0o600 and "ENCRYPTED PRIVATE KEY" in old.read_text()


def test_keygen_needs_a_password_and_keeps_existing_keys(tmp_path, cli):
    r = cli("keygen", cwd=tmp_path, env={"MINIBUILD_SIGNING_PASSWORD": "", "COSIGN_PASSWORD": ""})
    assert r.returncode == 2 and "no password" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "minibuild.key").exists()
    keygen(tmp_path, "minibuild")
    before = (tmp_path / "minibuild.key").read_bytes()
    again = cli("keygen", cwd=tmp_path, env=password_env())
    assert again.returncode == 2 and "`minibuild.key` exists" in again.stderr
    assert (tmp_path / "minibuild.key").read_bytes() == before


def test_cosign_password_is_accepted_too(tmp_path, cli):
    r = cli("keygen", cwd=tmp_path, env={"MINIBUILD_SIGNING_PASSWORD": "", "COSIGN_PASSWORD": PASSWORD})
    assert r.returncode == 0, r.stderr
    subprocess.run(["openssl", "pkey", "-in", tmp_path / "minibuild.key", "-passin", f"pass:{PASSWORD}", "-noout"],
                   check=True)


def test_payload_is_cosigns_byte_for_byte():
    digest = "sha256:" + "ab" * 32
    # As cosign writes it (sigstore's payload.SimpleContainerImage, Go's encoding/json): fields in this order.
    expected = ('{"critical":{"identity":{"docker-reference":"127.0.0.1:5000/demo/bash"},"image":'
                '{"docker-manifest-digest":"' + digest + '"},"type":"cosign container image signature"},'
                '"optional":null}')
    payload = simple_signing_payload("127.0.0.1:5000/demo/bash", digest)
    assert payload.decode() == expected
    assert json.loads(payload)["critical"]["image"]["docker-manifest-digest"] == digest
    assert parse_payload(payload).digest == digest
    assert signature_tag(digest) == "sha256-" + "ab" * 32 + ".sig"


def test_docker_reference_names_docker_hub_as_cosign_does():
    from minibuild.oci.registry import parse_reference
    from minibuild.oci.signing import docker_reference

    assert docker_reference(parse_reference("bash:1")) == "index.docker.io/library/bash"
    assert docker_reference(parse_reference("127.0.0.1:5000/demo/bash:1")) == "127.0.0.1:5000/demo/bash"
