"""Find the workspace root, read `workspace.toml` and the `BUILD.toml` of each package.

Files are parsed with the standard library's `tomllib` (fast; reading never needs comments); tomlkit is
used where minibuild edits files in place. Every target remembers the file and line it was declared
on, and the line of each of its keys, so errors can point at them.
"""

from __future__ import annotations

import difflib
import os
import re
import stat
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from minibuild.digest import sha256_bytes
from minibuild.errors import InputError, Origin

if TYPE_CHECKING:
    from pydantic import ValidationError

    from minibuild.workspace_config import WorkspaceConfig
from minibuild.label import Label, Pattern

WORKSPACE_FILE = "workspace.toml"
BUILD_FILE = "BUILD.toml"
STATE_DIR = ".minibuild"
CACHE_ENV = "MINIBUILD_CACHE"  # the cache directory, when not `.minibuild/cache` (docs/cache.md)
_SKIP_DIRS = {".git", ".hg", ".svn", STATE_DIR, ".venv", "node_modules", "__pycache__"}


@dataclass(frozen=True)
class Generator:
    """The macro table a target was made from: the macro's name and the table's `name`."""

    macro: str
    name: str

    def __str__(self) -> str:
        return f"`[[{self.macro}]]` table `{self.name}`"


@dataclass(frozen=True)
class Target:
    """A target as declared: its label, rule name, raw attributes and where it was written (for a target a macro
    made, the file and line of its table, and `generator`)."""

    label: Label
    rule: str
    attrs: dict[str, Any] = field(hash=False, compare=False)
    file: str = ""
    line: int = 0
    key_lines: dict[str, int] = field(default_factory=dict, hash=False, compare=False)
    generator: Generator | None = None

    def origin(self, attribute: str | None = None) -> Origin:
        top = attribute.split(".")[0].split("[")[0] if attribute else None
        line = self.key_lines.get(top, self.line) if top else self.line
        return Origin(file=self.file, line=line, label=str(self.label), attribute=attribute,
                      macro=str(self.generator) if self.generator else None)


class MacroExpander(Protocol):
    """What expands macro tables when a package is loaded (the rule registry, once analysis has loaded it)."""

    def is_macro(self, kind: str) -> bool: ...

    def expand(self, table: Target) -> list[Target]: ...


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


@dataclass(frozen=True)
class TomlFile:
    """A TOML file as it was read: what it holds, its text, and the digest of exactly the bytes parsed (a file
    saved while a build reads it is then recorded as what the build saw, not as what is on disk afterwards)."""

    data: dict[str, Any]
    text: str
    digest: str


def read_toml(path: Path, root: Path) -> TomlFile:
    """Read a TOML file once and parse those bytes; a syntax error becomes an InputError naming the file and line."""
    rel = _rel(path, root)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read `{rel}`: {exc.strerror}", origin=Origin(file=rel)) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"`{rel}` is not UTF-8 text: {exc.reason} (byte {exc.start + 1})",
                         origin=Origin(file=rel, line=data.count(b"\n", 0, exc.start) + 1),
                         hint="save the file as UTF-8") from None
    try:
        parsed = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        line = int(match.group(1)) if match else None
        if line is None and "(at end of document)" in str(exc):
            line = text.rstrip("\n").count("\n") + 1
        reason = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", str(exc))
        raise InputError(
            f"TOML syntax error in `{rel}`: {reason}",
            origin=Origin(file=rel, line=line),
            hint="see https://toml.io for the syntax; strings need quotes, tables `[[rule]]` headers",
        ) from None
    _refuse_nul(parsed, rel, text)
    return TomlFile(parsed, text, sha256_bytes(data))


def _refuse_nul(data: dict[str, Any], rel: str, text: str) -> None:
    """A NUL character (TOML `\\u0000`) is valid TOML but can be no path, label, argument or environment
    value (the operating system cuts the string there or refuses it), so a file holding one is refused."""
    found = _find_nul(data)
    if found is None:
        return
    where = found.replace("\0", "\\u0000")  # a key may hold it too: never print the character itself
    # A NUL cannot be written literally in TOML, only escaped: the first escape is the line to show.
    match = re.search(r"\\(u0000|U00000000)", text)
    raise InputError(
        f"a NUL character (`\\u0000`) in `{where}` in `{rel}`",
        origin=Origin(file=rel, line=text.count("\n", 0, match.start()) + 1 if match else None, attribute=where),
        hint="no path, label, argument or environment value can hold a NUL character; remove the escape",
    )


