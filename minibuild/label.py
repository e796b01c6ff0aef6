"""Labels (`//pkg/path:name`) and target patterns (`//pkg/...`, `//...`, `//pkg:all`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from minibuild.errors import InputError

_PACKAGE_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+=,@~-]*")
_HINT = "labels look like `//pkg/path:name`, `//pkg` (= `//pkg:pkg`) or `:name` inside a package"


@dataclass(frozen=True, order=True)
class Label:
    """A target's canonical name: the package (a directory, `""` for the root) and the name in it."""

    package: str
    name: str

    def __str__(self) -> str:
        return f"//{self.package}:{self.name}"

    @property
    def out_dir(self) -> str:
        """Outputs of this target live under `.minibuild/out/<package>/<name>/`."""
        return f"{self.package}/{self.name}" if self.package else self.name

    @staticmethod
    def parse(text: str, package: str | None = None) -> Label:
        """Parse `text`; relative forms (`:name`, `name`, `sub:name`) need the current `package`."""
        parsed = parse_pattern(text, package)
        if not isinstance(parsed, Label):
            raise InputError(f"`{text}` is a pattern, but a single label is needed here", hint=_HINT)
        return parsed


@dataclass(frozen=True)
class Pattern:
    """A set of targets: every target of `package` (`//pkg:all`), or of it and below (`//pkg/...`)."""

    package: str
    recursive: bool

    def __str__(self) -> str:
        if self.recursive:
            return f"//{self.package}/..." if self.package else "//..."
        return f"//{self.package}:all"

    def matches_package(self, package: str) -> bool:
        if not self.recursive:
            return package == self.package
        return not self.package or package == self.package or package.startswith(self.package + "/")


def _check_package(text: str, package: str) -> str:
    if package == "":
        return package
    for part in package.split("/"):
        if not _PACKAGE_PART.fullmatch(part):
            raise InputError(f"malformed label `{text}`: bad package path `{package}`", hint=_HINT)
    return package


def _check_name(text: str, name: str) -> str:
    if not _NAME.fullmatch(name):
        raise InputError(f"malformed label `{text}`: bad target name `{name}`", hint=_HINT)
    return name


def parse_pattern(text: str, package: str | None = None) -> Label | Pattern:
    """Parse a label or a pattern. `package` is the package relative forms are resolved against."""
    if not isinstance(text, str) or not text or text != text.strip():
        raise InputError(f"malformed label `{text}`", hint=_HINT)
    if text.startswith("//"):
        body = text[2:]
        if body == "...":
            return Pattern("", True)
        pkg, sep, name = body.partition(":")
        if pkg.endswith("/..."):
            if sep:
                raise InputError(f"malformed pattern `{text}`", hint="write `//pkg/...` without a target name")
            return Pattern(_check_package(text, pkg[:-4]), True)
        pkg = _check_package(text, pkg)
        if not sep:
            if not pkg:
                raise InputError(f"malformed label `{text}`: no package and no name", hint=_HINT)
            return Label(pkg, pkg.rsplit("/", 1)[-1])
        if name in ("all", "*"):
            return Pattern(pkg, False)
        return Label(pkg, _check_name(text, name))
    if package is None:
        raise InputError(f"relative label `{text}` used outside a package", hint=_HINT)
    if text.startswith(":"):
        name = text[1:]
        if name in ("all", "*"):
            return Pattern(package, False)
        return Label(package, _check_name(text, name))
    if text == "...":
        return Pattern(package, True)
    if text.endswith("/..."):
        sub = text[:-4]
        return parse_pattern(f"//{package}/{sub}/..." if package else f"//{sub}/...")
    sub, sep, name = text.partition(":")
    if not sep:
        return Label(package, _check_name(text, text))
    joined = f"{package}/{sub}" if package else sub
    return parse_pattern(f"//{joined}:{name}")
