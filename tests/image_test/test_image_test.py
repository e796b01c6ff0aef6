# ruff: noqa: E501 - TOML inline tables are one line each
"""Issue 6: the `image_test` rule and `minibuild test`, against the real Docker engine."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET

import pytest

from tests.conftest import REPO

BASH_IMAGE = """
[[image]]
name = "bash"
binaries = ["/bin/bash"]
entrypoint = ["/bin/bash"]
env = { PATH = "/bin:/usr/bin" }
tag = "minibuild-test/image-test-bash:latest"
"""

PASSING = BASH_IMAGE + """
[[image_test]]
name = "bash_test"
image = ":bash"
commands = [
    { args = ["-c", "echo ok"], exit_code = 0, stdout = "^ok$", stderr = "", env = { K = "v" }, entrypoint = ["/bin/bash"] },
    { args = ["-c", "echo $K; echo warn >&2; exit 4"], env = { K = "v" }, exit_code = 4, stdout = "^v$", stderr = "^warn$" },
]
files = [
    { path = "/etc/passwd", exists = true, mode = "0644", contains = "^root:" },
    { path = "/bin/bash", mode = "0755" },
    { path = "/etc/shadow", exists = false },
]
metadata = { entrypoint = ["/bin/bash"], user = "", env = { PATH = "/bin:/usr/bin" }, workdir = "" }
"""

FAILING = BASH_IMAGE + """
[[image_test]]
name = "bad_test"
image = ":bash"
commands = [
    { args = ["-c", "echo ok"], stdout = "^ok$" },
    { args = ["-c", "echo nope; exit 2"], stdout = "^yes$" },
]
files = [
    { path = "/etc/passwd", mode = "0600" },
    { path = "/etc/motd" },
]
metadata = { user = "nobody", env = { PATH = "/bin:/usr/bin" } }
"""


def _suite(path, name):
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    return next(s for s in root.iter("testsuite") if s.get("name") == name)


@pytest.mark.docker
def test_bash_image_passes(workspace, cli, docker_engine):
    workspace.write("app/BUILD.toml", PASSING)
    junit = workspace.root / "junit.xml"
    r = cli("test", "//app:bash_test", "--json", "--junit", str(junit), cwd=workspace.root)
    assert r.returncode == 0, r.stderr
    out = r.json()
    [test] = out["tests"]
    assert test["label"] == "//app:bash_test" and test["image"] == "//app:bash" and test["passed"]
    assert [c["check"] for c in test["checks"]] == [
        "commands[0]", "commands[1]", "files[0]", "files[1]", "files[2]",
        "metadata.entrypoint", "metadata.user", "metadata.workdir", "metadata.env"]
    assert out == {**out, "passed": 9, "failed": 0}
    suite = _suite(junit, "//app:bash_test")
    assert suite.get("tests") == "9" and suite.get("failures") == "0"
    assert not list(suite.iter("failure"))
    # The table is on stderr; a second run loads nothing new and passes again.
    again = cli("test", ":bash_test", cwd=workspace.root / "app")
    assert again.returncode == 0, again.stderr
    assert "files[0] /etc/passwd" in again.stderr and "PASS" in again.stderr and "FAIL" not in again.stderr


@pytest.mark.docker
def test_failing_checks_exit_1_with_table_and_junit(workspace, cli, docker_engine):
    workspace.write("app/BUILD.toml", FAILING)
    junit = workspace.root / "out" / "junit.xml"
    (workspace.root / "out").mkdir()
    r = cli("test", "//app/...", "--junit", "out/junit.xml", cwd=workspace.root)
    assert r.returncode == 1, r.stderr
    lines = r.stderr.splitlines()

    def line(check):
        return next(x for x in lines if check in x)

    assert "PASS" in line("commands[0]")
    assert "FAIL" in line("commands[1]") and "exit code 2, expected 0" in line("commands[1]")
    assert '"nope\\n" expected to match `^yes$`' in line("commands[1]")
    assert "FAIL" in line("files[0] /etc/passwd") and "mode 0644, expected 0600" in line("files[0]")
    assert "FAIL" in line("files[1] /etc/motd") and "does not exist" in line("files[1]")
    assert "FAIL" in line("metadata.user") and 'expected "nobody"' in line("metadata.user")
    assert "PASS" in line("metadata.env")
    assert "FAILED" in r.stderr
    suite = _suite(junit, "//app:bad_test")
    assert suite.get("tests") == "6" and suite.get("failures") == "4"
    failures = {case.get("name"): case.find("failure") for case in suite.iter("testcase")}
    assert failures["commands[0] -c 'echo ok'"] is None
    assert "exit code 2, expected 0" in failures["commands[1] -c 'echo nope; exit 2'"].get("message")
    assert "mode 0644, expected 0600" in failures["files[0] /etc/passwd"].text
    assert failures["metadata.user"] is not None and failures["metadata.env"] is None


@pytest.mark.docker
def test_command_timeout(workspace, cli, docker_engine):
    workspace.write("app/BUILD.toml", BASH_IMAGE + """
[[image_test]]
name = "slow"
image = ":bash"
commands = [{ args = ["-c", "while :; do :; done"], timeout = 1 }]
""")
    r = cli("test", "//app:slow", "--json", cwd=workspace.root)
    assert r.returncode == 1, r.stderr
    [check] = r.json()["tests"][0]["checks"]
    assert not check["passed"] and check["message"].startswith("timed out after 1 s")


@pytest.mark.docker
def test_program_not_found_is_exit_127(workspace, cli, docker_engine):
    workspace.write("app/BUILD.toml", BASH_IMAGE + """
