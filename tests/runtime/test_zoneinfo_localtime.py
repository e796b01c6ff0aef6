"""`tzdata = true` on a sysroot without /etc/localtime (an unpacked package sysroot): Debian's
`/usr/share/zoneinfo/localtime -> /etc/localtime` is kept dangling, as Debian ships it, without a warning; any other
broken link of the zone tree still warns (docs/runtime.md, "time zones")."""

from __future__ import annotations

import os
import shutil

from minibuild.elf.sysroot import Sysroot
from minibuild.image.runtime.model import RuntimePlan
from minibuild.image.runtime.zoneinfo import plan_tzdata


def test_debians_localtime_link_is_kept_without_a_warning_and_other_broken_links_warn(tmp_path):
    zoneinfo = tmp_path / "usr/share/zoneinfo"
    # The host's tzdata as Debian installed it, links verbatim, in a sysroot that has no /etc/localtime.
    shutil.copytree("/usr/share/zoneinfo", zoneinfo, symlinks=True)
    assert os.readlink(zoneinfo / "localtime") == os.readlink("/usr/share/zoneinfo/localtime") == "/etc/localtime"
    plan = RuntimePlan()
    plan_tzdata(plan, Sysroot(str(tmp_path)), want=True, tz=None)
    assert plan.warnings == []
    link = plan.files["/usr/share/zoneinfo/localtime"]
    assert (link.kind, link.target) == ("symlink", "/etc/localtime")
    assert "/etc/localtime" not in plan.files

    (zoneinfo / "Nowhere").symlink_to("Europe/Nowhere")
    os.symlink("/etc/elsewhere", zoneinfo / "Elsewhere")
    plan = RuntimePlan()
    plan_tzdata(plan, Sysroot(str(tmp_path)), want=True, tz=None)
    assert sorted(w.split("`")[1] for w in plan.warnings) == ["/usr/share/zoneinfo/Elsewhere",
                                                              "/usr/share/zoneinfo/Nowhere"]
