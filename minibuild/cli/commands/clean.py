"""`minibuild clean`: remove the outputs (and with --cache, the cache). Never through a symbolic link: a link at
`.minibuild/out` or `.minibuild/cache` is removed itself, what it points to is left alone (docs/cache.md)."""

from __future__ import annotations

import argparse
import os
import shutil
from collections.abc import Callable

from minibuild.cache import TAG
from minibuild.errors import BuildError, InputError
from minibuild.workspace import CACHE_ENV, Workspace


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache", action="store_true",
                   help=f"remove the action cache and the blob store too (`.minibuild/cache`, or ${CACHE_ENV})")


def run(args: argparse.Namespace) -> int:
    # lazy: rich, loaded only when something is drawn
    from minibuild.cli import ui

    workspace = Workspace.find()
    state = workspace.checked_state_dir()  # `.minibuild` itself a link: refused
    removed = []
    for sub in ("out", "cache") if args.cache else ("out",):
        path = os.path.join(state, sub)
        rel = os.path.relpath(path, workspace.root)
        if os.path.islink(path):
            target = os.readlink(path)
            _remove(path, os.unlink)
            removed.append(f"{rel} (a symbolic link: what it points to, `{target}`, is left alone)")
        elif os.path.isdir(path):
            _remove(path, shutil.rmtree)
            removed.append(rel)
    if args.cache and os.environ.get(CACHE_ENV, "").strip():
        removed += _empty_cache(workspace.cache_dir)
    ui.info(f"removed {', '.join(removed)}" if removed else "nothing to remove")
    return 0


def _empty_cache(root: str) -> list[str]:
    """Everything in the cache `$MINIBUILD_CACHE` names, not the directory itself, and only when it is one
    (minibuild marks its caches with CACHEDIR.TAG)."""
    if not os.path.isdir(root):
        return []
    if not os.path.isfile(os.path.join(root, TAG)):
        raise InputError(f"${CACHE_ENV} names `{root}`, which is not a minibuild cache (it has no {TAG}): "
                         "nothing there was removed",
                         hint=f"remove it yourself if it is meant to go, or unset {CACHE_ENV}")
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name)
        _remove(path, shutil.rmtree if os.path.isdir(path) and not os.path.islink(path) else os.unlink)
    return [f"the cache in `{root}` (${CACHE_ENV})"]


def _remove(path: str, how: Callable[[str], object]) -> None:
    try:
        how(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise BuildError(f"cannot remove `{exc.filename or path}`: {exc.strerror}",
                         hint="check its permissions (what could be removed is gone)") from None