def _find_nul(value: Any, where: str = "") -> str | None:
    """The key path (`image[0].binaries[1]`) of the first key or string holding a NUL character, or None."""
    if isinstance(value, str):
        return where if "\0" in value else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        path = f"{where}[{key}]" if isinstance(key, int) else f"{where}.{key}" if where else key
        found = path if isinstance(key, str) and "\0" in key else _find_nul(item, path)
        if found is not None:
            return found
    return None


def _is_file(path: Path) -> bool:
    """Path.is_file, except that a name the file system cannot hold (too long) is simply not a file."""
    try:
        return path.is_file()
    except OSError:
        return False


def _own_dir(path: Path, root: Path, *, create: bool) -> None:
    """`path` is a directory of minibuild's own (or absent, or made now when `create`): never a symbolic link."""
    rel = _rel(path, root)
    hint = (f"remove the link (`minibuild clean` removes links at `{STATE_DIR}/out` and `{STATE_DIR}/cache`, never "
            f"what they point to); to keep the cache elsewhere, set {CACHE_ENV} to a directory (docs/cache.md)")
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        if create:
            try:
                os.mkdir(path)
            except FileExistsError:
                _own_dir(path, root, create=False)  # made by another build meanwhile
            except OSError as exc:
                raise InputError(f"cannot create `{rel}` in the workspace `{root}`: {exc.strerror}",
                                 hint=f"minibuild keeps its outputs in `{STATE_DIR}`: make the workspace writable "
                                      "for this user") from None
        return
    except OSError as exc:
        raise InputError(f"cannot read `{rel}`: {exc.strerror}") from None
    if stat.S_ISLNK(st.st_mode):
        raise InputError(f"`{rel}` is a symbolic link (to `{os.readlink(path)}`): minibuild writes and deletes "
                         "nothing through it", hint=hint)
    if not stat.S_ISDIR(st.st_mode):
        raise InputError(f"`{rel}` is not a directory", hint=f"remove it: minibuild makes `{rel}` itself")


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
        self._macro_tables: dict[str, dict[str, Target]] = {}  # package -> macro tables by name
        self._config: WorkspaceConfig | None = None
        self.macros: MacroExpander | None = None
        # Workspace-relative path -> the digest of the bytes last parsed: what a stored analysis came from.
        self.read_digests: dict[str, str] = {}
        self._state_paths: dict[str, str] = {}

    def _read(self, path: Path) -> TomlFile:
        read = read_toml(path, self.root)
        self.read_digests[_rel(path, self.root)] = read.digest
        return read

    def use_macros(self, macros: MacroExpander) -> None:
        """Expand macro tables with `macros` from now on (packages loaded before are loaded again)."""
        self.macros = macros
        self._packages.clear()
        self._macro_tables.clear()

    @property
    def config(self) -> WorkspaceConfig:
        """workspace.toml, validated on first use (a no-op build never needs it)."""
        if self._config is None:
            # lazy: pydantic, loaded only when workspace.toml is validated (not on a no-op build)
            from pydantic import ValidationError

            from minibuild.workspace_config import WorkspaceConfig

            raw = self._read(self.root / WORKSPACE_FILE).data
            try:
                self._config = WorkspaceConfig.model_validate(raw)
            except ValidationError as exc:
                path, message, hint = format_validation_error(exc, list(WorkspaceConfig.model_fields))
                loc = tuple(str(part) for part in exc.errors()[0]["loc"])
                raise InputError(message, origin=self.config_origin(loc, path), hint=hint) from None
        return self._config

    def unvalidated_table(self, name: str) -> object:
        """workspace.toml's table `name` as tomllib reads it (None when absent), without validating the file: a
        command that needs a table only when it is there does not load pydantic (a no-op build, a push that does
        not sign). A file that cannot be read or parsed answers `...`: let the validated `config` say what is
        wrong."""
        try:
            with open(self.root / WORKSPACE_FILE, "rb") as f:
                return tomllib.load(f).get(name)
        except (OSError, tomllib.TOMLDecodeError):
            return ...

    def config_origin(self, loc: tuple[str, ...], attribute: str | None = None) -> Origin:
        """Where a key of workspace.toml (`("rules", "load")`) was written: the line of the deepest part found."""
        try:
            text = (self.root / WORKSPACE_FILE).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            text = ""
        lines = _config_lines(text)
        line = next((lines[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in lines), None)
        return Origin(file=WORKSPACE_FILE, line=line, attribute=attribute or ".".join(loc) or None)

    @property
    def loaded_packages(self) -> list[str]:
        return sorted(self._packages)

    def checked_state_dir(self) -> Path:
        """`.minibuild`, refused when it is a symbolic link or no directory (absent is fine)."""
        _own_dir(self.state_dir, self.root, create=False)
        return self.state_dir

    def state_path(self, name: str) -> str:
        """`.minibuild/<name>` (`out`, `cache`), `.minibuild` made if missing. Neither may be a symbolic link: a
        workspace can hold one (committed, or restored by CI), and builds would write, and `clean` delete,
        wherever it points."""
        if name not in self._state_paths:
            _own_dir(self.state_dir, self.root, create=True)
            _own_dir(self.state_dir / name, self.root, create=False)
            self._state_paths[name] = str(self.state_dir / name)
        return self._state_paths[name]

    @property
    def cache_dir(self) -> str:
        """Where the cache is: `$MINIBUILD_CACHE` (a link there is the user's explicit choice: it is resolved,
        a relative path is taken from the current directory), else `.minibuild/cache`."""
        setting = os.environ.get(CACHE_ENV, "").strip()
        if setting:
            return os.path.realpath(os.path.expanduser(setting))
        return self.state_path("cache")

    @classmethod
    def find(cls, start: str | os.PathLike[str] | None = None) -> Workspace:
        return cls(find_root(start))

    def sysroot(self, platform: str | None = None) -> str:
        """The sysroot of a platform (or the workspace default), as an absolute host path; the name of a package
        sysroot (a `[sysroots.NAME]` table) is returned as it is."""
        sysroot = self.config.workspace.sysroot
        if platform and platform in self.config.platforms:
            sysroot = self.config.platforms[platform].sysroot
        if sysroot in self.config.sysroots:
            return sysroot
        return str((self.root / sysroot).resolve()) if not os.path.isabs(sysroot) else sysroot

    def relative_dir(self, directory: str | os.PathLike[str]) -> str:
        """The workspace-relative path of a directory: relative labels on the command line start there."""
        rel = Path(directory).resolve().relative_to(self.root.resolve()).as_posix()
        return "" if rel == "." else rel

    def packages(self, pattern: Pattern) -> list[str]:
        """Every package matching a pattern, without loading any of them."""
        base = self.root / pattern.package if pattern.package else self.root
        if not pattern.recursive:
            return [pattern.package] if _is_file(base / BUILD_FILE) else []
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
        """The targets of one package, by name (those its macro tables make included). Raises InputError when it
        has no BUILD.toml."""
        if package in self._packages:
            return self._packages[package]
        path = (self.root / package / BUILD_FILE) if package else self.root / BUILD_FILE
        if not _is_file(path):
            raise InputError(
                f"no package `//{package}`: `{_rel(path, self.root)}` does not exist",
                hint=self._near_packages(package),
            )
        rel = _rel(path, self.root)
        tables: dict[str, Target] = {}
        targets: dict[str, Target] = {}
        macro_tables: dict[str, Target] = {}
        for table in self._tables(package, path, rel):
            name = table.label.name
            if name in tables:
                raise InputError(
                    f"duplicate target name `{name}` in `{rel}`",
                    origin=Origin(file=rel, line=table.line or None, label=str(table.label)),
                    hint=f"first declared at {Origin(file=rel, line=tables[name].line or None)}; target "
                    "names must be unique in a package",
                )
            tables[name] = table
            made = [table]
            if self.macros is not None and self.macros.is_macro(table.rule):
                macro_tables[name] = table
                made = self.macros.expand(table)
            for target in made:
                first = targets.get(target.label.name)
                if first is not None:
                    raise InputError(f"duplicate target name `{target.label.name}` in `{rel}`", origin=target.origin(),
                                     hint=f"first declared at {first.origin()}; target names must be unique in a "
                                     "package, those macros make included")
                targets[target.label.name] = target
        self._packages[package] = targets
        self._macro_tables[package] = macro_tables
        return targets

    def _tables(self, package: str, path: Path, rel: str) -> Iterator[Target]:
        """Each `[[rule]]` table of a BUILD file, as written, in order."""
        read = self._read(path)
        raw, lines = read.data, _key_lines(read.text)
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
                try:
                    Label.parse(f"//{package}:{name}")
                except InputError as exc:
                    raise InputError(exc.message, origin=Origin(file=rel, line=line, attribute="name"),
                                     hint=exc.hint) from None
                body = {k: v for k, v in attrs.items() if k != "name"}
                yield Target(Label(package, name), rule_name, body, rel, line or 0, key_lines)

    def target(self, label: Label) -> Target:
        targets = self.load_package(label.package)
        if label.name not in targets:
            table = self._macro_tables.get(label.package, {}).get(label.name)
            made = sorted(n for n, t in targets.items() if t.generator and t.generator.name == label.name)
            if table is not None:
                hint = (f"`{label.name}` names a `[[{table.rule}]]` table (a macro), not a target; the targets it "
                        "makes: " + (", ".join(f"`:{n}`" for n in made) or "none"))
            else:
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


# Keys as TOML writes them: bare, "basic" or 'literal', dotted.
_SIMPLE_KEY = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\\n]|\\.)*"|'[^'\n]*')"""
_DOTTED_KEY = rf"{_SIMPLE_KEY}(?:[ \t]*\.[ \t]*{_SIMPLE_KEY})*"
_ARRAY_HEADER = re.compile(rf"^\s*\[\[\s*({_DOTTED_KEY})\s*\]\]\s*(#.*)?$")
_TABLE_HEADER = re.compile(rf"^\s*\[\s*({_DOTTED_KEY})\s*\]\s*(#.*)?$")
_KEY = re.compile(rf"^\s*({_DOTTED_KEY})\s*=")


