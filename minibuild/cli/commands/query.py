"""`minibuild query`: targets, dependencies and reverse dependencies, one label per line on stdout.

`--output json` gives one object per target instead: its label, rule, the file and line it was declared at, and
`generator`, the macro table it was made from (`{"macro": "program_images", "name": "tools"}`) or null.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from minibuild.label import Label
    from minibuild.workspace import Target


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", choices=("targets", "deps", "rdeps"))
    p.add_argument("patterns", nargs="+", metavar="LABEL")
    p.add_argument("--universe", default="//...", help="where `rdeps` looks for dependents (default: //...)")
    p.add_argument("--output", choices=("label", "json"), default="label",
                   help="`json`: label, rule, file, line and the macro table (`generator`) of each target")


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
        dependents: dict[Label, set[Label]] = {}
        for ct in universe:
            for _, dep in ct.deps:
                dependents.setdefault(dep, set()).add(ct.label)
        found, todo = set(labels), list(labels)
        while todo:
            for d in dependents.get(todo.pop(), ()):
                if d not in found:
                    found.add(d)
                    todo.append(d)
    if args.output == "json":
        json.dump([_target_json(workspace.target(label)) for label in sorted(found)], sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write("".join(f"{label}\n" for label in sorted(found)))
    return 0


def _target_json(target: Target) -> dict[str, object]:
    g = target.generator
    return {"label": str(target.label), "rule": target.rule, "file": target.file, "line": target.line or None,
            "generator": {"macro": g.macro, "name": g.name} if g else None}
