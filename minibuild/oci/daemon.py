"""The Docker engine, through the docker SDK (imported lazily: most commands never need it).

Honours DOCKER_HOST like the docker CLI. Every failure becomes an EngineError with what to do.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

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
# the docker CLI waits as long as it takes.
LOAD_TIMEOUT = 600


def load(client: Any, tarball: str, tag: str, config_digest: str, known: dict[str, str] | None = None) -> bool:
    """Load an image tarball unless the engine already has `tag` at this config; True if it loaded."""
    if known is not None and known.get(tag) == config_digest:
        return False
    saved = client.api.timeout
    client.api.timeout = max(saved or 0, LOAD_TIMEOUT)
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
