"""`minibuild build`: build targets, load images into Docker, print what went into them."""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import sys
import time

from minibuild.build import TargetResult, action_counts, build
from minibuild.cli.commands import common
from minibuild.oci import daemon
from minibuild.workspace import Workspace


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("patterns", nargs="+", metavar="LABEL", help="targets to build")
    common.add_build_arguments(p)
    p.add_argument("-k", "--keep-going", action="store_true",
                   help="build everything that does not depend on a failure, report all failures at the end")
    p.add_argument("--no-load", action="store_true", help="do not load images into the Docker engine")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout instead of tables")
    p.add_argument("--quiet", "-q", action="store_true", help="no per-file tables")
    p.add_argument("--explain", action="store_true", help="say, for every action that ran, what changed")


def run(args: argparse.Namespace) -> int:
    # lazy: rich, loaded only when something is drawn
    from minibuild.cli import ui

    started = time.monotonic()
    workspace = Workspace.find()
    package = workspace.relative_dir(os.getcwd())
    with contextlib.ExitStack() as stack:
        # Started first: it connects to the engine in a process of its own while this one builds.
        engine = None if args.no_load else stack.enter_context(daemon.EngineLoader())
        progress = ui.Progress(args.plain or args.json)
        root = str(workspace.root)
        # Each image is handed to the loader as soon as it is finished: the engine loads it while the rest builds.
        early = None if engine is None else functools.partial(_send_if_image, root, engine)
        with progress.show():
            try:
                result = build(workspace, args.patterns, package, jobs=args.jobs, keep_going=args.keep_going,
                               on_event=progress.event, remote=common.remote_cache(args, workspace), on_finished=early)
            except Exception:
                if engine is not None:  # a build that failed loads nothing: what was loaded meanwhile is undone
                    _undo(engine)
                raise
        images = [t for t in result.targets if t.summary]
        loaded: dict[str, str] = {}
        if images and engine is not None:
            loaded = common.load_images(root, images, required=False, engine=engine)
    for w in result.warnings:
        ui.warn(w)
    if args.explain:
        ui.explain([(r.action.description, r.reason) for r in result.results.values() if not r.cached])
    if args.json:
        out = {
            "targets": [
                {
                    "label": str(t.label),
                    "kind": t.kind,
                    "rebuilt": t.rebuilt,
                    "actions": t.actions,
                    **({"explain": t.reasons} if args.explain else {}),
                    "outputs": t.outputs,
                    **({k: t.summary[k] for k in ("tag", "digest", "size", "compressed_size", "oci", "tarball",
                                                "layers")}
                       | {"files": len([f for f in t.summary["files"] if f["kind"] == "file"]),
                          "loaded": loaded.get(str(t.label), "no")} if t.summary else {}),
                }
                for t in result.targets
            ],
            "actions": action_counts(list(result.results.values())),
            "bytes": {"downloaded": result.bytes_downloaded, "uploaded": result.bytes_uploaded},
        }
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for t in images:
            summary = t.summary
            assert summary is not None  # `images` holds the targets with a summary
            if not args.quiet:
                ui.image_report(str(t.label), summary, t.rebuilt)
            if str(t.label) in loaded:
                ui.info(f"  docker {loaded[str(t.label)]} as {summary['tag']}")
        ui.summary(len(result.targets), result.run, result.cached - result.remote, time.monotonic() - started,
                   remote=result.remote, down=result.bytes_downloaded, up=result.bytes_uploaded)
    return 0


def _send_if_image(root: str, engine: daemon.EngineLoader, target: TargetResult) -> None:
    if target.summary:
        common.send_image(root, engine, target)


def _undo(engine: daemon.EngineLoader) -> None:
    from minibuild.cli import ui  # lazy: rich, loaded only when something is drawn

    try:
        problems = engine.undo()
    except RuntimeError as exc:  # the loader's own failure must not hide the build's
        problems = [str(exc)]
    for p in problems:
        ui.warn(f"the build failed, but {p}")
