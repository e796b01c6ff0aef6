"""Find the workspace root, read `workspace.toml` and the `BUILD.toml` of each package.

Files are parsed with the standard library's `tomllib` (fast; reading never needs comments); tomlkit is
used where minibuild edits files in place. Every target remembers the file and line it was declared
on, and the line of each of its keys, so errors can point at them.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from minibuild.errors import InputError, Origin

if TYPE_CHECKING:
    from pydantic import ValidationError

    from minibuild.workspace_config import WorkspaceConfig
from minibuild.label import Label, Pattern

WORKSPACE_FILE = "workspace.toml"
BUILD_FILE = "BUILD.toml"
STATE_DIR = ".minibuild"
_SKIP_DIRS = {".git", ".hg", ".svn", STATE_DIR, ".venv", "node_modules", "__pycache__"}


@dataclass(frozen=True)
class Target:
    """A target as declared: its label, rule name, raw attributes and where it was written."""

    label: Label
    rule: str
    attrs: dict[str, Any] = field(hash=False, compare=False)
    file: str = ""
    line: int = 0
    key_lines: dict[str, int] = field(default_factory=dict, hash=False, compare=False)

    def origin(self, attribute: str | None = None) -> Origin:
        top = attribute.split(".")[0].split("[")[0] if attribute else None
        line = self.key_lines.get(top, self.line) if top else self.line
        return Origin(file=self.file, line=line, label=str(self.label), attribute=attribute)


def find_root(start: str | os.PathLike[str] | None = None) -> Path:
    """Walk up from `start` (default: the current directory) to the directory holding workspace.toml."""
    here = Path(start or os.getcwd()).resolve()
    for directory in (here, *here.parents):
        if (directory / WORKSPACE_FILE).is_file():
            return directory
    raise InputError(
        f"no `{WORKSPACE_FILE}` found in `{here}` or any parent directory",
        hint="run minibuild inside a workspace, or create one with `minibuild init`",
    )


def parse_toml(path: Path, root: Path) -> dict[str, Any]:
    """Parse a TOML file; a syntax error becomes an InputError naming the file and line."""
    rel = _rel(path, root)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"`{rel}` is not UTF-8 text: {exc.reason}", origin=Origin(file=rel)) from None
    except OSError as exc:
        raise InputError(f"cannot read `{rel}`: {exc.strerror}", origin=Origin(file=rel)) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        line = int(match.group(1)) if match else None
        reason = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise InputError(
            f"TOML syntax error in `{rel}`: {reason}",
            origin=Origin(file=rel, line=line),
            hint="see https://toml.io for the syntax; strings need quotes, tables `[[rule]]` headers",
        ) from None


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def format_validation_error(exc: ValidationError, fields: list[str]) -> tuple[str, str, str | None]:
    """The first pydantic error as (attribute path, message, hint)."""
    err = exc.errors()[0]
    loc = err["loc"]
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    hint = None
    if err["type"] == "extra_forbidden":
        close = difflib.get_close_matches(str(loc[-1]), fields if len(loc) == 1 else [], n=1)
        message = f"unknown attribute `{path}`"
        hint = f"did you mean `{close[0]}`?" if close else (
            f"valid attributes: {', '.join(f'`{f}`' for f in fields)}" if len(loc) == 1 else None)
    elif err["type"] == "missing":
        message = f"missing required attribute `{path}`"
    else:
        shown = err.get("input")
        message = f"attribute `{path}`: {err['msg']}"
        if shown is not None and not isinstance(shown, dict | list):
            message += f" (got `{shown!r}`)"
    return path, message, hint


class Workspace:
    """The root directory, its configuration and the packages loaded so far (each loaded once)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        if not (root / WORKSPACE_FILE).is_file():
            raise InputError(f"`{root}` holds no `{WORKSPACE_FILE}`", hint="create one with `minibuild init`")
        self.state_dir = root / STATE_DIR
        self._packages: dict[str, dict[str, Target]] = {}
        self._config: WorkspaceConfig | None = None

    @property
    def config(self) -> WorkspaceConfig:
        """workspace.toml, validated on first use (a no-op build never needs it)."""
        if self._config is None:
            from pydantic import ValidationError

            from minibuild.workspace_config import WorkspaceConfig

            raw = parse_toml(self.root / WORKSPACE_FILE, self.root)
            try:
                self._config = WorkspaceConfig.model_validate(raw)
            except ValidationError as exc:
                path, message, hint = format_validation_error(exc, list(WorkspaceConfig.model_fields))
                raise InputError(message, origin=Origin(file=WORKSPACE_FILE), hint=hint) from None
        return self._config

    @property
    def loaded_packages(self) -> list[str]:
        return sorted(self._packages)

    @classmethod
    def find(cls, start: str | os.PathLike[str] | None = None) -> Workspace:
        return cls(find_root(start))

    def sysroot(self, platform: str | None = None) -> str:
        """The sysroot of a platform (or the workspace default), as an absolute host path."""
        sysroot = self.config.workspace.sysroot
        if platform and platform in self.config.platforms:
            sysroot = self.config.platforms[platform].sysroot
        return str((self.root / sysroot).resolve()) if not os.path.isabs(sysroot) else sysroot

    def relative_dir(self, directory: str | os.PathLike[str]) -> str:
        """The workspace-relative path of a directory: relative labels on the command line start there."""
        rel = Path(directory).resolve().relative_to(self.root.resolve()).as_posix()
        return "" if rel == "." else rel

    def packages(self, pattern: Pattern) -> list[str]:
        """Every package matching a pattern, without loading any of them."""
        base = self.root / pattern.package if pattern.package else self.root
        if not pattern.recursive:
            return [pattern.package] if (base / BUILD_FILE).is_file() else []
        found = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(
                d for d in dirnames
                if d not in _SKIP_DIRS and not d.startswith(".")
                and not os.path.exists(os.path.join(dirpath, d, WORKSPACE_FILE))  # a nested workspace
            )
            if BUILD_FILE in filenames:
                found.append(Path(dirpath).relative_to(self.root).as_posix().removeprefix("."))
        return sorted(found)

    def load_package(self, package: str) -> dict[str, Target]:
        """The targets of one package, by name. Raises InputError when it has no BUILD.toml."""
        if package in self._packages:
            return self._packages[package]
        path = (self.root / package / BUILD_FILE) if package else self.root / BUILD_FILE
        if not path.is_file():
            raise InputError(
                f"no package `//{package}`: `{_rel(path, self.root)}` does not exist",
                hint=self._near_packages(package),
            )
        raw = parse_toml(path, self.root)
        rel = _rel(path, self.root)
        lines = _key_lines(path.read_text(encoding="utf-8"))
        targets: dict[str, Target] = {}
        for rule_name, value in raw.items():
            tables = value if isinstance(value, list) and all(isinstance(t, dict) for t in value) else None
            if tables is None:
                line = lines.get((rule_name, 0), (None, {}))[0]
                raise InputError(
                    f"`{rule_name}` in `{rel}` is not a target table",
                    origin=Origin(file=rel, line=line),
                    hint=f"declare targets as arrays of tables: `[[{rule_name}]]` then `name = \"...\"`",
                )
            for index, attrs in enumerate(tables):
                line, key_lines = lines.get((rule_name, index), (None, {}))
                name = attrs.get("name")
                if not isinstance(name, str):
                    raise InputError(
                        f"a `[[{rule_name}]]` target in `{rel}` has no `name`" if name is None
                        else f"`name` must be a string, got `{name!r}`",
                        origin=Origin(file=rel, line=key_lines.get("name", line), attribute="name"),
                        hint='add `name = "..."` to the table',
                    )
                label = Label(package, name)
                try:
                    Label.parse(f"//{package}:{name}")
                except InputError as exc:
                    raise InputError(exc.message, origin=Origin(file=rel, line=line, attribute="name"),
                                     hint=exc.hint) from None
                if name in targets:
                    raise InputError(
                        f"duplicate target name `{name}` in `{rel}`",
                        origin=Origin(file=rel, line=line, label=str(label)),
                        hint=f"first declared at {rel}:{targets[name].line}; target names must be unique "
                        "in a package",
                    )
                body = {k: v for k, v in attrs.items() if k != "name"}
                targets[name] = Target(label, rule_name, body, rel, line or 0, key_lines)
        self._packages[package] = targets
        return targets

    def target(self, label: Label) -> Target:
        targets = self.load_package(label.package)
        if label.name not in targets:
            close = difflib.get_close_matches(label.name, list(targets), n=3)
            hint = (f"did you mean {', '.join(f'`{Label(label.package, c)}`' for c in close)}?" if close
                    else f"targets in `//{label.package}`: "
                    + (", ".join(f"`:{n}`" for n in sorted(targets)) or "none"))
            raise InputError(f"no target `{label}`", hint=hint)
        return targets[label.name]

    def _near_packages(self, package: str) -> str:
        names = self.packages(Pattern("", True))
        close = difflib.get_close_matches(package, names, n=3)
        if close:
            return f"did you mean {', '.join(f'`//{c}`' for c in close)}?"
        return "a package is a directory holding a `BUILD.toml`"