[[image_test]]
name = "missing"
image = ":bash"
commands = [{ entrypoint = ["/bin/sh"], exit_code = 127, stderr = "not found|no such file" }]
""")
    r = cli("test", "//app:missing", cwd=workspace.root)
    assert r.returncode == 0, r.stderr


@pytest.mark.docker
def test_examples_runtime_pass(tmp_path, cli, docker_engine):
    ws = tmp_path / "runtime"
    shutil.copytree(REPO / "examples" / "runtime", ws, ignore=shutil.ignore_patterns(".minibuild"))
    r = cli("test", "//...", "--json", "--junit", "junit.xml", cwd=ws)
    assert r.returncode == 0, r.stderr + r.stdout
    out = r.json()
    assert {t["label"] for t in out["tests"]} == {"//images:bash_test", "//images:toolbox_test",
                                                   "//images:nonroot_test"}
    assert out["failed"] == 0 and all(t["passed"] for t in out["tests"])
    nonroot = next(t for t in out["tests"] if t["label"] == "//images:nonroot_test")
    assert any(c["what"] == "uid" and c["passed"] for c in nonroot["checks"])
    root = ET.parse(ws / "junit.xml").getroot()
    assert len(root.findall("testsuite")) == 3 and root.get("failures") == "0"


def test_bad_regex_is_exit_2_naming_file_line_attribute(workspace, cli):
    workspace.write("app/BUILD.toml", BASH_IMAGE + """
[[image_test]]
name = "t"
image = ":bash"
commands = [{ args = ["-c", "echo ok"], stdout = "(ok" }]
""")
    r = cli("test", "//app:t", cwd=workspace.root)
    assert r.returncode == 2, r.stderr
    assert "invalid regular expression `(ok`" in r.stderr
    assert "--> app/BUILD.toml:12, target `//app:t`, attribute `commands[0].stdout`" in r.stderr


def test_bad_regex_in_files_contains(workspace, cli):
    workspace.write("app/BUILD.toml", BASH_IMAGE + """
[[image_test]]
name = "t"
image = ":bash"
files = [{ path = "/etc/passwd", contains = "[root" }]
""")
    r = cli("build", "//app:t", cwd=workspace.root)
    assert r.returncode == 2, r.stderr
    assert "attribute `files[0].contains`" in r.stderr and "app/BUILD.toml:12" in r.stderr


def test_image_test_on_a_non_image_is_exit_2(workspace, cli):
    workspace.write("app/x", "x\n")
    workspace.write("app/BUILD.toml", """
[[files]]
name = "f"
files = [{ src = "x", dest = "/x" }]

[[image_test]]
name = "t"
image = ":f"
metadata = { user = "" }
""")
    r = cli("test", "//app:t", cwd=workspace.root)
    assert r.returncode == 2, r.stderr
    assert "`:f` is not an image" in r.stderr
    assert "--> app/BUILD.toml:8, target `//app:t`, attribute `image`" in r.stderr


@pytest.mark.parametrize(("body", "needle"), [
    ('commands = [{ args = ["x"], stdot = "ok" }]', "unknown attribute `commands[0].stdot`"),
    ('files = [{ path = "etc/passwd" }]', "must be an absolute path"),
    ('files = [{ path = "/x", exists = false, mode = "0644" }]', "cannot have `mode`, `contains` or `owner`"),
    ('metadata = { entrypiont = [] }', "unknown attribute `metadata.entrypiont`"),
    ('commands = [{ args = ["x"], timeout = 0 }]', "timeout is a positive number"),
    ("", "needs at least one of `commands`, `files` or `metadata`"),
])
def test_attribute_errors(workspace, cli, body, needle):
    workspace.write("app/BUILD.toml", BASH_IMAGE + f'\n[[image_test]]\nname = "t"\nimage = ":bash"\n{body}\n')
    r = cli("test", "//app:t", cwd=workspace.root)
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr


def test_no_image_test_among_targets_is_exit_2(workspace, cli):
    workspace.write("app/BUILD.toml", BASH_IMAGE)
    r = cli("test", "//app:bash", cwd=workspace.root)
    assert r.returncode == 2, r.stderr
    assert "no `image_test` target among `//app:bash`" in r.stderr


def test_no_engine_is_exit_1(workspace, cli, tmp_path):
    workspace.write("app/BUILD.toml", PASSING)
    r = cli("test", "//app:bash_test", cwd=workspace.root,
            env={"DOCKER_HOST": f"unix://{tmp_path}/no-such.sock"})
    assert r.returncode == 1, r.stderr
    assert "error: cannot run image tests: no Docker engine" in r.stderr


def test_analysis_registers_no_action(workspace):
    from minibuild.analysis import Analysis
    from minibuild.label import Label
    from minibuild.workspace import Workspace
    from minibuild_rules.providers import ImageInfo
    from minibuild_rules.test_providers import ImageTestInfo

    workspace.write("app/BUILD.toml", PASSING)
    analysis = Analysis(Workspace(workspace.root))
    configured = {ct.label: ct for ct in analysis.analyse([Label.parse("//app:bash_test")])}
    ct = configured[Label.parse("//app:bash_test")]
    assert ct.actions == []
    [info] = ct.providers
    assert isinstance(info, ImageTestInfo) and isinstance(info.image, ImageInfo)
    assert info.image_label == "//app:bash"
    assert info.commands[0].stdout == "^ok$" and info.commands[0].env == (("K", "v"),)
    assert info.files[0].mode == 0o644 and info.files[2].exists is False
    assert info.metadata is not None and info.metadata.entrypoint == ("/bin/bash",)
