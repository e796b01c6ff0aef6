"""The result of analysis, kept between builds: a no-op build loads it instead of re-reading BUILD files.

Analysis is a pure function of the workspace and BUILD files it read, the rule files, minibuild's own
code, the installed plugins (the `minibuild.rules` entry points, built-in rules included) and their code, the
command line's patterns and SOURCE_DATE_EPOCH. The cache records the digest of every one of those files, the
entry points declared on `sys.path` and the package list of each recursive pattern; when all still hold, the
stored targets and actions are used as they are, and pydantic and the rule modules are never imported.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import pickle
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from minibuild.actions import Action
from minibuild.digest import StatCache
from minibuild.errors import Origin
from minibuild.label import Label, Pattern, parse_pattern
from minibuild.workspace import BUILD_FILE, WORKSPACE_FILE, Workspace

_SCHEMA = 3
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
    return os.path.join(workspace.state_dir, "cache", "analysis", key + ".pickle")


def _digests(paths: Sequence[str], stat_cache: StatCache) -> dict[str, str]:
    return {p: stat_cache.fingerprint(p) for p in paths}


def load(workspace: Workspace, patterns: Sequence[str], package: str | None,
         stat_cache: StatCache) -> tuple[list[Label], list[AnalysedTarget]] | None:
    """The stored analysis for these patterns, if every input it came from is unchanged."""
    try:
        with open(_path(workspace, patterns, package), "rb") as f:
            stored = pickle.load(f)
    except Exception:  # noqa: BLE001 - a missing, partial or foreign file is a cache miss, never an error
        return None
    try:
        if stored["schema"] != _SCHEMA or stored["epoch"] != os.environ.get("SOURCE_DATE_EPOCH", "0"):
            return None
        distributions = _rule_distributions()
        if stored["plugins"] != distributions or stored["code"] != _digests(_code_files(distributions), stat_cache):
            return None
        if stored["files"] != _digests(list(stored["files"]), stat_cache):
            return None
        if stored["packages"] != _recursive_packages(workspace, patterns, package):
            return None
        if stored["user_modules"]:
            # lazy: pydantic, loaded only when stored rule files must be imported again
            from minibuild.registry import import_rule_file

            for name, path in stored["user_modules"].items():
                import_rule_file(path, name)
        return stored["labels"], stored["targets"]
    except Exception:  # noqa: BLE001 - anything odd in a stored analysis means: analyse again
        return None


def save(workspace: Workspace, patterns: Sequence[str], package: str | None, stat_cache: StatCache,
         labels: list[Label], targets: list[AnalysedTarget], user_modules: dict[str, str]) -> None:
    root = str(workspace.root)
    files = [os.path.join(root, WORKSPACE_FILE), *user_modules.values()]
    files += [os.path.join(root, pkg, BUILD_FILE) for pkg in workspace.loaded_packages]
    distributions = _rule_distributions()
    stored = {
        "schema": _SCHEMA,
        "epoch": os.environ.get("SOURCE_DATE_EPOCH", "0"),
        "plugins": distributions,
        "code": _digests(_code_files(distributions), stat_cache),
        "files": _digests(files, stat_cache),
        "packages": _recursive_packages(workspace, patterns, package),
        "labels": labels,
        "targets": targets,
        "user_modules": user_modules,
    }
    path = _path(workspace, patterns, package)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as f:
            pickle.dump(stored, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except OSError:
        # An optimisation only: a full disk here must not fail a build that succeeded.
        with contextlib.suppress(OSError):
            os.unlink(tmp)
