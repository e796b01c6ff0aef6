"""Attestations (SLSA provenance v1, SPDX SBOM) pushed by `push --sign` to the real local registry, read back over
plain HTTP and skopeo, their DSSE signatures checked with openssl over the PAE bytes built here from the spec; the
content checked against git, the OCI layout read by the tests' own reader, and `verify` refusing what was changed."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import uuid

import pytest

from tests.packages.image_reading import layout_files
from tests.signing.conftest import (
    DSSE_LAYER,
    PASSWORD,
    SLSA,
    SPDX,
    attestations,
    keygen,
    openssl_verifies,
    pae,
    password_env,
    push_signed,
    skopeo_raw,
    tag_of,
)

pytestmark = pytest.mark.registry

TOKEN = "s3cret-" + uuid.uuid4().hex[:8]  # in the git remote's URL: must not reach the provenance


def _git(root, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(scope="module")
def git_ws(tmp_path_factory):
    """A workspace that is a git checkout (its remote URL carrying a token), with //img:a (bash and a stamp)."""
    root = tmp_path_factory.mktemp("attest-ws")
    (root / "workspace.toml").write_text('[workspace]\nname = "attest"\n')
    (root / "img").mkdir()
    (root / "img" / "a").write_text(f"a {uuid.uuid4().hex}\n")
    (root / "img" / "BUILD.toml").write_text('[[image]]\nname = "a"\nbinaries = ["/bin/bash"]\n'
                                            'files = [{ src = "a", dest = "/stamp", mode = "0644" }]\n')
    (root / ".gitignore").write_text(".minibuild/\n*.key\n")
    _git(root, "init", "-q")
    _git(root, "remote", "add", "origin", f"https://ci:{TOKEN}@git.example.invalid/team/attest.git")
    _git(root, "add", ".")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-q", "-m", "init")
    return root


@pytest.fixture(scope="module")
def git_keys(git_ws):
    return keygen(git_ws, "release")


@pytest.fixture(scope="module")
def attested(git_ws, git_keys):
    return push_signed(git_ws, "//img:a", git_keys.private)


def test_attestations_are_stored_as_cosign_does_and_verify_with_openssl(attested, git_keys, registry,
                                                                        plain_registry, tmp_path):
    image_digest = "sha256:" + hashlib.sha256(skopeo_raw(attested.ref)).hexdigest()
    assert attested.out["attestations"] == f"{registry}/{attested.repo}:{tag_of(image_digest, 'att')}"
    manifest = json.loads(skopeo_raw(f"{registry}/{attested.repo}:{tag_of(image_digest, 'att')}"))
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    found = attestations(plain_registry, attested.repo, image_digest)
    assert sorted(a.layer["annotations"]["predicateType"] for a in found) == [SLSA, SPDX]
    for a in found:
        assert a.layer["mediaType"] == DSSE_LAYER
        assert a.layer["annotations"]["dev.cosignproject.cosign/signature"] == ""
        assert a.envelope["payloadType"] == "application/vnd.in-toto+json"
        assert a.statement["_type"] == "https://in-toto.io/Statement/v1"
        assert a.statement["predicateType"] == a.layer["annotations"]["predicateType"]
        assert a.statement["subject"] == [{"name": f"{registry}/{attested.repo}",
                                           "digest": {"sha256": image_digest.split(":")[1]}}]
        [signature] = a.envelope["signatures"]
        assert openssl_verifies(git_keys.public, signature["sig"], pae(a.envelope["payloadType"], a.payload), tmp_path)
        # the signature covers the PAE, not the bare payload, and not a changed one
        assert not openssl_verifies(git_keys.public, signature["sig"], a.payload, tmp_path)
        changed = a.payload.replace(b"//img:a", b"//img:b")
        assert changed != a.payload
        assert not openssl_verifies(git_keys.public, signature["sig"], pae(a.envelope["payloadType"], changed),
                                    tmp_path)


