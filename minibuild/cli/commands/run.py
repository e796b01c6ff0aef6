"""`minibuild run`: build an image target, load it into the Docker engine, `docker run --rm` it."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys

from minibuild.cli.commands.common import add_build_arguments, build_images, load_images
from minibuild.errors import EngineError, InputError
from minibuild.oci import daemon

# As with `docker run`, options go before the label: everything after it is the container's arguments.


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_build_arguments(p)
    p.add_argument("--docker-arg", action="append", default=[], metavar="ARG",
                   help="an extra argument for `docker run` (repeatable), e.g. `--docker-arg=--network=none`")
    p.add_argument("label", metavar="LABEL", help="the image target to run; options go before it")
    p.add_argument("args", nargs=argparse.REMAINDER, metavar="ARG",
                   help="arguments for the container (after an optional `--`)")


def run(args: argparse.Namespace) -> int:
    with daemon.EngineLoader() as engine:  # connects in a process of its own while this one builds
        workspace, images = build_images([args.label], args)
        if len(images) != 1:
            raise InputError(f"`{args.label}` names {len(images)} images; `run` needs exactly one",
                             hint="name one image target, e.g. `//images:bash`")
        [image] = images
        load_images(str(workspace.root), images, engine=engine)
    docker = shutil.which("docker")
    if docker is None:
        raise EngineError("the `docker` command is not on PATH", hint="install the docker CLI (package docker.io)")
    tty = ["-i", "-t"] if sys.stdin.isatty() and sys.stdout.isatty() else ["-i"] if sys.stdin.isatty() else []
    container_args = args.args[1:] if args.args[:1] == ["--"] else args.args
    argv = [docker, "run", "--rm", *tty, *args.docker_arg, image.summary["tag"], *container_args]
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        code = subprocess.run(argv).returncode
    except OSError as exc:
        raise EngineError(f"cannot run `docker`: {exc.strerror or exc}") from None
    return code if code >= 0 else 128 - code  # killed by a signal: the shell's convention
