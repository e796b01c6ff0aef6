"""`minibuild diff`: the files two images differ in.

  minibuild diff LABEL                     this build against the previous one recorded for LABEL
  minibuild diff LABEL --against DIGEST    against a recorded build (a digest or a prefix of one)
  minibuild diff LABEL --against DIR       against an OCI image layout on disk
  minibuild diff A B                       A and B each a label (its current build) or an OCI layout directory
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from minibuild.cli.commands import common
from minibuild.cli.commands.common import build_records
from minibuild.errors import InputError
from minibuild.image import history
from minibuild.label import Label
from minibuild.reports.diff import diff_files, files_from_layout, files_from_summary, is_layout


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("before", metavar="LABEL_OR_LAYOUT", help="an image target or an OCI layout directory")
    p.add_argument("after", nargs="?", metavar="LABEL_OR_LAYOUT",
                   help="compare the first with this one instead of with a recorded build")
    p.add_argument("--against", metavar="DIGEST_OR_LAYOUT",
                   help="a recorded build of LABEL (digest or prefix), or an OCI layout directory")
    p.add_argument("--platform", help="which image of a multi-platform layout (default: the host's)")
    common.add_build_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def _label_side(ref: str, args: argparse.Namespace) -> tuple[Any, Any, dict[str, Any]]:
    """(workspace, label, current summary) of an image target, built now."""
    workspace, [record] = build_records([ref], args)
    return workspace, Label.parse(record.label), record.summary


def _side(ref: str, args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """(description, files) of a label's current build or of a layout directory."""
    if os.path.isdir(ref) and is_layout(ref):
        files, digest, _ = files_from_layout(ref, args.platform)
        return {"name": ref, "kind": "layout", "digest": digest}, files
    _, label, summary = _label_side(ref, args)
    return {"name": str(label), "kind": "build", "digest": summary["digest"]}, files_from_summary(summary)


def run(args: argparse.Namespace) -> int:
    if args.after and args.against:
        raise InputError("give either a second image or `--against`, not both")
    if args.after:
        a, a_files = _side(args.before, args)
        b, b_files = _side(args.after, args)
    else:
        if os.path.isdir(args.before) and is_layout(args.before):
            raise InputError(f"`{args.before}` is an OCI layout: name a second one to compare it with",
                             hint="`minibuild diff LAYOUT_A LAYOUT_B`")
        workspace, label, summary = _label_side(args.before, args)
        b, b_files = {"name": str(label), "kind": "build", "digest": summary["digest"]}, files_from_summary(summary)
        if args.against and os.path.isdir(args.against):
            if not is_layout(args.against):
                raise InputError(f"`{args.against}` is a directory but not an OCI layout (no `oci-layout` file)")
            a_files, digest, _ = files_from_layout(args.against, args.platform)
            a = {"name": args.against, "kind": "layout", "digest": digest}
        else:
            old = history.load(workspace.state_dir, label, args.against) if args.against else \
                history.previous(workspace.state_dir, label, summary["digest"])
            if old is None:
                raise InputError(
                    f"no earlier build of `{label}` is recorded to compare with",
                    hint="builds are recorded by `minibuild size`, `diff`, `sbom` and `report`; change something "
                    "and run `minibuild diff` again, or use `--against DIR` with an OCI layout")
            a = {"name": f"{label}@{old['digest'][:19]}", "kind": "build", "digest": old["digest"]}
            a_files = files_from_summary(old)
        b["name"] = f"{label}@{summary['digest'][:19]}"
    report = {"a": a, "b": b, **diff_files(a_files, b_files)}
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        from minibuild.cli import render

        render.diff_table(report)
    return 0
