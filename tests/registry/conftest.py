"""Fixtures for registry tests: the local registries of scripts/test.sh, image workspaces, a faulty proxy
(which can also stand for another host a registry names in an upload `Location`, and for a server that
answers slowly or never).

Where Docker is required (CI=true or MINIBUILD_REQUIRE_DOCKER=1) an unreachable registry fails the test
instead of skipping it.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import socket
import subprocess
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

from tests.conftest import docker_required

REGISTRY = os.environ.get("MINIBUILD_TEST_REGISTRY", "127.0.0.1:5000")
AUTH_REGISTRY = os.environ.get("MINIBUILD_TEST_AUTH_REGISTRY", "127.0.0.1:5001")
USER = os.environ.get("MINIBUILD_TEST_REGISTRY_USER", "minibuild")
PASSWORD = os.environ.get("MINIBUILD_TEST_REGISTRY_PASSWORD", "minibuild-test")


def _require(address: str, want: int) -> str:
    try:
        code = requests.get(f"http://{address}/v2/", timeout=5).status_code
        problem = "" if code == want else f"GET /v2/ answered {code}, not {want}"
    except requests.RequestException as exc:
        problem = f"unreachable ({type(exc).__name__})"
    if problem:
        message = f"registry {address}: {problem} (scripts/test.sh --setup-only starts it)"
        if docker_required():
            pytest.fail(message)
        pytest.skip(message)
    return address


@pytest.fixture(scope="session")
def registry() -> str:
    """host:port of the registry without authentication."""
    return _require(REGISTRY, 200)


@pytest.fixture(scope="session")
def auth_registry() -> str:
    """host:port of the registry with htpasswd (basic) authentication."""
    return _require(AUTH_REGISTRY, 401)


@pytest.fixture
def repo() -> str:
    """A repository name no other test (or earlier run) has used."""
    return f"minibuild-test/{uuid.uuid4().hex[:12]}"


@pytest.fixture
def image_ws(workspace):
    """A workspace with `//img:bash`: bash plus a file unique to the test, so its top layer is new.

    Its tag (`workspace.tag`) is unique too, so tests running in parallel never load over each other's
    image; the tag is removed from the engine afterwards.
    """
    stamp = uuid.uuid4().hex
    workspace.tag = f"minibuild-test/img-{stamp[:12]}:latest"
    workspace.write("img/stamp", stamp + "\n")
    workspace.write("img/BUILD.toml", f"""\
