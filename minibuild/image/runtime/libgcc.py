"""libgcc_s.so.1, dlopened by glibc to unwind (docs/loader.md#r4).

pthread_cancel, pthread_exit and backtrace load libgcc_s.so.1 by bare name at run time; without it a
program aborts ("libgcc_s.so.1 must be installed for pthread_cancel to work"). C++ programs usually
NEED it anyway, and then it is in the closure already.
"""

from __future__ import annotations

from minibuild.image.runtime.model import RuntimePlan

SONAME = "libgcc_s.so.1"
TRIGGERS = frozenset({"pthread_cancel", "pthread_exit", "backtrace"})


def plan_libgcc(plan: RuntimePlan, *, want: bool | None, importers: dict[str, list[str]], have: bool,
                find_lib) -> None:
    """`importers` maps each trigger symbol to the closure objects importing it."""
    if want is False or have:
        return
    users = sorted({o for sym in TRIGGERS for o in importers.get(sym, ())})
    if want is None and not users:
        return
    found = find_lib(SONAME)
    if found is None:
        message = f"`{SONAME}` is not in the sysroot"
        if users:
            message += f"; {users[0]} imports {', '.join(sorted(s for s in TRIGGERS if importers.get(s)))}"
        plan.warnings.append(message)
        return
    why = f"dlopened by libc for {', '.join(sorted(s for s in TRIGGERS if importers.get(s)))} ({users[0]})" \
        if users else "libgcc_s = true"
    plan.root(found, why)
