"""`minibuild why LABEL PATH`: the chain that put a file into an image."""

from __future__ import annotations

import argparse
import json
import os
import sys

from minibuild.build import build, out_dir
from minibuild.errors import InputError
from minibuild.image.documents import image_files
from minibuild.image.tree import build_tree
from minibuild.label import Label
from minibuild.workspace import Workspace


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("label", help="an image target")
    p.add_argument("path", help="a path inside the image")
    p.add_argument("--json", action="store_true", help="print the chain as a JSON list on stdout")


def chain(closure: dict, layers: dict, path: str) -> list[str] | None:
    """Steps from a root to `path`, or None when the image does not hold it."""
    files = {f["path"]: f for f in image_files(layers)}
    tree, _ = build_tree({**closure, "entries": [e for e in closure["entries"] if e["kind"] != "file"]}, [], {})
    wanted = {path, tree.canonical(path)}
    by_path = {o["path"]: o for o in closure["objects"]}
    for obj in closure["objects"]:
        touched = set(tree.walk(obj["path"]))
        if not (wanted & touched or wanted & {obj["path"], obj["realpath"]}):
            continue
        steps = []
        o = obj
        while o is not None:
            loader = by_path.get(o["loader"]) if o["loader"] else None
            if loader is None:  # a binary, or a root runtime files or the probe added: say which
                steps.append(f"{o['path']} ({(files.get(o['realpath']) or {}).get('reason', 'binary')})")
            elif o.get("interpreter"):
                steps.append(f"  -> PT_INTERP of {loader['path']} -> {o['path']}")
            else:
                name = next((n for n, p in loader["needed"] if p == o["path"]), o["names"][0] if o["names"] else "?")
                steps.append(f"  -> DT_NEEDED `{name}` of {loader['path']} -> {o['path']}")
            o = loader
        steps.reverse()
        # docs/loader.md#g19: a library's name another object of its process answered to
        steps += [f"  -> DT_NEEDED `{m['name']}` of {m['requester']}: {m['reason']}"
                  for m in closure.get("already_loaded", ()) if obj["path"] in (m["requester"], m["provider"])]
        if path not in (obj["path"], obj["realpath"]):
            entry = files.get(tree.canonical(path))
            steps.append(f"  -> {entry['kind'] if entry else 'path'} {path}"
                         + (f" -> {entry['target']}" if entry and entry.get("target") else ""))
        return steps
    entry = files.get(tree.canonical(path)) or files.get(path)
    return [f"{entry['path']}: {entry['reason']}"] if entry else None


def run(args: argparse.Namespace) -> int:
    # lazy: rich, loaded only when something is drawn
    from minibuild.cli import ui

    workspace = Workspace.find()
    label = Label.parse(args.label, workspace.relative_dir(os.getcwd()))
    result = build(workspace, [str(label)], None, jobs=os.cpu_count() or 1)
    if not result.targets or not result.targets[0].summary:
        raise InputError(f"`{label}` is not an image", hint="`minibuild why` explains the files of image targets")
    dest = out_dir(workspace, label)
    with open(os.path.join(dest, "closure.json"), encoding="utf-8") as f:
        closure = json.load(f)
    with open(os.path.join(dest, "layers.json"), encoding="utf-8") as f:
        layers = json.load(f)
    steps = chain(closure, layers, args.path)
    if steps is None:
        raise InputError(f"`{args.path}` is not in `{label}`",
                         hint=f"`minibuild build {label}` lists every file of the image")
    if args.json:
        json.dump(steps, sys.stdout)
        sys.stdout.write("\n")
    else:
        for step in steps:
            ui.info(step)
    return 0
