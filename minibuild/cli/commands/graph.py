"""`minibuild graph`: the targets (and with --actions, the actions) and their edges."""

from __future__ import annotations

import argparse
import json
import os
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("patterns", nargs="*", metavar="LABEL", default=["//..."], help="targets (default: //...)")
    p.add_argument("--format", choices=("tree", "dot", "json", "mermaid"), default="tree")
    p.add_argument("--actions", action="store_true", help="include the actions each target registers")


def run(args: argparse.Namespace) -> int:
    from minibuild.analysis import Analysis
    from minibuild.cli import ui
    from minibuild.workspace import Workspace

    workspace = Workspace.find()
    analysis = Analysis(workspace)
    roots = analysis.expand(args.patterns, workspace.relative_dir(os.getcwd()))
    configured = analysis.analyse(roots) if args.actions else analysis.order(roots)
    nodes = {str(ct.label): ct for ct in configured}
    edges = {str(ct.label): sorted({str(d) for _, d in ct.deps}) for ct in configured}
    actions = {str(ct.label): [a.id for a in ct.actions] for ct in configured} if args.actions else {}
    if args.format == "json":
        json.dump({"targets": [{"label": k, "rule": v.target.rule, "deps": edges[k],
                                **({"actions": actions[k]} if args.actions else {}),
                                **({"generator": {"macro": g.macro, "name": g.name}}
                                   if (g := v.target.generator) else {})}
                               for k, v in sorted(nodes.items())]}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif args.format == "dot":
        lines = ["digraph minibuild {", "  rankdir=LR;"]
        for k, v in sorted(nodes.items()):
            lines.append(f'  "{k}" [label="{k}\\n({v.target.rule})"];')
            for a in actions.get(k, []):
                lines.append(f'  "{a}" [shape=box];')
                lines.append(f'  "{k}" -> "{a}" [style=dashed];')
            for d in edges[k]:
                lines.append(f'  "{k}" -> "{d}";')
        lines.append("}")
        sys.stdout.write("\n".join(lines) + "\n")
    elif args.format == "mermaid":
        ids = {k: f"t{i}" for i, k in enumerate(sorted(nodes))}
        lines = ["graph LR"]
        for k, v in sorted(nodes.items()):
            lines.append(f'  {ids[k]}["{k} ({v.target.rule})"]')
            for d in edges[k]:
                lines.append(f"  {ids[k]} --> {ids[d]}")
        sys.stdout.write("\n".join(lines) + "\n")
    else:
        children = {k: edges[k] + [f"action {a}" for a in actions.get(k, [])] for k in nodes}
        labelled = {str(r) for r in roots}
        ui.graph_tree(f"workspace `{workspace.config.workspace.name}`",
                      {f"{k} ({nodes[k].target.rule})": [f"{c} ({nodes[c].target.rule})" if c in nodes else c
                                                         for c in v] for k, v in children.items()},
                      [f"{k} ({nodes[k].target.rule})" for k in sorted(labelled)])
    return 0
