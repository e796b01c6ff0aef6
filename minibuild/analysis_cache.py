"""The result of analysis, kept between builds: a no-op build loads it instead of re-reading BUILD files.

Analysis is a pure function of the workspace and BUILD files it read, the rule files, minibuild's own
code, the command line's patterns and SOURCE_DATE_EPOCH. The cache records the digest of every one of
those files and the package list of each recursive pattern; when all still hold, the stored targets
and actions are used as they are, and pydantic and the rule modules are never imported.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from minibuild.actions import Action
from minibuild.digest import StatCache
from minibuild.label import Label, Pattern, parse_pattern
from minibuild.workspace import BUILD_FILE, WORKSPACE_FILE, Workspace

_SCHEMA = 1
_CODE_DIRS = ("minibuild", "rules")


@dataclass(frozen=True)
class AnalysedTarget:
    """What the execution phase needs of a target: its rule kind, actions and providers."""

    label: Label
    rule: str
    actions: tuple[Action, ...]
    providers: tuple[Any, ...]


def _code_files() -> list[str]:
    """Every source file of minibuild and the built-in rules: a new version invalidates the cache."""
    base = Path(__file__).resolve().parent.parent
    found = []
    for d in _CODE_DIRS:
        for dirpath, _, files in os.walk(base / d):
            found += [os.path.join(dirpath, f) for f in files if f.endswith(".py")]
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
        if stored["code"] != _digests(_code_files(), stat_cache):
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
    stored = {
        "schema": _SCHEMA,
        "epoch": os.environ.get("SOURCE_DATE_EPOCH", "0"),
        "code": _digests(_code_files(), stat_cache),
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
