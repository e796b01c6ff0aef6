"""The attestation formats and the checks a live registry cannot be made to fail (a blob served under another
digest), with a fake registry client: unit tests."""

from __future__ import annotations

import io
import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from minibuild.oci import attesting
from minibuild.oci.attestation import (
    DSSE_MEDIA_TYPE,
    IN_TOTO_PAYLOAD_TYPE,
    PREDICATE_TYPE_ANNOTATION,
    SLSA_PROVENANCE_V1,
    envelope,
    pae,
    parse_envelope,
    parse_statement,
    statement,
)
from minibuild.oci.signing import sign_payload
from minibuild.oci.spec import descriptor_for
from minibuild.reports import provenance
from minibuild.reports.public_url import without_credentials
from minibuild.reports.sbom import deb_url

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32


def test_pae_matches_the_dsse_spec_example():
    # secure-systems-lab/dsse protocol.md, "Test vectors"
    assert pae("http://example.com/HelloWorld", b"hello world") == \
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"


def test_envelope_and_statement_round_trip():
    body = statement([("reg/repo", DIGEST)], SLSA_PROVENANCE_V1, {"x": 1})
    doc = json.loads(body)
    assert doc["_type"] == "https://in-toto.io/Statement/v1"
    assert doc["subject"] == [{"name": "reg/repo", "digest": {"sha256": "ab" * 32}}]
    env = parse_envelope(envelope(body, "c2ln"))
    assert (env.payload_type, env.payload, env.signatures) == (IN_TOTO_PAYLOAD_TYPE, body, ("c2ln",))
    assert parse_statement(env.payload).subjects == (("reg/repo", DIGEST),)
    with pytest.raises(ValueError, match="statement type"):
        parse_statement(json.dumps({**doc, "_type": "https://example.invalid/Other"}).encode())
    with pytest.raises(ValueError, match="not a DSSE envelope"):
        parse_envelope(b'{"payload": "!!"}')


class FakeClient:
    def __init__(self, blobs: dict[str, bytes]) -> None:
        self.blobs = blobs

    def download_blob(self, repo: str, digest: str, out: io.BytesIO) -> bool:
        if digest not in self.blobs:
            return False
        out.write(self.blobs[digest])
        return True


def _layer(key: ec.EllipticCurvePrivateKey, subject: str) -> tuple[object, bytes]:
    body = statement([("reg/repo", subject)], SLSA_PROVENANCE_V1, {})
    data = envelope(body, sign_payload(key, pae(IN_TOTO_PAYLOAD_TYPE, body)))
    return descriptor_for(data, DSSE_MEDIA_TYPE, annotations={PREDICATE_TYPE_ANNOTATION: SLSA_PROVENANCE_V1}), data


def test_check_refuses_a_blob_served_under_another_digest_and_a_statement_about_another_image():
    key = ec.generate_private_key(ec.SECP256R1())
    layer, data = _layer(key, DIGEST)
    found = attesting._check(FakeClient({layer.digest: data}), "repo", layer, DIGEST, key.public_key())
    assert not isinstance(found, str) and found.predicate_type == SLSA_PROVENANCE_V1
    changed = data.replace(b'"payloadType"', b'"payloadType" ')
    assert attesting._check(FakeClient({layer.digest: changed}), "repo", layer, DIGEST, key.public_key()) == \
        "the envelope blob does not match its digest (changed in the registry)"
    assert "is about another image" in attesting._check(FakeClient({layer.digest: data}), "repo", layer, OTHER,
                                                        key.public_key())
    stranger = ec.generate_private_key(ec.SECP256R1()).public_key()
    assert "does not verify with the key" in attesting._check(FakeClient({layer.digest: data}), "repo", layer,
                                                              DIGEST, stranger)
    assert "missing" in attesting._check(FakeClient({}), "repo", layer, DIGEST, key.public_key())


def test_remote_urls_lose_their_credentials():
    assert without_credentials("https://ci:tok@git.example.invalid/x.git") == "https://git.example.invalid/x.git"
    assert without_credentials("git@github.com:team/x.git") == "git@github.com:team/x.git"
    assert without_credentials("https://git.example.invalid/x.git") == "https://git.example.invalid/x.git"


def test_a_private_mirrors_credentials_are_not_in_the_provenance(tmp_path):
    doc = {"name": "private", "architecture": "amd64", "suite": "bookworm", "tree": "t",
           "url": "https://ci:mirror-token@apt.example.invalid/debian/",
           "packages": [{"name": "sed", "version": "4.9-1", "architecture": "amd64", "source": "sed",
                         "path": "pool/main/s/sed/sed_4.9-1_amd64.deb", "size": 1, "sha256": "ab" * 32}]}
    (tmp_path / "sysroot.json").write_text(json.dumps(doc))
    [deb] = provenance._debs(str(tmp_path), {"platform": "linux/amd64", "sysroot_document": "sysroot.json"})
    assert deb["uri"] == "https://apt.example.invalid/debian/pool/main/s/sed/sed_4.9-1_amd64.deb"
    assert "mirror-token" not in json.dumps(deb)


def test_a_private_mirrors_credentials_are_not_in_the_sboms_download_location(tmp_path):
    from minibuild.packages.installed import PackageSysroot

    doc = {"name": "private", "architecture": "amd64", "suite": "bookworm", "tree": "t",
           "packages": [{"name": "sed", "version": "4.9-1", "architecture": "amd64", "source": "sed",
                         "path": "pool/main/s/sed/sed_4.9-1_amd64.deb", "size": 1, "sha256": "ab" * 32}]}
    (tmp_path / "sysroot.json").write_text(json.dumps(doc))
    pkg = PackageSysroot.read(str(tmp_path / "sysroot.json")).packages["sed"]
    assert deb_url(pkg, "https://ci:mirror-token@apt.example.invalid/debian/") == \
        "https://apt.example.invalid/debian/pool/main/s/sed/sed_4.9-1_amd64.deb"


def test_a_build_and_an_unsigned_push_setup_never_import_cryptography(signing_ws):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "minibuild", "build", "//img:a", "--no-load",
                           "--plain"], cwd=signing_ws, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    imported = [line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")]
    assert "minibuild.build" in imported  # the check sees the build's imports
    assert not [m for m in imported if m.startswith("cryptography")]


def test_a_push_that_does_not_sign_does_not_validate_workspace_toml(signing_ws):
    """No `--sign`, no `--attach`, no `[signing]` table: the signing plan is None without loading pydantic (a
    no-op build before a push loads none either); with a `[signing]` table the file is validated."""
    import subprocess
    import sys

    probe = ("import argparse, sys\n"
             "from minibuild.cli.commands.push_signing import signing_plan\n"
             "plan = signing_plan(argparse.Namespace(sign=None, attach=None, no_sign=False))\n"
             "print(plan, 'pydantic' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", probe], cwd=signing_ws, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["None", "False"]
    workspace = signing_ws / "workspace.toml"
    original = workspace.read_text()
    try:
        workspace.write_text(original + '\n[signing]\nattach = ["signature"]\n')
        proc = subprocess.run([sys.executable, "-c", probe], cwd=signing_ws, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split() == ["None", "True"]
    finally:
        workspace.write_text(original)
