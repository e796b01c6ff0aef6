"""`text_file`: a file whose content is written in BUILD.toml, made by an action defined right here.

    [[text_file]]
    name = "motd"
    out = "motd"
    lines = ["hello", "world"]

The implementation only declares the output and registers the action; the action function
(`write_text`, below) runs at execution time; it is passed as a function object, and minibuild names it
by its module and name in the action's key, so the action finds it again in a later build.
"""

from __future__ import annotations

from minibuild.rule import Attrs, RuleContext, rule
from minibuild_rules.providers import DefaultInfo


class TextFileAttrs(Attrs):
    out: str
    """The name of the file written."""
    lines: list[str]
    """Its lines, each ended by a newline."""
    upper: bool = False
    """Write them in capitals."""


def write_text(run) -> None:
    text = "".join(line + "\n" for line in run.params["lines"])
    if run.params["upper"]:
        text = text.upper()
    with open(run.outputs[run.params["out"]], "w", encoding="utf-8") as f:
        f.write(text)


def _text_file_impl(ctx: RuleContext[TextFileAttrs]) -> list[object]:
    a = ctx.attrs
    out = ctx.actions.declare(a.out)
    ctx.actions.run(
        mnemonic="TextFile",
        function=write_text,
        version=1,
        params={"out": a.out, "lines": a.lines, "upper": a.upper},
        inputs=[],
        outputs=[out],
        description=f"writing `{a.out}` of `{ctx.label}`",
    )
    return [DefaultInfo((out,))]


text_file = rule(implementation=_text_file_impl, attrs=TextFileAttrs,
                 doc="A text file from the `lines` attribute, one line each.")
