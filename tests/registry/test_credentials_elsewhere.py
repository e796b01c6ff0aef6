"""Credentials go to the registry they were configured for, and to the token realm its challenge names; never to
another host an upload `Location` or a redirect names (docs/registry.md).

The registry here is a proxy in front of the real htpasswd (or plain) registry that rewrites the `Location` of
upload answers to a second listener on another port, which records what it is sent.
"""

from __future__ import annotations

import pytest

from tests.registry.conftest import PASSWORD, USER, blob_count, docker_config
from tests.registry.test_push import skopeo_digest

pytestmark = pytest.mark.registry

BASIC = "Basic "


def test_upload_location_on_another_host_gets_no_credentials(image_ws, cli, auth_registry, repo, tmp_path,
                                                              fault_proxy):
    # the other host stands for a storage host that authorises by the upload URL: it forwards with its own
    storage = fault_proxy(upstream=auth_registry, upstream_auth=(USER, PASSWORD))
    front = fault_proxy(upstream=auth_registry, forward_auth=True, relocate=storage.address)
    config = docker_config(tmp_path / "docker", front.address, USER, PASSWORD)
    r = cli("push", "//img:bash", "--to", f"{front.address}/{repo}:1", "--chunk-size", "256K", "--json",
            cwd=image_ws.root, env={"DOCKER_CONFIG": str(config)})
    assert r.returncode == 0, r.stderr
    assert r.json()["blobs"]["uploaded"] == blob_count(image_ws)
    uploads = storage.seen_at("upload-patch") + storage.seen_at("upload-put")
    assert len(storage.seen_at("upload-put")) == blob_count(image_ws) and storage.seen_at("upload-patch")
    assert [s.authorization for s in storage.seen] == [""] * len(storage.seen)
    assert uploads and not storage.seen_at("upload-start")  # everything it got came through a Location
    assert all(s.authorization.startswith(BASIC) for s in front.seen_at("upload-start"))  # the registry got them
    assert skopeo_digest(f"{auth_registry}/{repo}:1", "--creds", f"{USER}:{PASSWORD}") == r.json()["digest"]


def test_another_host_asking_for_basic_credentials_is_refused(image_ws, cli, auth_registry, repo, tmp_path,
                                                              fault_proxy):
    elsewhere = fault_proxy(upstream=auth_registry, challenge='Basic realm="elsewhere"')
    front = fault_proxy(upstream=auth_registry, forward_auth=True, relocate=elsewhere.address)
    config = docker_config(tmp_path / "docker", front.address, USER, PASSWORD)
    r = cli("push", "//img:bash", "--to", f"{front.address}/{repo}:1", cwd=image_ws.root,
            env={"DOCKER_CONFIG": str(config)})
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
    assert f"`{elsewhere.address}`" in r.stderr and f"`{front.address}`" in r.stderr
    assert "asks for authentication" in r.stderr and "hint:" in r.stderr
    # its 401 is not answered: each upload (a push sends a few blobs at once) went there once, without credentials
    assert elsewhere.seen and len({s.path for s in elsewhere.seen}) == len(elsewhere.seen) <= blob_count(image_ws)
    assert [s.authorization for s in elsewhere.seen] == [""] * len(elsewhere.seen)


def test_another_host_naming_its_own_token_realm_gets_no_credentials(image_ws, cli, repo, tmp_path, fault_proxy):
    # a bearer registry whose upload Location names a host with a realm of its own: that realm is not the one
    # the registry's challenge named, so neither the basic credentials nor the registry's token go there
    elsewhere = fault_proxy(bearer=(USER, PASSWORD))
    front = fault_proxy(bearer=(USER, PASSWORD), relocate=elsewhere.address)
    config = docker_config(tmp_path / "docker", front.address, USER, PASSWORD)
    r = cli("push", "//img:bash", "--to", f"{front.address}/{repo}:1", cwd=image_ws.root,
            env={"DOCKER_CONFIG": str(config)})
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert f"`{elsewhere.address}`" in r.stderr and f"`{front.address}`" in r.stderr
    assert front.tokens_issued  # the registry's own realm did get them
    assert not elsewhere.seen_at("token") and not elsewhere.tokens_issued
    assert [s.authorization for s in elsewhere.seen] == [""] * len(elsewhere.seen)


def test_a_token_realm_redirecting_elsewhere_does_not_take_the_credentials_along(image_ws, cli, repo, tmp_path,
                                                                                   fault_proxy):
    elsewhere = fault_proxy(bearer=(USER, PASSWORD))
    front = fault_proxy(bearer=(USER, PASSWORD))
    front.realm = f"http://{front.address}/token-moved"
    front.redirects["/token-moved"] = f"http://{elsewhere.address}/token"
    config = docker_config(tmp_path / "docker", front.address, USER, PASSWORD)
    r = cli("push", "//img:bash", "--to", f"{front.address}/{repo}:1", cwd=image_ws.root,
            env={"DOCKER_CONFIG": str(config)})
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr and "token service" in r.stderr
    assert front.seen_at("other") and front.seen_at("other")[0].authorization.startswith(BASIC)  # realm named
    assert elsewhere.seen_at("token") and [s.authorization for s in elsewhere.seen] == [""] * len(elsewhere.seen)


def test_headers_set_on_the_session_stay_with_the_registry(registry, repo, tmp_path, fault_proxy):
    # the OCI remote cache puts the `headers` of its settings on the client's session
    from minibuild.oci.registry import RegistryClient

    elsewhere = fault_proxy()
    front = fault_proxy(relocate=elsewhere.address)
    client = RegistryClient(front.address)
    client.session.headers["X-Cache-Key"] = "secret"
    client.session.headers["Authorization"] = "Bearer secret"
    blob = tmp_path / "blob"
    blob.write_bytes(b"a blob of the remote cache\n")
    from minibuild.oci.spec import sha256_digest

    digest = sha256_digest(blob.read_bytes())
    client.upload_blob(repo, digest, str(blob), blob.stat().st_size)
    assert client.blob_exists(repo, digest)
    assert [s.headers.get("x-cache-key") for s in front.seen] == ["secret"] * len(front.seen)
    [put] = elsewhere.seen
    assert put.kind == "upload-put" and "x-cache-key" not in put.headers and put.authorization == ""
    assert "minibuild" in put.headers["user-agent"]
