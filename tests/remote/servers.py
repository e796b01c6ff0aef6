"""Real remote cache servers on 127.0.0.1 for the tests, each started by the test that needs it (so a test may
kill or stop its own): Debian's nginx with WebDAV (the Bazel HTTP cache protocol), BuildGrid (REAPI v2) and
Debian's docker-registry (an OCI registry; the tests that need no fault use the shared one of scripts/test.sh).
Each serves TLS when given a `Tls` (a throwaway CA and a certificate it signed, made with `openssl`).
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
OPENSSL = "/usr/bin/openssl"


@dataclass(frozen=True)
class Tls:
    """A server's certificate and key, and the CA (PEM) that signed it: the `ca_file` a client trusts."""

    ca: Path
    cert: Path
    key: Path


def _openssl(*args: str) -> None:
    done = subprocess.run([OPENSSL, *args], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"openssl {args[0]} failed:\n{done.stderr[-2000:]}")


def make_tls(base: Path, san: str = "IP:127.0.0.1", ca: Path | None = None) -> Tls:
    """A certificate for `san` (subjectAltName: `IP:127.0.0.1`, `DNS:cache.example`) signed by `ca` (the
    certificate of an earlier `make_tls`, its key beside it), or by a new CA made under `base`."""
    if not os.access(OPENSSL, os.X_OK):
        pytest.fail(f"{OPENSSL} is missing: install Debian's openssl (scripts/test.sh does)")
    base.mkdir(parents=True, exist_ok=True)
    if ca is None:
        ca = base / "ca.pem"
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", str(base / "ca.key"), "-out", str(ca), "-days", "2", "-subj", "/CN=minibuild test CA",
                 "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    name = san.split(":", 1)[1]
    key, csr, cert, ext = (base / f"{name}.{suffix}" for suffix in ("key", "csr", "pem", "ext"))
    ext.write_text(f"subjectAltName={san}\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                   "extendedKeyUsage=serverAuth\nauthorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n")
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca.with_suffix(".key")),
             "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext))
    return Tls(ca, cert, key)


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
        listen 127.0.0.1:{port}{ssl};
        {certificate}
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


def start_nginx(base: Path, htpasswd: Path | None = None, tls: Tls | None = None) -> Server:
    """nginx serving WebDAV under `/cache/` on a free port of 127.0.0.1, its files under `base`; with `htpasswd`,
    only to the users it lists (basic auth); with `tls`, over HTTPS only."""
    if not os.access(NGINX, os.X_OK):
        pytest.fail(f"{NGINX} is missing: install Debian's nginx-light (scripts/test.sh does)")
    (base / "data" / "cache").mkdir(parents=True)
    (base / "tmp").mkdir()
    port = free_port()
    # Started as root, nginx runs its workers as `nobody`, who cannot write here: name the user who can.
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
    conf = base / "nginx.conf"
    auth = f'auth_basic "cache"; auth_basic_user_file {htpasswd};' if htpasswd else ""
    certificate = f"ssl_certificate {tls.cert}; ssl_certificate_key {tls.key};" if tls else ""
    conf.write_text(NGINX_CONF.format(user=user, dir=base, port=port, auth=auth, ssl=" ssl" if tls else "",
                                      certificate=certificate))
    log = base / "error.log"
    log.touch()
    proc = subprocess.Popen([NGINX, "-c", str(conf), "-p", str(base), "-e", str(log)],
                            stdout=subprocess.DEVNULL, stderr=open(log, "ab"), start_new_session=True)
    wait_for_port(port, proc, log)
    scheme = "https" if tls else "http"
    return Server(f"{scheme}://127.0.0.1:{port}/cache", port, proc, base / "data" / "cache", log)


BUILDGRID_CONF = """\
server:
  - !channel
    address: "127.0.0.1:{port}"
{channel}

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


def start_buildgrid(base: Path, tls: Tls | None = None) -> Server:
    """BuildGrid (CAS + ByteStream + ActionCache) on a free port of 127.0.0.1, storing blobs under `base`; with
    `tls`, over TLS only (`grpcs://`)."""
    bgd = buildgrid_program()
    base.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = base / "buildgrid.yml"
    channel = "    insecure-mode: true"
    if tls:
        channel = (f"    insecure-mode: false\n    credentials:\n      tls-server-key: {tls.key}\n"
                   f"      tls-server-cert: {tls.cert}")
    conf.write_text(BUILDGRID_CONF.format(port=port, dir=base, channel=channel))
    log = base / "buildgrid.log"
    proc = subprocess.Popen([bgd, "server", "start", str(conf)], stdout=open(log, "ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    wait_for_port(port, proc, log, timeout=60)
    return Server(f"{'grpcs' if tls else 'grpc'}://127.0.0.1:{port}", port, proc, base / "cas", log)


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
{tls}"""


def start_registry(base: Path, repository: str = "team/cache", tls: Tls | None = None) -> Server:
    """Debian's docker-registry (distribution 2.8) on a free port of 127.0.0.1, its blobs under `base`; the
    server's url is the `oci://` cache in `repository`; with `tls`, over HTTPS only (`oci+https://`)."""
    if not os.access(REGISTRY, os.X_OK):
        pytest.fail(f"{REGISTRY} is missing: install Debian's docker-registry (scripts/test.sh does)")
    base.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = base / "config.yml"
    certificate = f"  tls:\n    certificate: {tls.cert}\n    key: {tls.key}\n" if tls else ""
    conf.write_text(REGISTRY_CONF.format(dir=base, port=port, tls=certificate))
    log = base / "registry.log"
    proc = subprocess.Popen([REGISTRY, "serve", str(conf)], stdout=open(log, "ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    wait_for_port(port, proc, log)
    scheme = "oci+https" if tls else "oci"
    return Server(f"{scheme}://127.0.0.1:{port}/{repository}", port, proc, base / "data", log)
