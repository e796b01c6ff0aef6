"""Sizes a user writes (`5GiB`, `500MB`, `1.5G`, bytes), for the cache's limit: a module of its own so that
the workspace's schema (workspace_config.py) can read one without importing the cache's garbage collector."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

# k, M, G, T are decimal (as `max_size` of an image, and ccache, read them); KiB or Ki binary.
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
          "t": 1000**4, "tb": 1000**4, "ki": 1024, "kib": 1024, "mi": 1024**2, "mib": 1024**2,
          "gi": 1024**3, "gib": 1024**3, "ti": 1024**4, "tib": 1024**4}
SIZE_EXAMPLES = "`5GiB`, `500MB`, `1.5G` or a number of bytes"


def parse_size(value: object) -> int:
    """Bytes from `"5GiB"`, `"500MB"`, `"1.5G"`, `"1200"` or an int; ValueError saying what a size is."""
    size = None
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    elif isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", value)
        if match and match.group(2).lower() in _UNITS:
            try:  # Decimal, not float: exact for "1.5G", and no overflow for absurd digits
                size = int(Decimal(match.group(1)) * _UNITS[match.group(2).lower()])
            except InvalidOperation:
                size = None
    if size is None:
        raise ValueError(f"a size is {SIZE_EXAMPLES}")
    if size < 1:
        raise ValueError("a limit of 0 bytes would empty the cache after every build "
                         "(`minibuild clean --cache` does that once)")
    if size >= 1 << 62:
        raise ValueError("a size beyond 4 EiB is more than any disk holds")
    return size
