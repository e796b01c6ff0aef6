"""What a genrule's key holds of the new attributes: `sandbox` and `network` (they change what the command can
see), not `timeout` (it decides whether a run ends, not what a finished run wrote)."""

from __future__ import annotations

import pytest


def _runs(workspace, cli, attrs: str) -> int:
    workspace.write("pkg/BUILD.toml", f'[[genrule]]\nname = "g"\nouts = ["o"]\ncmd = "echo x > $(OUT)"\n{attrs}')
    r = cli("build", "//pkg:g", "--no-load", "--json", cwd=workspace.root)
    assert r.returncode == 0, r.stderr
    return r.json()["actions"]["run"]


@pytest.mark.parametrize("first, then, runs_again", [
    ("", "timeout = 30\n", False),
    ("timeout = 30\n", "timeout = 3000\n", False),
    ("", "network = true\n", True),
    ("", "sandbox = false\n", True),
    ("sandbox = false\n", "sandbox = false\nnetwork = true\n", False),  # without the sandbox it has the network
])
def test_what_the_key_holds(workspace, cli, first, then, runs_again):
    assert _runs(workspace, cli, first) == 1
    assert _runs(workspace, cli, then) == (1 if runs_again else 0)


def test_timeout_is_checked(workspace, cli):
    workspace.write("pkg/BUILD.toml", '[[genrule]]\nname = "g"\nouts = ["o"]\ncmd = "true"\ntimeout = 0\n')
    r = cli("build", "//pkg:g", "--no-load", cwd=workspace.root)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "timeout is 1 to 86400 seconds" in r.stderr and "attribute `timeout`" in r.stderr
