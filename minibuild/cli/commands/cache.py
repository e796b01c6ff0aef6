"""`minibuild cache verify`: re-hash every stored blob and check every action cache entry."""

from __future__ import annotations

import argparse
import json
import sys

from minibuild.build import open_cache
from minibuild.workspace import Workspace


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=("verify",))
    p.add_argument("--json", action="store_true", help="print the counts as JSON on stdout")


def run(args: argparse.Namespace) -> int:
    # lazy: rich, loaded only when something is drawn
    from minibuild.cli import ui

    cache, _ = open_cache(Workspace.find())
    blobs = corrupt = 0
    for digest in cache.blobs():
        blobs += 1
        if not cache.verify_blob(digest):  # removes it: the action that made it runs again
            corrupt += 1
            ui.warn(f"blob `{digest}` did not hash to its name: removed")
    entries = dangling = 0
    for key, entry in cache.action_entries():
        entries += 1
        outputs = [o.get("digest") for o in (entry or {}).get("outputs", {}).values()]
        if entry is None or not all(d and cache.has_blob(d) for d in outputs + entry.get("blobs", [])):
            dangling += 1
            cache.discard_action(key)
    result = {"blobs": blobs, "corrupt_blobs": corrupt, "actions": entries, "discarded_actions": dangling}
    if args.json:
        json.dump(result, sys.stdout)
        sys.stdout.write("\n")
    ui.info(f"cache: {blobs} blobs, {corrupt} corrupt (removed); {entries} action entries, "
            f"{dangling} unusable (removed)")
    return 1 if corrupt else 0