_HEADER = re.compile(r"^\s*\[\[\s*([A-Za-z0-9_-]+)\s*\]\]\s*(#.*)?$")
_TABLE = re.compile(r"^\s*\[")
_KEY = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_-]+)\s*(\.|=)""")


def _key_lines(text: str) -> dict[tuple[str, int], tuple[int, dict[str, int]]]:
    """Map (rule name, index) of each `[[rule]]` table to its header line and the line of each key.

    A light scan, not a parser: it tracks bracket depth outside strings so that keys inside
    multi-line arrays are not taken for top-level keys of the table.
    """
    result: dict[tuple[str, int], tuple[int, dict[str, int]]] = {}
    counts: dict[str, int] = {}
    current: dict[str, int] | None = None
    depth = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if depth == 0:
            header = _HEADER.match(line)
            if header:
                rule = header.group(1)
                index = counts.get(rule, 0)
                counts[rule] = index + 1
                current = {}
                result[(rule, index)] = (number, current)
                continue
            if _TABLE.match(line):
                current = None
                continue
            key = _KEY.match(line)
            if key and current is not None:
                current.setdefault(key.group(1).strip("\"'"), number)
            elif key and current is None and key.group(2) == "=":
                name = key.group(1).strip("\"'")
                result.setdefault((name, 0), (number, {}))
        depth = max(0, depth + _bracket_delta(line))
    return result


def _bracket_delta(line: str) -> int:
    delta = 0
    quote: str | None = None
    for ch in line:
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            break
        elif ch in "[{":
            delta += 1
        elif ch in "]}":
            delta -= 1
    return delta
