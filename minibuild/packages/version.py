"""Debian version numbers and their ordering, as dpkg compares them (deb-version(7)).

`[epoch:]upstream_version[-debian_revision]`: epochs compare as numbers; the other two parts alternate
non-digit runs (compared character by character, letters before non-letters, `~` before everything, even
the end of the string) and digit runs (compared as numbers).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

_VALID = re.compile(r"^(?:(\d+):)?([0-9][A-Za-z0-9.+~:-]*?)(?:-([A-Za-z0-9.+~]+))?$")


@dataclass(frozen=True)
class Version:
    epoch: int
    upstream: str
    revision: str

    @staticmethod
    def parse(text: str) -> Version:
        """Parse a version; ValueError if dpkg would not accept it."""
        text = text.strip()
        epoch = 0
        if ":" in text:
            head, _, rest = text.partition(":")
            if not head.isdigit():
                raise ValueError(f"version `{text}`: the epoch must be a number")
            epoch, text = int(head), rest
        upstream, sep, revision = text.rpartition("-")
        if not sep:
            upstream, revision = text, ""
        if not upstream or not upstream[0].isdigit() or not re.fullmatch(r"[A-Za-z0-9.+~:-]+", upstream) \
                or (sep and not re.fullmatch(r"[A-Za-z0-9.+~]+", revision)):
            raise ValueError(f"version `{text}` is not a Debian version")
        return Version(epoch, upstream, revision)

    def __str__(self) -> str:
        epoch = f"{self.epoch}:" if self.epoch else ""
        return f"{epoch}{self.upstream}" + (f"-{self.revision}" if self.revision else "")


def _order(ch: str) -> int:
    """dpkg's order of a non-digit character: `~` first, then the end of a part, letters, other characters."""
    if ch == "~":
        return -1
    if ch.isalpha():
        return ord(ch)
    return ord(ch) + 256


def _compare_part(a: str, b: str) -> int:
    """dpkg's verrevcmp of one upstream version or revision."""
    i = j = 0
    while i < len(a) or j < len(b):
        first_diff = 0
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _order(a[i]) if i < len(a) and not a[i].isdigit() else 0
            bc = _order(b[j]) if j < len(b) and not b[j].isdigit() else 0
            if ac != bc:
                return -1 if ac < bc else 1
            i += 1
            j += 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        while i < len(a) and a[i].isdigit() and j < len(b) and b[j].isdigit():
            if not first_diff:
                first_diff = ord(a[i]) - ord(b[j])
            i += 1
            j += 1
        if i < len(a) and a[i].isdigit():
            return 1
        if j < len(b) and b[j].isdigit():
            return -1
        if first_diff:
            return -1 if first_diff < 0 else 1
    return 0


@functools.lru_cache(maxsize=65536)
def compare(a: str, b: str) -> int:
    """-1, 0 or 1 as version `a` sorts before, equal to or after `b` (dpkg --compare-versions)."""
    va, vb = Version.parse(a), Version.parse(b)
    if va.epoch != vb.epoch:
        return -1 if va.epoch < vb.epoch else 1
    return _compare_part(va.upstream, vb.upstream) or _compare_part(va.revision, vb.revision)


def satisfies(version: str, op: str, wanted: str) -> bool:
    """Whether `version` meets the constraint `op wanted` (`<<`, `<=`, `=`, `>=`, `>>`)."""
    c = compare(version, wanted)
    return {"<<": c < 0, "<=": c <= 0, "=": c == 0, ">=": c >= 0, ">>": c > 0}[op]
