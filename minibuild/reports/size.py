"""What each image of a catalog costs, and what the catalog stores once (layers deduplicated by digest)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from minibuild.reports.catalog import ImageRecord

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2, "mib": 1024**2,
          "g": 1000**3, "gb": 1000**3, "gib": 1024**3}


def parse_size(value: Any) -> int | None:
    """A byte count from an int or a string such as `"5 MiB"`, `"800kB"`, `"1200"`; None if unreadable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str):
        m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", value)
        if m and m.group(2).lower() in _UNITS:
            return int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    return None


def budget(summary: dict[str, Any]) -> dict[str, Any]:
    """The image's `max_size` (bytes, uncompressed) against its size: status `ok`, `over` or `-` (none set)."""
    limit = parse_size(summary.get("max_size"))
    if limit is None:
        return {"max_size": None, "status": "-"}
    return {"max_size": limit, "status": "ok" if summary["size"] <= limit else "over",
            "headroom": limit - summary["size"]}


def sizes(records: Sequence[ImageRecord]) -> dict[str, Any]:
    """`{"images": [...], "total": {...}}` as `minibuild size --json` prints it.

    shared_bytes: compressed bytes of the image's layers whose digest another image of the set also has.
    total.sum_bytes: the compressed sizes of the images added up (what pulling each one alone costs);
    total.unique_bytes: compressed bytes of the distinct layers (what a registry stores).
    """
    owners: Counter[str] = Counter()
    for r in records:
        owners.update({layer["digest"] for layer in r.summary["layers"]})
    images = []
    unique: dict[str, int] = {}
    for r in records:
        s = r.summary
        layers = s["layers"]
        for layer in layers:
            unique[layer["digest"]] = layer["size"]
        images.append({
            "label": r.label,
            "files": sum(1 for f in s["files"] if f["kind"] == "file"),
            "bytes": s["size"],
            "compressed_bytes": s["compressed_size"],
            "layers": len(layers),
            "shared_bytes": sum(layer["size"] for layer in layers if owners[layer["digest"]] > 1),
            "budget": budget(s),
        })
    total = {
        "images": len(images),
        "sum_bytes": sum(i["compressed_bytes"] for i in images),
        "unique_bytes": sum(unique.values()),
        "uncompressed_bytes": sum(i["bytes"] for i in images),
        "layers": len(unique),
    }
    return {"images": images, "total": total}
