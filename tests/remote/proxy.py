"""A faulty HTTP proxy on 127.0.0.1 in front of a real cache server: it answers 500, flips a byte of every blob
it passes on, or cuts blobs short, as a broken server or network would. The bytes an action-cache entry
carries inline are damaged the same way (the entry itself stays a well-formed ActionResult)."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from buildgrid.common.protos.build.bazel.remote.execution.v2 import remote_execution_pb2 as re_pb2

MODES = ("pass", "500", "flip", "truncate")


def damage_inline(entry: bytes, mode: str) -> tuple[bytes, int]:
    """An ActionResult with a byte of each inline file flipped (`flip`) or each cut to half (`truncate`), and
    how many it damaged."""
    result = re_pb2.ActionResult()
    result.ParseFromString(entry)
    damaged = 0
    for f in result.output_files:
        if f.contents:
            damaged += 1
            c = f.contents
            f.contents = bytes([c[0] ^ 0x01]) + c[1:] if mode == "flip" else c[: len(c) // 2]
    return result.SerializeToString(), damaged


class FaultyProxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: str, mode: str) -> None:
        assert mode in MODES
        super().__init__(("127.0.0.1", 0), _Handler)
        parts = urlsplit(upstream)
        self.upstream_host, self.upstream_port = parts.hostname or "127.0.0.1", parts.port or 80
        self.mode = mode
        self.faults = 0
        self.url = f"http://127.0.0.1:{self.server_address[1]}{parts.path}"


class _Handler(BaseHTTPRequestHandler):
    server: FaultyProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        blob_read = self.command == "GET" and "/cas/" in self.path
        if self.server.mode == "500":
            self.server.faults += 1
            self._answer(500, b"injected failure\n", head=self.command == "HEAD")
            return
        conn = http.client.HTTPConnection(self.server.upstream_host, self.server.upstream_port, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        conn.request(self.command, self.path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        if self.command == "GET" and "/ac/" in self.path and response.status == 200 \
                and self.server.mode in ("flip", "truncate"):
            data, damaged = damage_inline(data, self.server.mode)
            self.server.faults += damaged
        if blob_read and response.status == 200 and data and self.server.mode == "flip":
            self.server.faults += 1
            data = bytes([data[0] ^ 0x01]) + data[1:]
        if blob_read and response.status == 200 and len(data) > 1 and self.server.mode == "truncate":
            self.server.faults += 1
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self._answer(response.status, data, head=self.command == "HEAD",
                     length=response.getheader("Content-Length"))

    def _answer(self, status: int, data: bytes, head: bool = False, length: str | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Length", length if head and length else str(len(data)))
        self.end_headers()
        if not head:
            self.wfile.write(data)

    do_GET = do_PUT = do_HEAD = _forward


@contextmanager
def faulty_proxy(upstream: str, mode: str) -> Iterator[FaultyProxy]:
    proxy = FaultyProxy(upstream, mode)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()
