"""What several commands share: the build options, building image targets, loading them into Docker."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Sequence
from typing import Any

from minibuild.build import build, out_dir
from minibuild.errors import EngineError, InputError
from minibuild.oci import daemon
from minibuild.remote_settings import RemoteChoice, remote_settings
from minibuild.workspace import Workspace


def _jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a number of at least 1, got `{text}`")
    return value


class _Offline(argparse.Action):
    """`--offline` holds for the whole build, down to the actions that fetch packages: it is set in the
    environment they read (MINIBUILD_OFFLINE), which also lets a CI job set it once."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        # lazy: the package fetcher (and its lock file model), imported only when --offline is given
        from minibuild.packages.fetch import OFFLINE_ENV

        os.environ[OFFLINE_ENV] = "1"
        setattr(namespace, self.dest, True)


def add_build_arguments(p: argparse.ArgumentParser) -> None:
    """The build options shared by build, test, load, run and push."""
    p.add_argument("-j", "--jobs", type=_jobs, default=os.cpu_count() or 1,
                   help="actions run at once (default: number of cores)")
    p.add_argument("--plain", action="store_true", help="one line per action instead of a live display")
    p.add_argument("--offline", action=_Offline, nargs=0,
                   help="download nothing: package sysroots use only the .deb files already in the cache")
    remote = p.add_argument_group("remote cache (docs/remote-cache.md)")
    remote.add_argument("--remote-cache", metavar="URL",
                        help="share actions through this cache: http(s)://HOST/PATH (Bazel HTTP cache), "
                             "grpc(s)://HOST:PORT (REAPI v2) or oci://HOST/REPOSITORY (an OCI registry); "
                             "default: $MINIBUILD_REMOTE_CACHE, then [cache] remote")
    remote.add_argument("--remote-cache-read-only", action="store_true",
                        help="fetch from the remote cache, never upload")
    remote.add_argument("--no-remote-cache", action="store_true", help="do not use a remote cache in this build")


def remote_cache(args: argparse.Namespace, workspace: Workspace) -> Any:
    """The remote cache client this build uses (`RemoteCache`), or None."""
    choice = RemoteChoice(url=getattr(args, "remote_cache", None),
                          read_only=getattr(args, "remote_cache_read_only", False),
                          disabled=getattr(args, "no_remote_cache", False))
    settings = remote_settings(workspace, choice)
    if settings is None or not settings.enabled:
        return None
    # lazy: requests or grpcio, loaded only when a remote cache is used
    from minibuild.remote import connect

    return connect(settings, cache_dir=workspace.cache_dir)


def build_images(patterns: Sequence[str], args: argparse.Namespace, *, quiet: bool = False) -> tuple[Any, list[Any]]:
    """Build `patterns` (no docker load); the Workspace and the image targets (TargetResults) among them.

    InputError if none of the targets is an image.
    """
    # lazy: rich, loaded only when something is drawn
    from minibuild.cli import ui

    workspace = Workspace.find()
    package = workspace.relative_dir(os.getcwd())
    progress = ui.Progress(args.plain or quiet)
    with progress.show():
        result = build(workspace, list(patterns), package, jobs=args.jobs, on_event=progress.event,
                       remote=remote_cache(args, workspace))
    for w in result.warnings:
        ui.warn(w)
    images = [t for t in result.targets if t.summary]
    if not images:
        kinds = ", ".join(f"`{t.label}` is a `{t.kind}`" for t in result.targets[:3])
        raise InputError(f"no image among the targets: {kinds or 'nothing matched'}",
                         hint="name an `image` target, e.g. `//images:bash`")
    return workspace, images


def build_records(patterns: Sequence[str], args: argparse.Namespace) -> tuple[Any, list[Any]]:
    """Build `patterns` without loading; (Workspace, one ImageRecord per image target, sorted by label).
    (Every build records each image in `.minibuild/history/`, so `minibuild diff` can compare with it later.)"""

    from minibuild.reports.catalog import ImageRecord  # lazy: only the report commands need it

    workspace, images = build_images(patterns, args, quiet=True)
    records = [ImageRecord(str(t.label), t.summary, out_dir(workspace, t.label))
               for t in sorted(images, key=lambda t: str(t.label))]
    return workspace, records


def load_images(root: str, images: Sequence[Any], *, required: bool = True,
                engine: daemon.EngineLoader | None = None) -> dict[str, str]:
    """Load each image's tarball into the engine; label -> "loaded" | "already loaded".

    Without a reachable engine: an EngineError when `required`, else one line saying so and nothing loaded.
    `engine` is the loader the caller started before its build (it connects meanwhile), else one is started here;
    images the caller sent it already (`send_image`, as each was finished) are not sent again.
    """
    # lazy: rich, loaded only when something is drawn
    from minibuild.cli import ui

    with contextlib.ExitStack() as stack:
        if engine is None:
            engine = stack.enter_context(daemon.EngineLoader())
        why = engine.ready()
        if why:
            if not required:
                ui.info(f"not loading images: {why} (they are in .minibuild/out; --no-load skips this)")
                return {}
            raise EngineError(f"cannot load images: {why}",
                              hint="start Docker or set DOCKER_HOST; the built images are in `.minibuild/out`")
        sent = engine.sent()
        for t in images:
            if t.summary["tag"] not in sent:
                send_image(root, engine, t)
        answers = engine.answers()
        return {str(t.label): "loaded" if answers[t.summary["tag"]] else "already loaded" for t in images}


def send_image(root: str, engine: daemon.EngineLoader, target: Any) -> None:
    """Hand an image target's tarball (a TargetResult with a summary) to the engine loader, which loads it meanwhile."""
    s = target.summary
    engine.send(os.path.join(root, s["tarball"]), s["tag"], s["config_digest"])
