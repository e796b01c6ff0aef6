"""The layers action: the image's file tree cut into layers, bottom to top, written and stored.

layers.json = {"layers": [{"digest", "size", "media_type", "diff_id", "uncompressed_size", "created_by",
"files": [{"path", "kind", "size", "mode", "reason", "target"?, "digest"?, "uid"?, "gid"?}]}], "architecture",
"variant", "warnings", "max_size", "user"}: the whole image, a base image's layers first.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from minibuild.entry import TreeEntry
from minibuild.errors import BuildError
from minibuild.executor import ActionRun
from minibuild.image.documents import image_files, read_json, write_json
from minibuild.image.params import DirParam, LayersParams
from minibuild.image.runtime.accounts import merge_with_base
from minibuild.image.runtime.dpkg_status import Owners
from minibuild.image.runtime.shell import shell_warning
from minibuild.image.secrets import SecretWatch
from minibuild.image.tree import ACCOUNT_FILES, GENERATED, GROUPS, ROOT_ONLY, ImageTree, build_tree
from minibuild.oci.layer import ZSTD_LEVEL, Layer, layer_key, plan_layer, write_layer

_HISTORY = {"base": "minibuild: dynamic loader and libc", "libs": "minibuild: shared libraries",
            "runtime": "minibuild: runtime files (stdlib, certificates, zoneinfo, terminfo)",
            "app": "minibuild: binaries and files"}


def _image_tree(run: ActionRun[LayersParams], closure: dict[str, Any],
                dpkg: Owners | None) -> tuple[ImageTree, dict[str, str]]:
    """The image's tree (setuid bits dropped unless asked) and each path's layer group."""
    p = run.params
    files = [{"dest": f.dest, "mode": f.mode, "input": f.input.path, "origin": f.origin, "owner": f.owner,
              "digest": run.digest(run.input(f.input))} for f in p.files]
    dirs = [{"path": d.path, "mode": d.mode, "owner": d.owner, "origin": d.origin,
             "if_absent": d.if_absent} for d in p.dirs]
    tree, groups = build_tree(closure, files, run.inputs, p.ld_so_cache, root=run.root, dpkg=dpkg, dirs=dirs,
                              tree_owners=p.tree_owners, links=p.links,
                              sysroot_files=[(f.dest, f.mode, f.owner) for f in p.sysroot_files])
    if not p.keep_setuid:
        # setuid/setgid programs are rarely meant to be so in a container; Docker's default drops them
        # anyway only at run time, so the image should not carry them unless asked.
        for path, e in list(tree.entries.items()):
            if e.kind == "file" and e.mode & 0o6000:
                tree.entries[path] = dataclasses.replace(e, mode=e.mode & ~0o6000)
    return tree, groups


def _layer_document(group: str, layer: Any, entries: list[TreeEntry]) -> dict[str, Any]:
    return {
        "digest": layer.descriptor.digest, "size": layer.descriptor.size,
        "media_type": layer.descriptor.media_type, "diff_id": layer.diff_id,
        "uncompressed_size": layer.uncompressed_size,
        "created_by": _HISTORY.get(group) or f"minibuild: shared library {posixpath.basename(group[4:])}",
        "files": [{"path": e.path, "kind": e.kind, "size": e.size if e.kind == "file" else 0, "mode": e.mode,
                   "reason": e.reason, **({"target": e.target} if e.target else {}),
                   **({"uid": e.uid, "gid": e.gid} if e.uid or e.gid else {}),
                   **({"digest": e.digest} if e.digest else {})} for e in entries],
    }


def write_layers(run: ActionRun[LayersParams], dpkg: Owners | None = None) -> None:
    """`dpkg`: who owns the sysroot's files, when the image writes its dpkg status (`dpkg_status`)."""
    p = run.params
    closure = read_json(run.input(p.closure))
    tree, groups = _image_tree(run, closure, dpkg)
    for f in p.files:
        if f.dest in ACCOUNT_FILES:
            run.warn(f"`{f.dest}` of {f.origin} replaces the one minibuild generates from `user`, `users` and "
                     "`groups` (docs/runtime.md)")
    # What the base image already has, byte for byte, is not written again.
    base = read_json(run.input(p.base_layers)) if p.base_layers is not None else {}
    base_layers = base.get("layers", [])
    below = {f["path"]: f for f in image_files({"layers": base_layers})}
    _keep_base_accounts(tree, below)
    _keep_base_dirs(tree, below, p.dirs)
    if base.get("accounts") and p.base_layers is not None:
        _merge_base_accounts(tree, base["accounts"], str(p.base_layers.owner))
    warnings = list(closure.get("warnings", []))
    shell = shell_warning(closure.get("shell_importers", {}), lambda path: _holds(tree, below, path))
    if shell is not None:
        run.warn(shell)
        warnings.append(shell)
    by_group: dict[str, list[TreeEntry]] = {g: [] for g in GROUPS}
    for path, entry in sorted(tree.entries.items()):
        if _same_as_base(entry, below.get(path)):
            continue
        by_group.setdefault("app" if p.layering == "single" else groups.get(path, "app"), []).append(entry)
    [out] = run.outputs.values()
    work = os.path.dirname(out)

    # Secrets are looked for in what this image adds (a base image had its own check), their content in the
    # bytes the layer writer reads anyway.
    secret_watch = SecretWatch([e for entries in by_group.values() for e in entries])

    def write(group: str) -> tuple[Layer, bool]:
        return _write_group(run, by_group[group], os.path.join(work, _layer_file(group)), secret_watch)

    if p.max_size:
        _check_budget(tree, below, p.max_size, run.action.owner)
    # Bottom to top: loader and libc, each big library (by path), the other libraries, runtime files, the app.
    big = sorted(g for g in by_group if g.startswith("lib:"))
    groups_used = [g for g in (GROUPS[0], *big, *GROUPS[1:]) if by_group[g]]
    # Compression and hashing release the GIL, so the layers are written side by side.
    with ThreadPoolExecutor(max_workers=len(groups_used) or 1) as pool:
        written = list(pool.map(write, groups_used))
    secret_watch.check(run.action.owner, p.allow_secrets, tree.canonical, run.warn)  # before anything is stored
    layers = []
    for group, (layer, here) in zip(groups_used, written, strict=True):
        if here:
            run.store_blob(os.path.join(work, _layer_file(group)), layer.descriptor.digest)
        layers.append(_layer_document(group, layer, by_group[group]))
    write_json(out, {
        # The whole image, bottom first: a base image's layers included.
        "layers": base_layers + layers, "architecture": closure.get("architecture"),
        "variant": closure.get("variant"), "warnings": warnings,
        "max_size": p.max_size,
        # The config's User as numbers, when `user` names an account (a name cannot be checked by runAsNonRoot).
        "user": closure.get("accounts", {}).get("user", ""),
        # The image's /etc/passwd and /etc/group as they end up, for an image built on this one.
        "accounts": _account_texts(tree, base.get("accounts") or {}),
    })


