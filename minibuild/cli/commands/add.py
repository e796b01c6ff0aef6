"""`minibuild add //pkg:name /usr/bin/prog ...`: add an `[[image]]` target to a BUILD.toml, or edit it in place.

The file is edited with tomlkit: comments, key order and formatting of everything else stay as they were.
"""

from __future__ import annotations

import argparse

from minibuild.cli.scaffold import add_image
from minibuild.label import Label
from minibuild.workspace import Workspace


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("label", help="the target to add or edit, e.g. //images:jq")
    p.add_argument("binaries", nargs="+", metavar="BINARY", help="absolute paths in the sysroot, e.g. /usr/bin/jq")
    p.add_argument("--entrypoint", help="the entrypoint (default: the first binary)")
    p.add_argument("--cmd", action="append", metavar="ARG", help="an argument of the default command (repeat)")


def run(args: argparse.Namespace) -> int:
    import os

    # lazy: rich, loaded only when something is drawn
    from minibuild.cli import ui

    workspace = Workspace.find()
    label = Label.parse(args.label, workspace.relative_dir(os.getcwd()))
    path, created = add_image(workspace, label, args.binaries, entrypoint=args.entrypoint, cmd=args.cmd)
    ui.info(f"{'added' if created else 'updated'} `{label}` in {path}")
    missing = [b for b in args.binaries if not os.path.lexists(workspace.sysroot().rstrip("/") + b)]
    for b in missing:
        ui.warn(f"`{b}` does not exist in sysroot `{workspace.sysroot()}`: the build will fail until it does")
    return 0
