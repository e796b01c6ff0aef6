"""The command line: parse arguments, dispatch to a command module, turn errors into exit codes.

Exit codes: 0 ok, 1 a build or test failed, 2 bad input or usage, 3 a bug in minibuild.
This is the only place that catches errors.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from minibuild import __version__
from minibuild.errors import MinibuildError

# Each module in minibuild/cli/commands exposes NAME, HELP, add_arguments(parser) and run(args) -> int.
COMMANDS = ("build", "graph", "query", "why", "closure", "push", "load", "run", "test", "cache", "clean",
            "size", "diff", "sbom", "report", "init", "add")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # usage errors are exit 2 with one clear line
        self.print_usage(sys.stderr)
        sys.stderr.write(f"error: {message}\nhint: `{self.prog} --help` lists the options\n")
        raise SystemExit(2)


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="minibuild",
        description="Build small, correct, reproducible container images of the programs you already have.",
    )
    parser.add_argument("--version", action="version", version=f"minibuild {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS:
        module = importlib.import_module(f"minibuild.cli.commands.{name}")
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._module.run(args))
    except MinibuildError as exc:
        from minibuild.build import BuildFailed
        from minibuild.cli import ui

        if isinstance(exc, BuildFailed):
            ui.build_failure(exc.failures)
            if any(not isinstance(e, MinibuildError) for _, e in exc.failures):
                return 3
        else:
            ui.error(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # noqa: BLE001 - anything else is our bug: say so, with the traceback
        from minibuild.cli import ui

        ui.bug(exc)
        return 3


if __name__ == "__main__":
    raise SystemExit(main())
