"""`minibuild init [DIR]`: a new workspace with a commented workspace.toml and an example image package."""

from __future__ import annotations

import argparse

from minibuild.cli.scaffold import init_workspace


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("directory", nargs="?", default=".", metavar="DIR", help="where (default: here; created if missing)")
    p.add_argument("--name", help="the workspace's name (default: the directory's name)")


def run(args: argparse.Namespace) -> int:
    # lazy: rich, loaded only when something is drawn
    from minibuild.cli import ui

    written = init_workspace(args.directory, args.name)
    for path in written:
        ui.info(f"wrote {path}")
    ui.info("next: `minibuild build //...`, then `minibuild add //images:NAME /usr/bin/PROGRAM` for more images")
    return 0
