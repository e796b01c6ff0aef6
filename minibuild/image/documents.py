"""The JSON documents the image actions hand each other (closure.json, layers.json), read and written one way."""

from __future__ import annotations

import json
from typing import Any


def write_json(path: str, value: Any) -> None:
    """Sorted keys, no spaces: the same bytes for the same document, so downstream keys cut off early."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, sort_keys=True, separators=(",", ":"))


def read_json(path: str) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)
