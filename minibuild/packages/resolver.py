"""The dependency closure of some packages in one architecture, as a single-architecture dpkg would install it.

- `Pre-Depends` and `Depends` are followed; `Recommends` and `Suggests` are not (as `--no-install-recommends`).
- Alternatives `a | b`: a group an already chosen package satisfies costs nothing; otherwise the first
  alternative whose whole closure resolves is taken (an alternative that fails deeper down is backed out).
- A name no real package satisfies is looked up among the `Provides` of others; a versioned dependency takes
  only a versioned `Provides` that meets it. Among several providers apt's order decides: Priority, then name.
- The newest version that meets every constraint is taken; a version the lock already has is preferred while
  the index still offers it, so `minibuild lock` moves nothing it does not have to.
- `Multi-Arch`: each architecture is resolved on its own, so a `:any` dependency is met only by a package that
  is `Multi-Arch: allowed` (dpkg's rule) and one qualified by another architecture is not met at all.
- `Essential: yes` packages are not added unless asked for (`packages`, or `essential = true`): dpkg assumes
  them installed, but an image needs only what its programs use, and dependencies on them are never declared,
  so following them implicitly would put coreutils, dpkg and perl-base into every sysroot.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from minibuild.errors import InputError
from minibuild.packages.index import PRIORITIES, Package, Universe
from minibuild.packages.relations import Group, Relation, format_group


@dataclass(frozen=True)
class Resolved:
    package: Package
    requested: bool
    pulled_by: tuple[str, ...]  # names of the chosen packages that depend on it (sorted)


class Unresolvable(InputError):
    """A dependency no package of the index meets; `causes` hold the chain from a requested package to it."""


class _State:
    def __init__(self) -> None:
        self.chosen: dict[str, Package] = {}
        self.pulled_by: dict[str, set[str]] = {}
        self.provided: dict[str, list[tuple[Package, Relation]]] = {}
        self.followed: set[str] = set()

    def copy(self) -> _State:
        other = _State()
        other.chosen = dict(self.chosen)
        other.pulled_by = {k: set(v) for k, v in self.pulled_by.items()}
        other.provided = {k: list(v) for k, v in self.provided.items()}
        other.followed = set(self.followed)
        return other


class Resolver:
    def __init__(self, universe: Universe, prefer: Mapping[str, str] | None = None) -> None:
        self.universe = universe
        self.prefer = dict(prefer or {})
        self.state = _State()

    def resolve(self, requested: Iterable[str]) -> dict[str, Resolved]:
        names = sorted(set(requested))
        # Every requested package is chosen before any dependency is followed, so that an alternative one of
        # them satisfies is not met by another package first (apt marks them all for installation first, too).
        first = []
        for name in names:
            options = self._candidates(Relation(name))
            if not options:
                raise self._failure((Relation(name),), [])
            self._add(options[0], [], follow=False)
            first.append(options[0])
        for pkg in first:
            self._add(pkg, [], follow=True)
        s = self.state
        chosen_first = {p.name for p in first}
        return {name: Resolved(pkg, name in chosen_first, tuple(sorted(s.pulled_by.get(name, set()) - {name})))
                for name, pkg in sorted(s.chosen.items())}

    # -- what meets a relation ----------------------------------------------------------------------
    def _arch_ok(self, r: Relation, pkg: Package) -> bool:
        if r.arch is None or r.arch == "native" or r.arch == self.universe.architecture:
            return True
        return r.arch == "any" and pkg.multi_arch == "allowed"

    def _met_by_chosen(self, r: Relation) -> Package | None:
        pkg = self.state.chosen.get(r.name)
        if pkg is not None and self._arch_ok(r, pkg) and r.allows(pkg.version):
            return pkg
        for provider, provided in self.state.provided.get(r.name, []):
            if self._provision_meets(r, provided):
                return provider
        return None

    @staticmethod
    def _provision_meets(r: Relation, provided: Relation) -> bool:
        if r.op is None:
            return True
        return provided.op == "=" and provided.version is not None and r.allows(provided.version)

    def _candidates(self, r: Relation) -> list[Package]:
        """Packages that could meet `r`, best first: real ones (the locked version, then newest first), then
        providers (apt's order). A name already chosen in another version is not chosen again."""
        chosen = self.state.chosen
        real = [p for p in self.universe.packages.get(r.name, []) if self._arch_ok(r, p) and r.allows(p.version)
                and (r.name not in chosen or chosen[r.name] is p)]
        locked = self.prefer.get(r.name)
        real.sort(key=lambda p: p.version != locked)  # stable: newest first otherwise
        providers = sorted(
            {p.key: p for p, provided in self.universe.providers.get(r.name, [])
             if self._provision_meets(r, provided) and self._arch_ok(r, p)
             and (p.name not in chosen or chosen[p.name] is p)}.values(),
            key=lambda p: (PRIORITIES.index(p.priority) if p.priority in PRIORITIES else len(PRIORITIES), p.name))
        return real + [p for p in providers if p not in real]

    # -- choosing ---------------------------------------------------------------------------------
    def _require(self, group: Group, chain: list[Package]) -> None:
        needer = chain[-1].name if chain else None
        for r in group:
            met = self._met_by_chosen(r)
            if met is not None:
                if needer:
                    self.state.pulled_by.setdefault(met.name, set()).add(needer)
                return
        options = [p for r in group for p in self._candidates(r)]
        first_error: Unresolvable | None = None
        for pkg in options:
            saved = self.state.copy() if len(options) > 1 else self.state
            try:
                self._add(pkg, chain)
                if needer:
                    self.state.pulled_by.setdefault(pkg.name, set()).add(needer)
                return
            except Unresolvable as exc:
                self.state = saved
                first_error = first_error or exc
        if first_error is not None:
            raise first_error
        raise self._failure(group, chain)

    def _add(self, pkg: Package, chain: list[Package], follow: bool = True) -> None:
        """Choose `pkg` and (with `follow`) what it depends on; a package is followed once."""
        if self.state.chosen.get(pkg.name) is not pkg:
            self.state.chosen[pkg.name] = pkg
            for provided in pkg.provided():
                self.state.provided.setdefault(provided.name, []).append((pkg, provided))
        if not follow or pkg.name in self.state.followed:
            return
        self.state.followed.add(pkg.name)
        for group in pkg.dependencies():
            self._require(group, [*chain, pkg])

    def _failure(self, group: Group, chain: list[Package]) -> Unresolvable:
        arch = self.universe.architecture
        causes = [f"`{a.name} {a.version}` depends on `{format_group(d)}`" for a, d in
                  zip(chain, [*self._groups_between(chain), group], strict=False)]
        why = []
        for r in group:
            versions = [p.version for p in self.universe.packages.get(r.name, [])]
            chosen = self.state.chosen.get(r.name)
            if chosen is not None and not r.allows(chosen.version):
                why.append(f"`{r.name}` {chosen.version} is already chosen (for "
                           + ", ".join(sorted(self.state.pulled_by.get(r.name, set())) or ["a requested package"])
                           + ")")
            elif versions:
                why.append(f"the index has `{r.name}` {', '.join(versions)}"
                           + (" (not `Multi-Arch: allowed`, so not for `:any`)" if r.arch == "any" else ""))
            elif r.name in self.universe.providers:
                why.append(f"`{r.name}` is virtual; no provider meets `{r}`")
            else:
                why.append(f"no package `{r.name}` for `{arch}`, and no package provides it")
        head = chain[0].name if chain else group[0].name
        return Unresolvable(
            f"cannot resolve `{format_group(group)}` for architecture `{arch}`"
            + (f" (needed by `{head}`)" if chain else " (requested in `packages`)"),
            causes=(f"`{head}` is requested in `packages`", *causes, *why) if chain else tuple(why),
            hint="add a package that provides it to `packages`, check the suite and components, or remove what "
                 "needs it" if chain else "check the name (`apt-cache policy NAME` on a machine of that suite), "
                 "the suite and the components",
        )

    def _groups_between(self, chain: list[Package]) -> list[Group]:
        """For each consecutive pair of the chain, the group of the first that the second was chosen for."""
        groups = []
        for a, b in zip(chain, chain[1:], strict=False):
            groups.append(next((g for g in a.dependencies() if any(r.name == b.name or r.name in
                                                                    {p.name for p in b.provided()} for r in g)),
                               (Relation(b.name),)))
        return groups


def resolve(universe: Universe, requested: Iterable[str], *, prefer: Mapping[str, str] | None = None,
            essential: bool = False) -> dict[str, Resolved]:
    """The closure of `requested` (plus every `Essential: yes` package with `essential`), by name."""
    names = list(requested) + (universe.essential() if essential else [])
    return Resolver(universe, prefer).resolve(names)
