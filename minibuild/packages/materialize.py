"""The `Sysroot` action: from the lock to an unpacked tree in the cache, for one sysroot and architecture.

It reads `minibuild.lock` as a discovered input (a change re-runs it; the same packages write the same
sysroot.json, so nothing after it runs again), refuses a stale lock, fetches what the store lacks and unpacks.
sysroot.json names the tree and describes each package: its lock entry, its `control` and `md5sums` files and the
paths it shipped (installed.py reads them).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from minibuild.cache import Cache
from minibuild.elf.sysroot import Sysroot
from minibuild.errors import BuildError, InputError, MinibuildError
from minibuild.packages import contents, fetch, lockfile, sources, tree
from minibuild.packages.lockfile import IndexRef, LockedPackage
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
    fetch.fetch(packages, lambda: p.url or sources.mirror_for(p.request.suite), run.cache, run.stat_cache,
                progress=run.progress)
    path = tree.ensure_tree(run.cache, p.arch, packages)
    run.discover(path)
    [out] = run.outputs.values()
    locked = lock.sysroots[p.name]
    key = tree.tree_key(p.arch, packages)
    doc = {"name": p.name, "architecture": p.arch, "tree": key,
           "suite": p.request.suite, "url": p.url,  # the workspace's own words: the same in every clone
           "contents": [c.as_json() for c in locked.contents.get(p.arch, ())],
           "packages": _described(run.cache, key, packages)}
    with open(out, "w", encoding="utf-8") as f:
        json.dump(doc, f, sort_keys=True, indent=1)


def _described(cache: Cache, key: str, packages: Sequence[LockedPackage]) -> list[dict[str, Any]]:
    """Each package's lock entry with what unpacking it recorded: its `control` and `md5sums` files and the paths
    of the tree it shipped (what `minibuild sbom` and `dpkg_status` say of an image's files; installed.py)."""
    owners, control = tree.records(cache, key)
    shipped: dict[str, list[str]] = {}
    for path, name in sorted(owners.items()):
        shipped.setdefault(name, []).append(path)
    return [{**pkg.as_json(), "control": control[pkg.name]["control"],
             "md5sums": control[pkg.name].get("md5sums", ""), "files": shipped.get(pkg.name, []),
             "dirs": [d for d in control[pkg.name].get("dirs", "").split("\n") if d]}
            for pkg in sorted(packages, key=lambda pkg: pkg.name)]


def check_binaries(cache: Cache, document_path: str, tree_dir: str, paths: Sequence[str]) -> None:
    """InputError for the binaries no package of the sysroot ships, naming the suite's packages that do (from
    its Contents index, when it can be read), with the hint to add one to `packages`."""
    fs = Sysroot(tree_dir)
    missing = [path for path in paths if fs.lookup(path).realpath is None]
    if not missing:
        return
    with open(document_path, encoding="utf-8") as f:
        doc = json.load(f)
    name, arch = doc["name"], doc["architecture"]
    try:
        dists = f"{(doc['url'] or sources.mirror_for(doc['suite'])).rstrip('/')}/dists/{doc['suite']}"
        ships = contents.shipped_by(missing, [IndexRef.from_json(c) for c in doc["contents"]], dists, cache,
                                    offline=fetch.offline())
    except MinibuildError:
        ships = {}
    first = missing[0]
    causes = tuple(f"`{path}` is shipped by " + ", ".join(f"`{s}`" for s in ships[path]) + f" in `{doc['suite']}`"
                   for path in missing if path in ships)
    candidates = ships.get(first)
    raise InputError(
        f"`{first}` is in no package of sysroot `{name}` ({arch})"
        + (f" (nor are {', '.join(f'`{m}`' for m in missing[1:])})" if len(missing) > 1 else ""),
        causes=causes,
        hint=(f"add `{candidates[0]}` to `packages` of `[sysroots.{name}]` in workspace.toml, then run "
              "`minibuild lock`" if candidates else
              f"add the package that ships it to `packages` of `[sysroots.{name}]` (`apt-file search {first}` "
              "names it), then run `minibuild lock`"),
    )


def tree_of(cache: Any, document_path: str) -> str:
    """The tree a sysroot.json names (made by the Sysroot action that wrote it)."""
    with open(document_path, encoding="utf-8") as f:
        doc = json.load(f)
    path = tree.tree_path(cache, doc["tree"])
    if not os.path.isdir(path):
        raise BuildError(f"the unpacked sysroot `{doc['name']}` ({doc['architecture']}) is gone from the cache",
                         hint="build again: it is unpacked anew")
    return path
