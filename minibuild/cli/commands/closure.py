"""`minibuild closure`: the files the loader would open for some programs, resolved without running them."""

from __future__ import annotations

import argparse
import json
import sys

from minibuild import elf
from minibuild.errors import ElfError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH", help="absolute in-image paths of programs or scripts")
    p.add_argument("--sysroot", default="/", metavar="DIR", help="root filesystem the paths live in (default: /)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--cpu-level", metavar="LEVEL",
                   help="resolve glibc-hwcaps for this CPU (e.g. `x86-64-v3`); default: baseline plus every variant")
    p.add_argument("--platform", metavar="NAME", help="value of `$PLATFORM` (default: the baseline of the machine)")
    p.add_argument("--env", action="append", default=[], metavar="K=V",
                   help="the image's environment (LD_LIBRARY_PATH, PATH for `#!/usr/bin/env`); repeatable")
    p.add_argument("--workdir", default="/", metavar="DIR", help="the container's working directory (default: /)")
    p.add_argument("--allow-missing", action="store_true",
                   help="list libraries that cannot be found instead of failing (like ldd's `not found`)")
    p.add_argument("--no-check-versions", action="store_true", help="skip the symbol version check (G17)")
    p.add_argument("--why", metavar="PATH", help="explain why an in-image path is part of the closure")


def parse_env(items: list[str]) -> tuple[tuple[str, str], ...]:
    env = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ElfError(f"`--env {item}` is not of the form `KEY=VALUE`")
        env[key] = value
    return tuple(sorted(env.items()))


def run(args: argparse.Namespace) -> int:
    options = elf.ResolveOptions(
        env=parse_env(args.env), workdir=args.workdir, cpu_level=args.cpu_level, platform=args.platform,
        check_versions=not args.no_check_versions, allow_missing=args.allow_missing,
    )
    # One Session for every path: the sysroot does not change during one command, so lookups made for one
    # program serve the next (one-shot resolve() calls would re-check each with an lstat).
    session = elf.Session(args.sysroot)
    closures = {path: session.resolve([path], options) for path in args.paths}
    if args.why:
        chains = {path: elf.why(c, args.why) for path, c in closures.items() if _has(c, args.why)}
        if not chains:
            raise ElfError(f"`{args.why}` is not part of the closure of {', '.join(f'`{p}`' for p in args.paths)}")
        if args.json:
            json.dump({"path": args.why, "chains": chains}, sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            from minibuild.cli import ui

            for chain in chains.values():
                ui.print_tree(_chain_tree(chain))
        return 0
    if args.json:
        # One write: json.dump would make one write call per token (~90,000 for a thousand programs).
        sys.stdout.write(json.dumps(elf.closure_json(closures), indent=2) + "\n")
        return 0
    # lazy: rich, loaded only when something is drawn
    from minibuild.cli import ui

    for closure in closures.values():
        for tree in elf.closure_tree(closure):
            ui.print_tree(tree)
        for warning in closure.warnings:
            ui.warn(warning)
    return 0


def _has(closure, path: str) -> bool:
    return any(e.path == path for e in closure.entries) or any(
        o.path == path or o.realpath == path for o in closure.objects)


def _chain_tree(chain: list[str]) -> dict:
    node: dict = {"label": chain[-1], "children": []}
    for label in reversed(chain[:-1]):
        node = {"label": label, "children": [node]}
    return node