def _holds(tree: ImageTree, below: dict[str, Any], path: str) -> bool:
    """Whether the image (this tree over the base image's files) has a file at `path`, through its links."""
    found = _lookup(tree, below, path)
    return found is not None and found[1] == "file"


def _lookup(tree: ImageTree, below: dict[str, Any], path: str) -> tuple[str, str] | None:
    """The real path and kind of what the image (this tree over the base image's files) has at `path`, every
    symlink on the way followed wherever it is: the base's `/bin -> usr/bin` leads this image's `/bin/sh` too."""
    parts = [p for p in path.split("/") if p]
    resolved, hops, kind = "/", 0, "dir"
    while parts:
        part = parts.pop(0)
        if part in (".", ".."):
            resolved = posixpath.dirname(resolved) if part == ".." else resolved
            continue
        candidate = posixpath.join(resolved, part)
        entry = tree.entries.get(candidate)
        found: dict[str, Any] | None = ({"kind": entry.kind, "target": entry.target} if entry is not None
                                        else below.get(candidate))
        if found is None:
            if not parts:
                return None
            resolved = candidate  # a parent directory the layers make without an entry of its own
            continue
        if found["kind"] == "symlink":
            hops += 1
            if hops > 40:
                return None
            target = found.get("target") or ""
            parts = [p for p in posixpath.join(resolved, target).split("/") if p] + parts
            resolved = "/"
            continue
        resolved, kind = candidate, str(found["kind"])
    return resolved, kind


def _keep_base_dirs(tree: ImageTree, below: dict[str, Any], dirs: Sequence[DirParam]) -> None:
    """A volume, or a `dirs` entry without owner or mode, on a directory the base image has: the base's entry stays
    (the image's own would replace its owner and mode with root's 0755)."""
    for d in dirs:
        own = tree.entries.get(tree.canonical(d.path))
        if not d.if_absent or own is None or own.origin != d.origin:
            continue  # declared with an owner or mode, or the image has the directory anyway
        base = below.get(own.path)
        if base is not None and base["kind"] == "dir":
            del tree.entries[own.path]


