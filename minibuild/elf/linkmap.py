"""The working records of one link map: the objects a process maps, and what one search tried.

`MappedObject` is mutable while the link map grows (names, DT_NEEDED targets); the resolver turns each
into a frozen `LoadedObject` (model.py) at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from minibuild.elf.parse import ElfInfo
from minibuild.elf.sysroot import Lookup


@dataclass(eq=False)
class MappedObject:
    """One object of a link map: the path it was opened by, who loaded it, the names it answers to."""

    path: str
    look: Lookup
    info: ElfInfo
    loader: MappedObject | None
    via: str
    names: list[str] = field(default_factory=list)
    needed: list[tuple[str, MappedObject | None]] = field(default_factory=list)
    found_in: str | None = None
    variant_of: MappedObject | None = None
    shortname: str | None = None  # musl: the name it can be found by (M3a)

    @property
    def realpath(self) -> str:
        assert self.look.realpath is not None
        return self.look.realpath

    @property
    def ident(self) -> tuple[int, int]:
        assert self.look.st is not None
        return (self.look.st.st_dev, self.look.st.st_ino)


@dataclass
class SearchLog:
    """What one bare-name search tried, for the error message."""

    steps: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
