"""The binary packages of one architecture, as a `Packages` index lists them, and who provides what."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from minibuild.packages import control, relations
from minibuild.packages.version import compare

# apt's order of priorities, for picking among the providers of a virtual package.
PRIORITIES = ("required", "important", "standard", "optional", "extra")


@dataclass(frozen=True)
class Package:
    """One binary package of the index (relationship fields kept as written, parsed on use)."""

    name: str
    version: str
    architecture: str
    source: str
    filename: str
    size: int
    sha256: str
    multi_arch: str = "no"
    essential: bool = False
    priority: str = "optional"
    depends: str = ""
    pre_depends: str = ""
    provides: str = ""

    @staticmethod
    def from_paragraph(p: dict[str, str]) -> Package:
        """A package from its paragraph; KeyError or ValueError when a required field is missing or wrong."""
        source = (p.get("Source") or p["Package"]).split()[0]  # "glibc (2.36-9)": the version is the binary's
        return Package(
            name=p["Package"], version=p["Version"], architecture=p["Architecture"], source=source,
            filename=p["Filename"], size=int(p["Size"]), sha256=p["SHA256"].lower(),
            multi_arch=p.get("Multi-Arch", "no"), essential=p.get("Essential", "no") == "yes",
            priority=p.get("Priority", "optional"), depends=p.get("Depends", ""),
            pre_depends=p.get("Pre-Depends", ""), provides=p.get("Provides", ""),
        )

    def dependencies(self) -> tuple[relations.Group, ...]:
        """`Pre-Depends` then `Depends`: both must hold for the package to work (the first, before it unpacks)."""
        return relations.parse(self.pre_depends, self.architecture) + relations.parse(self.depends,
                                                                                      self.architecture)

    def provided(self) -> tuple[relations.Relation, ...]:
        return tuple(r for group in relations.parse(self.provides) for r in group)

    @property
    def key(self) -> tuple[str, str]:
        return (self.name, self.architecture)

    def __str__(self) -> str:
        return f"{self.name} {self.version} ({self.architecture})"


@dataclass
class Universe:
    """Every package of one architecture (its own and `all`), by name, and the providers of each name."""

    architecture: str
    packages: dict[str, list[Package]] = field(default_factory=dict)  # name -> versions, newest first
    providers: dict[str, list[tuple[Package, relations.Relation]]] = field(default_factory=dict)

    def add(self, packages: Iterable[Package]) -> None:
        seen = {(p.name, p.version, p.architecture) for ps in self.packages.values() for p in ps}
        for p in packages:
            if p.architecture not in (self.architecture, "all") or (p.name, p.version, p.architecture) in seen:
                continue
            seen.add((p.name, p.version, p.architecture))
            self.packages.setdefault(p.name, []).append(p)
            if p.provides:
                for r in p.provided():
                    self.providers.setdefault(r.name, []).append((p, r))
        for versions in self.packages.values():
            versions.sort(key=_NewestFirst)

    def essential(self) -> list[str]:
        """The names of the packages marked `Essential: yes`."""
        return sorted(name for name, versions in self.packages.items() if versions[0].essential)


class _NewestFirst:
    """A sort key putting the highest Debian version first."""

    def __init__(self, package: Package) -> None:
        self.version = package.version

    def __lt__(self, other: _NewestFirst) -> bool:
        return compare(self.version, other.version) > 0


def read_packages(text: str, where: str) -> list[Package]:
    """The packages of a `Packages` index; ValueError names the index and the package that is malformed."""
    found = []
    for p in control.paragraphs(text):
        try:
            found.append(Package.from_paragraph(p))
        except (KeyError, ValueError) as exc:
            raise ValueError(f"`{where}`: package `{p.get('Package', '?')}` is malformed ({exc!s})") from None
    return found
