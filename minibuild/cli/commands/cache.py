"""`minibuild cache verify` (re-hash every stored blob, check every action cache entry) and `minibuild cache gc`
(bring the local cache under a size, least recently used first): docs/cache.md."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import stat
import sys
import time
from collections import Counter
from collections.abc import Callable

from minibuild import cache_gc
from minibuild.build import cache_dir, open_cache, out_root
from minibuild.cache import Cache, EntryError, StaleEntry, parse_entry
from minibuild.errors import InputError
from minibuild.workspace import Workspace

DESCRIPTION = """\
The local cache (.minibuild/cache, or $MINIBUILD_CACHE): the blobs actions wrote, named by their sha256, the
action entries that name them, unpacked package sysroots and downloaded .deb files (docs/cache.md).

  minibuild cache verify             re-hash every blob (a corrupt one is removed and rebuilt), check every
                                     entry (a damaged one is removed), drop entries whose blobs are gone
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
                                        "next build), check every action entry (one damaged or tampered with is "
                                        "removed, and its action runs again) and remove entries whose blobs are "
                                        "gone. What cannot be read is said, and left in place. Exit 1 when "
                                        "something was found or could not be checked.")
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
    counts: Counter[str] = Counter()
    with cache.in_use():  # a gc in progress ends first: what it removes is not taken for damage
        _verify_blobs(cache, counts, ui.warn)
        _verify_entries(cache, counts, ui.warn)
    result = {k: counts[k] for k in ("blobs", "corrupt_blobs", "actions", "discarded_actions", "invalid_actions",
                                     "unchecked")}
    if args.json:
        json.dump(result, sys.stdout)
        sys.stdout.write("\n")
    ui.info(f"cache: {counts['blobs']} blobs, {counts['corrupt_blobs']} corrupt (removed); {counts['actions']} action "
            f"entries, {counts['discarded_actions']} unusable (removed), {counts['invalid_actions']} of them damaged "
            "or tampered with" + (f"; {counts['unchecked']} not checked" if counts["unchecked"] else ""))
    return 1 if counts["corrupt_blobs"] or counts["invalid_actions"] or counts["unchecked"] else 0


def _verify_blobs(cache: Cache, counts: Counter[str], warn: Callable[[str], None]) -> None:
    """Re-hash every blob; a corrupt one is removed, and so is a file in no blob's place (a link, a name that is no
    digest), never followed. What cannot be read or removed is left, and said."""
    for path, problem in cache.store_files("cas"):
        rel = os.path.relpath(path, cache.root)
        if problem is not None:
            counts["unchecked"] += 1
            warn(f"cannot list `{rel}` ({problem}): the blobs in it were not checked")
            continue
        counts["blobs"] += 1
        digest = cache.blob_name(path)
        status = cache.verify_blob(digest) if digest else _remove(path)
        if status == "corrupt":
            counts["corrupt_blobs"] += 1
            warn(f"blob `{digest}` did not hash to its name: removed" if digest else
                 f"`{rel}` is no blob (a blob is a file named by its sha256): removed")
        elif status != "ok":
            counts["unchecked"] += 1
            warn(f"blob `{digest or rel}` {status}")


def _verify_entries(cache: Cache, counts: Counter[str], warn: Callable[[str], None]) -> None:
    """Check every action entry (cache.parse_entry), its blobs there with the sizes it gives them. A damaged one is
    removed and said; one of an older minibuild, or whose blobs are gone, is removed quietly."""
    for path, problem in cache.store_files("ac"):
        rel = os.path.relpath(path, cache.root)
        if problem is not None:
            counts["unchecked"] += 1
            warn(f"cannot list `{rel}` ({problem}): the entries in it were not checked")
            continue
        counts["actions"] += 1
        try:
            why = _entry_problem(cache, path)
        except _Unchecked as exc:
            counts["unchecked"] += 1
            warn(f"action entry `{rel}` {exc}: not checked, left in place")
            continue
        if why is None:
            continue
        status = _remove(path)
        if status != "corrupt":
            counts["unchecked"] += 1
            warn(f"action entry `{rel}` is unusable ({why or 'its blobs are gone'}) and {status}")
            continue
        counts["discarded_actions"] += 1
        if why:
            counts["invalid_actions"] += 1
            warn(f"action entry `{rel}`: {why}: removed (the action runs again)")


class _Unchecked(Exception):
    """What could not be read, so not checked: left in place."""


def _entry_problem(cache: Cache, path: str) -> str | None:
    """Why an entry file cannot be used: a reason, "" when it is merely useless (an older format, blobs gone), None
    when it is fine; _Unchecked when it (or a blob it names) cannot be read."""
    key = os.path.basename(path).removesuffix(".json")
    if not (path.endswith(".json") and os.path.dirname(path) == os.path.dirname(cache.ac_path(key))):
        return "it is no entry (an entry is `ac/<2 hex>/<key>.json`)"
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return "it is not a regular file"
        with open(path, "rb") as f:
            entry = parse_entry(f.read(), key)
    except StaleEntry:
        return ""
    except EntryError as exc:
        return str(exc)
    except OSError as exc:
        raise _Unchecked(f"cannot be read ({exc.strerror})") from None
    sizes = {d: o["size"] for o in entry["outputs"].values() for d in [o["digest"]]}
    for digest in [*sizes, *entry["blobs"]]:
        try:
            size = os.lstat(cache.blob_path(digest)).st_size
        except FileNotFoundError:
            return ""
        except OSError as exc:
            raise _Unchecked(f"names blob `{digest}`, which cannot be read ({exc.strerror})") from None
        if digest in sizes and size != sizes[digest]:
            return f"it says an output of {sizes[digest]} bytes is stored as blob `{digest}`, of {size}"
    return None


def _remove(path: str) -> str:
    """Remove a file (or a link, not what it points to; or a directory): "corrupt" once gone, else why not."""
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        return f"cannot be removed ({exc.strerror}): left in place"
    return "corrupt"


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
