"""Time limits on registry requests that a slow server cannot stretch, and progress lines while one waits.

requests' read timeout bounds each `recv`, so a server that sends one byte every few seconds holds a request
for ever, and nothing is shown meanwhile. Here each request is watched by a thread of its own that measures
the wall clock: the answer (status, headers and a body read whole) must come within the answer limit, counted
from the moment the request is sent; the whole operation (a push) must end by its Deadline. When either runs
out, the watcher shuts down the request's socket, which ends the blocked read in the requesting thread, and
the request counts as timed out. A streamed body restarts the answer limit at every chunk it delivers.

The sockets are found through the connection classes of urllib3's pools, which `watch_session` installs on a
requests session's adapters (on the adapter's instances only, never globally).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import requests
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

FIRST_NOTICE = 5.0  # seconds a request waits before a progress line says so
NOTICE_EVERY = 15.0  # then a line this often


@dataclass(frozen=True)
class Deadline:
    """The time a whole operation may take: `seconds` from `start` (time.monotonic())."""

    what: str  # names the operation in an error: "push to `127.0.0.1:5000`"
    seconds: float
    setting: str = "--timeout"  # what gives it more time, for the hint
    start: float = field(default_factory=time.monotonic)

    def left(self) -> float:
        return self.start + self.seconds - time.monotonic()


_current = threading.local()  # the Watch of the request this thread is making, if any


class Watch:
    """One request (with its token fetch, or a streamed read) under its limits, until `finish`."""

    def __init__(self, label: str, answer_limit: float, deadline: Deadline | None,
                 on_wait: Callable[[str], None] | None) -> None:
        self.label, self.answer_limit, self.deadline, self.on_wait = label, answer_limit, deadline, on_wait
        self.expired: str | None = None  # "answer" or "deadline", once the watcher shut the request down
        self.started = time.monotonic()
        self._sent: float | None = None  # when the request was sent: the answer limit runs from then
        self._connections: list[Any] = []
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="minibuild-registry-watch", daemon=True)
        self._thread.start()

    # -- called by the requesting thread

    def attach(self, connection: Any) -> None:
        with self._lock:
            if connection not in self._connections:
                self._connections.append(connection)

    def arm(self) -> None:
        """The request is out, or a chunk of a streamed body came: the answer limit runs from now."""
        with self._lock:
            self._sent = time.monotonic()

    def finish(self) -> None:
        with self._lock:
            self._done.set()

    # -- the watcher thread

    def _ends(self) -> tuple[float | None, float | None]:
        answer = self._sent + self.answer_limit if self._sent is not None else None
        deadline = self.deadline.start + self.deadline.seconds if self.deadline is not None else None
        return answer, deadline

    def _watch(self) -> None:
        notice = self.started + FIRST_NOTICE
        while True:
            with self._lock:
                answer, deadline = self._ends()
            now = time.monotonic()
            wake = min(t for t in (notice, answer, deadline) if t is not None)
            if self._done.wait(max(0.05, wake - now)):
                return
            now = time.monotonic()
            with self._lock:
                if self._done.is_set():
                    return
                answer, deadline = self._ends()
                if deadline is not None and now >= deadline:
                    self.expired = "deadline"
                elif answer is not None and now >= answer:
                    self.expired = "answer"
                if self.expired:
                    _shut_down(self._connections)
                    return
                waiting = self._sent is not None
            if now >= notice:
                if self.on_wait is not None:
                    what = "no answer yet to" if waiting else "still sending"
                    self.on_wait(f"  {what} {self.label} after {now - self.started:.0f} s")
                notice = now + NOTICE_EVERY


def _shut_down(connections: list[Any]) -> None:
    """End a blocked read or write of another thread: shut the socket down (the plain socket's call, which
    for a TLS socket acts on its file descriptor without touching the TLS state the reader holds)."""
    for connection in connections:
        sock = getattr(connection, "sock", None)
        if sock is not None:
            try:
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass


@contextmanager
def watching(label: str, answer_limit: float, deadline: Deadline | None,
             on_wait: Callable[[str], None] | None) -> Iterator[Watch]:
    """Watch what this thread asks over HTTP inside the block; a block inside another shares its Watch."""
    outer = getattr(_current, "watch", None)
    if outer is not None:
        yield outer
        return
    watch = Watch(label, answer_limit, deadline, on_wait)
    _current.watch = watch
    try:
        yield watch
    finally:
        _current.watch = None
        watch.finish()


def current() -> Watch | None:
    return getattr(_current, "watch", None)


class _Watched:
    """Connection methods that tell the thread's Watch which socket to shut down, and when the request is out."""

    def request(self, *args: Any, **kwargs: Any) -> Any:
        watch = current()
        if watch is not None:
            watch.attach(self)
        return super().request(*args, **kwargs)  # type: ignore[misc]

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        watch = current()
        if watch is not None:
            watch.attach(self)
            watch.arm()
        return super().getresponse(*args, **kwargs)  # type: ignore[misc]


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_POOLS: dict[str, type[HTTPConnectionPool]] = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


def watch_session(session: requests.Session) -> None:
    """Have the pools of the session's adapters (also ones mounted since the last call) make watched
    connections. Pools created before this call keep their plain connections, so it runs before each request."""
    for adapter in list(session.adapters.values()):  # list(): other threads may mount or add meanwhile
        managers = [getattr(adapter, "poolmanager", None), *list(getattr(adapter, "proxy_manager", {}).values())]
        for manager in managers:
            if manager is not None and manager.pool_classes_by_scheme is not _POOLS:
                manager.pool_classes_by_scheme = _POOLS
