"""`push --sign` and `minibuild verify` against the real local registry; openssl and skopeo as oracles."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess

import pytest

from tests.signing.conftest import PASSWORD, keygen, password_env, push_signed

pytestmark = pytest.mark.registry

COSIGN_LAYER = "application/vnd.dev.cosign.simplesigning.v1+json"
ANNOTATION = "dev.cosignproject.cosign/signature"


def skopeo_raw(ref: str) -> bytes:
    return subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
                          capture_output=True, check=True).stdout


def sig_tag(digest: str) -> str:
    return "sha256-" + digest.split(":", 1)[1] + ".sig"


def test_signature_verifies_with_openssl(signing_ws, keys, registry, plain_registry, tmp_path):
    pushed = push_signed(signing_ws, "//img:a", keys.private)
    image_digest = "sha256:" + hashlib.sha256(skopeo_raw(pushed.ref)).hexdigest()
    assert pushed.digest == image_digest
    assert pushed.out["signature"] == f"{registry}/{pushed.repo}:{sig_tag(image_digest)}"
    manifest = json.loads(skopeo_raw(f"{registry}/{pushed.repo}:{sig_tag(image_digest)}"))
    [layer] = manifest["layers"]
    assert layer["mediaType"] == COSIGN_LAYER
    payload = plain_registry.blob(pushed.repo, layer["digest"])
    claims = json.loads(payload)["critical"]
    assert claims["image"]["docker-manifest-digest"] == image_digest
    assert claims["identity"]["docker-reference"] == f"{registry}/{pushed.repo}"
    assert claims["type"] == "cosign container image signature"
    (tmp_path / "payload").write_bytes(payload)
    (tmp_path / "sig.der").write_bytes(base64.b64decode(layer["annotations"][ANNOTATION]))
    proc = subprocess.run(["openssl", "dgst", "-sha256", "-verify", keys.public, "-signature", tmp_path / "sig.der",
                           tmp_path / "payload"], capture_output=True, text=True)
    assert proc.stdout.strip() == "Verified OK", proc.stdout + proc.stderr
    (tmp_path / "payload").write_bytes(payload.replace(b"cosign container", b"cosign-container"))
    changed = subprocess.run(["openssl", "dgst", "-sha256", "-verify", keys.public, "-signature",
                              tmp_path / "sig.der", tmp_path / "payload"], capture_output=True, text=True)
    assert changed.returncode != 0 and "Verification failure" in changed.stdout


def test_verify_passes_by_tag_and_by_digest(signing_ws, keys, cli, registry):
    pushed = push_signed(signing_ws, "//img:a", keys.private)
    by_tag = cli("verify", pushed.ref, "--key", str(keys.public), cwd=signing_ws)
    assert by_tag.returncode == 0, by_tag.stderr
    assert f"Verified OK: {registry}/{pushed.repo}@{pushed.digest}" in by_tag.stdout
    by_digest = cli("verify", f"{registry}/{pushed.repo}@{pushed.digest}", "--key", str(keys.public), "--json",
                    cwd=signing_ws)
    assert by_digest.returncode == 0, by_digest.stderr
    out = by_digest.json()
    assert out["digest"] == pushed.digest and out["valid"] == out["signatures"] == 1
    assert out["docker-reference"] == f"{registry}/{pushed.repo}"


def test_resigning_replaces_and_a_second_key_adds(signing_ws, keys, cli, registry, plain_registry, tmp_path):
    pushed = push_signed(signing_ws, "//img:a", keys.private)
    other = keygen(tmp_path, "other")
    for key in (keys.private, keys.private, other.private):
        r = cli("push", "//img:a", "--to", pushed.ref, "--sign", str(key), cwd=signing_ws, env=password_env())
        assert r.returncode == 0, r.stderr
    manifest = json.loads(plain_registry.manifest(pushed.repo, sig_tag(pushed.digest)))
    assert len(manifest["layers"]) == 2  # one per key
    for pub in (keys.public, other.public):
        r = cli("verify", pushed.ref, "--key", str(pub), "--json", cwd=signing_ws)
        assert r.returncode == 0, r.stderr
        assert (r.json()["valid"], r.json()["signatures"]) == (1, 2)


def test_unsigned_image_is_refused(signing_ws, keys, cli):
    pushed = push_signed(signing_ws, "//img:b", None)
    r = cli("verify", pushed.ref, "--key", str(keys.public), cwd=signing_ws)
    assert r.returncode == 1
    said = " ".join(r.stderr.split())  # rich wraps long lines
    assert f"no signature: `{pushed.ref.rsplit(':', 1)[0]}@{pushed.digest}` has no `{sig_tag(pushed.digest)}`" \
        in said
    assert "Traceback" not in r.stderr


def test_verify_usage_errors_are_exit_2_before_any_check(signing_ws, keys, cli, registry):
    unknown = f"{registry}/minibuild-test/signing-never-pushed:1"
    cases = {
        ("http://" + unknown, str(keys.public)): ("is not a valid image reference", "registry[:port]/name[:tag]"),
        (f"{unknown.rsplit(':', 1)[0]}@sha256:abc", str(keys.public)): ("is not a `sha256:<64 hex>` digest", None),
        (unknown, str(signing_ws / "absent.pub")): ("cannot read the public key", None),
        (unknown, str(keys.private)): ("is not a PEM public key", "the `.pub` file"),
    }
    for (reference, key), (message, hint) in cases.items():
        r = cli("verify", reference, "--key", key, cwd=signing_ws)
        said = " ".join(r.stderr.split())
        assert r.returncode == 2 and message in said and "Traceback" not in said, (reference, key, r.stderr)
        assert "--to" not in said  # push's option: verify has none
        assert hint is None or hint in said, (reference, key, r.stderr)
    r = cli("verify", unknown, "--key", str(keys.public), cwd=signing_ws)
    assert r.returncode == 1 and f"no image `{unknown}` in the registry" in r.stderr, r.stderr


def test_wrong_key_is_refused(signing_ws, keys, cli, tmp_path):
    pushed = push_signed(signing_ws, "//img:a", keys.private)
    stranger = keygen(tmp_path, "stranger")
    r = cli("verify", pushed.ref, "--key", str(stranger.public), cwd=signing_ws)
    assert r.returncode == 1
    assert "does not hold" in r.stderr and "does not verify with the key" in r.stderr


def test_changed_payload_is_refused(signing_ws, keys, cli, plain_registry):
    pushed = push_signed(signing_ws, "//img:a", keys.private)
    tag = sig_tag(pushed.digest)
    manifest = json.loads(plain_registry.manifest(pushed.repo, tag))
    layer = manifest["layers"][0]
    payload = plain_registry.blob(pushed.repo, layer["digest"])
    forged = payload.replace(pushed.repo.encode(), b"someone/else")
    layer["digest"], layer["size"] = plain_registry.put_blob(pushed.repo, forged), len(forged)
    plain_registry.put_manifest(pushed.repo, tag, manifest)
    r = cli("verify", pushed.ref, "--key", str(keys.public), cwd=signing_ws)
    assert r.returncode == 1
    assert "does not verify with the key" in r.stderr


def test_another_images_signature_copied_over_is_refused(signing_ws, keys, cli, plain_registry):
    a = push_signed(signing_ws, "//img:a", keys.private)
    b = push_signed(signing_ws, "//img:b", keys.private)
    assert a.digest != b.digest
    # b's signature manifest, its payload blob copied into a's repository, stored as a's signature.
    manifest = json.loads(plain_registry.manifest(b.repo, sig_tag(b.digest)))
    for desc in (manifest["config"], *manifest["layers"]):
        plain_registry.put_blob(a.repo, plain_registry.blob(b.repo, desc["digest"]))
    plain_registry.put_manifest(a.repo, sig_tag(a.digest), manifest)
    r = cli("verify", a.ref, "--key", str(keys.public), cwd=signing_ws)
    assert r.returncode == 1
    assert f"the payload is for another image: it names `{b.digest}`" in " ".join(r.stderr.split())


def test_wrong_password_fails_before_the_build_and_is_never_shown(signing_ws, keys, cli, registry):
    wrong = "not-" + PASSWORD
    r = cli("push", "//img:a", "--to", f"{registry}/minibuild-test/never:1", "--sign", str(keys.private),
            cwd=signing_ws, env=password_env(wrong))
    assert r.returncode == 2
    assert "cannot be decrypted with the password set" in r.stderr and "Traceback" not in r.stderr
    assert wrong not in r.stdout + r.stderr and PASSWORD not in r.stdout + r.stderr


def test_password_is_in_no_file_the_workspace_keeps(signing_ws, keys):
    push_signed(signing_ws, "//img:a", keys.private)
    leaks = subprocess.run(["grep", "-rlF", PASSWORD, str(signing_ws)], capture_output=True, text=True)
    assert leaks.returncode == 1, leaks.stdout  # grep: 1 means not found


def test_a_key_openssl_made_signs_without_a_password(signing_ws, cli, tmp_path):
    key, pub = tmp_path / "ossl.pem", tmp_path / "ossl.pub"
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key],
                   check=True)
    subprocess.run(["openssl", "pkey", "-in", key, "-pubout", "-out", pub], check=True)
    pushed = push_signed(signing_ws, "//img:a", None)
    no_password = {"MINIBUILD_SIGNING_PASSWORD": "", "COSIGN_PASSWORD": ""}
    r = cli("push", "//img:a", "--to", pushed.ref, "--sign", str(key), cwd=signing_ws, env=no_password)
    assert r.returncode == 0, r.stderr
    ok = cli("verify", pushed.ref, "--key", str(pub), cwd=signing_ws)
    assert ok.returncode == 0, ok.stderr


@pytest.mark.parametrize("kind", ["cosign", "p384"])
def test_keys_minibuild_cannot_sign_with_are_refused_before_the_build(signing_ws, cli, tmp_path, registry, kind):
    key = tmp_path / "key.pem"
    if kind == "cosign":
        key.write_text("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\neyJrZGYiOnt9fQ==\n"
                       "-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
        expected = "cosign's own encrypted format"
    else:
        subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384",
                        "-out", key], check=True)
        expected = "is not an ECDSA P-256 key"
    r = cli("push", "//img:a", "--to", f"{registry}/minibuild-test/never:1", "--sign", str(key), cwd=signing_ws,
            env=password_env())
    assert r.returncode == 2 and expected in r.stderr and "Traceback" not in r.stderr
    assert "pushing" not in r.stderr
