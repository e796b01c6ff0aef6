"""The rule API, in the style of Bazel's Starlark:

    image = rule(implementation=_image_impl, attrs=ImageAttrs, doc="...")

An implementation receives a `RuleContext` (label, validated attrs, the providers of its
dependencies) and returns providers. It declares outputs and registers actions through
`ctx.actions`; it never opens a file or runs a process, so every action key can be computed by the
engine and trusted.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from minibuild.actions import Action, Artifact
from minibuild.digest import canonical_json
from minibuild.errors import InputError, Origin
from minibuild.label import Label

BUILTIN_RULE_MODULES = ("rules.image", "rules.files", "rules.genrule", "rules.image_test")



class Dep(str):
    """An attribute value that names another target; the engine follows these to build the graph."""


def _to_dep(value: Any) -> Any:
    if isinstance(value, str) and (value.startswith("//") or value.startswith(":")):
        return Dep(value)
    return value


def _require_dep(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    return Dep(value if value.startswith(("//", ":")) else ":" + value)


# A plain path or, when it starts with `//` or `:`, a label.
PathOrLabel = Annotated[str, AfterValidator(_to_dep)]
# Always a label (a bare name means `:name`).
LabelAttr = Annotated[str, AfterValidator(_require_dep)]


class Attrs(BaseModel):
    """Base of every rule's attribute model: frozen, unknown keys refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Rule:
    implementation: Callable[[RuleContext], Sequence[Any]]
    attrs: type[Attrs]
    doc: str = ""
    name: str = ""


def rule(*, implementation: Callable[[RuleContext], Sequence[Any]], attrs: type[Attrs], doc: str = "") -> Rule:
    """Declare a rule. Its name is the module-level variable it is assigned to."""
    return Rule(implementation=implementation, attrs=attrs, doc=doc)


def deps_of(value: Any, path: str = "") -> Iterator[tuple[str, Dep]]:
    """Every `Dep` inside a validated attribute value, with the attribute path it sits at."""
    if isinstance(value, Dep):
        yield path, value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from deps_of(getattr(value, name), f"{path}.{name}" if path else name)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from deps_of(item, f"{path}[{i}]")
    elif isinstance(value, dict):
        for k, item in value.items():
            yield from deps_of(item, f"{path}.{k}")


def import_rule_file(path: str, module_name: str) -> Any:
    """Import a workspace's rule file under `module_name`, so its action functions can be found by name."""
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


class RuleRegistry:
    """Rule kinds by name: the built-in ones and those a workspace loads with `[rules] load`."""

    def __init__(self) -> None:
        self.rules: dict[str, Rule] = {}
        self.sources: dict[str, str] = {}
        self.user_modules: dict[str, str] = {}  # module name -> file, for rules loaded from the workspace

    def add_module(self, module: Any, source: str) -> None:
        for name, value in vars(module).items():
            if isinstance(value, Rule) and not name.startswith("_"):
                if name in self.rules and self.sources[name] != source:
                    raise InputError(
                        f"rule `{name}` from `{source}` is already defined by `{self.sources[name]}`",
                        hint="give the custom rule another name",
                    )
                self.rules[name] = Rule(value.implementation, value.attrs, value.doc, name)
                self.sources[name] = source

    def load_builtins(self) -> None:
        for module_name in BUILTIN_RULE_MODULES:
            self.add_module(importlib.import_module(module_name), module_name)

    def load_file(self, root: Path, rel: str) -> None:
        path = (root / rel).resolve()
        try:
            found = root.resolve() in path.parents and path.is_file()
        except OSError:  # a name too long for the file system
            found = False
        if not found:
            raise InputError(f"cannot load rules from `{rel}`: no such file in the workspace",
                             origin=Origin(file="workspace.toml", attribute="rules.load"))
        # Unique per file (a/b.py and a_b.py must not collide) and stable, so action functions
        # defined in the file can be named "module:function" and found by the executor.
        stem = re.sub(r"\W", "_", path.stem)
        module_name = f"minibuild_user_rules.{stem}_{hashlib.sha256(rel.encode()).hexdigest()[:12]}"
        try:
            module = import_rule_file(str(path), module_name)
        except Exception as exc:  # a user's file: report it as bad input, not as our crash
            raise InputError(f"loading rules from `{rel}` failed: {type(exc).__name__}: {exc}",
                             origin=Origin(file="workspace.toml", attribute="rules.load")) from None
        self.add_module(module, rel)
        self.user_modules[module_name] = str(path)

    def get(self, name: str, origin: Origin) -> Rule:
        if name not in self.rules:
            close = difflib.get_close_matches(name, list(self.rules), n=1)
            raise InputError(
                f"unknown rule `{name}`", origin=origin,
                hint=f"did you mean `{close[0]}`?" if close
                else f"known rules: {', '.join(f'`{n}`' for n in sorted(self.rules))}",
            )
        return self.rules[name]

    def validate(self, rule: Rule, raw: Mapping[str, Any], target_origin: Callable[[str | None], Origin]) -> Attrs:
        from minibuild.workspace import format_validation_error

        try:
            return rule.attrs.model_validate(dict(raw))
        except ValidationError as exc:
            path, message, hint = format_validation_error(exc, list(rule.attrs.model_fields))
            raise InputError(message, origin=target_origin(path), hint=hint) from None


@dataclass
class Actions:
    """What a rule implementation uses to declare outputs and register actions."""

    label: Label
    registered: list[Action] = field(default_factory=list)

    def declare(self, name: str) -> Artifact:
        """An output of this target, `.minibuild/out/<package>/<name>/<name>` once built."""
        return Artifact.derived(self.label, name)

    def run(
        self,
        *,
        mnemonic: str,
        function: str,
        version: int,
        params: Mapping[str, Any],
        inputs: Sequence[Artifact],
        outputs: Sequence[Artifact],
        description: str,
        discovers_inputs: bool = False,
    ) -> Action:
        """Register an action: `function` ("module:name") runs with these params, inputs and outputs."""
        for out in outputs:
            if out.owner != self.label:
                raise InputError(f"`{self.label}` declares an output owned by `{out.owner}`")
        action = Action(
            owner=self.label,
            mnemonic=mnemonic,
            function=function,
            version=version,
            params=canonical_json(params),
            inputs=tuple(inputs),
            outputs=tuple(outputs),
            description=description,
            discovers_inputs=discovers_inputs,
        )
        self.registered.append(action)
        return action


@dataclass
class RuleContext:
    label: Label
    attrs: Attrs
    target_origin: Callable[[str | None], Origin]
    deps: dict[str, Sequence[Any]]
    actions: Actions
    sysroot: str
    platforms: Mapping[str, str]
    package_dir: str
    epoch: int = 0  # SOURCE_DATE_EPOCH: the timestamp written into images

    def dep(self, value: str) -> Sequence[Any]:
        """The providers of a dependency named by an attribute value (a label string)."""
        return self.deps[str(Label.parse(value, self.label.package))]

    def provider(self, value: str, kind: type) -> Any:
        """The provider of type `kind` of a dependency, or a clear error if it has none."""
        for p in self.dep(value):
            if isinstance(p, kind):
                return p
        raise InputError(f"`{value}` provides no `{kind.__name__}`, which `{self.label}` needs here")

    def source(self, rel: str, attribute: str) -> Artifact:
        """A file of this package (path relative to the package directory, inside the workspace)."""
        return Artifact.source(self.package_dir, rel, self.target_origin(attribute))

    def fail(self, message: str, attribute: str | None = None, hint: str | None = None) -> InputError:
        return InputError(message, origin=self.target_origin(attribute), hint=hint)
