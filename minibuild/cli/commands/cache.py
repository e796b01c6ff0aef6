"""`minibuild cache verify` (re-hash every stored blob, check every action cache entry) and `minibuild cache gc`
(bring the local cache under a size, least recently used first): docs/cache.md."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from minibuild import cache_gc
from minibuild.build import cache_dir, open_cache, out_root
from minibuild.cache import Cache
from minibuild.errors import InputError
from minibuild.workspace import Workspace

DESCRIPTION = """\
The local cache (.minibuild/cache): the blobs actions wrote, named by their sha256, the action entries that
name them, unpacked package sysroots and downloaded .deb files (docs/cache.md).

  minibuild cache verify             re-hash every blob (a corrupt one is removed and rebuilt), drop entries
                                     whose blobs are gone
  minibuild cache gc --max-size 5GiB remove the least recently used entries, with the blobs no kept entry and
                                     nothing in .minibuild/out needs, until the cache is at most 5 GiB
  minibuild cache gc                 the same with the configured limit: MINIBUILD_CACHE_MAX_SIZE, or
                                     `[cache] max_size` of workspace.toml (also applied after each build that
                                     stored something)

Sizes: 5GiB, 500MB, 1.5G (k, M, G, T decimal; KiB, MiB, GiB, TiB binary) or a number of bytes.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = DESCRIPTION
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    sub = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p))
    sub.required = True
    verify = sub.add_parser("verify", help="re-hash every stored blob and check every action cache entry",
                            description="Re-hash every stored blob (a corrupt one is removed, and rebuilt by the "
                                        "next build) and remove action entries whose blobs are gone.")
    verify.add_argument("--json", action="store_true", help="print the counts as JSON on stdout")
    gc = sub.add_parser("gc", help="remove the least recently used entries until the cache fits a size",
                        description="Remove the least recently used action entries (each with the blobs and "
                                    "unpacked sysroots no kept entry and nothing in .minibuild/out needs), "
                                    "downloaded .deb files and stored analyses, until the cache is at most the "
                                    "limit. Waits for builds in progress to end.")
    gc.add_argument("--max-size", metavar="SIZE",
                    help="the limit (5GiB, 500MB, 1.5G, bytes); default: $MINIBUILD_CACHE_MAX_SIZE, then "
                         "`[cache] max_size` of workspace.toml")
    gc.add_argument("--dry-run", action="store_true", help="print what would be removed, remove nothing")
    gc.add_argument("--json", action="store_true", help="print counts and bytes before and after as JSON on stdout")


def run(args: argparse.Namespace) -> int:
    workspace = Workspace.find()
    if args.action == "gc":
        return _gc(args, workspace)
    return _verify(args, workspace)


def _verify(args: argparse.Namespace, workspace: Workspace) -> int:
    # lazy: rich, loaded only when something is drawn
    from minibuild.cli import ui

    cache, _ = open_cache(workspace)
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


def _limit(args: argparse.Namespace, workspace: Workspace) -> cache_gc.Limit:
    if args.max_size is not None:
        return cache_gc.Limit(cache_gc.size_setting(args.max_size, "--max-size"), "--max-size")
    limit = cache_gc.configured_limit(workspace, os.environ)
    if limit is None or limit.bytes is None:
        where = f" (`{cache_gc.ENV_MAX_SIZE}={os.environ[cache_gc.ENV_MAX_SIZE]}`)" if limit else ""
        raise InputError(f"no size to bring the cache under{where}",
                         hint="`minibuild cache gc --max-size 5GiB`, or set `max_size = \"5GiB\"` in `[cache]` of "
                              f"workspace.toml (or `{cache_gc.ENV_MAX_SIZE}`) to apply it after every build too")
    return limit


def _gc(args: argparse.Namespace, workspace: Workspace) -> int:
    # lazy: rich, loaded only when something is drawn
    from minibuild.cli import ui

    limit = _limit(args, workspace)
    cache = Cache(cache_dir(workspace))
    started = time.monotonic()
    if args.dry_run:
        with cache.in_use():  # a gc in progress ends first; builds may go on: nothing is removed
            report = cache_gc.collect(cache, str(workspace.root), out_root(workspace), limit.bytes or 0,
                                      dry_run=True)
    else:
        with cache.exclusive(on_wait=lambda: ui.info("waiting for the builds using the cache to end")):
            report = cache_gc.collect(cache, str(workspace.root), out_root(workspace), limit.bytes or 0)
    seconds = time.monotonic() - started
    if args.json:
        json.dump({**report.as_json(), "limit_from": limit.source, "seconds": round(seconds, 3)}, sys.stdout)
        sys.stdout.write("\n")
    elif args.dry_run:
        for r in report.removed:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.unit.last_used)) if r.unit.last_used else "never"
            sys.stdout.write(f"{ui.human(r.freed):>10}  last used {when}  {cache_gc.describe(cache, r.unit)}\n")
    _say(report, limit)
    return 0


def _say(report: cache_gc.GcReport, limit: cache_gc.Limit) -> None:
    """One line in words (bytes freed, before and after, the limit), and a warning when it is not met."""
    from minibuild.cli import ui  # lazy: rich

    before, after = report.before, report.after
    where = f"limit {ui.human(report.limit)} ({limit.source})"
    if not report.removed:
        ui.info(f"cache: {ui.human(before.bytes)}, within the {where}: nothing to remove")
    else:
        verb = "would free" if report.dry_run else "freed"
        what = [f"{before.entries - after.entries} action entries", f"{before.blobs - after.blobs} blobs"]
        if before.sysroots != after.sysroots:
            what.append(f"{before.sysroots - after.sysroots} unpacked sysroots")
        others = sum(1 for r in report.removed if r.unit.kind in ("analysis", "tmp"))
        if others:
            what.append(f"{others} other files")
        ui.info(f"cache: {verb} {ui.human(report.freed)} ({', '.join(what)}): "
                 f"{ui.human(before.bytes)} -> {ui.human(after.bytes)}, {where}")
    if report.over_limit:
        ui.warn(f"the cache is still over its limit: .minibuild/out holds {ui.human(report.pinned_bytes)} of it, "
                 "and what it holds stays (`minibuild clean` removes .minibuild/out)")
