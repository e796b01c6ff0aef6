"""Fail fast by default; with `--keep-going`, build everything that does not depend on a failure."""

from __future__ import annotations

from tests.engine.helpers import out_dir

BUILD = """\
[[genrule]]
name = "bad"
outs = ["bad.txt"]
cmd = "echo first-failure-says-this >&2; exit 3"

[[genrule]]
name = "worse"
outs = ["worse.txt"]
cmd = "sleep 0.5; echo second-failure-says-that >&2; exit 4"

[[genrule]]
name = "good"
outs = ["good.txt"]
cmd = "sleep 1; echo independent > $(OUT)"

[[image]]
name = "img"
files = [{ src = "//pkg:bad", dest = "/x" }, { src = "//pkg:good", dest = "/y" }]
"""


def test_fail_fast_names_target_and_stderr(workspace, cli):
    workspace.write("pkg/BUILD.toml", BUILD)
    r = cli("build", "//pkg:bad", "//pkg:img", "--no-load", cwd=workspace.root)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert "`//pkg:bad`" in r.stderr
    assert "exit code 3" in r.stderr
    assert "first-failure-says-this" in r.stderr
    # The image depends on the failure: it was not written.
    assert not (out_dir(workspace.root, "//pkg:img") / "image.tar").exists()


def test_keep_going_reports_every_failure(workspace, cli):
    workspace.write("pkg/BUILD.toml", BUILD)
    r = cli("build", "//pkg:all", "-k", "-j", "4", "--json", "--no-load", cwd=workspace.root)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    for needle in ("`//pkg:bad`", "first-failure-says-this", "exit code 3",
                   "`//pkg:worse`", "second-failure-says-that", "exit code 4"):
        assert needle in r.stderr, f"{needle!r} not in:\n{r.stderr}"
    # The image needs the failed genrule: it was not written.
    assert not (out_dir(workspace.root, "//pkg:img") / "image.tar").exists()


def test_keep_going_materialises_the_independent_target(workspace, cli):
    workspace.write("pkg/BUILD.toml", BUILD)
    r = cli("build", "//pkg:all", "-k", "-j", "4", "--no-load", cwd=workspace.root)
    assert r.returncode == 1, r.stderr
    # The independent genrule ran to the end (it sleeps longer than the first failure takes).
    assert (out_dir(workspace.root, "//pkg:good") / "good.txt").read_text() == "independent\n"


def test_keep_going_then_fix_builds_only_what_was_missing(workspace, cli):
    workspace.write("pkg/BUILD.toml", BUILD)
    assert cli("build", "//pkg:all", "-k", "--no-load", cwd=workspace.root).returncode == 1
    fixed = BUILD.replace("echo first-failure-says-this >&2; exit 3", "echo fixed > $(OUT)")
    fixed = fixed.replace("echo second-failure-says-that >&2; exit 4", "echo fixed too > $(OUT)")
    workspace.write("pkg/BUILD.toml", fixed)
    r = cli("build", "//pkg:all", "--json", "--no-load", cwd=workspace.root)
    assert r.returncode == 0, r.stderr
    rebuilt = {t["label"]: t["rebuilt"] for t in r.json()["targets"]}
    # `good` succeeded under -k: its result was cached and is not run again.
    assert rebuilt == {"//pkg:bad": True, "//pkg:worse": True, "//pkg:good": False, "//pkg:img": True}