def _key_path(text: str) -> tuple[str, ...]:
    """The parts of a dotted key as TOML reads them (`a."b.c"` -> ("a", "b.c"))."""
    if re.fullmatch(r"[A-Za-z0-9_.\s-]+", text):
        return tuple(part.strip() for part in text.split("."))
    try:
        value: Any = tomllib.loads(f"{text} = 0")
    except tomllib.TOMLDecodeError:
        return ()
    parts = []
    while isinstance(value, dict) and len(value) == 1:
        (key, value), = value.items()
        parts.append(key)
    return tuple(parts)


def _scan(text: str) -> Iterator[tuple[str, tuple[str, ...], int]]:
    """("array" | "table", header path, line) for each table header and ("key", key path, line) for each
    key of the current table, in order.

    A light scan, not a parser: it tracks bracket depth outside strings so that keys inside
    multi-line arrays are not taken for keys of the table.
    """
    depth = 0
    # TOML lines end at \n only (str.splitlines would also split at \x85 or \u2028 inside a string).
    for number, line in enumerate(text.split("\n"), start=1):
        if depth == 0:
            header = False
            for kind, pattern in (("array", _ARRAY_HEADER), ("table", _TABLE_HEADER), ("key", _KEY)):
                match = pattern.match(line)
                if match:
                    path = _key_path(match.group(1))
                    if path:
                        yield kind, path, number
                    header = kind != "key"
                    break
            if header:
                continue
        depth = max(0, depth + _bracket_delta(line))


