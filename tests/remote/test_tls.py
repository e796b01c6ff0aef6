"""TLS on every protocol, against the real servers serving a certificate for 127.0.0.1 that a throwaway CA
signed (`openssl`, tests/remote/servers.py): nginx (`https://`), BuildGrid (`grpcs://`) and Debian's
docker-registry (`oci+https://`). Trusted through `ca_file` or through the system's CA bundle, the team
scenario gets every action from the cache; a certificate that is not trusted, or is for another name, is one
warning line and a local build, and nothing is sent to that server."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from minibuild.errors import InputError
from minibuild.remote.tls import tls_failure
from minibuild.remote_settings import RemoteChoice, remote_settings
from minibuild.workspace import Workspace
from tests.remote import scenario
from tests.remote.servers import Server, Tls, make_tls, start_buildgrid, start_nginx, start_registry
from tests.remote.workspaces import make_team_workspace, minibuild

START = {"nginx": start_nginx, "buildgrid": start_buildgrid, "registry": start_registry}
KINDS = list(START)
SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")  # Debian's, from the ca-certificates package
# Where OpenSSL, requests and grpcio look for CAs when told by the environment: none of them may leak in.
CA_VARIABLES = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
                "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", "MINIBUILD_REMOTE_CACHE_CA")
SECRET = "tls-s3cret-Pa55"
TOKEN = "tls-t0ken-9f2c"


@pytest.fixture(autouse=True)
def _no_cas_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CA_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Tls, Tls]:
    """A certificate for 127.0.0.1 and one for `cache.example`, both signed by the same throwaway CA."""
    base = tmp_path_factory.mktemp("tls")
    good = make_tls(base)
    return good, make_tls(base, "DNS:cache.example", ca=good.ca)


@pytest.fixture(scope="module")
def local_digests(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The images of a cold build without any remote cache: what every build here must make."""
    base = tmp_path_factory.mktemp("local")
    done = minibuild(make_team_workspace(base / "ws"), "build", "//...", "--no-load", "--json", "--no-remote-cache",
                     env={"HOME": str(base / "home")})
    assert done.returncode == 0, done.stderr
    return scenario.digests(json.loads(done.stdout))


def _serve(kind: str, base: Path, tls: Tls | None) -> Server:
    if kind == "registry":  # a repository no other run has used
        return start_registry(base, f"team/tls-{uuid.uuid4().hex[:8]}", tls=tls)
    return START[kind](base, tls=tls)


