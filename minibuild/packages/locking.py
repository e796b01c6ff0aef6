"""`minibuild lock`: resolve each package sysroot of the workspace against its archive and write the lock.

A sysroot whose request has not changed keeps its lock as it is, unless asked to update; when it is resolved
again, every version the lock has stays while the index still offers it (except those named to update), so
a lock moves only as far as it must.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from minibuild.cache import Cache
from minibuild.errors import InputError
from minibuild.packages import release, sources
from minibuild.packages.archive import Archive, load_release, load_universe
from minibuild.packages.lockfile import IndexRef, Lock, LockedPackage, LockedSysroot, staleness
from minibuild.packages.resolver import Unresolvable, resolve
from minibuild.packages.spec import SysrootSpec


@dataclass(frozen=True)
class Change:
    sysroot: str
    arch: str
    name: str
    old: str | None  # version, None: added
    new: str | None  # version, None: removed

    def __str__(self) -> str:
        what = (f"+ {self.name} {self.new}" if self.old is None else f"- {self.name} {self.old}" if self.new is None
                else f"~ {self.name} {self.old} -> {self.new}")
        return f"{self.sysroot} ({self.arch}): {what}"


def archive_of(spec: SysrootSpec) -> Archive:
    return Archive(url=spec.url or sources.mirror_for(spec.request.suite), suite=spec.request.suite,
                   keyrings=spec.keyrings or release.DEFAULT_KEYRINGS)


def lock(specs: Sequence[SysrootSpec], old: Lock | None, cache: Cache, *, update: bool = False,
         update_packages: Sequence[str] = (), on_step: Callable[[str], None] = lambda s: None,
         ) -> tuple[Lock, list[Change]]:
    """The new lock and what changed. `update`: resolve every sysroot afresh; `update_packages`: resolve again,
    letting only those packages move."""
    _check_update_names(update_packages, old, specs)
    result: dict[str, LockedSysroot] = {}
    changes: list[Change] = []
    for spec in specs:
        previous = old.sysroots.get(spec.name) if old else None
        named = set(update_packages) & _names(previous)
        if previous is not None and not update and not named and staleness(old, spec.name, spec.request) is None:
            result[spec.name] = previous
            continue
        result[spec.name] = _lock_one(spec, previous, update, set(update_packages), cache, on_step)
        changes += _diff(spec.name, previous, result[spec.name])
    return Lock(result), changes


def _names(locked: LockedSysroot | None) -> set[str]:
    return {p.name for ps in locked.resolved.values() for p in ps} if locked else set()


def _check_update_names(names: Sequence[str], old: Lock | None, specs: Sequence[SysrootSpec]) -> None:
    known = {n for s in (old.sysroots.values() if old else ()) for ps in s.resolved.values() for n in
             (p.name for p in ps)} | {p for spec in specs for p in spec.request.packages}
    unknown = sorted(set(names) - known)
    if unknown:
        raise InputError(f"`--update`: {', '.join(f'`{n}`' for n in unknown)} is in no locked sysroot",
                         hint="name packages the lock has, or `--update` alone to update everything")


def _lock_one(spec: SysrootSpec, previous: LockedSysroot | None, update: bool, update_packages: set[str],
              cache: Cache, on_step: Callable[[str], None]) -> LockedSysroot:
    archive = archive_of(spec)
    on_step(f"reading `{archive.dists('InRelease')}`")
    rel = load_release(archive, cache)
    resolved: dict[str, tuple[LockedPackage, ...]] = {}
    contents: dict[str, tuple[IndexRef, ...]] = {}
    for arch in spec.request.architectures:
        contents[arch] = tuple(IndexRef(f.path, f.sha256, f.size) for component in spec.request.components
                               if (f := rel.best(f"{component}/Contents-{arch}")) is not None)
        on_step(f"reading the `{arch}` indices of {', '.join(spec.request.components)}")
        universe = load_universe(archive, rel, spec.request.components, arch, cache)
        prefer = {} if update or previous is None else {
            p.name: p.version for p in previous.resolved.get(arch, ()) if p.name not in update_packages}
        try:
            chosen = resolve(universe, spec.request.packages, prefer=prefer, essential=spec.request.essential)
        except Unresolvable as exc:
            raise Unresolvable(f"sysroot `{spec.name}`: {exc.message}", causes=exc.causes, hint=exc.hint) from None
        resolved[arch] = tuple(
            LockedPackage(r.package.name, r.package.version, r.package.architecture, r.package.source,
                          r.package.filename, r.package.size, r.package.sha256, r.requested, r.pulled_by)
            for r in chosen.values())
    return LockedSysroot(spec.request, rel.date, resolved, contents)


def _diff(name: str, old: LockedSysroot | None, new: LockedSysroot) -> list[Change]:
    changes = []
    for arch in sorted(set(new.resolved) | set(old.resolved if old else ())):
        before = {p.name: p.version for p in (old.resolved.get(arch, ()) if old else ())}
        after = {p.name: p.version for p in new.resolved.get(arch, ())}
        for pkg in sorted(set(before) | set(after)):
            if before.get(pkg) != after.get(pkg):
                changes.append(Change(name, arch, pkg, before.get(pkg), after.get(pkg)))
    return changes