def _key_lines(text: str) -> dict[tuple[str, int], tuple[int, dict[str, int]]]:
    """Map (rule name, index) of each `[[rule]]` table to its header line and the line of each key.

    A top-level key that is not an array of tables (`image = 1`, `[image]`) maps as (name, 0) to its line.
    """
    result: dict[tuple[str, int], tuple[int, dict[str, int]]] = {}
    counts: dict[str, int] = {}
    current: dict[str, int] | None = None
    top = True  # before any table header
    for kind, path, number in _scan(text):
        if kind == "array" and len(path) == 1:
            index = counts.get(path[0], 0)
            counts[path[0]] = index + 1
            current = {}
            result[(path[0], index)] = (number, current)
        elif kind != "key":
            if len(path) > 1 and path[0] in counts:  # `[image.env]`: a table inside the last `[[image]]`
                result[(path[0], counts[path[0]] - 1)][1].setdefault(path[1], number)
            else:
                result.setdefault((path[0], 0), (number, {}))
            current, top = None, False
        elif current is not None:
            current.setdefault(path[0], number)
        elif top:
            result.setdefault((path[0], 0), (number, {}))
    return result


def _config_lines(text: str) -> dict[tuple[str, ...], int]:
    """The first line of every key path of a TOML file (`("platforms", "linux/arm64", "sysroot")`), and of
    each of its prefixes."""
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    for kind, path, number in _scan(text):
        full = path if kind != "key" else table + path
        if kind != "key":
            table = path
        for n in range(1, len(full) + 1):
            lines.setdefault(full[:n], number)
    return lines


def _bracket_delta(line: str) -> int:
    delta = 0
    quote: str | None = None
    escaped = False
    for ch in line:
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\" and quote == '"':  # `"\""` is one string: a backslash escapes in "basic" strings
                escaped = True
            elif ch == quote:
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
