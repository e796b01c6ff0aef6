"""Macros: one table of a BUILD file that becomes several targets, as Bazel's symbolic macros and Pants' target
generators do.

A macro (`minibuild.rule.macro`) is loaded as a rule is: from a plugin's entry point or a `[rules] load` file.
When its package is loaded, its table is validated against the macro's attrs (an error names the table's file
and line) and its implementation runs; it declares targets with `ctx.target(kind, suffix, **attrs)`.

Labels: every target a table makes lives in the table's package and is named `<table name>_<suffix>` (the
table's own name for an empty suffix): `[[program_images]] name = "tools"` makes `//pkg:tools_bash`,
`//pkg:tools_bash_test`... A made target keeps its table (`Target.generator`) and the table's file and line:
its errors say `target //pkg:tools_bash (made by [[program_images]] table tools)`, and
`minibuild query --output json` gives it as `generator`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from minibuild.errors import InputError, Origin
from minibuild.label import Label
from minibuild.rule import Macro, MacroContext
from minibuild.workspace import Generator, Target

if TYPE_CHECKING:
    from minibuild.registry import RuleRegistry


def table_origin(table: Target) -> Callable[[str | None], Origin]:
    """Where an attribute of a macro table was written: the table's file and the line of the attribute."""

    def origin(attribute: str | None = None) -> Origin:
        at = table.origin(attribute)
        return Origin(file=at.file, line=at.line, attribute=attribute, macro=macro)

    macro = str(Generator(table.rule, table.label.name))

    return origin


def expand_table(registry: RuleRegistry, macro: Macro, table: Target) -> list[Target]:
    """The targets `macro` makes of `table`, in the order it declared them."""
    origin = table_origin(table)
    attrs = registry.validate(macro, table.attrs, origin)
    package = table.label.package
    ctx = MacroContext(name=table.label.name, package=package, attrs=attrs, table_origin=origin)
    macro.implementation(ctx)
    generator = Generator(table.rule, table.label.name)
    made = []
    for declared in ctx.declared:
        what = f"macro `{table.rule}` declares a target `{declared.name}`"
        try:
            Label.parse(f"//{package}:{declared.name}")
        except InputError as exc:
            raise InputError(f"{what}: {exc.message}", origin=origin(None),
                             hint="a target's suffix is made of letters, digits and `_.+=,@~-`") from None
        if registry.is_macro(declared.kind):
            raise InputError(f"{what} of `{declared.kind}`, which is a macro too", origin=origin(None),
                             hint="a macro declares targets of rules; call the other macro's implementation instead")
        if "name" in declared.attrs:
            raise InputError(f"{what} with a `name` attribute", origin=origin(None),
                             hint="the name is the table's name and the suffix given to `ctx.target`")
        made.append(Target(Label(package, declared.name), declared.kind, dict(declared.attrs), table.file,
                           table.line, {}, generator))
    return made
