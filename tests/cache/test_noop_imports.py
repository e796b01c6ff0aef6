"""A no-op build reads its stored analysis without importing what only analysis and running actions need: pydantic,
the rule API, the rule modules, the image pipeline's params and the ELF resolver (analysis_cache.py: an action's
params are read when it runs). What was imported is read from `sys.modules` as the process exits."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import run_cli

BUILD = """\
[[genrule]]
name = "gen"
srcs = ["words.txt"]
outs = ["words"]
cmd = "tr a-z A-Z < $(SRC) > $(OUT)"

[[image]]
name = "img"
binaries = ["/bin/true"]
files = [{ src = "//pkg:gen", dest = "/words", mode = "0644" }]
"""
HEAVY = ("pydantic", "minibuild.rule", "minibuild.analysis", "minibuild_rules.genrule", "minibuild_rules.image",
         "minibuild.image.params", "minibuild.elf")
PROBE = ("import atexit, runpy, sys\n"
         f"atexit.register(lambda: print('IMPORTED', *[m for m in {HEAVY!r} if m in sys.modules], file=sys.stderr))\n"
         "sys.argv = ['minibuild', 'build', '//...', '--no-load', '--quiet']\n"
         "runpy.run_module('minibuild', run_name='__main__', alter_sys=True)\n")


def _imported(root) -> list[str]:
    r = subprocess.run([sys.executable, "-c", PROBE], cwd=root, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    line = next(ln for ln in r.stderr.splitlines() if ln.startswith("IMPORTED"))
    return line.split()[1:]


def test_a_noop_build_imports_no_rule_machinery(workspace) -> None:
    workspace.write("pkg/BUILD.toml", BUILD)
    workspace.write("pkg/words.txt", "some words\n")
    r = run_cli("build", "//...", "--no-load", "--quiet", cwd=workspace.root)
    assert r.returncode == 0, r.stderr
    assert _imported(workspace.root) == []
    # The actions run from the stored analysis when an input changes, their params read then: the genrule, and the
    # layers and image over its new output (the ELF closure is unchanged).
    workspace.write("pkg/words.txt", "other words\n")
    r = run_cli("build", "//...", "--no-load", "--json", cwd=workspace.root)
    assert r.returncode == 0, r.stderr
    assert r.json()["actions"] == {"run": 3, "cached": 1, "remote": 0}
    assert _imported(workspace.root) == []
