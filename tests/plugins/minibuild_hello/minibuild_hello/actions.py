"""The action of the `hello` rule. It lives apart from the rule, so its key covers this module only: an edit to
rules.py re-runs analysis but not this action; an edit here re-runs it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GreetingParams:
    text: str
    out: str


def write_greeting(run) -> None:
    with open(run.outputs[run.params.out], "w", encoding="utf-8") as f:
        f.write(run.params.text + "\n")
