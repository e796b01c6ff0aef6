"""`minibuild load`: build image targets and load them into the Docker engine."""

from __future__ import annotations

import argparse
import json
import sys

from minibuild.cli.commands import common
from minibuild.cli.commands.common import build_images, load_images
from minibuild.oci import daemon


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("patterns", nargs="+", metavar="LABEL", help="image targets to build and load")
    common.add_build_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def run(args: argparse.Namespace) -> int:
    # lazy: rich, loaded only when something is drawn
    from minibuild.cli import ui

    with daemon.EngineLoader() as engine:  # connects in a process of its own while this one builds
        workspace, images = build_images(args.patterns, args, quiet=args.json)
        loaded = load_images(str(workspace.root), images, engine=engine)
    if args.json:
        out = {"images": [{"label": str(t.label), "tag": t.summary["tag"], "digest": t.summary["digest"],
                           "loaded": loaded[str(t.label)]} for t in images]}
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for t in images:
            ui.info(f"{t.label}: docker {loaded[str(t.label)]} as {t.summary['tag']} ({t.summary['digest']})")
    return 0
