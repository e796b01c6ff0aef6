"""The `Sysroot` action: from the lock to an unpacked tree in the cache, for one sysroot and architecture.

It reads `minibuild.lock` as a discovered input (a change re-runs it; the same packages write the same
sysroot.json, so nothing after it runs again), refuses a stale lock, fetches what the store lacks and unpacks.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from minibuild.errors import BuildError, InputError
from minibuild.packages import fetch, lockfile, sources, tree
from minibuild.packages.lockfile import LockedPackage
from minibuild.packages.spec import Request


@dataclass(frozen=True)
class SysrootParams:
    name: str
    arch: str
    request: Request
    url: str | None


def prepare(run: Any) -> None:
    """Write sysroot.json: the sysroot's packages for the architecture and the key of their tree."""
    p: SysrootParams = run.params
    lock_path = os.path.join(run.root, lockfile.LOCK_FILE)
    run.discover(lock_path)
    lock = lockfile.read(run.root)
    reason = lockfile.staleness(lock, p.name, p.request)
    if reason is not None:
        raise InputError(f"`{lockfile.LOCK_FILE}` is stale: {reason}",
                         hint="run `minibuild lock` (and commit `minibuild.lock`)")
    assert lock is not None
    packages = lock.sysroots[p.name].resolved.get(p.arch)
    if packages is None:
        raise InputError(f"sysroot `{p.name}` is not locked for architecture `{p.arch}`",
                         hint=f"add `{p.arch}` to its `architectures`, then run `minibuild lock`")
    fetch.fetch(packages, lambda: p.url or sources.mirror_for(p.request.suite), run.cache, run.stat_cache)
    path = tree.ensure_tree(run.cache, p.arch, packages)
    run.discover(path)
    [out] = run.outputs.values()
    with open(out, "w", encoding="utf-8") as f:
        json.dump(describe(p.name, p.arch, packages), f, sort_keys=True, indent=1)


def describe(name: str, arch: str, packages: tuple[LockedPackage, ...]) -> dict[str, Any]:
    return {"name": name, "architecture": arch, "tree": tree.tree_key(arch, packages),
            "packages": [p.as_json() for p in sorted(packages, key=lambda p: p.name)]}


def tree_of(cache: Any, document_path: str) -> str:
    """The tree a sysroot.json names (made by the Sysroot action that wrote it)."""
    with open(document_path, encoding="utf-8") as f:
        doc = json.load(f)
    path = tree.tree_path(cache, doc["tree"])
    if not os.path.isdir(path):
        raise BuildError(f"the unpacked sysroot `{doc['name']}` ({doc['architecture']}) is gone from the cache",
                         hint="build again: it is unpacked anew")
    return path