def test_provenance_names_the_builder_target_commit_and_every_file_with_its_digest(attested, git_ws, registry,
                                                                                   plain_registry):
    [prov] = [a for a in attestations(plain_registry, attested.repo, attested.digest)
              if a.statement["predicateType"] == SLSA]
    predicate = prov.statement["predicate"]
    assert predicate["runDetails"]["builder"]["id"]
    assert predicate["buildDefinition"]["externalParameters"]["target"] == "//img:a"
    deps = predicate["buildDefinition"]["resolvedDependencies"]
    [source] = [d for d in deps if "gitCommit" in d["digest"]]
    assert source["digest"]["gitCommit"] == _git(git_ws, "rev-parse", "HEAD")
    assert source["uri"] == "git+https://git.example.invalid/team/attest.git"
    assert TOKEN.encode() not in prov.payload
    assert not any(d["name"] == "minibuild.lock" for d in deps)  # a host sysroot: no lock
    files = layout_files(git_ws / ".minibuild/out/img/a/oci")
    by_name = {d["name"]: d for d in deps if d["name"].startswith("/")}
    assert set(by_name) == set(files)
    for path, data in files.items():
        assert by_name[path]["digest"] == {"sha256": hashlib.sha256(data).hexdigest()}, path
    assert by_name["/usr/bin/bash"]["annotations"]["reason"]


def test_sbom_attestation_is_the_images_spdx_document(attested, git_ws, plain_registry, cli):
    [sbom] = [a for a in attestations(plain_registry, attested.repo, attested.digest)
              if a.statement["predicateType"] == SPDX]
    doc = sbom.statement["predicate"]
    assert doc["spdxVersion"] == "SPDX-2.3"
    listed = {f["fileName"]: f for f in doc["files"]}
    files = layout_files(git_ws / ".minibuild/out/img/a/oci")
    assert {name.lstrip(".") for name in listed} == set(files)
    bash = subprocess.run(["dpkg", "-S", "/bin/bash"], capture_output=True, text=True).stdout.split(":")[0]
    assert bash in {p["name"] for p in doc["packages"]}


def test_verify_prints_what_the_attestations_say(attested, git_ws, git_keys, cli, registry):
    r = cli("verify", attested.ref, "--key", str(git_keys.public), "--type", "provenance", "--type", "sbom",
            cwd=git_ws)
    assert r.returncode == 0, r.stderr
    commit = _git(git_ws, "rev-parse", "HEAD")
    assert f"Verified OK: {registry}/{attested.repo}@{attested.digest}" in r.stdout
    assert "provenance: builder urn:minibuild:builder:local, target //img:a" in r.stdout
    assert f"commit {commit}" in r.stdout
    out = cli("verify", attested.ref, "--key", str(git_keys.public), "--json", cwd=git_ws).json()
    prov, sbom = out["attestations"]["provenance"], out["attestations"]["sbom"]
    files = layout_files(git_ws / ".minibuild/out/img/a/oci")
    assert prov["inputs"] == len(files) + 1  # the files and the commit
    assert prov["commit"] == commit and prov["target"] == "//img:a"
    assert "bash" in sbom["names"] and sbom["files"] == len(files)
    assert f"sbom: {sbom['packages']} packages, {len(files)} files" in r.stdout


def test_repushing_replaces_this_keys_attestations_with_the_same_bytes(attested, git_ws, git_keys, cli,
                                                                       plain_registry):
    stored = []
    for _ in range(2):
        r = cli("push", "//img:a", "--to", attested.ref, "--sign", str(git_keys.private), cwd=git_ws,
                env={**password_env(), "SOURCE_DATE_EPOCH": "1700000000"})  # the SBOM's creation time
        assert r.returncode == 0, r.stderr
        stored.append([plain_registry.manifest(attested.repo, tag_of(attested.digest, k)) for k in ("sig", "att")])
    assert len(attestations(plain_registry, attested.repo, attested.digest)) == 2
    assert stored[0] == stored[1]  # deterministic signatures (RFC 6979): a push again changes nothing


