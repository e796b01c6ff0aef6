"""The child process of `daemon.EngineLoader`: the docker SDK, away from the building process's GIL.

It connects to the engine and lists its images as soon as it starts, answers one JSON line
(`{"ready": ""}` or `{"ready": "<why not>"}`), then, for each request line (`{"tarball", "tag",
"config_digest"}`), loads the tarball as `daemon.load` does and answers `{"loaded": true|false}`, or
`{"error", "hint"}` for an EngineError (the very message the build process shows), or `{"bug": traceback}`.
It ends when its input does.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Any

from minibuild.errors import EngineError
from minibuild.oci import daemon


def _send(answer: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()


def _serve(timeout: float) -> None:
    client, why = daemon.connect(timeout)
    known: dict[str, str] | EngineError = {}
    if client is not None:
        try:
            known = daemon.image_ids(client)
        except EngineError as exc:  # said at the first load, as the build process said it before
            known = exc
    _send({"ready": why})
    for line in sys.stdin:
        request = json.loads(line)
        try:
            if isinstance(known, EngineError):
                raise known
            loaded = daemon.load(client, request["tarball"], request["tag"], request["config_digest"], known)
            if loaded:
                known[request["tag"]] = request["config_digest"]
            _send({"loaded": loaded})
        except EngineError as exc:
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
