"""Runtime files in the real Docker engine: TLS with a CA bundle, an interactive bash, the examples."""

from __future__ import annotations

import http.server
import os
import pty
import re
import select
import shutil
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest

from minibuild import elf
from tests.conftest import REPO
from tests.runtime.rootfs import copy_host_path, sysroot_workspace

pytestmark = pytest.mark.docker


# ------------------------------------------------------------------ TLS --

def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _certificates(d: Path) -> None:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=minibuild test CA", cwd=d)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
             "-subj", "/CN=127.0.0.1", cwd=d)
    (d / "ext.cnf").write_text("subjectAltName = IP:127.0.0.1, DNS:localhost\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf", cwd=d)


def _curl_sysroot(root: Path, ca: Path) -> None:
    """A sysroot holding curl's ELF closure, OpenSSL's default paths, and a CA bundle that includes the test CA.

    The bundle is the host's with the test CA appended: the image must carry it, at the path curl and
    OpenSSL read, for the TLS check to pass.
    """
    root.mkdir()
    for entry in elf.resolve(["/usr/bin/curl"], "/").entries:
        copy_host_path(root, entry.path)
    for path in ("/usr/lib/ssl/cert.pem", "/usr/lib/ssl/certs", "/usr/lib/ssl/openssl.cnf"):
        if os.path.islink(path):
            copy_host_path(root, path)
    bundle = root / "etc/ssl/certs/ca-certificates.crt"
    bundle.parent.mkdir(parents=True, exist_ok=True)
    bundle.unlink(missing_ok=True)
    bundle.write_bytes(Path("/etc/ssl/certs/ca-certificates.crt").read_bytes() + ca.read_bytes())


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the http.server protocol
        body = b"hello over tls\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def tls_server(tmp_path):
    certs = tmp_path / "certs"
    certs.mkdir()
    _certificates(certs)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs / "server.pem", certs / "server.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield certs, server.server_address[1]
    server.shutdown()
    server.server_close()


CURL_IMAGES = """
[[image]]
name = "curl"
binaries = ["/usr/bin/curl"]
tag = "minibuild-test/runtime-curl:latest"

[[image]]
name = "curl_nocerts"
binaries = ["/usr/bin/curl"]
ca_certificates = false
tag = "minibuild-test/runtime-curl-nocerts:latest"
"""


def test_curl_verifies_a_server_with_the_image_bundle(tmp_path, tls_server, cli, docker_engine):
    certs, port = tls_server
    root = tmp_path / "sysroot"
    _curl_sysroot(root, certs / "ca.pem")
    ws = sysroot_workspace(tmp_path / "ws", root, CURL_IMAGES)
    r = cli("build", "//app:curl", "//app:curl_nocerts", "--json", cwd=ws)
    assert r.returncode == 0, r.stderr
    url = f"https://127.0.0.1:{port}/"
    run = [docker_engine, "run", "--rm", "--network", "host"]
    ok = subprocess.run([*run, "minibuild-test/runtime-curl:latest", "-sS", url], capture_output=True, text=True,
                        timeout=60)
    assert ok.returncode == 0 and ok.stdout == "hello over tls\n", ok.stderr
    # Without the bundle the same curl cannot verify the server: 77 (no CA file) or 60 (untrusted).
    bad = subprocess.run([*run, "minibuild-test/runtime-curl-nocerts:latest", "-sS", url], capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode in (60, 77), (bad.returncode, bad.stderr)


# ------------------------------------------------------------ a terminal --

BASH_IMAGES = """
[[image]]
name = "bash"
binaries = ["/bin/bash"]
entrypoint = ["/bin/bash"]
tag = "minibuild-test/runtime-bash:latest"

[[image]]
name = "bash_noterm"
binaries = ["/bin/bash"]
entrypoint = ["/bin/bash"]
terminfo = false
tag = "minibuild-test/runtime-bash-noterm:latest"
"""


class _Terminal:
    """`docker run -ti` on a pseudo-terminal, driven like a person at a keyboard."""

    def __init__(self, argv: list[str]) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, close_fds=True)
        os.close(slave)
        self.output = b""

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def expect(self, pattern: bytes, count: int = 1, timeout: float = 30) -> bytes:
        """Wait until the output matches `pattern` (a regular expression) `count` times."""
        deadline = time.monotonic() + timeout
        needle = re.compile(pattern)
        while len(needle.findall(self.output)) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{needle!r} x{count} not seen; output so far: {self.output!r}")
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"terminal closed before {needle!r}; output: {self.output!r}")
                self.output += chunk
        return self.output

    def close(self) -> int:
        try:
            self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            os.close(self.master)
        return self.proc.returncode


def _bash(docker: str, image: str) -> _Terminal:
    return _Terminal([docker, "run", "--rm", "-ti", "-e", "TERM=xterm", "-e", r"PS1=\u@img\$ ", image])


def test_bash_prompt_and_line_editing_in_a_terminal(workspace, cli, docker_engine):
    workspace.write("app/BUILD.toml", BASH_IMAGES)
    r = cli("build", "//app:bash", "//app:bash_noterm", cwd=workspace.root)
    assert r.returncode == 0, r.stderr
    term = _bash(docker_engine, "minibuild-test/runtime-bash:latest")
    try:
        term.expect(rb"root@img# ")  # the user name comes from /etc/passwd
        term.send(b"echo $((6*7))\r")
        # An output line is 42 alone (the echoed command line is not); bash may switch bracketed paste off first.
        term.expect(rb"[\r\n]42\r\n")
        term.send(b"\x1b[A\r")  # up-arrow recalls the line from history, Enter runs it again
        term.expect(rb"[\r\n]42\r\n", count=2)
        term.send(b"echo abX\x7fc\r")  # backspace edits the line
        term.expect(rb"[\r\n]abc\r\n")
        term.send(b"\x0c")  # Ctrl-L: readline clears the screen with xterm's `clear` capability from terminfo
        term.expect(rb"\x1b\[H\x1b\[2Jroot@img# ")
        term.send(b"exit 5\r")
    finally:
        code = term.close()
    assert code == 5, term.output
    # Without the terminfo entry readline knows no `clear` for xterm: it starts a new line instead.
    plain = _bash(docker_engine, "minibuild-test/runtime-bash-noterm:latest")
    try:
        plain.expect(rb"root@img# ")
        plain.send(b"\x0c")
        plain.expect(rb"root@img# ", count=2)
        plain.send(b"exit\r")
    finally:
        plain.close()
    assert b"\x1b[2J" not in plain.output


# ------------------------------------------------------------- examples --

def test_examples_runtime_programs_pass(tmp_path, cli, docker_engine):
    ws = tmp_path / "programs"
    shutil.copytree(REPO / "examples/runtime/programs", ws, ignore=shutil.ignore_patterns(".minibuild"))
    r = cli("test", "//...", "--json", cwd=ws)
    assert r.returncode == 0, r.stderr + r.stdout
    out = r.json()
    assert {t["label"] for t in out["tests"]} == {
        "//images:python_test", "//images:curl_test", "//images:hello_test", "//images:plugins_test",
        "//images:plugins_nocache_test", "//charsets:iconv_test", "//charsets:iconv_nogconv_test",
        "//charsets:iconv_japanese_test", "//charsets:locale_test", "//charsets:locale_nolocales_test",
        "//probe:python_test"}
    assert out["failed"] == 0 and out["passed"] >= 20
