"""The result of analysis, kept between builds: a no-op build loads it instead of re-reading BUILD files.

Analysis is a pure function of the workspace and BUILD files it read, the rule files, minibuild's own
code, the installed plugins (the `minibuild.rules` entry points, built-in rules included) and their code, the
command line's patterns and SOURCE_DATE_EPOCH. The cache records the digest of every one of those files (the
workspace's by their path in it, so a workspace moved or copied with its `.minibuild` checks its own files; a
BUILD file by the bytes that were parsed, not what is on disk afterwards), the entry points declared on `sys.path`
and the package list of each recursive pattern; when all still hold, the stored targets and actions are used as
they are, and pydantic and the rule modules are never imported.

The file is JSON that names values, never code (pickle would run whatever a planted file says): two lines, a
header (what the analysis came from, the classes, labels and artifacts it uses) read and checked first, then the
targets. Values are JSON where JSON has them; a tuple is `{"t": [...]}`, a dict `{"d": [k, v, ...]}`, a set or
frozenset `{"s"|"f": [...]}`, a label or an artifact `{"L"|"A": index}` in the header's tables, and an instance of
a dataclass (or pydantic model) `{"c": [class index, field values...]}`. An action's params object is
`{"p": "<the same encoding, as text>"}`, read only when the action runs (`actions.DeferredParams`): a no-op build
imports no params class, so not the rule modules and pydantic. The header also keeps the code digest of each action
function, so a no-op reads no source file to key its actions. On reading, a class is taken only from
minibuild, its rules, an installed plugin declaring rules or a rule file the workspace loads, and must still have
the fields it was stored with (a params class is checked when its action runs; the header's code digests make a
change there a miss first); labels must parse, artifacts lie in the workspace or `.minibuild/out`, every action
name a function of those modules. Anything else makes the file a miss: the build analyses again. A value no
dataclass, pydantic model or JSON value can hold (analysis of a plugin with such params) is not stored.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import importlib
import importlib.util
import json
import os
import posixpath
import re
import sys
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from minibuild.actions import Action, Artifact, DeferredParams
from minibuild.code import code_digest, remember_digests
from minibuild.digest import StatCache
from minibuild.errors import BuildError, Origin
from minibuild.label import Label, Pattern, parse_pattern
from minibuild.workspace import BUILD_FILE, WORKSPACE_FILE, Workspace

_SCHEMA = 6
_USER_MODULES = "minibuild_user_rules."  # where registry.py imports a workspace's rule files
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_JSON = json.JSONDecoder()
_GROUP = "[minibuild.rules]"  # the entry-point group of rules (minibuild.registry.ENTRY_POINT_GROUP)


@dataclass(frozen=True)
class AnalysedTarget:
    """What the execution phase needs of a target: its rule kind, actions and providers (and, for a target a
    macro made, where its table is, for the errors of its actions)."""

    label: Label
    rule: str
    actions: tuple[Action, ...]
    providers: tuple[Any, ...]
    origin: Origin | None = None


def _rule_distributions() -> list[tuple[str, str]]:
    """(metadata directory, its entry_points.txt) of every distribution on `sys.path` declaring `minibuild.rules`
    entry points: installing, removing or upgrading a plugin changes it (the directory's name has the version).
    Read by hand: importing importlib.metadata alone would cost a no-op build about 15 ms."""
    found = []
    for entry in sys.path:
        directory = entry or "."
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        for name in names:
            if not name.endswith((".dist-info", ".egg-info")):
                continue
            meta = os.path.abspath(os.path.join(directory, name))
            try:
                with open(os.path.join(meta, "entry_points.txt"), encoding="utf-8", errors="replace") as f:
                    text = f.read()
            except OSError:
                continue
            if _GROUP in text:
                found.append((meta, text))
    return sorted(found)


def _entry_point_packages(distributions: list[tuple[str, str]]) -> set[str]:
    """The top-level packages of the modules the `minibuild.rules` entry points name."""
    tops = set()
    for _, text in distributions:
        in_group = False
        for line in text.splitlines():
            line = line.strip()
            if line.startswith("["):
                in_group = line == _GROUP
            elif in_group and "=" in line:
                tops.add(line.partition("=")[2].strip().partition(":")[0].strip().split(".")[0])
    return tops


def _package_files(top: str) -> list[str]:
    """The source files of a top-level package (or module), found without importing it."""
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return []
    if spec is None:
        return []
    if not spec.submodule_search_locations:
        return [spec.origin] if spec.origin and spec.origin.endswith(".py") else []
    found = []
    for location in spec.submodule_search_locations:
        for dirpath, _, files in os.walk(location):
            found += [os.path.join(dirpath, f) for f in files if f.endswith(".py")]
    return found


def _code_files(distributions: list[tuple[str, str]]) -> list[str]:
    """Every source file of minibuild and of the packages holding rules (the built-in ones and plugins): a new
    version, or an edited file, invalidates the cache."""
    found = set(_package_files("minibuild"))
    for top in _entry_point_packages(distributions):
        found.update(_package_files(top))
    return sorted(found)


def _recursive_packages(workspace: Workspace, patterns: Sequence[str], package: str | None) -> dict[str, list[str]]:
    out = {}
    for text in patterns:
        parsed = parse_pattern(text, package)
        if isinstance(parsed, Pattern):
            out[str(parsed)] = workspace.packages(parsed)
    return out


def _path(workspace: Workspace, patterns: Sequence[str], package: str | None) -> str:
    key = hashlib.sha256(json.dumps([list(patterns), package]).encode()).hexdigest()[:24]
    return os.path.join(workspace.cache_dir, "analysis", key + ".json")


def _digests(paths: Sequence[str], stat_cache: StatCache) -> dict[str, str]:
    return {p: stat_cache.fingerprint(p) for p in paths}


def _inside(rel: object) -> bool:
    """A workspace-relative file path that stays in the workspace."""
    return (isinstance(rel, str) and rel != "" and not rel.startswith("/") and posixpath.normpath(rel) == rel
            and rel != ".." and not rel.startswith("../"))


def _files_unchanged(files: dict[str, str], root: str, stat_cache: StatCache) -> bool:
    for rel, digest in files.items():
        if not _inside(rel):
            return False
        try:
            if stat_cache.digest(os.path.join(root, rel)) != digest:
                return False
        except OSError:
            return False
    return True


def load(workspace: Workspace, patterns: Sequence[str], package: str | None,
         stat_cache: StatCache) -> tuple[list[Label], list[AnalysedTarget]] | None:
    """The stored analysis for these patterns, if every input it came from is unchanged."""
    try:
        distributions = _rule_distributions()
        with open(_path(workspace, patterns, package), "rb") as f:
            header = json.loads(f.readline())
            if not _current(header, distributions, workspace, patterns, package, stat_cache):
                return None
            body = f.read()
        modules = _import_user_modules(header["user_modules"], workspace)
        decoded = _decode(header, body, modules | _entry_point_packages(distributions))
        if type(header["code_digests"]) is dict and all(type(v) is str for v in header["code_digests"].values()):
            remember_digests(header["code_digests"])
        return decoded
    except Exception:  # noqa: BLE001 - a missing, partial, foreign or planted file is a cache miss, never an error
        return None


def _current(header: Any, distributions: list[tuple[str, str]], workspace: Workspace, patterns: Sequence[str],
             package: str | None, stat_cache: StatCache) -> bool:
    """The header's inputs all still hold (what is cheapest to check first)."""
    if not isinstance(header, dict) or header.get("schema") != _SCHEMA:
        return False
    if header["epoch"] != os.environ.get("SOURCE_DATE_EPOCH", "0"):
        return False
    if header["plugins"] != [list(d) for d in distributions]:
        return False
    if header["code"] != _digests(_code_files(distributions), stat_cache):
        return False
    if not isinstance(header["files"], dict) or not _files_unchanged(header["files"], str(workspace.root), stat_cache):
        return False
    return bool(header["packages"] == _recursive_packages(workspace, patterns, package))


def _import_user_modules(stored: Any, workspace: Workspace) -> set[str]:
    """Import the workspace's rule files the analysis used (their action functions are found by module name), each
    only if workspace.toml loads it: a stored analysis never names a file to run."""
    if not stored:
        return set()
    root = os.path.realpath(workspace.root)
    with open(os.path.join(root, WORKSPACE_FILE), "rb") as f:
        listed = tomllib.load(f).get("rules", {}).get("load", [])
    loaded = {os.path.relpath(os.path.realpath(os.path.join(root, rel)), root) for rel in listed}
    names = set()
    for name, rel in stored.items():
        path = os.path.join(root, rel)
        if not (rel in loaded and _inside(rel) and name.startswith(_USER_MODULES) and _module_name(name)):
            raise ValueError(f"stored rule file `{rel}` is not one workspace.toml loads")
        # lazy: pydantic, loaded only when stored rule files must be imported again
        from minibuild.registry import import_rule_file

        import_rule_file(path, name)
        names.add(name)
    return names


def save(workspace: Workspace, patterns: Sequence[str], package: str | None, stat_cache: StatCache,
         labels: list[Label], targets: list[AnalysedTarget], user_modules: dict[str, str]) -> None:
    root = os.path.realpath(workspace.root)  # registry.py names rule files by their real path
    modules = {name: os.path.relpath(path, root) for name, path in user_modules.items()}
    rels = [WORKSPACE_FILE, *(posixpath.join(pkg, BUILD_FILE) for pkg in workspace.loaded_packages),
            *modules.values()]
    try:  # a TOML file by the bytes the analysis parsed (saved since: the next build analyses again)
        files = {rel: workspace.read_digests.get(rel) or stat_cache.digest(os.path.join(root, rel)) for rel in rels}
    except OSError:
        return
    distributions = _rule_distributions()
    path = _path(workspace, patterns, package)
    encoder = _Encoder()
    try:
        body = json.dumps([encoder.value(labels), encoder.value(targets)], separators=(",", ":"))
    except Exception:  # noqa: BLE001 - what cannot be stored (_Unstorable, a value that fails to encode) is not
        with contextlib.suppress(OSError):
            os.unlink(path)  # a stored analysis of these patterns, if any, is of other files
        return
    header = {"schema": _SCHEMA, "epoch": os.environ.get("SOURCE_DATE_EPOCH", "0"),
              "plugins": [list(d) for d in distributions],
              "code": _digests(_code_files(distributions), stat_cache), "files": files,
              "packages": _recursive_packages(workspace, patterns, package), "user_modules": modules,
              # Of files "code" and "files" cover: the action functions' code, so a no-op reads no source file.
              "code_digests": {f: code_digest(f) for f in sorted({a.function for t in targets for a in t.actions})},
              **encoder.tables()}
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(json.dumps(header, separators=(",", ":")) + "\n" + body)
        os.replace(tmp, path)
    except OSError:
        # An optimisation only: a full disk here must not fail a build that succeeded.
        with contextlib.suppress(OSError):
            os.unlink(tmp)


# -- the format: JSON naming values, never code ---------------------------------------------------------------

class _Unstorable(Exception):
    """A value JSON, a dataclass or a pydantic model cannot hold: the analysis is not stored."""


def _is_model(cls: type) -> bool:
    """A pydantic model class (known without importing pydantic)."""
    return hasattr(cls, "model_fields") and hasattr(cls, "model_construct")


class _Encoder:
    """Values to JSON; labels and artifacts once each in tables, classes named once with their fields."""

    def __init__(self) -> None:
        self.classes: dict[type, tuple[int, list[str]]] = {}
        self.class_rows: list[list[Any]] = []
        self.labels: dict[Label, int] = {}
        self.artifacts: dict[Artifact, int] = {}
        self.artifact_rows: list[list[Any]] = []

    def tables(self) -> dict[str, Any]:
        return {"classes": self.class_rows, "labels": [[lbl.package, lbl.name] for lbl in self.labels],
                "artifacts": self.artifact_rows}

    def value(self, v: Any) -> Any:
        t = type(v)
        if v is None or t is str or t is bool or t is int or t is float:
            return v
        if t is list:
            return [self.value(x) for x in v]
        if t is tuple:
            return {"t": [self.value(x) for x in v]}
        if t is Label:
            return {"L": self._label(v)}
        if t is Artifact:
            return {"A": self._artifact(v)}
        if t is dict:
            return {"d": [self.value(x) for item in v.items() for x in item]}
        if t is frozenset or t is set:
            return {"f" if t is frozenset else "s": [self.value(x) for x in v]}
        index, names = self._class(t)
        if t is Action:
            # Its params object is stored as text of its own, read only if the action runs (DeferredParams).
            return {"c": [index, *({"p": json.dumps(self.value(v.value), separators=(",", ":"))} if name == "value"
                                   else self.value(getattr(v, name)) for name in names)]}
        if getattr(v, "__pydantic_extra__", None):
            raise _Unstorable(f"{t.__qualname__} holds extra fields")
        return {"c": [index, *(self.value(getattr(v, name)) for name in names)]}

    def _label(self, label: Label) -> int:
        return self.labels.setdefault(label, len(self.labels))

    def _artifact(self, artifact: Artifact) -> int:
        index = self.artifacts.get(artifact)
        if index is None:
            owner = None if artifact.owner is None else self._label(artifact.owner)
            index = self.artifacts[artifact] = len(self.artifact_rows)
            self.artifact_rows.append([artifact.kind, artifact.path, owner])
        return index

    def _class(self, cls: type) -> tuple[int, list[str]]:
        known = self.classes.get(cls)
        if known is not None:
            return known
        if dataclasses.is_dataclass(cls):
            kind, names = "dataclass", [f.name for f in dataclasses.fields(cls)]
        elif _is_model(cls):
            kind, names = "model", list(cls.model_fields)  # type: ignore[attr-defined]
        else:
            raise _Unstorable(f"a `{cls.__qualname__}`")
        ref = f"{cls.__module__}:{cls.__qualname__}"
        if _find_class(ref) is not cls:
            raise _Unstorable(f"`{ref}` cannot be found by its name")
        self.classes[cls] = (len(self.class_rows), names)
        self.class_rows.append([ref, kind, names])
        return self.classes[cls]


def _module_name(name: object) -> bool:
    """A dotted module name with no dunder part (no `__main__`, which would run a program when imported)."""
    return isinstance(name, str) and all(_IDENTIFIER.fullmatch(p) and not p.startswith("__")
                                         for p in name.split("."))


def _find_class(ref: str, modules: set[str] | None = None) -> Any:
    """The class `module:qualname` names, imported only from minibuild, its rules, a rule plugin or a workspace rule
    file (`modules`: their top-level packages and module names; None: what is imported already)."""
    module, _, qualname = ref.partition(":")
    if not _module_name(module) or not _module_name(qualname):
        raise ValueError(f"`{ref}` names no class")
    if modules is None:
        value: Any = sys.modules.get(module)
    elif module.split(".")[0] in modules or module in modules:
        value = importlib.import_module(module)
    else:
        raise ValueError(f"`{ref}` is not of minibuild, its rules or the workspace's")
    for part in qualname.split("."):
        value = getattr(value, part, None)
    return value


def _constructor(row: Any, modules: set[str]) -> Callable[[list[Any]], Any]:
    """How to make an instance of a stored class from `[class index, field values...]`."""
    ref, kind, names = row
    cls = _find_class(ref, modules)
    if not isinstance(cls, type):
        raise ValueError(f"`{ref}` is not a class")
    if kind == "dataclass" and dataclasses.is_dataclass(cls) and names == [f.name for f in dataclasses.fields(cls)]:
        new = cls.__new__
        if hasattr(cls, "__slots__"):
            def slotted(values: list[Any]) -> Any:
                obj = new(cls)
                for name, value in zip(names, values[1:], strict=True):
                    object.__setattr__(obj, name, value)
                return obj
            return slotted

        def plain(values: list[Any]) -> Any:
            obj = new(cls)  # as pickle does: the fields as they were, no __init__ run again
            obj.__dict__.update(zip(names, values[1:], strict=True))
            return obj
        return plain
    if kind == "model" and _is_model(cls) and names == list(cls.model_fields):  # type: ignore[attr-defined]
        return lambda values: cls.model_construct(**dict(zip(names, values[1:], strict=True)))  # type: ignore
    raise ValueError(f"`{ref}` no longer has the fields it was stored with")


def _labels(rows: Any) -> list[Label]:
    labels = []
    for package, name in rows:
        label = Label.parse(f"//{package}:{name}")
        if label != Label(package, name):
            raise ValueError(f"`{package}:{name}` is no label")
        labels.append(label)
    return labels


def _artifacts(rows: Any, labels: list[Label]) -> list[Artifact]:
    """Sources inside the workspace, outputs inside their owner's `.minibuild/out` folder: nothing else."""
    artifacts = []
    for kind, path, owner in rows:
        if kind == "source" and owner is None and _inside(path):
            artifacts.append(Artifact("source", path))
            continue
        made = Artifact.derived(labels[owner], posixpath.basename(path)) if type(owner) is int else None
        if kind != "derived" or made is None or made.path != path or made.name in ("", ".", ".."):
            raise ValueError(f"`{path}` is no artifact")
        artifacts.append(made)
    return artifacts


def _decode(header: dict[str, Any], body: bytes, modules: set[str]) -> tuple[list[Label], list[AnalysedTarget]]:
    """The labels and targets of a stored analysis whose header holds; ValueError (or another) when it is not one
    this minibuild wrote."""
    # A class is imported when a value of it is first read: an action's params only when it runs.
    known = modules | {"minibuild", "minibuild_rules"}
    rows = header["classes"]
    made: list[Callable[[list[Any]], Any] | None] = [None] * len(rows)

    def make(values: list[Any]) -> Any:
        ctor = made[values[0]]
        if ctor is None:
            ctor = made[values[0]] = _constructor(rows[values[0]], known)
        return ctor(values)

    labels = _labels(header["labels"])
    artifacts = _artifacts(header["artifacts"], labels)
    artifact, label = artifacts.__getitem__, labels.__getitem__  # an index that is not an int: TypeError

    def hook(pairs: list[tuple[str, Any]]) -> Any:
        (tag, value), = pairs  # in the order of how often each comes (a no-op build makes thousands)
        if tag == "A":
            return artifact(value)
        if tag == "t":
            return tuple(value)
        if tag == "c":
            return make(value)
        if tag == "L":
            return label(value)
        if tag == "d":
            return dict(zip(value[::2], value[1::2], strict=True))
        if tag == "f":
            return frozenset(value)
        if tag == "s":
            return set(value)
        if tag == "p" and type(value) is str:
            return DeferredParams(functools.partial(_params, value, hook))
        raise ValueError(f"`{tag}` is no stored value")

    stored_labels, targets = json.loads(body, object_pairs_hook=hook)
    if not all(type(lbl) is Label for lbl in stored_labels) or not all(_valid_target(t, modules) for t in targets):
        raise ValueError("not a stored analysis")
    return stored_labels, targets


def _params(text: str, hook: Callable[[list[tuple[str, Any]]], Any]) -> Any:
    """An action's stored params object, read when the action runs. The header that named its classes was checked
    when the analysis was loaded (minibuild's code, the rules', the workspace's files), so this cannot find them
    changed; a file damaged since is an error that says what to remove."""
    try:
        return json.loads(text, object_pairs_hook=hook)
    except Exception as exc:  # noqa: BLE001 - anything a damaged file gives
        raise BuildError(f"the stored analysis holds params that cannot be read ({exc})",
                         hint="remove `.minibuild/cache/analysis` (or the cache's `analysis` folder) and build "
                              "again") from None


def _valid_target(target: Any, modules: set[str]) -> bool:
    """What the executor and the build read of a target and its actions has the types they expect, and every
    action's function is one of the modules classes may come from."""
    if not (type(target) is AnalysedTarget and type(target.label) is Label and type(target.rule) is str
            and type(target.actions) is tuple and type(target.providers) is tuple
            and (target.origin is None or type(target.origin) is Origin)):
        return False
    for a in target.actions:
        if not (type(a) is Action and type(a.owner) is Label and type(a.mnemonic) is str
                and type(a.version) is int and type(a.params) is str and type(a.description) is str
                and type(a.discovers_inputs) is bool and type(a.inputs) is tuple and type(a.outputs) is tuple
                and all(type(i) is Artifact for i in a.inputs + a.outputs) and type(a.function) is str
                and type(a.value) is DeferredParams):
            return False
        module, _, name = a.function.partition(":")
        if not (_module_name(module) and _IDENTIFIER.fullmatch(name)
                and (module.split(".")[0] in modules | {"minibuild", "minibuild_rules"} or module in modules)):
            return False
        if _JSON.raw_decode(a.params)[1] != len(a.params):  # the executor reads it for the key
            return False
    return True
