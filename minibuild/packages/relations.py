"""Relationship fields of binary packages (`Depends`, `Pre-Depends`, `Provides`), deb-control(5):

    Depends: libc6 (>= 2.34), perl:any, default-mta | mail-transport-agent

A field is a comma-separated list of groups; a group is alternatives separated by `|`; each names a package,
optionally qualified by an architecture (`:any`, `:native`, `:amd64`) and constrained by a version. Architecture
restrictions (`[amd64]`) and build profiles (`<!nocheck>`) belong to source packages; they are accepted and
applied here so that any field parses.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from minibuild.packages.version import satisfies

_RELATION = re.compile(
    r"^(?P<name>[a-z0-9][a-z0-9+.-]*)(?::(?P<arch>[a-z0-9-]+))?"
    r"(?:\s*\(\s*(?P<op><<|<=|>=|>>|=|<|>)\s*(?P<version>[^)\s]+)\s*\))?"
    r"(?:\s*\[(?P<archs>[^\]]*)\])?(?:\s*<[^>]*>)*$"
)
# `<` and `>` are the obsolete spellings of `<=` and `>=` (deb-control(5)).
_OPS = {"<": "<=", ">": ">="}


@dataclass(frozen=True)
class Relation:
    """One package named in a relationship field: `name[:arch] [(op version)]`."""

    name: str
    arch: str | None = None  # the qualifier: "any", "native", an architecture, or None
    op: str | None = None
    version: str | None = None

    def allows(self, version: str) -> bool:
        """Whether `version` meets this relation's version constraint (if any)."""
        return self.op is None or self.version is None or satisfies(version, self.op, self.version)

    def __str__(self) -> str:
        text = self.name + (f":{self.arch}" if self.arch else "")
        return text + (f" ({self.op} {self.version})" if self.op else "")


Group = tuple[Relation, ...]


@functools.lru_cache(maxsize=16384)
def parse(text: str, arch: str | None = None) -> tuple[Group, ...]:
    """The groups of a relationship field. ValueError names the part that does not parse. With `arch`,
    alternatives restricted to other architectures (`[!amd64]`) are dropped, and so is a group left empty."""
    groups = []
    for part in text.split(","):
        part = " ".join(part.split())
        if not part:
            continue
        alternatives = []
        for alt in part.split("|"):
            alt = alt.strip()
            match = _RELATION.match(alt)
            if match is None:
                raise ValueError(f"cannot read `{alt}` in `{text}`")
            if arch and match.group("archs") and not _arch_applies(match.group("archs").split(), arch):
                continue
            op = match.group("op")
            alternatives.append(Relation(match.group("name"), match.group("arch"), _OPS.get(op, op) if op else None,
                                         match.group("version")))
        if alternatives:
            groups.append(tuple(alternatives))
    return tuple(groups)


def _arch_applies(restrictions: list[str], arch: str) -> bool:
    negated = [r[1:] for r in restrictions if r.startswith("!")]
    if negated:
        return arch not in negated
    return arch in restrictions or "any" in restrictions


def format_group(group: Group) -> str:
    return " | ".join(str(r) for r in group)
