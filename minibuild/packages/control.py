"""Debian control data (deb822): the paragraphs of `Packages` and `Release` files.

A paragraph is fields `Name: value`; a line starting with a space or tab continues the field before it;
paragraphs are separated by blank lines. Field names are case-insensitive (Debian policy 5.1): they are kept
as written and looked up through `field`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

# A field and its continuation lines; Packages files are large (60,000 paragraphs for bookworm main), so
# fields are found with one regular expression per paragraph rather than line by line.
_FIELD = re.compile(r"^([^\s:#][^\s:]*):[ \t]*(.*(?:\n[ \t].*)*)", re.M)
_BLANK = re.compile(r"\n[ \t]*\n")


def paragraphs(text: str) -> Iterator[dict[str, str]]:
    """Each paragraph of `text` as {field: value}; a multi-line value keeps its lines, stripped of the leading
    space (a lone `.` stands for an empty line, as in descriptions)."""
    for block in _BLANK.split(text.replace("\r\n", "\n")):
        if not block.strip():
            continue
        fields: dict[str, str] = {}
        for match in _FIELD.finditer(block):
            value = match.group(2)
            if "\n" in value:
                first, *rest = value.split("\n")
                value = "\n".join([first.rstrip(), *("" if r.strip() == "." else r.strip() for r in rest)])
            fields[match.group(1)] = value.rstrip()
        if fields:
            yield fields


def field(paragraph: dict[str, str], name: str) -> str | None:
    """A field by name, whatever the case it was written in."""
    value = paragraph.get(name)
    if value is not None:
        return value
    lower = name.lower()
    return next((v for k, v in paragraph.items() if k.lower() == lower), None)