def _write_group(run: ActionRun[LayersParams], entries: list[TreeEntry], dest: str,
                 secret_watch: SecretWatch) -> tuple[Layer, bool]:
    """The layer of `entries`, and whether it was written to `dest` (else another image of this build wrote the
    same blob, claimed from the store with what the secret check found in its files then)."""
    p = run.params
    members = plan_layer(entries)
    key = layer_key(members, p.compression, p.gzip_level, ZSTD_LEVEL, p.epoch)
    done = _WRITTEN.get(key) if key else None
    if done is not None and run.reuse_blob(done[0].descriptor.digest):
        for entry in members:
            if entry.path in done[1]:
                secret_watch.add(entry, done[1][entry.path])
        return done[0], False
    scans: list[tuple[TreeEntry, Any]] = []

    def watch(entry: TreeEntry) -> Any:
        scans.append((entry, secret_watch.file(entry)))
        return scans[-1][1]

    layer = write_layer(members, dest, compression=p.compression, gzip_level=p.gzip_level, zstd_level=ZSTD_LEVEL,
                        epoch=p.epoch, watch=watch)
    if key:
        _WRITTEN[key] = (layer, {e.path: scan.found for e, scan in scans if scan.found})
    return layer, True


# The layers this process wrote, by `layer_key`: a layer several images share (the loader and libc, a big
# library) is written once per build, then claimed from the store, with what the secret check found in it.
_WRITTEN: dict[str, tuple[Layer, dict[str, str]]] = {}


def _keep_base_accounts(tree: ImageTree, below: dict[str, Any]) -> None:
    """An image that declares no account keeps its base image's /etc/passwd and /etc/group (the base's `user`
    and `users`), instead of covering them with files naming root alone."""
    generated = [tree.entries.get(path) for path in ACCOUNT_FILES]
    if all(e is not None and e.origin == GENERATED and e.data in ROOT_ONLY and e.path in below for e in generated):
        for path in ACCOUNT_FILES:
            del tree.entries[path]


def _merge_base_accounts(tree: ImageTree, base: dict[str, str], base_label: str) -> None:
    """The generated /etc/passwd and /etc/group of an image that declares accounts, on a base that has them: the
    base's accounts and the image's (docs/runtime.md, "accounts")."""
    generated = {path: tree.entries.get(path) for path in ACCOUNT_FILES}
    own = {path.rsplit("/", 1)[1]: (e.data or b"").decode() for path, e in generated.items()
           if e is not None and e.origin == GENERATED}
    if len(own) < len(ACCOUNT_FILES):
        return  # kept from the base, or shipped with `files`: nothing generated to merge
    merged = merge_with_base(base, own, base_label)
    for path, entry in generated.items():
        assert entry is not None
        kind = path.rsplit("/", 1)[1]
        names = ", ".join(line.split(":", 1)[0] for line in merged[kind].splitlines())
        tree.entries[path] = dataclasses.replace(entry, data=merged[kind].encode(),
                                                 reason=f"{'users' if kind == 'passwd' else 'groups'} ({names})")


def _account_texts(tree: ImageTree, base: dict[str, str]) -> dict[str, str]:
    """What the image's /etc/passwd and /etc/group hold: generated, shipped with `files`, or the base's."""
    out = {}
    for path in ACCOUNT_FILES:
        kind, entry = path.rsplit("/", 1)[1], tree.entries.get(path)
        if entry is not None and entry.data is not None:
            out[kind] = entry.data.decode(errors="replace")
        elif entry is not None and entry.source is not None and entry.kind == "file":
            with open(entry.source, encoding="utf-8", errors="replace") as f:
                out[kind] = f.read()
        elif kind in base:
            out[kind] = base[kind]
    return out


def _layer_file(group: str) -> str:
    return "layer-" + group.replace("/", "_").replace(":", "_")



def _check_budget(tree: ImageTree, below: dict[str, Any], budget: int, owner: object) -> None:
    """The whole image (a base image's files included) must fit in `max_size` bytes, uncompressed."""
    files = [e for e in tree.entries.values() if e.kind == "file"]
    files += [TreeEntry(f["path"], "file", f.get("mode", 0o644), f["reason"], origin="base image", size=f["size"])
              for f in below.values() if f["kind"] == "file" and f["path"] not in tree.entries]
    total = sum(e.size for e in files)
    if total <= budget:
        return
    biggest = sorted(files, key=lambda e: -e.size)[:8]
    raise BuildError(
        f"`{owner}` is {total:,} bytes, over its `max_size` of {budget:,} bytes by {total - budget:,}",
        causes=tuple(f"{e.size:>12,}  {e.path}  ({e.reason})" for e in biggest),
        hint="drop what the image does not need, or raise `max_size`",
    )



def _same_as_base(entry: TreeEntry, below: dict[str, Any] | None) -> bool:
    if below is None or below["kind"] != entry.kind or below.get("mode", entry.mode) != entry.mode:
        return False
    if (below.get("uid", 0), below.get("gid", 0)) != (entry.uid, entry.gid):
        return False
    if entry.kind == "symlink":
        return below.get("target") == entry.target
    if entry.kind == "file":
        return entry.digest is not None and below.get("digest") == entry.digest
    return True
