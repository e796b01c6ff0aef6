"""The child process of `daemon.EngineLoader`: the docker SDK, away from the building process's GIL.

It connects to the engine and lists its images as soon as it starts, answers one JSON line
(`{"ready": ""}` or `{"ready": "<why not>"}`), then, for each request line (`{"tarball", "tag",
"config_digest"}`), loads the tarball as `daemon.load` does and answers `{"loaded": true|false}`, or
`{"error", "hint"}` for an EngineError (the very message the build process shows), or `{"bug": traceback}`.
After a failed load it loads nothing more (each later request gets that same error). `{"undo": true}` gives
the tags it loaded back their images from before it started, answering `{"undo": [what could not be undone]}`.
Requests arrive while the build goes on; they are served in turn. It ends when its input does.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import traceback
from collections.abc import Iterator
from typing import Any

from minibuild.errors import EngineError
from minibuild.oci import daemon


def _send(answer: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()


def _requests() -> Iterator[str]:
    """Input lines, read by a thread of their own: the build process hands over requests from its finishing
    threads and reads the answers only at the end, so a child that stopped reading while it waits to write an
    answer could block both (a catalog of thousands of images fills the pipes)."""
    lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()

    def read() -> None:
        for line in sys.stdin:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, name="requests", daemon=True).start()
    while (line := lines.get()) is not None:
        yield line


def _serve(timeout: float) -> None:
    client, why = daemon.connect(timeout)
    known: dict[str, str] | EngineError = {}
    if client is not None:
        try:
            known = daemon.image_ids(client)
        except EngineError as exc:  # said at the first load, as the build process said it before
            known = exc
    before = dict(known) if isinstance(known, dict) else {}
    loaded: list[str] = []  # tags this process loaded, for an undo
    failed = EngineError(f"cannot load images: {why}") if client is None else None
    _send({"ready": why})
    for line in _requests():
        request = json.loads(line)
        if "undo" in request:
            _send({"undo": daemon.restore(client, before, loaded) if client is not None else []})
            loaded = []
            continue
        try:
            if failed is not None:  # after a failure, nothing more is loaded: the build process reports the first
                raise failed
            if isinstance(known, EngineError):
                raise known
            if daemon.load(client, request["tarball"], request["tag"], request["config_digest"], known):
                known[request["tag"]] = request["config_digest"]
                loaded.append(request["tag"])
                _send({"loaded": True})
            else:
                _send({"loaded": False})
        except EngineError as exc:
            failed = exc
            _send({"error": exc.message, "hint": exc.hint})


def main() -> None:
    try:
        _serve(float(sys.argv[1]) if len(sys.argv) > 1 else 5.0)
    except KeyboardInterrupt:  # Ctrl-C reached the whole process group: the build process says so
        os._exit(130)
    except BrokenPipeError:  # the build process is gone
        os._exit(1)
    except Exception:  # noqa: BLE001 - a bug: the build process shows it with the traceback (exit 3)
        _send({"bug": traceback.format_exc()})
    sys.stdout.flush()
    os._exit(0)  # nothing to clean up: skip the interpreter's teardown


if __name__ == "__main__":
    main()
