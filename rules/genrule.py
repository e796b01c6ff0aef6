"""`genrule`: run a shell command over declared `srcs` to produce declared `outs`.

    [[genrule]]
    name = "hello"
    srcs = ["hello.c"]
    outs = ["hello"]
    cmd = "cc -O2 -o $(OUTS) $(SRCS)"

`$(SRCS)`, `$(OUTS)` expand to the shell-quoted paths, `$(SRC)`/`$(OUT)` to the only one. The command runs
in an empty temporary directory. Tools it calls (`cc`) come from the host and are not part of the key;
change `version` to force a rebuild after a toolchain upgrade.
"""

from __future__ import annotations

import posixpath

from pydantic import field_validator

from minibuild.rule import Attrs, RuleContext, rule
from rules.providers import DefaultInfo


class GenruleAttrs(Attrs):
    srcs: list[str] = []
    outs: list[str]
    cmd: str
    env: dict[str, str] = {}
    version: str = ""

    @field_validator("outs")
    @classmethod
    def _outs(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("a genrule needs at least one output")
        for out in v:
            if "/" in out or out in (".", "..") or not out:
                raise ValueError(f"output `{out}` must be a plain file name")
        if len(set(v)) != len(v):
            raise ValueError("output names must be unique")
        return v


def _genrule_impl(ctx: RuleContext) -> list[object]:
    a: GenruleAttrs = ctx.attrs  # type: ignore[assignment]
    srcs = [ctx.source(s, f"srcs[{i}]") for i, s in enumerate(a.srcs)]
    outs = [ctx.actions.declare(o) for o in a.outs]
    ctx.actions.run(
        mnemonic="Genrule",
        function="minibuild.genrule_action:run_genrule",
        version=1,
        params={"cmd": a.cmd, "env": a.env, "srcs": [s.path for s in srcs], "version": a.version,
                "names": {s.path: posixpath.basename(s.path) for s in srcs}},
        inputs=srcs,
        outputs=outs,
        description=f"running genrule `{ctx.label}`",
    )
    return [DefaultInfo(tuple(outs))]


genrule = rule(implementation=_genrule_impl, attrs=GenruleAttrs,
               doc="Run a shell command over declared sources to produce declared outputs.")
