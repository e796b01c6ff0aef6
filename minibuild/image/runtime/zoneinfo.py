"""Time zones (docs/loader.md#r7): glibc reads `/usr/share/zoneinfo/<TZ>`; without it every zone is UTC, silently."""

from __future__ import annotations

import re

from minibuild.elf.sysroot import Sysroot
from minibuild.errors import InputError
from minibuild.image.runtime.copy import copy_path, copy_tree
from minibuild.image.runtime.model import RuntimePlan, TreeSpec

ZONEINFO = "/usr/share/zoneinfo"
# Debian's tzdata ships `localtime -> /etc/localtime`, which the system's configuration makes (and a package
# sysroot lacks): kept dangling, as on Debian, without a warning; /etc/localtime in `files` makes it a zone.
LOCALTIME_LINK = (f"{ZONEINFO}/localtime", "/etc/localtime")
_ZONE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+\-/.]*")


def zone_of(tz: str | None) -> str | None:
    """The zone file a `TZ` value names (`Europe/Paris`, `:Europe/Paris`), or None for a POSIX rule string."""
    if not tz:
        return None
    name = tz[1:] if tz.startswith(":") else tz
    if name.startswith("/"):
        return name
    if not _ZONE_NAME.fullmatch(name) or ".." in name.split("/"):
        return None  # `CET-1CEST,M3.5.0,M10.5.0/3`, `<+03>-3` and the like need no file
    return f"{ZONEINFO}/{name}"


def plan_tzdata(plan: RuntimePlan, fs: Sysroot, *, want: bool | tuple[str, ...] | None, tz: str | None) -> None:
    if want is True:
        if not copy_tree(fs, TreeSpec(ZONEINFO, (), "time zones (tzdata = true)", dangling=(LOCALTIME_LINK,)), plan):
            raise InputError(f"`tzdata = true` but `{ZONEINFO}` is not in sysroot `{fs.root}`",
                             hint="install tzdata in the sysroot")
        return
    zones = [f"{ZONEINFO}/{z}" for z in want] if isinstance(want, tuple) else []
    auto = zone_of(tz) if want is None else None
    for path in zones:
        if copy_path(fs, path, "time zone", plan) is None:
            raise InputError(f"time zone `{path}` is not in sysroot `{fs.root}`",
                             hint="names are relative to /usr/share/zoneinfo, e.g. `Europe/Paris`")
    if auto is not None and copy_path(fs, auto, "time zone of TZ", plan) is None:
        plan.warnings.append(f"`TZ={tz}`: `{auto}` is not in sysroot `{fs.root}`; the image runs in UTC")
