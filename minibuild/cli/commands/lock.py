"""`minibuild lock`: resolve the package sysroots of workspace.toml and write `minibuild.lock`."""

from __future__ import annotations

import argparse
import os
from typing import Any

from minibuild.build import open_cache
from minibuild.errors import InputError
from minibuild.packages import lockfile, locking
from minibuild.packages.spec import SysrootSpec
from minibuild.workspace import Workspace


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--update", nargs="*", metavar="PKG", default=None,
                   help="resolve again against the archive as it is now: every package, or only those named")
    p.add_argument("--check", action="store_true",
                   help="change nothing, download nothing: exit 1 when the lock no longer answers workspace.toml")


def specs(workspace: Workspace) -> list[SysrootSpec]:
    """The package sysroots of workspace.toml, keyring paths made absolute from the workspace root."""
    found = []
    for name, table in sorted(workspace.config.sysroots.items()):
        spec = SysrootSpec.from_table(name, table.model_dump())
        keyrings = tuple(os.path.join(workspace.root, k) for k in spec.keyrings)
        found.append(SysrootSpec(spec.name, spec.request, spec.url, keyrings))
    return found


def run(args: argparse.Namespace) -> int:
    # lazy: rich, loaded only when something is drawn
    from minibuild.cli import ui

    workspace = Workspace.find()
    wanted = specs(workspace)
    if not wanted:
        raise InputError("workspace.toml declares no package sysroot",
                         origin=workspace.config_origin(("sysroots",)),
                         hint='add one: `[sysroots.bookworm]`, `debian = { suite = "bookworm", architectures = '
                              '["amd64"] }`, `packages = ["bash"]` (docs/packages.md)')
    try:
        old = lockfile.read(workspace.root)
    except InputError as exc:
        if args.update != []:
            raise
        ui.warn(f"{exc.message}: writing it anew")  # `lock --update` is the way out of a damaged lock
        old = None
    if args.check:
        return _check(wanted, old, ui)
    cache, _ = open_cache(workspace)
    new, changes = locking.lock(wanted, old, cache, update=args.update == [],
                                update_packages=args.update or (), on_step=ui.info)
    written = lockfile.write(workspace.root, new)
    for change in changes:
        ui.info(f"  {change}")
    counts = ", ".join(f"{name} {arch}: {len(ps)}" for name, s in sorted(new.sysroots.items())
                       for arch, ps in sorted(s.resolved.items()))
    ui.info(f"{'wrote' if written else 'unchanged:'} {lockfile.LOCK_FILE} ({counts} packages)")
    return 0


def _check(wanted: list[SysrootSpec], old: lockfile.Lock | None, ui: Any) -> int:
    reasons = [r for spec in wanted if (r := lockfile.staleness(old, spec.name, spec.request)) is not None]
    extra = sorted(set(old.sysroots) - {s.name for s in wanted}) if old else []
    reasons += [f"`{lockfile.LOCK_FILE}` has sysroot `{n}`, which workspace.toml no longer declares" for n in extra]
    for reason in reasons:
        ui.warn(reason)
    if reasons:
        ui.info("the lock is stale: run `minibuild lock`")
        return 1
    ui.info(f"{lockfile.LOCK_FILE} is up to date")
    return 0
