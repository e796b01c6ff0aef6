"""SIGKILL `minibuild build` at random moments: the next build succeeds with the same digests, and the
cache verifies. Trials cover cold builds (empty cache) and warm ones (a changed input)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

TRIALS = int(os.environ.get("MINIBUILD_KILL_TRIALS", "50"))
PROGRAMS = ["/bin/bash", "/bin/gzip", "/usr/bin/curl", "/bin/tar"]


def _workspace(root: Path) -> None:
    (root / "workspace.toml").write_text('[workspace]\nname = "kill"\n')
    (root / "img").mkdir()
    (root / "img/motd").write_text("v0\n")
    (root / "img/BUILD.toml").write_text("".join(
        f'[[image]]\nname = "i{i}"\nbinaries = ["{p}"]\nfiles = [{{ src = "motd", dest = "/etc/motd" }}]\n\n'
        for i, p in enumerate(PROGRAMS)))


def _build(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "minibuild", "build", "//...", "--json", "--no-load"],
                          cwd=root, capture_output=True, text=True, timeout=300)


def _digests(proc: subprocess.CompletedProcess[str]) -> dict[str, str]:
    assert proc.returncode == 0, proc.stderr
    return {t["label"]: t["digest"] for t in json.loads(proc.stdout)["targets"]}


def test_sigkill_at_random_moments(tmp_path, tally):
    rng = random.Random(20261130)
    reference = tmp_path / "reference"
    reference.mkdir()
    _workspace(reference)
    expected = {"v0": _digests(_build(reference))}
    (reference / "img/motd").write_text("v1\n")
    expected["v1"] = _digests(_build(reference))
    start = time.monotonic()
    _build(reference)
    no_op = time.monotonic() - start
    cold = 2.5  # seconds a cold build of this workspace takes at most here; kills land within it

    ws = tmp_path / "ws"
    ws.mkdir()
    _workspace(ws)
    version = "v0"
    for trial in range(TRIALS):
        tally["kill_trials"] += 1
        if trial % 2 == 0:  # cold: an empty cache
            subprocess.run(["rm", "-rf", str(ws / ".minibuild")], check=True)
        else:  # warm: one input changed since the last build
            version = "v1" if version == "v0" else "v0"
            (ws / "img/motd").write_text(f"{version}\n")
        proc = subprocess.Popen([sys.executable, "-m", "minibuild", "build", "//...", "--no-load", "-q"],
                                cwd=ws, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.05, cold if trial % 2 == 0 else max(no_op, 0.6)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        after = _build(ws)
        if after.returncode != 0 or "Traceback" in after.stderr:
            tally["crashes"] += 1
        assert after.returncode == 0, f"trial {trial}: {after.stderr}"
        got = _digests(after)
        if got != expected[version]:
            tally["data_lost"] += 1
            # What the stat cache believed of the one input that changed, for the post-mortem.
            stat_cache = json.loads((ws / ".minibuild/cache/stat-cache.json").read_text())
            motd = str(ws / "img/motd")
            st = os.stat(motd)
            sig = [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
            raise AssertionError(f"trial {trial} ({version}): digests differ after a kill; motd holds "
                                 f"{(ws / 'img/motd').read_text()!r}, stat {sig}, stat cache "
                                 f"{stat_cache.get(motd)}, now {time.time_ns()}")
        verify = subprocess.run([sys.executable, "-m", "minibuild", "cache", "verify", "--json"], cwd=ws,
                                capture_output=True, text=True)
        assert verify.returncode == 0 and json.loads(verify.stdout)["corrupt_blobs"] == 0, verify.stderr
        tally["kill_survived"] += 1
