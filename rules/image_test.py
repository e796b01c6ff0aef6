"""`image_test`: checks run in a built image by `minibuild test`, in the style of container-structure-test.

    [[image_test]]
    name = "bash_test"
    image = ":bash"
    commands = [{ args = ["-c", "echo ok"], stdout = "^ok$" }]
    files = [{ path = "/etc/passwd", mode = "0644", contains = "^root:" }]
    metadata = { entrypoint = ["/bin/bash"], env = { PATH = "/bin:/usr/bin" } }

Analysis only records what to check: the rule registers no action, and nothing runs a container until
`minibuild test` does. Regexes are compiled here, so a bad one is an error naming its attribute before
anything is built.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, field_validator, model_validator

from minibuild.errors import InputError
from minibuild.label import Label
from minibuild.rule import Attrs, LabelAttr, RuleContext, rule
from minibuild_rules.common import Mode, image_path
from minibuild_rules.image_attrs import check_account
from minibuild_rules.providers import ImageInfo
from minibuild_rules.test_providers import CommandCheck, FileCheck, ImageTestInfo, MetadataCheck


def _check_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"invalid regular expression `{value}`: {exc}") from None
    return value


# A Python regular expression, searched line by line (re.MULTILINE); "" means "must be empty".
Regex = Annotated[str, AfterValidator(_check_regex)]


class CommandSpec(Attrs):
    name: str = ""
    """What the check is called in reports; empty: the command line."""
    args: list[str] = []
    """The arguments (the container's `Cmd`); empty: the image's own `cmd`."""
    entrypoint: list[str] | None = None
    """Replaces the image's entrypoint (as `docker run --entrypoint`), e.g. `["/bin/bash"]`."""
    env: dict[str, str] = {}
    """More environment variables for the command."""
    exit_code: int = 0
    """The exit code expected; a program that cannot be executed is 127 (not found) or 126."""
    stdout: Regex | None = None
    """A regular expression standard output must match (searched line by line); `""`: it must be empty."""
    stderr: Regex | None = None
    """The same for standard error."""
    timeout: float = 60.0
    """Seconds; a command still running then is killed and the check fails."""

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("timeout is a positive number of seconds")
        return v


class FileSpec(Attrs):
    path: str
    """An absolute path in the image."""
    exists: bool = True
    """`false`: the check passes when the path is absent (then no `mode`, `contains` or `owner`)."""
    mode: Mode | None = None
    """The permission bits expected, an octal string such as `"0644"` or `"4755"`."""
    contains: Regex | None = None
    """A regular expression the file's content must match (regular files only)."""
    owner: str | None = None
    """Who owns it, as the engine's archive header says: `"NAME"` (the account and its primary group), `"NAME:GROUP"`
    (names of the image's own /etc/passwd and /etc/group), `"UID"` (`UID:UID`) or `"UID:GID"`."""

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        return image_path(v, "path")

    @field_validator("owner")
    @classmethod
    def _owner(cls, v: str | None) -> str | None:
        if v is not None and not v:
            raise ValueError('owner must be `"NAME"`, `"NAME:GROUP"`, `"UID"` or `"UID:GID"`, not empty')
        return v if v is None else check_account(v, "owner")

    @model_validator(mode="after")
    def _absent(self) -> FileSpec:
        if not self.exists and (self.mode is not None or self.contains is not None or self.owner is not None):
            raise ValueError("a path expected not to exist (`exists = false`) cannot have `mode`, `contains` or "
                             "`owner`")
        return self


class MetadataSpec(Attrs):
    entrypoint: list[str] | None = None
    """The config's `Entrypoint`, the whole list (`[]` when unset)."""
    cmd: list[str] | None = None
    """The config's `Cmd`, the whole list (`[]` when unset)."""
    user: str | None = None
    """The config's `User`, the exact string (`""` when unset)."""
    env: dict[str, str] | None = None
    """Each variable given has exactly this value in the config's `Env`; others may exist."""
    workdir: str | None = None
    """The config's `WorkingDir`, the exact string (`""` when unset)."""
    labels: dict[str, str] | None = None
    """Each label given has exactly this value in the config's `Labels`; others may exist."""


class ImageTestAttrs(Attrs):
    image: LabelAttr
    """The label of an `image` target (`":bash"`, `"//images:bash"`)."""
    commands: list[CommandSpec] = []
    """Commands, each run in a new container, and how each must end: `{ args, exit_code, stdout, ... }`."""
    files: list[FileSpec] = []
    """Paths checked in the image's file system: `{ path, exists, mode, contains, owner }`."""
    metadata: MetadataSpec | None = None
    """Fields of the image config to compare (only those given are checked)."""

    @model_validator(mode="after")
    def _something(self) -> ImageTestAttrs:
        if not self.commands and not self.files and self.metadata is None:
            raise ValueError("an image_test needs at least one of `commands`, `files` or `metadata`")
        return self


def _image_test_impl(ctx: RuleContext[ImageTestAttrs]) -> list[object]:
    a = ctx.attrs
    try:
        image = ctx.provider(a.image, ImageInfo)
    except InputError:
        raise ctx.fail(f"`{a.image}` is not an image, so `{ctx.label}` cannot test it", "image",
                       hint="`image` names an `image` target, e.g. `:bash`") from None
    image_label = str(Label.parse(a.image, ctx.label.package))
    commands = tuple(
        CommandCheck(
            name=c.name,
            args=tuple(c.args),
            entrypoint=tuple(c.entrypoint) if c.entrypoint is not None else None,
            env=tuple(sorted(c.env.items())),
            exit_code=c.exit_code,
            stdout=c.stdout,
            stderr=c.stderr,
            timeout=c.timeout,
        )
        for c in a.commands
    )
    files = tuple(FileCheck(f.path, f.exists, f.mode, f.contains, f.owner) for f in a.files)
    m = a.metadata
    metadata = None if m is None else MetadataCheck(
        entrypoint=tuple(m.entrypoint) if m.entrypoint is not None else None,
        cmd=tuple(m.cmd) if m.cmd is not None else None,
        user=m.user,
        env=tuple(sorted(m.env.items())) if m.env is not None else None,
        workdir=m.workdir,
        labels=tuple(sorted(m.labels.items())) if m.labels is not None else None,
    )
    return [ImageTestInfo(image_label=image_label, image=image, commands=commands, files=files, metadata=metadata)]


image_test = rule(
    implementation=_image_test_impl,
    attrs=ImageTestAttrs,
    doc="Checks run in an image by `minibuild test`: commands, files and config metadata.",
)
