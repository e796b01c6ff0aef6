"""What test rules hand to `minibuild test`: the image under test and what to check in it."""

from __future__ import annotations

from dataclasses import dataclass

from minibuild_rules.providers import ImageInfo


@dataclass(frozen=True)
class CommandCheck:
    """Run the image with `args` (and `entrypoint`, `env` if given); check the exit code and output regexes."""

    name: str
    args: tuple[str, ...]
    entrypoint: tuple[str, ...] | None  # None: the image's own entrypoint
    env: tuple[tuple[str, str], ...]
    exit_code: int
    stdout: str | None  # a regex searched line by line; "" means "empty"; None: not checked
    stderr: str | None
    timeout: float


@dataclass(frozen=True)
class FileCheck:
    """A path in the image's file system: whether it exists, its permission bits, a regex its content matches, its
    owner."""

    path: str
    exists: bool
    mode: int | None
    contains: str | None
    owner: str | None = None  # "NAME", "NAME:GROUP", "UID" or "UID:GID", names of the image's own files


@dataclass(frozen=True)
class MetadataCheck:
    """Expected fields of the image config; None means "not checked". `env` is a subset check."""

    entrypoint: tuple[str, ...] | None
    cmd: tuple[str, ...] | None
    user: str | None
    env: tuple[tuple[str, str], ...] | None
    workdir: str | None
    labels: tuple[tuple[str, str], ...] | None


@dataclass(frozen=True)
class ImageTestInfo:
    """An `image_test` target: the image it tests (its label and ImageInfo) and the checks to run in it."""

    image_label: str
    image: ImageInfo
    commands: tuple[CommandCheck, ...]
    files: tuple[FileCheck, ...]
    metadata: MetadataCheck | None
