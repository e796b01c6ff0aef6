"""The Docker engine, through the docker SDK (imported lazily: most commands never need it).

Honours DOCKER_HOST like the docker CLI. Every failure becomes an EngineError with what to do.
`EngineLoader` runs the SDK in a process of its own (`engine_worker.py`), started before a build that loads.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from types import TracebackType
from typing import IO, Any

from minibuild.errors import EngineError


def connect(timeout: float = 5.0) -> tuple[Any | None, str]:
    """A client for the engine and "" when one answers; otherwise None and the reason."""
    try:
        import docker
        from docker.errors import DockerException
    except ImportError as exc:  # pragma: no cover - a dependency of minibuild
        return None, f"the docker SDK is not importable: {exc}"
    try:
        client = docker.from_env(timeout=int(timeout))
        client.ping()
        return client, ""
    except DockerException as exc:
        where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        return None, f"no Docker engine at `{where}` ({_short(exc)})"
    except Exception as exc:  # noqa: BLE001 - requests/urllib3 errors vary by version
        return None, f"no Docker engine ({_short(exc)})"


def connect_in_background(timeout: float = 5.0) -> Callable[[], tuple[Any | None, str]]:
    """Start connecting (importing the SDK takes ~0.2 s) while the caller builds; call the result to wait."""
    box: list[tuple[Any | None, str]] = []
    thread = threading.Thread(target=lambda: box.append(connect(timeout)), name="docker-connect", daemon=True)
    thread.start()

    def wait() -> tuple[Any | None, str]:
        thread.join()
        return box[0] if box else (None, "connecting to the Docker engine failed")

    return wait


# What the errors of requests/urllib3 (their text, which varies by version) mean, in words.
_MEANINGS = (
    ("FileNotFoundError", "no such socket"),
    ("ConnectionRefused", "connection refused"),
    ("Permission denied", "permission denied"),
    ("timed out", "timed out"),
    ("ConnectionResetError", "the engine dropped the connection (connection reset)"),
    ("Connection reset", "the engine dropped the connection (connection reset)"),
    ("RemoteDisconnected", "the engine closed the connection without answering"),
    ("BrokenPipe", "the engine stopped reading (broken pipe)"),
    ("IncompleteRead", "the engine's answer was cut short"),
    ("InvalidChunkLength", "the engine's answer was cut short"),
)
_LOST = ("connection reset", "closed the connection", "broken pipe", "cut short")


def _short(exc: BaseException) -> str:
    text = str(exc)
    for needle, meaning in _MEANINGS:
        if needle in text or needle in type(exc).__name__:
            return meaning
    lines = text.strip().splitlines()
    return lines[0][:120] if lines else type(exc).__name__


def image_ids(client: Any) -> dict[str, str]:
    """Tag -> image id for every tagged image in the engine (one API call)."""
    try:
        ids = {}
        for img in client.api.images():
            for tag in img.get("RepoTags") or []:
                ids[tag] = img["Id"]
        return ids
    except Exception as exc:  # noqa: BLE001
        raise EngineError(f"listing the Docker engine's images failed: {_short(exc)}") from None


# Seconds a load may wait on the engine. It reads the tarball only as fast as it unpacks the layers and answers
# once they are registered, so the 5 s that suit a ping failed a new 98 MB image (examples/servers' postgres);
# the docker CLI waits as long as it takes. But an engine that takes none of the tarball for LOAD_STALL seconds
# is hung (stopped, frozen): waiting 600 s on each write of a send that cannot end left `minibuild load`
# hanging for ten minutes (tests/reliability/test_engine_faults.py). requests' (connect, read) pair does it:
# the connect timeout stays on the socket while the body is sent (the SDK opens a connection for each call).
LOAD_TIMEOUT = 600
LOAD_STALL = 60


def load(client: Any, tarball: str, tag: str, config_digest: str, known: dict[str, str] | None = None) -> bool:
    """Load an image tarball unless the engine already has `tag` at this config; True if it loaded."""
    if known is not None and known.get(tag) == config_digest:
        return False
    saved = client.api.timeout
    client.api.timeout = (max(saved or 0, LOAD_STALL), max(saved or 0, LOAD_TIMEOUT))
    try:
        with open(tarball, "rb") as f:
            for chunk in client.api.load_image(f):
                if isinstance(chunk, dict) and chunk.get("error"):
                    raise EngineError(f"the Docker engine refused `{tag}`: {chunk['error']}")
    except EngineError:
        raise
    except Exception as exc:  # noqa: BLE001
        reason = _short(exc)
        if any(lost in reason for lost in _LOST):
            reason += " while the image was being sent: did the engine stop or restart?"
        elif reason == "timed out":
            reason = "the engine stopped answering (timed out): is it hung or overloaded?"
        shown = os.path.relpath(tarball) if not os.path.relpath(tarball).startswith("..") else tarball
        raise EngineError(f"loading `{tag}` into the Docker engine failed: {reason}",
                          hint=f"the image is intact in `{shown}`; once `docker info` answers, load it again "
                               "(`minibuild load`, or `docker load -i` that file), or build with `--no-load`") from None
    finally:
        client.api.timeout = saved
    return True


def restore(client: Any, before: dict[str, str], tags: list[str]) -> list[str]:
    """Point each of `tags` back at its image in `before` (tag -> id), or untag it (the engine removes an image
    left without a tag and unused); what failed, one line per tag."""
    problems = []
    for tag in tags:
        try:
            if tag in before:
                repo, _, name = tag.rpartition(":") if ":" in tag.rsplit("/", 1)[-1] else (tag, "", "latest")
                client.api.tag(before[tag], repo, name, force=True)
            else:
                client.api.remove_image(tag)
        except Exception as exc:  # noqa: BLE001
            problems.append(f"`{tag}` stays loaded: {_short(exc)}")
    return problems


# The child runs this very minibuild (a source checkout's too): its folder first on sys.path, in place of the
# working directory `-c` puts there (a workspace's files are no modules), while the worker's modules are imported;
# then gone again, so nothing else the child imports is looked up there.
_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_WORKER = ("import sys; sys.path[0] = sys.argv.pop(1); from minibuild.oci import engine_worker; "
           "del sys.path[0]; engine_worker.main()")


class EngineLoader:
    """Loads image tarballs through the docker SDK in a child process, started before the build.

    Importing the SDK (requests, urllib3) and asking the engine for its images takes ~0.15 s. Done in a thread of
    the building process it held the GIL the build needed: a cold build of the bash image took ~0.25 s longer
    with that thread than with none (docs/architecture.md, performance notes). The child does the same work on
    another core meanwhile; the build then hands it each tarball's path and waits for the engine's answer.
    The tarball the engine gets is the build's `image.tar`, byte for byte, as before.
    """

    def __init__(self, timeout: float = 5.0) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER, _PACKAGE_PARENT, str(timeout)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._why: str | None = None
        self._sending = threading.Lock()
        self._sent: list[str] = []  # tags sent, in order, whose answers are not read yet
        self._sent_any = False  # an undo has something to do

    def __enter__(self) -> EngineLoader:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def ready(self) -> str:
        """"" once the engine answered; otherwise why there is no engine to load into (waits for the child)."""
        if self._why is None:
            self._why = str(self._answer("connecting to the Docker engine")["ready"])
        return self._why

    def send(self, tarball: str, tag: str, config_digest: str) -> None:
        """Hand the child `tarball` to load as `tag` (unless the engine has it at this config) and go on: the child
        loads the tarballs it is sent one after another while the caller builds; `answers()` collects the outcome.
        Safe from several threads (a build's finishing threads send each image as soon as it is finished)."""
        request = {"tarball": os.path.abspath(tarball), "tag": tag, "config_digest": config_digest}
        stdin = self._proc.stdin
        assert stdin is not None  # a pipe (__init__)
        with self._sending:
            self._sent.append(tag)
            self._sent_any = True
            try:
                stdin.write(json.dumps(request).encode("utf-8") + b"\n")
                stdin.flush()
            except BrokenPipeError:
                pass  # the child is gone: answers() says how

    def sent(self) -> set[str]:
        """The tags sent and not yet answered."""
        with self._sending:
            return set(self._sent)

    def answers(self) -> dict[str, bool]:
        """Waits for the loads sent so far; tag -> True if it loaded, False if the engine had it already.

        The first load that failed raises its EngineError, once every answer is in. After a failure the child loads
        none of the later tarballs (an engine that stopped would fail each after its own timeout): the images
        loaded before it stay loaded, as when they were loaded one by one after the build.
        """
        with self._sending:
            tags, self._sent = self._sent, []
        if self.ready():
            raise EngineError(f"cannot load `{tags[0] if tags else 'images'}`: {self._why}")
        loaded: dict[str, bool] = {}
        failed: EngineError | None = None
        for tag in tags:
            answer = self._answer(f"loading `{tag}`")
            if "error" in answer:
                failed = failed or EngineError(answer["error"], hint=answer.get("hint"))
            else:
                loaded[tag] = bool(answer["loaded"])
        if failed is not None:
            raise failed
        return loaded

    def load(self, tarball: str, tag: str, config_digest: str) -> bool:
        """As `load()`: load `tarball` unless the engine has `tag` at this config already; True if it loaded."""
        self.send(tarball, tag, config_digest)
        return self.answers()[tag]

    def undo(self) -> list[str]:
        """Gives every tag this loader loaded back its image from before (or removes it): a build that failed
        leaves the engine as it found it. What could not be undone, one line per tag."""
        if not self._sent_any:
            return []
        with contextlib.suppress(EngineError):
            self.answers()  # the loads still under way end first
        if self.ready():
            return []
        stdin = self._proc.stdin
        assert stdin is not None  # a pipe (__init__)
        try:
            stdin.write(b'{"undo": true}\n')
            stdin.flush()
        except BrokenPipeError:
            pass  # the child is gone: _answer says how
        return [str(p) for p in self._answer("undoing the loads")["undo"]]

    def _answer(self, doing: str) -> dict[str, Any]:
        stdout = self._proc.stdout
        assert stdout is not None  # a pipe (__init__)
        line = stdout.readline()
        if not line:
            code = self._proc.wait()
            raise RuntimeError(f"the process talking to the Docker engine exited (code {code}) while {doing}:\n"
                               + _tail(self._proc.stderr))
        answer: dict[str, Any] = json.loads(line)
        if "bug" in answer:
            raise RuntimeError(f"the process talking to the Docker engine failed while {doing}:\n{answer['bug']}")
        return answer

    def close(self) -> None:
        """The child ends when its input does; one still busy (an interrupted load) is stopped."""
        if self._proc.stdin is not None:
            try:
                self._proc.stdin.close()
            except BrokenPipeError:
                pass
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        for pipe in (self._proc.stdout, self._proc.stderr):
            if pipe is not None:
                pipe.close()


def _tail(stream: IO[bytes] | None) -> str:
    text = stream.read().decode("utf-8", "replace") if stream is not None else ""
    return "\n".join(text.strip().splitlines()[-20:])
