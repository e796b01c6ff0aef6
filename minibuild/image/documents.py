"""The JSON documents the image actions hand each other (closure.json, layers.json), read and written one way."""

from __future__ import annotations

import json
import posixpath
from typing import Any


def write_json(path: str, value: Any) -> None:
    """Sorted keys, no spaces: the same bytes for the same document, so downstream keys cut off early."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, sort_keys=True, separators=(",", ":"))


def read_json(path: str) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def image_files(layers_json: dict[str, Any]) -> list[dict[str, Any]]:
    """Every entry of an image (top layer wins), sorted by path: what the report lists."""
    seen: dict[str, dict[str, Any]] = {}
    for layer in layers_json["layers"]:
        for f in layer["files"]:
            seen[f["path"]] = f
    return [seen[k] for k in sorted(seen, key=lambda p: posixpath.normpath(p))]
