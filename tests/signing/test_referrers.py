"""OCI 1.1 referrers. No registry this test suite runs has the referrers API: Debian 12's docker-registry (2.8)
answers 404 on `/v2/<name>/referrers/<digest>`, and the fallback, cosign's tags alone, is tested against it. The
other side is tested as far as it honestly can be: a proxy in front of that same registry answers the referrers
query with an empty image index (as a registry with the API does for an image nothing refers to yet), so push puts
its referrer manifests; they land in the real registry and are read back with skopeo and plain HTTP: subject,
artifactType and layers as the OCI 1.1 image spec and cosign's OCI 1.1 mode write them. That the registry then
lists them in its referrers index is the registry's part and is not tested here."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from tests.conftest import run_cli
from tests.registry.conftest import fault_proxy  # noqa: F401 - the fixture, for tests here
from tests.signing.conftest import (
    SLSA,
    attestations,
    openssl_verifies,
    password_env,
    push_signed,
    skopeo_raw,
    tag_of,
)

pytestmark = pytest.mark.registry

INDEX = "application/vnd.oci.image.index.v1+json"
EMPTY_INDEX = json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": []}).encode()


def test_the_local_registry_has_no_referrers_api_and_push_falls_back_to_tags(signing_ws, keys, registry):
    pushed = push_signed(signing_ws, "//img:a", keys.private)
    probe = requests.get(f"http://{registry}/v2/{pushed.repo}/referrers/{pushed.digest}",
                         headers={"Accept": INDEX}, timeout=30)
    assert probe.status_code == 404  # the premise: Debian 12's docker-registry
    assert pushed.out["signing"]["referrers_api"] is False
    [root] = pushed.out["signing"]["manifests"]
    assert root["referrers"] == []
    assert skopeo_raw(f"{registry}/{pushed.repo}:{tag_of(pushed.digest, 'sig')}")
    assert skopeo_raw(f"{registry}/{pushed.repo}:{tag_of(pushed.digest, 'att')}")


@pytest.fixture
def empty_index_server() -> Iterator[str]:
    """An HTTP server answering every GET with an empty OCI image index."""
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(200)
            self.send_header("Content-Type", INDEX)
            self.send_header("Content-Length", str(len(EMPTY_INDEX)))
            self.end_headers()
            self.wfile.write(EMPTY_INDEX)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_where_the_referrers_api_answers_the_signature_and_attestations_are_referrers_too(
        signing_ws, keys, registry, plain_registry, fault_proxy, empty_index_server, tmp_path):  # noqa: F811
    built = run_cli("build", "//img:a", "--no-load", "--json", cwd=signing_ws)
    assert built.returncode == 0, built.stderr
    digest = built.json()["targets"][0]["digest"]
    repo = "minibuild-test/referrers-" + hashlib.sha256(tmp_path.name.encode()).hexdigest()[:12]
    proxy = fault_proxy(redirects={f"/v2/{repo}/referrers/{digest}": f"http://{empty_index_server}/index"})
    r = run_cli("push", "//img:a", "--to", f"{proxy.address}/{repo}:1", "--sign", str(keys.private), "--json",
                cwd=signing_ws, env=password_env())
    assert r.returncode == 0, r.stderr
    out = r.json()
    assert out["digest"] == digest and out["signing"]["referrers_api"] is True
    [root] = out["signing"]["manifests"]
    sig_ref, att_ref = root["referrers"]
    image = skopeo_raw(f"{registry}/{repo}@{digest}")
    subject = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": len(image)}

    raw = skopeo_raw(f"{registry}/{repo}@{sig_ref}")
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == sig_ref
    sig = json.loads(raw)
    assert sig["subject"] == subject
    assert sig["artifactType"] == "application/vnd.dev.cosign.artifact.sig.v1+json"
    [layer] = sig["layers"]
    assert layer["mediaType"] == "application/vnd.dev.cosign.simplesigning.v1+json"
    payload = plain_registry.blob(repo, layer["digest"])
    assert json.loads(payload)["critical"]["image"]["docker-manifest-digest"] == digest
    assert openssl_verifies(keys.public, layer["annotations"]["dev.cosignproject.cosign/signature"], payload,
                            tmp_path)

    att = json.loads(skopeo_raw(f"{registry}/{repo}@{att_ref}"))
    assert att["subject"] == subject and att["artifactType"] == "application/vnd.dsse.envelope.v1+json"
    tagged = json.loads(plain_registry.manifest(repo, tag_of(digest, "att")))
    assert att["layers"] == tagged["layers"]  # the same envelopes, under the tag too
    assert "subject" not in tagged
    assert SLSA in {a.statement["predicateType"] for a in attestations(plain_registry, repo, digest)}
