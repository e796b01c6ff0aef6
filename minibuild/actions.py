"""Artifacts and actions: the frozen values the analysis phase produces and the executor runs."""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import posixpath
from dataclasses import dataclass
from typing import Any

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


@dataclass(frozen=True)
class Action:
    """One unit of cached work. `function` ("module:name") is called with the params, inputs and outputs.

    Identity is kind, version, params, input contents and output names; the description is not part of it.
    """

    owner: Label
    mnemonic: str
    function: str
    version: int
    params: str  # canonical JSON, so the action stays hashable and the key is computed on exact bytes
    inputs: tuple[Artifact, ...]
    outputs: tuple[Artifact, ...]
    description: str
    discovers_inputs: bool = False

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


@functools.cache
def code_digest(function: str) -> str:
    """The digest of the code an action function runs: every source file of its top-level package.

    Part of every key, so a new minibuild (or an edited custom rule) never reuses outputs written by
    different code, whichever module of the package changed (an action calls into the ELF resolver,
    the OCI writer, ...); `version` stays for changes outside the package.
    """
    module = function.partition(":")[0]
    spec = importlib.util.find_spec(module.split(".")[0]) if not module.startswith("minibuild_user_rules.") \
        else importlib.util.find_spec(module)
    if spec is None or not spec.origin or not os.path.isfile(spec.origin):
        return ""
    if spec.submodule_search_locations is None:  # a single-file module, e.g. a workspace's rule file
        paths = [spec.origin]
    else:
        paths = sorted(os.path.join(d, f) for loc in spec.submodule_search_locations
                       for d, _, files in os.walk(loc) for f in files if f.endswith(".py"))
    h = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            h.update(os.path.basename(path).encode() + b"\0" + hashlib.sha256(f.read()).digest())
    return h.hexdigest()[:16]


def action_key(manifest: dict[str, Any]) -> str:
    from minibuild.digest import canonical_json

    return hashlib.sha256(canonical_json(manifest).encode()).hexdigest()


def explain(old: dict[str, Any] | None, new: dict[str, Any]) -> str:
    """A one-line reason an action ran, from the previous and current key manifests."""
    if old is None:
        return "never built before"
    changes = []
    for field in ("function", "version", "schema", "code", "outputs"):
        if old.get(field) != new.get(field):
            changes.append(f"{field} changed")
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
