"""Attribute types and checks shared by the built-in rules."""

from __future__ import annotations

import posixpath
import re
from decimal import Decimal
from typing import Annotated

from pydantic import BeforeValidator

from minibuild.errors import InputError


def _parse_mode(value: object) -> object:
    if isinstance(value, str):
        if not re.fullmatch(r"0?[0-7]{3,4}", value):
            raise ValueError("a mode is an octal string such as \"0644\" or \"0755\"")
        return int(value, 8)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0o7777:
        return value
    raise ValueError("a mode is an octal string such as \"0644\" or \"0755\"")


# File permission bits, written "0644" in TOML (an int like 0o644 is accepted too).
Mode = Annotated[int, BeforeValidator(_parse_mode)]

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
          "kib": 1024, "mib": 1024**2, "gib": 1024**3}


_MAX_SIZE = 1 << 60


def _parse_size(value: object) -> object:
    size = None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        size = value
    elif isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", value)
        if match and match.group(2).lower() in _UNITS:
            # Decimal, not float: exact for "4.5 MB", and no overflow for absurd digits.
            size = int(Decimal(match.group(1)) * _UNITS[match.group(2).lower()])
    if size is not None and size >= _MAX_SIZE:
        raise ValueError("a size beyond 1 EiB is more than any image can be")
    if size is not None:
        return size
    raise ValueError('a size is a number of bytes or a string such as "4MiB", "500KiB", "3MB"')


# A size in bytes, written 4194304, "4MiB" or "4.5 MB" in TOML.
Size = Annotated[int, BeforeValidator(_parse_size)]


def image_path(path: str, what: str) -> str:
    """Check an absolute path inside the image; `..` or a relative path would escape or be ambiguous."""
    if not path.startswith("/"):
        raise ValueError(f"{what} `{path}` must be an absolute path in the image")
    if any(part == ".." for part in path.split("/")):
        raise ValueError(f"{what} `{path}` escapes the image root with `..`")
    norm = posixpath.normpath(path)
    return "/" + norm.lstrip("/") if norm != "/" else "/"


def check_tag(tag: str) -> str:
    """A Docker reference `name[:tag]`: lowercase path components, an optional tag."""
    name, _, version = tag.rpartition(":") if ":" in tag.rsplit("/", 1)[-1] else (tag, "", "latest")
    component = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
    host = r"(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?"
    if not re.fullmatch(host + component + r"(?:/" + component + r")*", name) or not re.fullmatch(
        r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", version
    ):
        raise InputError(f"`{tag}` is not a valid image reference",
                         hint="use lowercase `name/path:tag`, e.g. `images/bash:latest`")
    return f"{name}:{version}"
