"""terminfo entries for curses programs (docs/loader.md#r5).

ncurses on Debian searches `/etc/terminfo`, `/lib/terminfo`, `/usr/share/terminfo` in that order; each
entry is `<dir>/<first letter>/<name>`. Entries are copied from the first directory that has them, at the
same path, so the image's search finds them where the sysroot's would.
"""

from __future__ import annotations

from minibuild.elf.sysroot import Sysroot
from minibuild.errors import InputError
from minibuild.image.runtime.copy import copy_path
from minibuild.image.runtime.model import RuntimePlan

SEARCH = ("/etc/terminfo", "/lib/terminfo", "/usr/share/terminfo")
DEFAULT = ("dumb", "linux", "vt100", "xterm", "xterm-256color", "screen")
CURSES_LIBRARIES = ("libtinfo.so", "libncurses.so", "libncursesw.so", "libtinfow.so")


def plan_terminfo(plan: RuntimePlan, fs: Sysroot, *, want: bool | tuple[str, ...] | None, sonames: set[str]) -> None:
    users = sorted(s for s in sonames if s.startswith(CURSES_LIBRARIES))
    if want is False or (want is None and not users):
        return
    explicit = isinstance(want, tuple)
    names = want if isinstance(want, tuple) else DEFAULT
    reason = "terminfo" + (f" (for {users[0]})" if users else "")
    for name in names:
        if not name or "/" in name:
            raise InputError(f"terminfo name `{name}` is not a terminal name such as `xterm`")
        if not any(copy_path(fs, f"{d}/{name[0]}/{name}", reason, plan) for d in SEARCH):
            message = f"terminfo entry `{name}` is in none of {', '.join(SEARCH)} of sysroot `{fs.root}`"
            if explicit:
                raise InputError(message, hint="install ncurses-base or ncurses-term in the sysroot")
            plan.warnings.append(message)
