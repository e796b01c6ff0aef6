"""The rule API, in the style of Bazel's Starlark:

    image = rule(implementation=_image_impl, attrs=ImageAttrs, doc="...")
    program_images = macro(implementation=_program_images, attrs=ProgramImagesAttrs, doc="...")

An implementation receives a `RuleContext` (label, validated attrs, the providers of its
dependencies) and returns providers. It declares outputs and registers actions through
`ctx.actions`; it never opens a file or runs a process, so every action key can be computed by the
engine and trusted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict

from minibuild.actions import Action, Artifact, function_name, params_json
from minibuild.digest import canonical_json
from minibuild.errors import InputError, Origin
from minibuild.label import Label


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
    """Base of every rule's attribute model: frozen, unknown keys refused.

    An attribute is documented by the string literal under it (a docstring, as pydantic's
    `use_attribute_docstrings` reads them); `minibuild rules` and the README's tables show it. They are read from
    the source only when asked for (`minibuild.rule_doc`), not when the class is made: that would cost every
    analysis about 25 ms for the built-in rules.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)


A = TypeVar("A", bound=Attrs)


@dataclass(frozen=True)
class Rule(Generic[A]):
    implementation: Callable[[RuleContext[A]], Sequence[Any]]
    attrs: type[A]
    doc: str = ""
    name: str = ""


def rule(*, implementation: Callable[[RuleContext[A]], Sequence[Any]], attrs: type[A], doc: str = "") -> Rule[A]:
    """Declare a rule. Its name is the module-level variable it is assigned to."""
    return Rule(implementation=implementation, attrs=attrs, doc=doc)




@dataclass(frozen=True)
class Macro(Generic[A]):
    """A function that expands one table of a BUILD file into several targets, when its package is loaded (as
    Bazel's symbolic macros and Pants' target generators do). See `minibuild.macros`."""

    implementation: Callable[[MacroContext[A]], None]
    attrs: type[A]
    doc: str = ""
    name: str = ""


def macro(*, implementation: Callable[[MacroContext[A]], None], attrs: type[A], doc: str = "") -> Macro[A]:
    """Declare a macro. Its name is the module-level variable it is assigned to (for a plugin: its entry point's
    name). Its table is validated against `attrs` like a rule's; `implementation` declares the targets."""
    return Macro(implementation=implementation, attrs=attrs, doc=doc)


@dataclass(frozen=True)
class DeclaredTarget:
    """A target a macro declared: its rule kind, full name and attributes as a BUILD table would give them."""

    kind: str
    name: str
    attrs: Mapping[str, Any]


@dataclass
class MacroContext(Generic[A]):
    """What a macro implementation receives: its table's name, package and validated attrs."""

    name: str
    package: str
    attrs: A
    table_origin: Callable[[str | None], Origin]
    declared: list[DeclaredTarget] = field(default_factory=list)

    def target(self, kind: str, suffix: str = "", /, **attrs: Any) -> str:
        """Declare a target of rule `kind` named `<table name>_<suffix>` (the table's own name when `suffix` is
        empty), with `attrs` as its table would have them. Returns its label in the package (`:tools_bash`),
        for attributes of other targets."""
        name = f"{self.name}_{suffix}" if suffix else self.name
        self.declared.append(DeclaredTarget(kind, name, dict(attrs)))
        return ":" + name

    def fail(self, message: str, attribute: str | None = None, hint: str | None = None) -> InputError:
        """An error pointing at the table (and at the line of `attribute`, if given)."""
        return InputError(message, origin=self.table_origin(attribute), hint=hint)


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
        function: Callable[[Any], None],
        version: int,
        params: Any,
        inputs: Sequence[Artifact],
        outputs: Sequence[Artifact],
        description: str,
        discovers_inputs: bool = False,
    ) -> Action:
        """Register an action: `function`, a top-level function, is called with an `ActionRun` whose `params`
        is `params` (a frozen dataclass or a pydantic model; a dict for the simplest rules)."""
        for out in outputs:
            if out.owner != self.label:
                raise InputError(f"`{self.label}` declares an output owned by `{out.owner}`")
        action = Action(
            owner=self.label,
            mnemonic=mnemonic,
            function=function_name(function),
            version=version,
            params=canonical_json(params_json(params)),
            inputs=tuple(inputs),
            outputs=tuple(outputs),
            description=description,
            discovers_inputs=discovers_inputs,
            value=params,
        )
        self.registered.append(action)
        return action


T = TypeVar("T")


@dataclass
class RuleContext(Generic[A]):
    label: Label
    attrs: A
    target_origin: Callable[[str | None], Origin]
    deps: dict[str, Sequence[Any]]
    actions: Actions
    sysroot: str
    platforms: Mapping[str, str]
    package_dir: str
    epoch: int = 0  # SOURCE_DATE_EPOCH: the timestamp written into images
    # The `[sysroots.NAME]` tables of workspace.toml (package sysroots), as plain values: name -> table.
    package_sysroots: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def dep(self, value: str) -> Sequence[Any]:
        """The providers of a dependency named by an attribute value (a label string)."""
        return self.deps[str(Label.parse(value, self.label.package))]

    def provider(self, value: str, kind: type[T]) -> T:
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
