"""The action behind `genrule`: a shell command in an empty directory, over declared inputs."""

from __future__ import annotations

import os
import shlex
import subprocess

from minibuild.errors import BuildError
from minibuild.executor import ActionRun


def run_genrule(run: ActionRun) -> None:
    srcs = [run.inputs[p] for p in run.params["srcs"]]
    outs = list(run.outputs.values())
    cmd = run.params["cmd"]
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
           "SOURCE_DATE_EPOCH": os.environ.get("SOURCE_DATE_EPOCH", "0"), **run.params["env"]}
    proc = subprocess.run(["/bin/bash", "-eo", "pipefail", "-c", cmd], cwd=work, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace")
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise BuildError(f"genrule `{run.action.owner}` failed with exit code {proc.returncode}",
                         causes=tuple(tail.splitlines()) or ("(no output)",),
                         hint=f"the command was: {cmd}")