def test_a_changed_statement_is_refused(git_ws, git_keys, cli, plain_registry):
    pushed = push_signed(git_ws, "//img:a", git_keys.private)
    tag = tag_of(pushed.digest, "att")
    manifest = json.loads(plain_registry.manifest(pushed.repo, tag))
    layer = next(x for x in manifest["layers"] if x["annotations"]["predicateType"] == SLSA)
    envelope = json.loads(plain_registry.blob(pushed.repo, layer["digest"]))
    payload = base64.b64decode(envelope["payload"]).replace(b"urn:minibuild:builder:local", b"urn:someone:else")
    envelope["payload"] = base64.b64encode(payload).decode()
    forged = json.dumps(envelope).encode()
    layer["digest"], layer["size"] = plain_registry.put_blob(pushed.repo, forged), len(forged)
    plain_registry.put_manifest(pushed.repo, tag, manifest)
    r = cli("verify", pushed.ref, "--key", str(git_keys.public), cwd=git_ws)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    said = " ".join(r.stderr.split())
    assert f"the attestations of `{pushed.ref.rsplit(':', 1)[0]}@{pushed.digest}` do not hold: `{SLSA}`" in said
    assert "the envelope's signature does not verify with the key" in said


def test_another_images_attestations_copied_over_are_refused(signing_ws, keys, cli, plain_registry):
    a = push_signed(signing_ws, "//img:a", keys.private)
    b = push_signed(signing_ws, "//img:b", keys.private)
    manifest = json.loads(plain_registry.manifest(b.repo, tag_of(b.digest, "att")))
    for desc in (manifest["config"], *manifest["layers"]):
        plain_registry.put_blob(a.repo, plain_registry.blob(b.repo, desc["digest"]))
    plain_registry.put_manifest(a.repo, tag_of(a.digest, "att"), manifest)
    r = cli("verify", a.ref, "--key", str(keys.public), cwd=signing_ws)
    assert r.returncode == 1
    said = " ".join(r.stderr.split())
    assert f"the statement is about another image: it names `{b.digest}`" in said


def test_attestations_by_another_key_are_refused(signing_ws, keys, cli, tmp_path):
    other = keygen(tmp_path, "other")
    pushed = push_signed(signing_ws, "//img:a", keys.private, "--attach", "signature")
    r = cli("push", "//img:a", "--to", pushed.ref, "--sign", str(other.private), "--attach", "provenance",
            cwd=signing_ws, env=password_env())
    assert r.returncode == 0, r.stderr
    r = cli("verify", pushed.ref, "--key", str(keys.public), cwd=signing_ws)
    assert r.returncode == 1
    assert "does not verify with the key" in r.stderr and "do not hold" in " ".join(r.stderr.split())


def test_a_missing_attestation_that_is_required_is_refused(signing_ws, keys, cli):
    pushed = push_signed(signing_ws, "//img:a", keys.private, "--attach", "signature,sbom")
    ok = cli("verify", pushed.ref, "--key", str(keys.public), "--type", "sbom", cwd=signing_ws)
    assert ok.returncode == 0, ok.stderr
    r = cli("verify", pushed.ref, "--key", str(keys.public), "--type", "slsaprovenance1", cwd=signing_ws)
    assert r.returncode == 1
    assert f"`{SLSA}`: no such attestation in `{tag_of(pushed.digest, 'att')}`" in " ".join(r.stderr.split())
    bare = push_signed(signing_ws, "//img:a", keys.private, "--attach", "signature")
    r = cli("verify", bare.ref, "--key", str(keys.public), "--type", "provenance", cwd=signing_ws)
    assert r.returncode == 1 and "no attestations" in r.stderr
    shown = cli("verify", bare.ref, "--key", str(keys.public), cwd=signing_ws)
    assert shown.returncode == 0 and "attestations: none" in shown.stdout


def test_no_key_material_or_password_in_outputs_attestations_or_files(git_ws, git_keys, cli, plain_registry):
    pushed = push_signed(git_ws, "//img:a", git_keys.private)
    secret_lines = [line for line in git_keys.private.read_text().splitlines() if not line.startswith("-----")]
    texts = [json.dumps(pushed.out)]
    texts += [a.payload.decode() + json.dumps(a.envelope) for a in attestations(plain_registry, pushed.repo,
                                                                                 pushed.digest)]
    verified = cli("verify", pushed.ref, "--key", str(git_keys.public), "--json", cwd=git_ws)
    texts.append(verified.stdout + verified.stderr)
    for text in texts:
        assert PASSWORD not in text
        assert not any(line in text for line in secret_lines)
    leaks = subprocess.run(["grep", "-rlF", "-e", PASSWORD, "-e", secret_lines[0], str(git_ws / ".minibuild")],
                           capture_output=True, text=True)
    assert leaks.returncode == 1, leaks.stdout  # grep: 1 means not found
