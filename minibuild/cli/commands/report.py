"""`minibuild report PATTERN --html FILE`: one self-contained page with a treemap per image; `--json` too."""

from __future__ import annotations

import argparse
import sys

from minibuild.cli.commands import common
from minibuild.cli.commands.common import build_records
from minibuild.errors import InputError
from minibuild.reports import html


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("patterns", nargs="+", metavar="PATTERN", help="image targets, e.g. //...")
    p.add_argument("--html", metavar="FILE", help="write the page here (self-contained: no network needed)")
    p.add_argument("--json", action="store_true", help="print the report's data as JSON on stdout")
    p.add_argument("--title", help="the page's title (default: the workspace's name and the patterns)")
    common.add_build_arguments(p)


def run(args: argparse.Namespace) -> int:
    # lazy: rich, loaded only when something is drawn
    from minibuild.cli import ui

    if not args.html and not args.json:
        raise InputError("say what to write: `--html FILE`, `--json`, or both",
                         hint="`minibuild size PATTERN` prints the sizes as a table")
    workspace, records = build_records(args.patterns, args)
    title = args.title or f"{workspace.root.name}: {' '.join(args.patterns)}"
    if args.html:
        data = html.write_html(records, args.html, title)
        ui.info(f"wrote {args.html}: {len(records)} images")
    else:
        data = html.report(records)
    if args.json:
        sys.stdout.write(html.dumps(data) + "\n")
    return 0
