"""`minibuild clean`: remove the outputs (and with --cache, the cache)."""

from __future__ import annotations

import argparse
import os
import shutil

from minibuild.workspace import Workspace


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache", action="store_true", help="remove the action cache and the blob store too")


def run(args: argparse.Namespace) -> int:
    # lazy: rich, loaded only when something is drawn
    from minibuild.cli import ui

    workspace = Workspace.find()
    removed = []
    for sub in ("out", "cache") if args.cache else ("out",):
        path = os.path.join(workspace.state_dir, sub)
        if os.path.exists(path):
            shutil.rmtree(path)
            removed.append(os.path.relpath(path, workspace.root))
    ui.info(f"removed {', '.join(removed)}" if removed else "nothing to remove")
    return 0
