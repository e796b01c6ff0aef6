"""`/bin/sh` (docs/runtime.md, "shell"): `popen` and `system` always run `/bin/sh -c`; the `exec*p` family runs
through it only a file the kernel refuses to execute (a script without `#!`). Without one a program fails at run
time, often with a misleading message (initdb: `popen failure: Cannot allocate memory`). The closure action records
which objects import them; the Layers action, which sees the whole image (its `files`, a base image), warns when
the image has no `/bin/sh` and something imports `popen` or `system`, naming the `exec*p` importers too (alone they
warn of nothing: `env`, `nice`, `find`, `xargs`, `sort` import them, and run ELF programs without a shell).
`shell = true` adds the sysroot's `/bin/sh`, every link on its way (`/bin/sh -> dash`), resolved with its closure."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from minibuild.elf.sysroot import Sysroot
from minibuild.errors import InputError
from minibuild.image.runtime.copy import copy_path
from minibuild.image.runtime.model import RuntimePlan

ALWAYS = frozenset({"popen", "system"})  # always run /bin/sh -c
SCRIPTS = frozenset({"execlp", "execvp", "execvpe", "posix_spawnp"})  # run a script without #! through /bin/sh
TRIGGERS = ALWAYS | SCRIPTS
SHELL = "/bin/sh"
REASON = "shell (shell = true)"


def plan_shell(out: RuntimePlan, fs: Sysroot, want: bool | None, importers: Mapping[str, Sequence[str]],
               sysroot_name: str) -> None:
    """With `want`, the sysroot's /bin/sh; else (unset) the importers of TRIGGERS, for the Layers action's check."""
    if want:
        if copy_path(fs, SHELL, REASON, out) is None:
            raise InputError(f"`shell = true`, but sysroot `{sysroot_name}` has no `{SHELL}`",
                             hint="a package sysroot: add `dash` to its `packages` in workspace.toml and run "
                                  "`minibuild lock` (Essential packages are locked only when named); a host sysroot: "
                                  "install dash")
        return
    if want is None:
        for sym in sorted(TRIGGERS):
            for path in importers.get(sym, ()):
                out.shell_importers.setdefault(path, []).append(sym)


def shell_warning(importers: Mapping[str, Sequence[str]], has: Callable[[str], bool]) -> str | None:
    """The warning for an image whose objects import `popen` or `system` when `has(SHELL)` is false (None
    otherwise); the `exec*p` importers are named with them."""
    if not any(ALWAYS & set(syms) for syms in importers.values()) or has(SHELL):
        return None
    named = sorted(importers.items(), key=lambda item: (not ALWAYS & set(item[1]), item[0]))
    shown = "; ".join(f"`{path}` imports " + ", ".join(f"`{s}`" for s in syms) for path, syms in named[:4])
    more = f" (and {len(named) - 4} more objects)" if len(named) > 4 else ""
    return (f"{shown}{more}: `popen` and `system` run commands with `/bin/sh -c` (and `exec*p` a script without "
            "`#!`), but the image has no `/bin/sh`: add `shell = true` for the sysroot's, or `shell = false` if the "
            "program never runs a command")
