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

import os
import shlex
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import field_validator

from minibuild.actions import Artifact
from minibuild.errors import BuildError
from minibuild.executor import ActionRun
from minibuild.rule import Attrs, RuleContext, rule
from minibuild_rules.providers import DefaultInfo


@dataclass(frozen=True)
class GenruleParams:
    cmd: str
    env: Mapping[str, str]
    srcs: tuple[Artifact, ...]
    version: str


class GenruleAttrs(Attrs):
    srcs: list[str] = []
    """Input files of the package, relative to its BUILD.toml: `$(SRCS)`, or `$(SRC)` for the only one."""
    outs: list[str]
    """Names of the files the command writes: `$(OUTS)`, or `$(OUT)` for the only one."""
    cmd: str
    """A bash command (`-eo pipefail`), run in an empty temporary directory."""
    env: dict[str, str] = {}
    """More environment variables for the command (it gets `PATH`, `HOME`, `LC_ALL`, `SOURCE_DATE_EPOCH`)."""
    version: str = ""
    """Change it to run the command again (the tools it calls, `cc`, are not part of the key)."""

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


def _genrule_impl(ctx: RuleContext[GenruleAttrs]) -> list[object]:
    a = ctx.attrs
    srcs = [ctx.source(s, f"srcs[{i}]") for i, s in enumerate(a.srcs)]
    outs = [ctx.actions.declare(o) for o in a.outs]
    ctx.actions.run(
        mnemonic="Genrule",
        function=run_genrule,
        version=1,
        params=GenruleParams(cmd=a.cmd, env=a.env, srcs=tuple(srcs), version=a.version),
        inputs=srcs,
        outputs=outs,
        description=f"running genrule `{ctx.label}`",
    )
    return [DefaultInfo(tuple(outs))]


def run_genrule(run: ActionRun[GenruleParams]) -> None:
    srcs = [run.input(s) for s in run.params.srcs]
    outs = list(run.outputs.values())
    cmd = run.params.cmd
    subst = {
        "$(SRCS)": " ".join(shlex.quote(s) for s in srcs),
        "$(OUTS)": " ".join(shlex.quote(o) for o in outs),
        "$(SRC)": shlex.quote(srcs[0]) if len(srcs) == 1 else None,
        "$(OUT)": shlex.quote(outs[0]) if len(outs) == 1 else None,
    }
    for token, value in subst.items():
        if token in cmd:
            if value is None:
                raise BuildError(f"`{token}` needs exactly one {'source' if 'SRC' in token else 'output'} "
                                 f"in `{run.action.owner}`", hint="use `$(SRCS)` / `$(OUTS)` for lists")
            cmd = cmd.replace(token, value)
    work = os.path.dirname(outs[0])
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": work, "LC_ALL": "C.UTF-8",
           "SOURCE_DATE_EPOCH": os.environ.get("SOURCE_DATE_EPOCH", "0"), **run.params.env}
    proc = subprocess.run(["/bin/bash", "-eo", "pipefail", "-c", cmd], cwd=work, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace")
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise BuildError(f"genrule `{run.action.owner}` failed with exit code {proc.returncode}",
                         causes=tuple(tail.splitlines()) or ("(no output)",),
                         hint=f"the command was: {cmd}")


genrule = rule(implementation=_genrule_impl, attrs=GenruleAttrs,
               doc="Run a shell command over declared sources to produce declared outputs.")
