"""A genrule that does not end is stopped: at its `timeout`, when minibuild is interrupted (SIGINT, SIGTERM)
and when minibuild dies (SIGKILL). Every process it started is gone (`ps`), and but for SIGKILL, which leaves
minibuild no time, its scratch directory too."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from tests.genrule.helpers import processes_with, scratch_left


def _sleeper(workspace, *, sandbox: bool, timeout: int | None = None) -> str:
    """A genrule whose command starts two sleeps no other process runs (a background one, and one it waits
    for); their marker, to find them with `ps`."""
    marker = str(random.randrange(10**8, 10**9))
    workspace.write("pkg/BUILD.toml", (
        '[[genrule]]\nname = "g"\nouts = ["o"]\n' + ("" if sandbox else "sandbox = false\n")
        + (f"timeout = {timeout}\n" if timeout else "")
        + f'cmd = "sleep {marker}1 & sleep {marker}2"\n'))
    return marker


def _gone(marker: str, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while processes_with(marker):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _started(marker: str, proc: subprocess.Popen, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while len(processes_with(f"sleep {marker}")) < 2:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the genrule's command never started"
        time.sleep(0.05)


@pytest.mark.parametrize("sandbox", [True, False], ids=["sandbox", "no-sandbox"])
def test_timeout_kills_the_command_and_all_it_started(workspace, cli, sandbox):
    marker = _sleeper(workspace, sandbox=sandbox, timeout=2)
    started = time.monotonic()
    r = cli("build", "//pkg:g", "--no-load", cwd=workspace.root, timeout=120)
    took = time.monotonic() - started
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert "genrule `//pkg:g` did not finish within its timeout of 2 s, and was stopped" in r.stderr
    assert "raise `timeout`" in r.stderr
    assert took < 30, took
    assert _gone(marker), processes_with(marker)
    assert scratch_left(workspace.root) == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("sandbox", [True, False], ids=["sandbox", "no-sandbox"])
def test_interrupting_minibuild_stops_the_command_and_cleans_up(workspace, sandbox, signum):
    marker = _sleeper(workspace, sandbox=sandbox)
    proc = subprocess.Popen([sys.executable, "-m", "minibuild", "build", "//pkg:g", "--no-load"],
                            cwd=workspace.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _started(marker, proc)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signum, err
    assert "Traceback" not in err and "interrupted" in err
    assert _gone(marker), processes_with(marker)
    assert scratch_left(workspace.root) == []


@pytest.mark.parametrize("sandbox", [True, False], ids=["sandbox", "no-sandbox"])
def test_when_minibuild_dies_the_command_dies_with_it(workspace, sandbox):
    marker = _sleeper(workspace, sandbox=sandbox)
    proc = subprocess.Popen([sys.executable, "-m", "minibuild", "build", "//pkg:g", "--no-load"],
                            cwd=workspace.root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _started(marker, proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert _gone(marker), processes_with(marker)
