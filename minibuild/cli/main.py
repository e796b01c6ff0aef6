"""The command line: parse arguments, dispatch to a command module, turn errors into exit codes.

Exit codes: 0 ok, 1 a build or test failed, 2 bad input or usage, 3 a bug in minibuild.
This is the only place that catches errors.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import gc
import importlib
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from types import FrameType
from typing import NoReturn

from minibuild import __version__, sandbox
from minibuild.cli import startup
from minibuild.errors import MinibuildError

# Command -> one line of help. Each has a module minibuild/cli/commands/<name>.py with add_arguments(parser)
# and run(args) -> int; only the module of the command being run is imported, so start-up stays short
# whatever a command imports.
COMMANDS = {
    "build": "build targets (labels or patterns such as //images:bash, //images/..., //...)",
    "graph": "show the target graph of the workspace or of some targets",
    "query": "list targets (`targets //...`), what a target depends on (`deps //x`) "
             "or what depends on it (`rdeps //x`)",
    "rules": "list the rule kinds and macros BUILD files can use: where each comes from, its doc and attributes",
    "why": "show why a file is in an image: binary -> DT_NEEDED -> ... -> file, or the attribute that added it",
    "closure": "show the ELF closure (interpreter, libraries, symlinks) of programs, without running them",
    "push": "build an image target and push it to a registry (`minibuild push //images:bash --to host:5000/bash:1`)",
    "keygen": "write an ECDSA P-256 key pair for `push --sign` (private key encrypted with MINIBUILD_SIGNING_PASSWORD)",
    "verify": "check an image's signature and attestations in its registry (`minibuild verify REF --key KEY.pub`)",
    "load": "build image targets and load them into the Docker engine",
    "run": "build an image target, load it into Docker and run it (`minibuild run //images:bash -- -c 'echo hi'`)",
    "test": "build image_test targets and their images, load them into Docker and run their checks",
    "cache": "the local cache: `cache verify` re-hashes every blob, `cache gc --max-size 5GiB` bounds it",
    "clean": "remove .minibuild/out (and .minibuild/cache with --cache)",
    "size": "build images (no load) and show what each costs and what the whole set stores once",
    "diff": "show the files two images differ in (a build against the previous one, a recorded one, or OCI layouts)",
    "sbom": "write the SBOM of an image: every file with its checksums, the Debian packages, versions and licenses",
    "report": "build images (no load) and write an HTML page (treemaps, layers, catalog totals) or JSON",
    "lock": "resolve the package sysroots of workspace.toml and write minibuild.lock (`--update [PKG...]`, `--check`)",
    "init": "create a workspace: workspace.toml and images/BUILD.toml with an example image",
    "add": "add an image target (or update the one of that name) in its package's BUILD.toml, keeping comments",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # usage errors are exit 2 with one clear line
        self.print_usage(sys.stderr)
        sys.stderr.write(f"error: {message}\nhint: `{self.prog} --help` lists the options\n")
        raise SystemExit(2)


def make_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser, with the arguments of the command `argv` names (of every command when argv is None)."""
    parser = _Parser(
        prog="minibuild",
        description="Build small, correct, reproducible container images of the programs you already have.",
    )
    parser.add_argument("--version", action="version", version=f"minibuild {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    chosen = next((a for a in argv if not a.startswith("-")), None) if argv is not None else None
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if argv is None or name == chosen:
            module = importlib.import_module(f"minibuild.cli.commands.{name}")
            module.add_arguments(p)
            p.set_defaults(_module=module)
    return parser


class _Stopped(KeyboardInterrupt):
    """SIGINT or SIGTERM: the commands minibuild runs are killed, then the build unwinds as on Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _stop(signum: int, frame: FrameType | None) -> None:  # noqa: ARG001 - signal's handler signature
    sandbox.cancel_all()  # the worker threads waiting on them return at once and remove their scratch directories
    raise _Stopped(signum)


@contextlib.contextmanager
def _stoppable() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        # The program, not a caller in a process that goes on: whatever is left is freed by the exit, and the
        # interpreter's last full collection over it cost a cold build ~0.08 s (docs/architecture.md).
        atexit.register(gc.freeze)
        startup.hold_collector()  # until the build's first action (cli/startup.py)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = make_parser(argv).parse_args(argv)
    try:
        with _stoppable():
            return int(args._module.run(args))
    except MinibuildError as exc:
        # lazy: rich (and the build machinery), loaded only when an error is shown
        from minibuild.build import BuildFailed
        from minibuild.cli import ui

        if isinstance(exc, BuildFailed):
            ui.build_failure(exc.failures)
            if any(not isinstance(e, MinibuildError) for _, e in exc.failures):
                return 3
        else:
            ui.error(exc)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        sys.stderr.write("interrupted\n")
        return 128 + (exc.signum if isinstance(exc, _Stopped) else signal.SIGINT)
    except BrokenPipeError:
        return 0
    except Exception as exc:  # noqa: BLE001 - anything else is our bug: say so, with the traceback
        from minibuild.cli import ui  # lazy: rich

        ui.bug(exc)
        return 3


if __name__ == "__main__":
    raise SystemExit(main())
