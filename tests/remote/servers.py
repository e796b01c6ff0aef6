"""Real remote cache servers on 127.0.0.1 for the tests, each started by the test that needs it (so a test may
kill or stop its own): Debian's nginx with WebDAV (the Bazel HTTP cache protocol), BuildGrid (REAPI v2) and
Debian's docker-registry (an OCI registry; the tests that need no fault use the shared one of scripts/test.sh).
Nothing here skips: a missing server program is a failure that says how to install it."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

NGINX = "/usr/sbin/nginx"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited during start-up (exit {proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"server did not listen on 127.0.0.1:{port} within {timeout}s:\n{log.read_text()[-3000:]}")


@dataclass
class Server:
    url: str
    port: int
    proc: subprocess.Popen[bytes]
    data: Path  # where it stores what it is sent
    log: Path

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        """SIGSTOP: the server still accepts connections (the kernel does) but never answers."""
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.killpg(self.proc.pid, signal.SIGCONT)

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGCONT)
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 2;
{user}
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {dir}/data;
        client_max_body_size 0;
        location /cache/ {{
            {auth}
            dav_methods PUT DELETE;
            create_full_put_path on;
            dav_access user:rw group:r all:r;
        }}
    }}
}}
"""


def start_nginx(base: Path, htpasswd: Path | None = None) -> Server:
    """nginx serving WebDAV under `/cache/` on a free port of 127.0.0.1, its files under `base`; with `htpasswd`,
    only to the users it lists (basic auth)."""
    if not os.access(NGINX, os.X_OK):
        pytest.fail(f"{NGINX} is missing: install Debian's nginx-light (scripts/test.sh does)")
    (base / "data" / "cache").mkdir(parents=True)
    (base / "tmp").mkdir()
    port = free_port()
    # Started as root, nginx runs its workers as `nobody`, who cannot write here: name the user who can.
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
    conf = base / "nginx.conf"
    auth = f'auth_basic "cache"; auth_basic_user_file {htpasswd};' if htpasswd else ""
    conf.write_text(NGINX_CONF.format(user=user, dir=base, port=port, auth=auth))
    log = base / "error.log"
    log.touch()
    proc = subprocess.Popen([NGINX, "-c", str(conf), "-p", str(base), "-e", str(log)],
                            stdout=subprocess.DEVNULL, stderr=open(log, "ab"), start_new_session=True)
    wait_for_port(port, proc, log)
    return Server(f"http://127.0.0.1:{port}/cache", port, proc, base / "data" / "cache", log)


BUILDGRID_CONF = """\
server:
  - !channel
    address: "127.0.0.1:{port}"
    insecure-mode: true

instances:
  - name: ''
    description: |
      CAS, ByteStream and an action cache, for minibuild's remote cache tests.
    storages:
      - !disk-storage &cas-storage
        path: {dir}/cas
    caches:
      - !lru-action-cache &build-cache
        storage: *cas-storage
        max-cached-refs: 100000
        cache-failed-actions: true
        allow-updates: true
    services:
      - !cas
        storage: *cas-storage
      - !bytestream
        storage: *cas-storage
      - !action-cache
        cache: *build-cache

thread-pool-size: 20
"""


def buildgrid_program() -> str:
    """BuildGrid's `bgd`: $MINIBUILD_TEST_BGD (scripts/test.sh installs BuildGrid in a venv of its own)."""
    bgd = os.environ.get("MINIBUILD_TEST_BGD") or shutil.which("bgd")
    if not bgd or not os.access(bgd, os.X_OK):
        pytest.fail("BuildGrid's `bgd` is missing: run the tests through scripts/test.sh, which installs "
                    "buildgrid==0.4.4 in a venv of its own and sets MINIBUILD_TEST_BGD")
    return bgd


def start_buildgrid(base: Path) -> Server:
    """BuildGrid (CAS + ByteStream + ActionCache) on a free port of 127.0.0.1, storing blobs under `base`."""
    bgd = buildgrid_program()
    base.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = base / "buildgrid.yml"
    conf.write_text(BUILDGRID_CONF.format(port=port, dir=base))
    log = base / "buildgrid.log"
    proc = subprocess.Popen([bgd, "server", "start", str(conf)], stdout=open(log, "ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    wait_for_port(port, proc, log, timeout=60)
    return Server(f"grpc://127.0.0.1:{port}", port, proc, base / "cas", log)


REGISTRY = "/usr/bin/docker-registry"
REGISTRY_CONF = """\
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {dir}/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
  secret: minibuild-remote-cache-test
"""


def start_registry(base: Path, repository: str = "team/cache") -> Server:
    """Debian's docker-registry (distribution 2.8) on a free port of 127.0.0.1, its blobs under `base`; the
    server's url is the `oci://` cache in `repository`."""
    if not os.access(REGISTRY, os.X_OK):
        pytest.fail(f"{REGISTRY} is missing: install Debian's docker-registry (scripts/test.sh does)")
    base.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = base / "config.yml"
    conf.write_text(REGISTRY_CONF.format(dir=base, port=port))
    log = base / "registry.log"
    proc = subprocess.Popen([REGISTRY, "serve", str(conf)], stdout=open(log, "ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    wait_for_port(port, proc, log)
    return Server(f"oci://127.0.0.1:{port}/{repository}", port, proc, base / "data", log)
