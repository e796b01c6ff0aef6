"""`genrule`: run a shell command over declared `srcs` to produce declared `outs`.

    [[genrule]]
    name = "hello"
    srcs = ["hello.c"]
    outs = ["hello"]
    cmd = "cc -O2 -o $(OUTS) $(SRCS)"

`$(SRCS)`, `$(OUTS)` expand to the shell-quoted paths, `$(SRC)`/`$(OUT)` to the only one. The command runs in a
sandbox (minibuild/sandbox.py, docs/sandbox.md): the host read-only, its sources at `/src/<path in the
workspace>`, an empty working directory `/build` for its outputs, no network, stopped at its `timeout`. Tools it
calls (`cc`) come from the host and are not part of the key; change `version` to force a rebuild after a
toolchain upgrade. Its output goes to `.minibuild/cache/logs/<package>/<name>.log`; a failure shows the end.
"""

from __future__ import annotations

import os
import posixpath
import shlex
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import field_validator

from minibuild import sandbox
from minibuild.actions import Artifact
from minibuild.errors import BuildError
from minibuild.executor import ActionRun
from minibuild.rule import Attrs, RuleContext, rule
from minibuild_rules.providers import DefaultInfo

DEFAULT_TIMEOUT = 600


@dataclass(frozen=True)
class GenruleParams:
    cmd: str
    env: Mapping[str, str]
    srcs: tuple[Artifact, ...]
    version: str
    sandbox: bool  # keyed: the paths the command sees, and what it can read, change what it writes
    network: bool
    # Not keyed (compare=False): a deadline decides whether a run ends, never what a finished run wrote; a run
    # that timed out stored nothing, so a longer timeout runs the command again anyway.
    timeout: int = field(default=DEFAULT_TIMEOUT, compare=False)


class GenruleAttrs(Attrs):
    srcs: list[str] = []
    """Input files of the package, relative to its BUILD.toml: `$(SRCS)`, or `$(SRC)` for the only one (in the
    sandbox, read-only at `/src/<path in the workspace>`)."""
    outs: list[str]
    """Names of the files the command writes: `$(OUTS)`, or `$(OUT)` for the only one."""
    cmd: str
    """A bash command (`-eo pipefail`), run in an empty working directory (`/build` in the sandbox)."""
    env: dict[str, str] = {}
    """More environment variables for the command (it gets `PATH`, `HOME`, `LC_ALL`, `SOURCE_DATE_EPOCH`)."""
    version: str = ""
    """Change it to run the command again (the tools it calls, `cc`, are not part of the key)."""
    sandbox: bool = True
    """Run in a sandbox: host read-only, only `srcs` of the workspace, private /tmp and HOME (docs/sandbox.md)."""
    network: bool = False
    """Give the sandboxed command the host's network (without it: none, not even loopback)."""
    timeout: int = DEFAULT_TIMEOUT
    """Seconds the command may run; then it and everything it started are killed and the build fails."""

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

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, v: int) -> int:
        if not 1 <= v <= 86400:
            raise ValueError("timeout is 1 to 86400 seconds")
        return v


def _genrule_impl(ctx: RuleContext[GenruleAttrs]) -> list[object]:
    a = ctx.attrs
    srcs = [ctx.source(s, f"srcs[{i}]") for i, s in enumerate(a.srcs)]
    outs = [ctx.actions.declare(o) for o in a.outs]
    ctx.actions.run(
        mnemonic="Genrule",
        function=run_genrule,
        version=2,
        # Without the sandbox the command has the host's network whatever `network` says: not keyed then.
        params=GenruleParams(cmd=a.cmd, env=a.env, srcs=tuple(srcs), version=a.version, sandbox=a.sandbox,
                             network=a.network or not a.sandbox, timeout=a.timeout),
        inputs=srcs,
        outputs=outs,
        description=f"running genrule `{ctx.label}`",
    )
    return [DefaultInfo(tuple(outs))]


def run_genrule(run: ActionRun[GenruleParams]) -> None:
    p = run.params
    owner = str(run.action.owner)
    scratch = tempfile.mkdtemp(prefix="genrule-", dir=os.path.join(run.cache.root, "tmp"))
    log = os.path.join(scratch, "output.log")
    try:
        work, _ = sandbox.prepare(scratch, {s.path: run.input(s) for s in p.srcs} if p.sandbox else {})
        if p.sandbox:
            srcs = [posixpath.join(sandbox.SOURCES, s.path) for s in p.srcs]
            outs = [posixpath.join(sandbox.WORK, o) for o in run.outputs]
        else:
            srcs, outs = [run.input(s) for s in p.srcs], [os.path.join(work, o) for o in run.outputs]
        cmd = _expand(p.cmd, srcs, outs, owner)
        home = sandbox.HOME if p.sandbox else os.path.join(scratch, "home")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "LC_ALL": "C.UTF-8",
               "SOURCE_DATE_EPOCH": os.environ.get("SOURCE_DATE_EPOCH", "0"), **p.env}
        command = ["/bin/bash", "-eo", "pipefail", "-c", cmd]
        what = f"genrule `{owner}`"
        if p.sandbox:
            hide = [run.root, run.cache.root, *sandbox.private_home()]
            code = sandbox.run_sandboxed(command, scratch=scratch, env=env, network=p.network, timeout=p.timeout,
                                         log=log, hide=hide, what=what)
        else:
            os.mkdir(home)
            code = sandbox.run_unsandboxed(command, cwd=work, env=env, timeout=p.timeout, log=log, what=what)
        kept = _keep_log(log, run)
        if code != 0:
            raise _failure(owner, code, p.timeout, kept, cmd)
        sandbox.take_outputs(work, run.outputs, inside=sandbox.WORK if p.sandbox else None, owner=owner)
    finally:
        sandbox.remove_tree(scratch)


def _expand(cmd: str, srcs: list[str], outs: list[str], owner: str) -> str:
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
                                 f"in `{owner}`", hint="use `$(SRCS)` / `$(OUTS)` for lists")
            cmd = cmd.replace(token, value)
    return cmd


def _keep_log(log: str, run: ActionRun[GenruleParams]) -> str:
    """Move the run's output to `logs/<package>/<name>.log` in the cache (the last run's, whatever its end)."""
    kept = os.path.join(run.cache.root, "logs", run.action.owner.out_dir + ".log")
    try:
        os.makedirs(os.path.dirname(kept), exist_ok=True)
        os.replace(log, kept)
    except OSError:
        return log  # still readable until the scratch directory goes
    return kept


def _failure(owner: str, code: int | None, timeout: int, log: str, cmd: str) -> BuildError:
    """The error of a run that failed or ran out of time: the end of its output (bounded), where the rest is."""
    shown = cmd if len(cmd) <= 300 else cmd[:300] + " [... cut]"
    last = tuple(sandbox.tail(log)) or ("(no output)",)
    if code is None:
        return BuildError(f"genrule `{owner}` did not finish within its timeout of {timeout} s, and was stopped",
                          causes=last, hint=f"raise `timeout` (seconds, default {DEFAULT_TIMEOUT}) if it needs "
                                            f"longer; its output so far is in {log}; the command was: {shown}")
    how = f"was killed by signal {-code}" if code < 0 else f"failed with exit code {code}"
    return BuildError(f"genrule `{owner}` {how}", causes=last,
                      hint=f"its whole output is in {log}; the command was: {shown}")


genrule = rule(implementation=_genrule_impl, attrs=GenruleAttrs,
               doc="Run a shell command over declared sources to produce declared outputs.")
