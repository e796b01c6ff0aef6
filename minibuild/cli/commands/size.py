"""`minibuild size PATTERN`: per image files, bytes, layers, bytes shared with the others, and catalog totals."""

from __future__ import annotations

import argparse
import json
import sys

from minibuild.cli.commands import common
from minibuild.cli.commands.common import build_records
from minibuild.reports.size import sizes


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("patterns", nargs="+", metavar="PATTERN", help="image targets, e.g. //... or //images:bash")
    common.add_build_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout instead of the table")


def run(args: argparse.Namespace) -> int:
    _, records = build_records(args.patterns, args)
    report = sizes(records)
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        from minibuild.cli import render

        render.size_table(report)
    return 0
