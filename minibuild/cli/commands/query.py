"""`minibuild query`: targets, dependencies and reverse dependencies, one label per line on stdout."""

from __future__ import annotations

import argparse
import os
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", choices=("targets", "deps", "rdeps"))
    p.add_argument("patterns", nargs="+", metavar="LABEL")
    p.add_argument("--universe", default="//...", help="where `rdeps` looks for dependents (default: //...)")


def run(args: argparse.Namespace) -> int:
    from minibuild.analysis import Analysis
    from minibuild.workspace import Workspace

    workspace = Workspace.find()
    analysis = Analysis(workspace)
    here = workspace.relative_dir(os.getcwd())
    labels = analysis.expand(args.patterns, here)
    if args.kind == "targets":
        found = set(labels)
    elif args.kind == "deps":
        found = {ct.label for ct in analysis.order(labels)}
    else:
        universe = analysis.order(analysis.expand([args.universe], here))
        dependents: dict[object, set[object]] = {}
        for ct in universe:
            for _, dep in ct.deps:
                dependents.setdefault(dep, set()).add(ct.label)
        found, todo = set(labels), list(labels)
        while todo:
            for d in dependents.get(todo.pop(), ()):
                if d not in found:
                    found.add(d)
                    todo.append(d)
    sys.stdout.write("".join(f"{label}\n" for label in sorted(found)))
    return 0
