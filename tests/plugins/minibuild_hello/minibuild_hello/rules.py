"""The `hello` rule and the `hellos` macro, found by minibuild through this package's `minibuild.rules` entry
points."""

from __future__ import annotations

from minibuild.rule import Attrs, MacroContext, RuleContext, macro, rule
from minibuild_hello.actions import GreetingParams, write_greeting
from minibuild_rules.providers import DefaultInfo

GREETING = "hello"


class HelloAttrs(Attrs):
    to: str
    """Who is greeted."""
    greeting: str = GREETING
    """The first word."""


def _hello_impl(ctx: RuleContext[HelloAttrs]) -> list[object]:
    out = ctx.actions.declare(f"{ctx.label.name}.txt")
    ctx.actions.run(
        mnemonic="Hello",
        function=write_greeting,
        version=1,
        params=GreetingParams(text=f"{ctx.attrs.greeting}, {ctx.attrs.to}!", out=out.name),
        inputs=[],
        outputs=[out],
        description=f"greeting {ctx.attrs.to} in `{ctx.label}`",
    )
    return [DefaultInfo((out,))]


hello = rule(implementation=_hello_impl, attrs=HelloAttrs, doc="A file `<name>.txt` that greets someone.")


class HellosAttrs(Attrs):
    to: list[str]
    """Who is greeted: one `hello` target each, named `<table name>_<who>`."""
    greeting: str = GREETING
    """The first word of each greeting."""


def _hellos_impl(ctx: MacroContext[HellosAttrs]) -> None:
    if not ctx.attrs.to:
        raise ctx.fail("`to` names nobody", "to", hint='e.g. `to = ["ann", "bob"]`')
    for who in ctx.attrs.to:
        ctx.target("hello", who, to=who, greeting=ctx.attrs.greeting)


hellos = macro(implementation=_hellos_impl, attrs=HellosAttrs, doc="One `hello` target per name in `to`.")