@pytest.fixture
def serving(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    started: list[Server] = []

    def start(kind: str, tls: Tls | None) -> Server:
        started.append(_serve(kind, tmp_path_factory.mktemp(kind), tls))
        return started[-1]

    yield start
    for server in started:
        server.close()


def _stored(server: Server) -> list[Path]:
    """The files the server keeps of what it was sent (nginx's `ac/` and `cas/`, BuildGrid's and the registry's
    storage)."""
    return [p for p in server.data.rglob("*") if p.is_file()] if server.data.exists() else []


def _with_credentials(url: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://ci:{SECRET}@{rest}"


@pytest.mark.parametrize("kind", KINDS)
def test_team_scenario_with_ca_file(kind, certs, serving, tmp_path, monkeypatch):
    server = serving(kind, certs[0])
    assert server.url.startswith(("https://", "grpcs://", "oci+https://"))
    monkeypatch.setenv("MINIBUILD_REMOTE_CACHE_CA", str(certs[0].ca))
    scenario.team_scenario(tmp_path, server.url)
    assert _stored(server)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", ["untrusted", "other-name"])
def test_a_refused_certificate_is_one_warning_and_a_local_build(kind, case, certs, serving, local_digests, tmp_path,
                                                                monkeypatch):
    """Not signed by a CA the client trusts (no `ca_file`, and the system's bundle lacks the throwaway CA), or
    signed by the trusted CA for `cache.example` instead of 127.0.0.1: the build makes the images a build
    without a cache makes, says why in one line, and sends the server nothing, credentials least of all."""
    good, other = certs
    server = serving(kind, good if case == "untrusted" else other)
    if case == "other-name":
        monkeypatch.setenv("MINIBUILD_REMOTE_CACHE_CA", str(good.ca))
    root = make_team_workspace(tmp_path / "ws")
    result = scenario.build(root, _with_credentials(server.url), tmp_path / "home",
                            env={"MINIBUILD_REMOTE_CACHE_HEADERS": f"X-Cache-Token: {TOKEN}"})
    assert result["actions"] == {"run": scenario.ACTIONS, "cached": 0, "remote": 0}
    assert scenario.digests(result) == local_digests
    warnings = [line for line in result["stderr"].splitlines() if line.startswith("warning")]
    assert len(warnings) == 1 and "TLS failed" in warnings[0], result["stderr"]
    assert "certificate verify failed: " in warnings[0]
    if case == "untrusted":
        assert "unable to get local issuer certificate" in warnings[0]
    else:
        assert "mismatch" in warnings[0] or "not for this host" in warnings[0]
    assert "Traceback" not in result["stderr"]
    assert not re.search(r"^[DIWEF]\d{4} ", result["stderr"], re.M), result["stderr"]  # no grpcio log lines
    for text in (result["stderr"], json.dumps(result)):
        assert SECRET not in text and TOKEN not in text
    assert not _stored(server)


@pytest.mark.parametrize("kind", KINDS)
def test_the_system_ca_bundle_is_trusted(kind, certs, serving, tmp_path, monkeypatch):
    """Without `ca_file`, the CAs trusted are the system's: here a copy of Debian's bundle with the throwaway CA
    added, as `update-ca-certificates` would add it, named by SSL_CERT_FILE (OpenSSL's variable for it)."""
    if not SYSTEM_BUNDLE.is_file():
        pytest.fail(f"{SYSTEM_BUNDLE} is missing: install Debian's ca-certificates (scripts/test.sh does)")
    bundle = tmp_path / "ca-certificates.crt"
    bundle.write_bytes(SYSTEM_BUNDLE.read_bytes() + certs[0].ca.read_bytes())
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    server = serving(kind, certs[0])
    a, b = scenario.make_clones(tmp_path)
    first = scenario.build(a, server.url, tmp_path / "home-a")
    assert first["actions"]["run"] == scenario.ACTIONS and first["bytes"]["uploaded"] > 0
    assert "warning" not in first["stderr"]
    second = scenario.build(b, server.url, tmp_path / "home-b")
    assert second["actions"] == {"run": 0, "cached": 0, "remote": scenario.ACTIONS}, second["stderr"]
    assert scenario.digests(second) == scenario.digests(first)


@pytest.mark.parametrize("kind", KINDS)
def test_tls_to_a_server_without_it(kind, serving, registry, tmp_path):
    """A URL that asks for TLS of a server that speaks plain HTTP or gRPC: one warning, a local build."""
    if kind == "registry":
        url = f"oci+https://{registry}/minibuild-test/tls-{uuid.uuid4().hex[:12]}"
    else:
        plain = serving(kind, None).url
        url = plain.replace("http://", "https://").replace("grpc://", "grpcs://")
    root = make_team_workspace(tmp_path / "ws")
    result = scenario.build(root, url, tmp_path / "home")
    assert result["actions"]["run"] == scenario.ACTIONS
    warnings = [line for line in result["stderr"].splitlines() if line.startswith("warning")]
    assert len(warnings) == 1 and "TLS failed" in warnings[0], result["stderr"]
    assert not re.search(r"^[DIWEF]\d{4} ", result["stderr"], re.M), result["stderr"]


def test_plain_http_to_a_registry_by_its_scheme(registry, tmp_path):
    """`oci+http://` speaks plain HTTP whatever the host (on loopback as `oci://` does): read back over plain
    HTTP from the registry itself."""
    repo = f"minibuild-test/plain-{uuid.uuid4().hex[:12]}"
    a, b = scenario.make_clones(tmp_path)
    first = scenario.build(a, f"oci+http://{registry}/{repo}", tmp_path / "home-a")
    assert first["bytes"]["uploaded"] > 0 and "warning" not in first["stderr"]
    tags = requests.get(f"http://{registry}/v2/{repo}/tags/list", timeout=10).json()["tags"]
    assert len(tags) == scenario.ACTIONS
    second = scenario.build(b, f"oci://{registry}/{repo}", tmp_path / "home-b")
    assert second["actions"] == {"run": 0, "cached": 0, "remote": scenario.ACTIONS}


def test_oci_on_loopback_is_plain_http_even_to_a_tls_registry(certs, serving, tmp_path, monkeypatch):
    """`oci://127.0.0.1:PORT/...` speaks plain HTTP as `minibuild push` does; a registry behind TLS answers it
    400, which the warning shows (and the docs say: `oci+https://`)."""
    server = serving("registry", certs[0])
    monkeypatch.setenv("MINIBUILD_REMOTE_CACHE_CA", str(certs[0].ca))
    root = make_team_workspace(tmp_path / "ws")
    result = scenario.build(root, server.url.replace("oci+https://", "oci://"), tmp_path / "home")
    assert result["actions"]["run"] == scenario.ACTIONS
    warnings = [line for line in result["stderr"].splitlines() if line.startswith("warning")]
    assert len(warnings) == 1 and "http://" in warnings[0] and "400" in warnings[0], result["stderr"]
    assert not _stored(server)


def test_credentials_over_tls(certs, tmp_path_factory, tmp_path):
    """nginx with basic auth over HTTPS, `ca_file` in workspace.toml relative to the root: the right password
    uploads, a wrong one is `HTTP 401 ... (check the credentials)`; neither is ever printed."""
    base = tmp_path_factory.mktemp("nginx-auth-tls")
    htpasswd = base / "htpasswd"
    subprocess.run(["htpasswd", "-bc", str(htpasswd), "ci", SECRET], check=True, capture_output=True)
    server = start_nginx(base, htpasswd, tls=certs[0])
    try:
        a, b = scenario.make_clones(tmp_path)
        for root in (a, b):
            (root / "certs").mkdir()
            shutil.copy(certs[0].ca, root / "certs" / "team-ca.pem")
            with open(root / "workspace.toml", "a") as f:
                f.write('\n[cache]\nca_file = "certs/team-ca.pem"\n')
        first = scenario.build(a, _with_credentials(server.url), tmp_path / "h")
        assert first["bytes"]["uploaded"] > 0 and "warning" not in first["stderr"]
        bad = scenario.build(b, _with_credentials(server.url).replace(SECRET, SECRET + "x"), tmp_path / "h2")
        assert bad["actions"]["remote"] == 0
        assert "HTTP 401" in bad["stderr"] and "check the credentials" in bad["stderr"]
        for text in (first["stderr"], bad["stderr"], json.dumps(first), json.dumps(bad)):
            assert SECRET not in text
    finally:
        server.close()


def _workspace(root: Path, cache: str) -> Workspace:
    root.mkdir(parents=True, exist_ok=True)
    (root / "workspace.toml").write_text(f'[workspace]\nname = "t"\n[cache]\nremote = "https://c.example/x"\n{cache}')
    return Workspace(root)


def test_ca_file_is_checked_before_the_build(tmp_path):
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "not-a-cert.pem").write_text("hello\n")
    with pytest.raises(InputError, match=r"cannot read the remote cache's CA file `missing.pem` \(`\[cache\] ca_"):
        remote_settings(_workspace(tmp_path / "ws", 'ca_file = "missing.pem"\n'), RemoteChoice(), {})
    with pytest.raises(InputError, match=r"holds no PEM certificate"):
        remote_settings(_workspace(tmp_path / "ws", ""), RemoteChoice(),
                        {"MINIBUILD_REMOTE_CACHE_CA": "not-a-cert.pem"})
    root = make_team_workspace(tmp_path / "team")
    done = minibuild(root, "build", "//...", "--no-load", "--remote-cache", "https://127.0.0.1:9/cache",
                     env={"MINIBUILD_REMOTE_CACHE_CA": str(tmp_path / "nowhere.pem")})
    assert done.returncode == 2 and "MINIBUILD_REMOTE_CACHE_CA" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_the_words_of_a_tls_failure():
    """As Python's ssl (OpenSSL) and grpcio (BoringSSL) word them, taken from the failures above."""
    assert tls_failure("Caused by SSLError(SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED] certificate "
                       "verify failed: unable to get local issuer certificate (_ssl.c:1006)')))") == (
        "certificate verify failed: unable to get local issuer certificate")
    assert tls_failure("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: IP address mismatch, certificate "
                       "is not valid for '127.0.0.1'. (_ssl.c:1006)") == (
        "certificate verify failed: IP address mismatch, certificate is not valid for '127.0.0.1'")
    assert tls_failure("failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: Tls handshake "
                       "failed (TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: error:1000007d:SSL routines:OPENSSL_internal:"
                       "CERTIFICATE_VERIFY_FAILED: unable to get local issuer certificate: OK") == (
        "certificate verify failed: unable to get local issuer certificate")
    assert "not for this host" in tls_failure("Custom verification check failed with error: UNAUTHENTICATED: "
                                              "Hostname Verification Check failed.")
    assert tls_failure("failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: Failed to "
                       "connect to remote host: Connection refused") is None