[[image]]
name = "bash"
binaries = ["/bin/bash"]
entrypoint = ["/bin/bash"]
files = [{{ src = "stamp", dest = "/stamp", mode = "0644" }}]
tag = "{workspace.tag}"
""")
    yield workspace
    docker = shutil.which("docker")
    if docker:
        subprocess.run([docker, "rmi", "-f", workspace.tag], capture_output=True)


def docker_config(directory: Path, registry: str, user: str, password: str) -> Path:
    """A DOCKER_CONFIG directory whose config.json holds `user:password` for `registry`, as docker login does."""
    directory.mkdir(parents=True, exist_ok=True)
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    (directory / "config.json").write_text(json.dumps({"auths": {registry: {"auth": auth}}}))
    return directory


# --- a fault-injecting HTTP proxy in front of a real registry ----------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    kind: str  # "ping", "blob-head", "upload-start", "upload-patch", "upload-put", "manifest", "token", "other"
    headers: dict[str, str] = field(default_factory=dict)  # as received, names in lower case

    @property
    def authorization(self) -> str:
        return self.headers.get("authorization", "")


def kind_of(method: str, path: str) -> str:
    path = path.split("?", 1)[0]
    if path == "/token":
        return "token"
    if path == "/v2/":
        return "ping"
    if "/blobs/uploads/" in path:
        if method == "POST":
            return "upload-start"
        return {"PATCH": "upload-patch", "PUT": "upload-put"}.get(method, "other")
    if "/blobs/" in path:
        return f"blob-{method.lower()}"
    if "/manifests/" in path:
        return "manifest"
    return "other"


# A fault decides, per request, what the proxy does: None (forward), an int (answer with that status and an
# error JSON), "drop" (read part of the body, then close the connection without answering), "silent" (read
# the request, never answer), "trickle" (send the answer one byte every TRICKLE seconds), "trickle-headers"
# (the status line at once, then the rest so) or "trickle-body" (the status and headers at once, then the body
# one byte every TRICKLE seconds).
Fault = Callable[[Seen, int], int | str | None]
TRICKLE = 2.0


def fail_first(kind: str, n: int, action: int | str = 500) -> Fault:
    """The first `n` requests of `kind` get `action`."""

    def fault(seen: Seen, count: int) -> int | str | None:
        return action if seen.kind == kind and count <= n else None

    return fault


@dataclass
class Proxy:
    upstream: str
    faults: list[Fault] = field(default_factory=list)
    bearer: tuple[str, str] | None = None  # (user, password): demand bearer tokens from /token
    seen: list[Seen] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    injected: Counter[str] = field(default_factory=Counter)
    tokens_issued: list[list[str]] = field(default_factory=list)
    forward_auth: bool = False  # pass the client's Authorization upstream (for the htpasswd registry)
    upstream_auth: tuple[str, str] | None = None  # authorise upstream with these instead (a storage host)
    relocate: str = ""  # host:port to name in the `Location` of upload answers instead of this proxy
    realm: str = ""  # the token realm bearer challenges name (default: this proxy's /token)
    challenge: str = ""  # answer every request but /token with 401 and this WWW-Authenticate
    redirects: dict[str, str] = field(default_factory=dict)  # path -> URL: answered with a 307 there
    address: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)  # ends silent and trickling answers

    def seen_at(self, kind: str) -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if s.kind == kind]


def _make_handler(proxy: Proxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _error(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
            body = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
            self._reply(status, body, {"Content-Type": "application/json", **(headers or {})})

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def handle_one(self) -> None:
            seen = Seen(self.command, self.path, kind_of(self.command, self.path),
                        {k.lower(): v for k, v in self.headers.items()})
            with proxy.lock:
                proxy.seen.append(seen)
                proxy.counts[seen.kind] += 1
                count = proxy.counts[seen.kind]
                action = next((a for f in proxy.faults if (a := f(seen, count)) is not None), None)
                if action is not None:
                    proxy.injected[seen.kind] += 1
            if action == "drop":
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(max(1, length // 2))
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if isinstance(action, int):
                self._body()
                self._error(action, "INJECTED", f"injected failure {action}")
                return
            if action in ("silent", "trickle", "trickle-headers", "trickle-body"):
                self._body()
                self._slow(action)
                return
            target = proxy.redirects.get(self.path.split("?", 1)[0])
            if target:
                self._body()
                self._reply(307, b"", {"Location": target + ("?" + self.path.split("?", 1)[1] if "?" in self.path
                                                             else "")})
                return
            if proxy.challenge and seen.kind != "token":
                self._body()
                self._error(401, "UNAUTHORIZED", "authentication required", {"WWW-Authenticate": proxy.challenge})
                return
            if proxy.bearer and not self._bearer_ok(seen):
                return
            self._forward()

        def _slow(self, action: str) -> None:
            """Answer never ("silent"), or 200 OK one byte every TRICKLE seconds until the client gives up."""
            self.close_connection = True
            if action == "silent":
                proxy.stop.wait()
                return
            status = b"HTTP/1.1 200 OK\r\n"
            body = b"x" * 1000 if action == "trickle-body" else b""
            headers = b"Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n" % len(body)
            answer = status + headers + body
            at_once = {"trickle": 0, "trickle-headers": len(status), "trickle-body": len(status + headers)}[action]
            for end in range(at_once or 1, len(answer) + 1):
                try:
                    self.wfile.write(answer[end - 1:end] if end > at_once else answer[:end])
                    self.wfile.flush()
                except OSError:
                    return
                if proxy.stop.wait(TRICKLE):
                    return

        def _bearer_ok(self, seen: Seen) -> bool:
            assert proxy.bearer is not None
            if seen.kind == "token":
                self._body()
                expected = "Basic " + base64.b64encode(":".join(proxy.bearer).encode()).decode()
                if self.headers.get("Authorization") != expected:
                    self._error(401, "UNAUTHORIZED", "bad credentials for the token service")
                    return False
                from urllib.parse import parse_qs, urlsplit

                scopes = parse_qs(urlsplit(self.path).query).get("scope", [])
                with proxy.lock:
                    proxy.tokens_issued.append(scopes)
                token = "tok-" + base64.urlsafe_b64encode(json.dumps(sorted(scopes)).encode()).decode()
                self._reply(200, json.dumps({"token": token, "expires_in": 300}).encode(),
                            {"Content-Type": "application/json"})
                return False
            auth = self.headers.get("Authorization", "")
            if not auth.startswith("Bearer tok-"):
                self._body()
                realm = proxy.realm or f"http://{proxy.address}/token"
                challenge = f'Bearer realm="{realm}",service="test-registry"'
                self._error(401, "UNAUTHORIZED", "authentication required", {"WWW-Authenticate": challenge})
                return False
            return True

        def _forward(self) -> None:
            body = self._body()
            dropped = ("connection", "keep-alive", "transfer-encoding") + (() if proxy.forward_auth else
                                                                            ("authorization",))
            headers = {k: v for k, v in self.headers.items() if k.lower() not in dropped}
            if proxy.upstream_auth:
                headers["Authorization"] = "Basic " + base64.b64encode(":".join(proxy.upstream_auth).encode()).decode()
            conn = http.client.HTTPConnection(proxy.upstream, timeout=60)
            try:
                conn.request(self.command, self.path, body=body or None, headers=headers)
                response = conn.getresponse()
                data = response.read()
                out = {k: v for k, v in response.getheaders()
                       if k.lower() not in ("connection", "keep-alive", "transfer-encoding", "content-length")}
                if proxy.relocate and "/blobs/uploads/" in self.path and "Location" in out:
                    parts = urlsplit(out["Location"])
                    out["Location"] = urlunsplit(("http", proxy.relocate, parts.path, parts.query, ""))
                self.send_response(response.status)
                for k, v in out.items():
                    self.send_header(k, v)
                length = response.getheader("Content-Length") if self.command == "HEAD" else str(len(data))
                self.send_header("Content-Length", length or "0")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
            finally:
                conn.close()

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = handle_one

    return Handler


@pytest.fixture
def fault_proxy(registry) -> Iterator[Callable[..., Proxy]]:
    """make(faults=[...], bearer=None) -> a Proxy listening on 127.0.0.1 in front of the plain registry."""
    def make(faults: list[Fault] | None = None, bearer: tuple[str, str] | None = None, *,
             upstream: str | None = None, **options: object) -> Proxy:
        """A proxy in front of `upstream` (default: the plain registry); options are Proxy's fields."""
        proxy = Proxy(upstream=upstream or registry, faults=list(faults or []), bearer=bearer,
                      **options)  # type: ignore[arg-type]
        server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(proxy))
        server.daemon_threads = True
        proxy.address = f"127.0.0.1:{server.server_address[1]}"
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append((server, proxy))
        return proxy

    servers: list[tuple[ThreadingHTTPServer, Proxy]] = []
    yield make
    for server, proxy in servers:
        proxy.stop.set()
        server.shutdown()
        server.server_close()


def blob_count(ws) -> int:
    """Blobs an image push uploads to an empty repository: its layers and its config (from the layout)."""
    from minibuild.oci.layout import read_layout

    [image] = read_layout(str(ws.root / ".minibuild/out/img/bash/oci")).images
    return len(image.layers) + 1
