"""Artifacts and actions: the frozen values the analysis phase produces and the executor runs."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import posixpath
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from minibuild.code import code_digest
from minibuild.digest import canonical_json
from minibuild.errors import InputError, Origin
from minibuild.label import Label

# Bump when the meaning of an action key changes, so old cache entries are never reused.
KEY_SCHEMA = 1


@dataclass(frozen=True, order=True)
class Artifact:
    """A file an action reads or writes.

    `source`: a workspace file, `path` relative to the workspace root.
    `derived`: an output of `owner`, `path` = `<package>/<target>/<name>` under `.minibuild/out/`.
    """

    kind: str
    path: str
    owner: Label | None = None

    @staticmethod
    def source(package_dir: str, rel: str, origin: Origin | None = None) -> Artifact:
        if posixpath.isabs(rel):
            raise InputError(f"source `{rel}` must be relative to its package directory", origin=origin,
                             hint="use a path relative to the BUILD.toml, or a label `//pkg:target`")
        joined = posixpath.normpath(posixpath.join(package_dir, rel))
        if joined == ".." or joined.startswith("../") or rel in ("", "."):
            raise InputError(f"source `{rel}` is outside the workspace", origin=origin,
                             hint="sources must live inside the workspace; reference other packages by label")
        return Artifact("source", joined)

    @staticmethod
    def derived(owner: Label, name: str) -> Artifact:
        return Artifact("derived", f"{owner.out_dir}/{name}", owner)

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)

    def __str__(self) -> str:
        return self.path


def function_name(function: Callable[..., Any]) -> str:
    """The stable "module:qualname" of a top-level action function: what keys and the executor use."""
    module, qualname = getattr(function, "__module__", None), getattr(function, "__qualname__", "")
    if not module or not qualname or "<" in qualname or "." in qualname:
        raise InputError(f"action function `{qualname or function!r}` must be a function defined at the top "
                         "level of a module", hint="move it out of the class or function it is defined in")
    return f"{module}:{qualname}"


def params_json(value: Any) -> Any:
    """Action params as JSON values: dataclasses and pydantic models by field, artifacts by path, tuples
    as lists. The one form params are hashed and shown (`--explain`) in. A dataclass field declared with
    `field(compare=False)` reaches the function but is not hashed: a setting that cannot change what the action
    writes (a timeout)."""
    if isinstance(value, Artifact):
        return value.path
    if isinstance(value, Label):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: params_json(getattr(value, f.name)) for f in dataclasses.fields(value) if f.compare}
    if hasattr(value, "model_dump") and not isinstance(value, type):  # a pydantic model
        return params_json(value.model_dump())
    if isinstance(value, Mapping):
        return {str(k): params_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [params_json(v) for v in value]
        return sorted(items, key=canonical_json) if isinstance(value, set | frozenset) else items
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"action params cannot hold a `{type(value).__name__}`; use dataclasses, "
                    "lists, dicts, strings, numbers and artifacts")


class DeferredParams:
    """An action's params object kept as the text it was stored as until the action runs (analysis_cache.py): a
    no-op build then never imports the modules of the params classes (a rule's, with pydantic)."""

    def __init__(self, load: Callable[[], Any]) -> None:
        self._load = load

    def load(self) -> Any:
        return self._load()


@dataclass(frozen=True)
class Action:
    """One unit of cached work: `function` ("module:qualname") is called with an `ActionRun` whose
    `params` is `value`, the typed params object the rule gave.

    Identity is kind, version, params, input contents and output names; the description is not part of it.
    """

    owner: Label
    mnemonic: str
    function: str
    version: int
    params: str  # canonical JSON of the params, so the action stays hashable and the key is computed on exact bytes
    inputs: tuple[Artifact, ...]
    outputs: tuple[Artifact, ...]
    description: str
    discovers_inputs: bool = False
    value: Any = field(default=None, compare=False, hash=False, repr=False)

    @functools.cached_property
    def id(self) -> str:
        """Stable across builds: the owner and the first output name it writes."""
        return f"{self.owner}#{self.mnemonic}:{self.outputs[0].name if self.outputs else ''}"

    def params_dict(self) -> dict[str, Any]:
        return json.loads(self.params)

    def key_manifest(self, input_digests: dict[str, str]) -> dict[str, Any]:
        """What the key hashes; kept so `--explain` can say what changed."""
        return {
            "schema": KEY_SCHEMA,
            "function": self.function,
            "version": self.version,
            "code": code_digest(self.function),
            "params": self.params_dict(),
            "inputs": input_digests,
            "outputs": [o.name for o in self.outputs],
        }


def action_key(manifest: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(manifest).encode()).hexdigest()


def explain(old: dict[str, Any] | None, new: dict[str, Any]) -> str:
    """A one-line reason an action ran, from the previous and current key manifests."""
    if old is None:
        return "never built before"
    changes = []
    for part in ("function", "version", "schema", "code", "outputs"):
        if old.get(part) != new.get(part):
            changes.append(f"{part} changed")
    old_params, new_params = old.get("params", {}), new.get("params", {})
    for k in sorted(set(old_params) | set(new_params)):
        if old_params.get(k) != new_params.get(k):
            changes.append(f"parameter `{k}` changed")
    old_in, new_in = old.get("inputs", {}), new.get("inputs", {})
    for k in sorted(set(old_in) | set(new_in)):
        if k not in old_in:
            changes.append(f"new input `{k}`")
        elif k not in new_in:
            changes.append(f"input `{k}` removed")
        elif old_in[k] != new_in[k]:
            changes.append(f"input `{k}` changed")
    return "; ".join(changes) if changes else "a discovered input changed"
