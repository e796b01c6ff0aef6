"""Credentials from DOCKER_CONFIG, basic auth against the htpasswd registry, bearer tokens through a proxy."""

from __future__ import annotations

import base64
import json

import pytest

from minibuild.errors import EngineError
from minibuild.oci.registry import Credentials, load_credentials
from tests.registry.conftest import PASSWORD, USER, blob_count, docker_config
from tests.registry.test_push import skopeo_digest

pytestmark = pytest.mark.registry


def test_basic_auth_with_docker_config(image_ws, cli, auth_registry, repo, tmp_path):
    config = docker_config(tmp_path / "docker", auth_registry, USER, PASSWORD)
    ref = f"{auth_registry}/{repo}:1"
    r = cli("push", "//img:bash", "--to", ref, "--json", cwd=image_ws.root, env={"DOCKER_CONFIG": str(config)})
    assert r.returncode == 0, r.stderr
    assert r.json()["blobs"]["uploaded"] == blob_count(image_ws)
    assert skopeo_digest(ref, "--creds", f"{USER}:{PASSWORD}") == r.json()["digest"]


def test_no_credentials_is_exit_1_mentioning_authentication(image_ws, cli, auth_registry, repo, tmp_path):
    (tmp_path / "empty").mkdir()
    r = cli("push", "//img:bash", "--to", f"{auth_registry}/{repo}:1", cwd=image_ws.root,
            env={"DOCKER_CONFIG": str(tmp_path / "empty")})
    assert r.returncode == 1, r.stderr
    assert "requires authentication" in r.stderr and "no credentials" in r.stderr
    assert "docker login" in r.stderr and "Traceback" not in r.stderr


def test_wrong_password_is_exit_1(image_ws, cli, auth_registry, repo, tmp_path):
    config = docker_config(tmp_path / "docker", auth_registry, USER, "wrong")
    r = cli("push", "//img:bash", "--to", f"{auth_registry}/{repo}:1", cwd=image_ws.root,
            env={"DOCKER_CONFIG": str(config)})
    assert r.returncode == 1, r.stderr
    assert "authentication" in r.stderr and "rejected" in r.stderr and USER in r.stderr


def test_bearer_token_flow(image_ws, cli, registry, repo, tmp_path, fault_proxy):
    proxy = fault_proxy(bearer=(USER, PASSWORD))
    config = docker_config(tmp_path / "docker", proxy.address, USER, PASSWORD)
    r = cli("push", "//img:bash", "--to", f"{proxy.address}/{repo}:1", "--json", cwd=image_ws.root,
            env={"DOCKER_CONFIG": str(config)})
    assert r.returncode == 0, r.stderr
    assert skopeo_digest(f"{registry}/{repo}:1") == r.json()["digest"]
    assert proxy.tokens_issued and all(scopes == [f"repository:{repo}:pull,push"] for scopes in proxy.tokens_issued)
    assert len(proxy.tokens_issued) == 1  # cached per scope


def test_bearer_mount_asks_for_both_scopes(image_ws, cli, registry, repo, tmp_path, fault_proxy):
    proxy = fault_proxy(bearer=(USER, PASSWORD))
    config = docker_config(tmp_path / "docker", proxy.address, USER, PASSWORD)
    env = {"DOCKER_CONFIG": str(config)}
    assert cli("push", "//img:bash", "--to", f"{proxy.address}/{repo}:1", cwd=image_ws.root, env=env).returncode == 0
    r = cli("push", "//img:bash", "--to", f"{proxy.address}/{repo}-m:1", "--json", cwd=image_ws.root, env=env)
    assert r.returncode == 0, r.stderr
    assert r.json()["blobs"]["mounted"] >= 1
    assert sorted([f"repository:{repo}-m:pull,push", f"repository:{repo}:pull"]) in proxy.tokens_issued


def test_bearer_with_bad_credentials_is_exit_1(image_ws, cli, repo, tmp_path, fault_proxy):
    proxy = fault_proxy(bearer=(USER, PASSWORD))
    config = docker_config(tmp_path / "docker", proxy.address, USER, "wrong")
    r = cli("push", "//img:bash", "--to", f"{proxy.address}/{repo}:1", cwd=image_ws.root,
            env={"DOCKER_CONFIG": str(config)})
    assert r.returncode == 1, r.stderr
    assert "authentication" in r.stderr and "token service" in r.stderr


# --- config.json parsing (no registry needed) ------------------------------------------------------------


@pytest.mark.parametrize("key", ["reg.example:5000", "https://reg.example:5000", "http://reg.example:5000/v2/"])
def test_auths_keys(tmp_path, monkeypatch, key):
    auth = base64.b64encode(b"u:p:with:colons").decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {key: {"auth": auth}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    assert load_credentials("reg.example:5000") == (Credentials("u", "p:with:colons"), [])
    assert load_credentials("other.example")[0] is None


def test_cred_helpers_are_warned_about(tmp_path, monkeypatch):
    (tmp_path / "config.json").write_text(json.dumps({"credsStore": "desktop", "credHelpers": {"a.io": "gcr"}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    creds, warnings = load_credentials("a.io")
    assert creds is None and "credential helper `gcr`" in warnings[0]
    creds, warnings = load_credentials("b.io")
    assert creds is None and "credential store `desktop`" in warnings[0]


def test_docker_hub_key(tmp_path, monkeypatch):
    auth = base64.b64encode(b"hub:pw").decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {"https://index.docker.io/v1/": {"auth": auth}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    assert load_credentials("docker.io")[0] == Credentials("hub", "pw")


def test_malformed_config_is_a_clear_error(tmp_path, monkeypatch):
    (tmp_path / "config.json").write_text("{not json")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    with pytest.raises(EngineError, match="not valid JSON"):
        load_credentials("reg.example")
