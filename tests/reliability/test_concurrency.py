"""Eight processes building overlapping targets of one workspace at once: all succeed, same digests,
and the cache verifies afterwards."""

from __future__ import annotations

import json
import subprocess
import sys

PROGRAMS = ["/bin/bash", "/bin/gzip", "/usr/bin/curl", "/bin/tar", "/bin/sed", "/bin/grep"]


def test_eight_builds_at_once(workspace, tally):
    workspace.write("img/BUILD.toml", "".join(
        f'[[image]]\nname = "i{i}"\nbinaries = ["{p}"]\n\n' for i, p in enumerate(PROGRAMS)))
    patterns = [["//img:all"], ["//img:i0", "//img:i1"], ["//img:i2", "//img:i3", "//img:i0"], ["//img:i4"],
                ["//img:i5", "//img:i1"], ["//img:all"], ["//img:i3"], ["//img:i2", "//img:i5"]]
    procs = [subprocess.Popen([sys.executable, "-m", "minibuild", "build", *p, "--json", "--no-load", "-j", "2"],
                              cwd=workspace.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for p in patterns]
    digests: dict[str, set[str]] = {}
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        tally["cases"] += 1
        if proc.returncode != 0:
            tally["crashes" if "Traceback" in err else "clean_errors"] += 1
        assert proc.returncode == 0, err
        for t in json.loads(out)["targets"]:
            digests.setdefault(t["label"], set()).add(t["digest"])
    assert all(len(d) == 1 for d in digests.values()), digests
    verify = subprocess.run([sys.executable, "-m", "minibuild", "cache", "verify", "--json"], cwd=workspace.root,
                            capture_output=True, text=True)
    assert verify.returncode == 0 and json.loads(verify.stdout)["corrupt_blobs"] == 0, verify.stderr
    again = subprocess.run([sys.executable, "-m", "minibuild", "build", "//img:all", "--json", "--no-load"],
                           cwd=workspace.root, capture_output=True, text=True)
    assert json.loads(again.stdout)["actions"]["run"] == 0
