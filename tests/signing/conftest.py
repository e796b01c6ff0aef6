"""Fixtures for signing tests: key pairs made by `minibuild keygen`, images pushed and signed to the local
registry of scripts/test.sh, and plain-HTTP access to that registry that shares no code with minibuild."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.conftest import run_cli
from tests.registry.conftest import REGISTRY, registry  # noqa: F401 - the fixture, for tests here

PASSWORD = "correct-horse-" + uuid.uuid4().hex[:8]  # distinctive, so a leak is found by a plain search
MANIFEST_TYPES = "application/vnd.oci.image.manifest.v1+json"


def password_env(password: str = PASSWORD) -> dict[str, str]:
    return {"MINIBUILD_SIGNING_PASSWORD": password, "COSIGN_PASSWORD": ""}


@dataclass
class Keys:
    private: Path
    public: Path


def keygen(directory: Path, prefix: str, password: str = PASSWORD) -> Keys:
    r = run_cli("keygen", "--output-key-prefix", prefix, cwd=directory, env=password_env(password))
    assert r.returncode == 0, r.stderr
    assert password not in r.stdout + r.stderr
    return Keys(directory / f"{prefix}.key", directory / f"{prefix}.pub")


@dataclass
class Pushed:
    ref: str  # registry/repo:tag
    repo: str
    digest: str
    out: dict


class Registry:
    """The distribution API over plain requests: the test's own view of what is stored."""

    def __init__(self, address: str) -> None:
        self.base = f"http://{address}/v2"

    def manifest(self, repo: str, reference: str) -> bytes | None:
        r = requests.get(f"{self.base}/{repo}/manifests/{reference}", headers={"Accept": MANIFEST_TYPES},
                         timeout=30)
        if r.status_code == 404:
            return None
        r.raise_for_status()
        return r.content

    def blob(self, repo: str, digest: str) -> bytes:
        r = requests.get(f"{self.base}/{repo}/blobs/{digest}", timeout=30)
        r.raise_for_status()
        assert "sha256:" + hashlib.sha256(r.content).hexdigest() == digest
        return r.content

    def put_blob(self, repo: str, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        start = requests.post(f"{self.base}/{repo}/blobs/uploads/", timeout=30)
        assert start.status_code == 202, start.text
        location = requests.compat.urljoin(start.url, start.headers["Location"])
        put = requests.put(location, params={"digest": digest}, data=data,
                           headers={"Content-Type": "application/octet-stream"}, timeout=30)
        assert put.status_code == 201, put.text
        return digest

    def put_manifest(self, repo: str, reference: str, doc: dict) -> None:
        r = requests.put(f"{self.base}/{repo}/manifests/{reference}", data=json.dumps(doc).encode(),
                         headers={"Content-Type": MANIFEST_TYPES}, timeout=30)
        assert r.status_code == 201, r.text


@pytest.fixture
def plain_registry(registry) -> Registry:  # noqa: F811 - the fixture imported above
    return Registry(registry)


@pytest.fixture(scope="module")
def signing_ws(tmp_path_factory):
    """A workspace with two images, //img:a and //img:b (bash and a stamp unique to the run), and a key pair."""
    root = tmp_path_factory.mktemp("signing-ws")
    (root / "workspace.toml").write_text('[workspace]\nname = "signing"\n')
    (root / "img").mkdir()
    stamp = uuid.uuid4().hex
    for name in ("a", "b"):
        (root / "img" / name).write_text(f"{name} {stamp}\n")
    (root / "img" / "BUILD.toml").write_text("".join(f"""\
[[image]]
name = "{name}"
binaries = ["/bin/bash"]
entrypoint = ["/bin/bash"]
files = [{{ src = "{name}", dest = "/stamp", mode = "0644" }}]

""" for name in ("a", "b")))
    return root


@pytest.fixture(scope="module")
def keys(signing_ws) -> Keys:
    return keygen(signing_ws, "release")


def push_signed(ws: Path, label: str, key: Path | None, *extra: str, tag: str = "1",
                registry_address: str = REGISTRY) -> Pushed:
    repo = f"minibuild-test/signing-{uuid.uuid4().hex[:12]}"
    ref = f"{registry_address}/{repo}:{tag}"
    args = ["push", label, "--to", ref, "--json", *extra] + (["--sign", str(key)] if key else [])
    r = run_cli(*args, cwd=ws, env=password_env())
    assert r.returncode == 0, r.stderr
    assert PASSWORD not in r.stdout + r.stderr
    out = r.json()
    return Pushed(ref, repo, out["digest"], out)


# --- what is stored, read and checked without minibuild's code -------------------------------------------------

DSSE_LAYER = "application/vnd.dsse.envelope.v1+json"
SLSA = "https://slsa.dev/provenance/v1"
SPDX = "https://spdx.dev/Document"


def tag_of(digest: str, suffix: str) -> str:
    return "sha256-" + digest.split(":", 1)[1] + "." + suffix


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSE v1's pre-authentication encoding, written from the spec (secure-systems-lab/dsse, protocol.md)."""
    kind = payload_type.encode()
    return b"DSSEv1 " + str(len(kind)).encode() + b" " + kind + b" " + str(len(body)).encode() + b" " + body


def openssl_verifies(public: Path, signature_b64: str, data: bytes, tmp: Path) -> bool:
    (tmp / "signed").write_bytes(data)
    (tmp / "sig.der").write_bytes(base64.b64decode(signature_b64))
    proc = subprocess.run(["openssl", "dgst", "-sha256", "-verify", str(public), "-signature", str(tmp / "sig.der"),
                           str(tmp / "signed")], capture_output=True, text=True)
    return proc.returncode == 0 and proc.stdout.strip() == "Verified OK"


@dataclass
class Attestation:
    layer: dict
    envelope: dict
    payload: bytes  # the statement's bytes, as signed
    statement: dict


def attestations(plain: Registry, repo: str, digest: str) -> list[Attestation]:
    """The DSSE layers of `sha256-<hex>.att`, fetched over plain HTTP."""
    manifest = plain.manifest(repo, tag_of(digest, "att"))
    assert manifest is not None, f"no {tag_of(digest, 'att')}"
    out = []
    for layer in json.loads(manifest)["layers"]:
        envelope = json.loads(plain.blob(repo, layer["digest"]))
        payload = base64.b64decode(envelope["payload"])
        out.append(Attestation(layer, envelope, payload, json.loads(payload)))
    return out


def skopeo_raw(ref: str) -> bytes:
    return subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
                          capture_output=True, check=True).stdout
