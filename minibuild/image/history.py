"""`.minibuild/history/<pkg>/<name>/`: the summaries of an image as built over time.

Each distinct image digest is kept once as `<hex>.json` (the summary.json of that build); `index.json`
lists the digests in the order they were first seen, so "the previous build" is the last digest before
the current one. Every build of an image records its summary here (minibuild/image/summary.py).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from minibuild.errors import InputError
from minibuild.label import Label


def history_dir(state_dir: str, label: Label) -> str:
    return os.path.join(state_dir, "history", label.out_dir)


def _index(directory: str) -> list[dict[str, Any]]:
    try:
        with open(os.path.join(directory, "index.json"), encoding="utf-8") as f:
            entries = json.load(f)
    except (OSError, ValueError):
        return []
    return [e for e in entries if isinstance(e, dict) and isinstance(e.get("digest"), str)] \
        if isinstance(entries, list) else []


def _write(path: str, value: Any) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(value, f, sort_keys=True)
    os.replace(tmp, path)


def record(state_dir: str, label: Label, summary: dict[str, Any]) -> None:
    """Keep `summary` (once per digest) and append its digest to the index when it is new."""
    directory = history_dir(state_dir, label)
    os.makedirs(directory, exist_ok=True)
    digest = summary["digest"]
    path = os.path.join(directory, digest.split(":")[-1] + ".json")
    if not os.path.exists(path):
        _write(path, summary)
    entries = _index(directory)
    if not entries or entries[-1]["digest"] != digest:
        entries.append({"digest": digest, "recorded": int(time.time())})
        _write(os.path.join(directory, "index.json"), entries)


def previous(state_dir: str, label: Label, digest: str) -> dict[str, Any] | None:
    """The summary of the build recorded last before the one with `digest`, or None."""
    entries = [e["digest"] for e in _index(history_dir(state_dir, label))]
    if digest in entries:  # up to its last appearance: a build may return to an earlier digest
        entries = entries[:len(entries) - entries[::-1].index(digest)]
    earlier = [d for d in entries if d != digest]
    return load(state_dir, label, earlier[-1]) if earlier else None


def load(state_dir: str, label: Label, digest: str) -> dict[str, Any]:
    """The recorded summary whose digest is `digest` or starts with it (`sha256:` optional)."""
    directory = history_dir(state_dir, label)
    want = digest.split(":")[-1]
    known = [e["digest"] for e in _index(directory)]
    matches = sorted({d for d in known if d.split(":")[-1].startswith(want)})
    if len(matches) != 1:
        listed = ", ".join(f"`{d[:19]}`" for d in reversed(known[-5:])) or "none"
        raise InputError(
            f"{'no' if not matches else 'more than one'} recorded build of `{label}` has digest `{digest}`",
            hint=f"recorded builds, newest first: {listed}",
        )
    with open(os.path.join(directory, matches[0].split(":")[-1] + ".json"), encoding="utf-8") as f:
        summary: dict[str, Any] = json.load(f)
    return summary
