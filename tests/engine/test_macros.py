"""Macros: one table of a BUILD file expanded into several targets (examples/custom-rule's `program_images`)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import REPO
from tests.engine.helpers import image_files, out_dir

EXAMPLE = REPO / "examples" / "custom-rule"
MADE = ["//programs:tools_bash", "//programs:tools_bash_test", "//programs:tools_env", "//programs:tools_env_test"]
MACRO_FILE = (EXAMPLE / "tools" / "rules" / "program_images.py").read_text()
WORKSPACE = '[workspace]\nname = "t"\n\n[rules]\nload = ["tools/program_images.py", "tools/bad.py"]\n'
BAD_MACROS = '''\
from minibuild.rule import Attrs, macro


class A(Attrs):
    suffix: str = "x"
    kind: str = "image"
    extra: dict = {}


def _impl(ctx):
    ctx.target(ctx.attrs.kind, ctx.attrs.suffix, binaries=["/bin/sh"], **ctx.attrs.extra)


bad = macro(implementation=_impl, attrs=A)
'''


@pytest.fixture
def example(tmp_path):
    dest = tmp_path / "custom-rule"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns(".minibuild", "__pycache__"))
    return dest


@pytest.fixture
def ws(workspace):
    workspace.write("workspace.toml", WORKSPACE)
    workspace.write("tools/program_images.py", MACRO_FILE)
    workspace.write("tools/bad.py", BAD_MACROS)
    return workspace


def failure(cli, root, *args: str) -> str:
    r = cli(*(args or ("build", "//...", "--no-load")), cwd=root)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and r.stderr.count("error:") == 1, r.stderr
    return r.stderr


def test_one_table_makes_an_image_and_a_test_per_program(example, cli):
    r = cli("query", "targets", "//programs/...", cwd=example)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == MADE
    r = cli("build", "//programs/...", "--json", "--no-load", cwd=example)
    assert r.returncode == 0, r.stderr
    assert {t["label"]: t["kind"] for t in r.json()["targets"]} == dict(zip(MADE, ["image", "image_test"] * 2,
                                                                             strict=True))
    bash = image_files(out_dir(example, "//programs:tools_bash") / "oci")
    env = image_files(out_dir(example, "//programs:tools_env") / "oci")
    assert any(p.endswith("/bash") for p in bash) and not any(p.endswith("/bash") for p in env)
    assert any(p.endswith("bin/env") for p in env)


def test_query_and_graph_show_the_table_a_target_came_from(example, cli):
    r = cli("query", "targets", "//...", "--output", "json", cwd=example)
    assert r.returncode == 0, r.stderr
    by_label = {t["label"]: t for t in r.json()}
    assert by_label["//programs:tools_env_test"] == {
        "label": "//programs:tools_env_test", "rule": "image_test", "file": "programs/BUILD.toml", "line": 4,
        "generator": {"macro": "program_images", "name": "tools"}}
    assert by_label["//site:motd"]["generator"] is None and by_label["//site:motd"]["line"] == 1
    r = cli("query", "deps", "//programs:tools_bash_test", "--output", "json", cwd=example)
    assert [t["label"] for t in r.json()] == ["//programs:tools_bash", "//programs:tools_bash_test"]
    r = cli("graph", "//programs/...", "--format", "json", cwd=example)
    targets = {t["label"]: t for t in r.json()["targets"]}
    assert sorted(targets) == MADE
    assert targets["//programs:tools_bash_test"]["deps"] == ["//programs:tools_bash"]
    assert targets["//programs:tools_bash"]["generator"] == {"macro": "program_images", "name": "tools"}
    r = cli("graph", "//programs/...", "--format", "dot", cwd=example)
    assert '"//programs:tools_env_test" -> "//programs:tools_env";' in r.stdout


def test_the_table_name_is_not_a_target(example, cli):
    err = failure(cli, example, "build", "//programs:tools", "--no-load")
    assert "no target `//programs:tools`" in err
    assert "`tools` names a `[[program_images]]` table (a macro)" in err and "`:tools_env_test`" in err


def test_the_rules_command_lists_the_macro(example, cli):
    r = cli("rules", "program_images", "--json", cwd=example)
    [macro] = r.json()["rules"]
    assert macro["kind"] == "macro" and macro["source"] == {"kind": "workspace",
                                                             "where": "tools/rules/program_images.py"}
    assert [(a["name"], a["default"]) for a in macro["attributes"]] == [
        ("programs", None), ("args", ["--version"]), ("env", {})]


def test_the_macro_table_is_validated_like_a_rule(ws, cli):
    ws.write("p/BUILD.toml", '[[program_images]]\nname = "t"\nprograms = ["/bin/sh"]\nargz = ["-c"]\n')
    err = failure(cli, ws.root)
    assert "unknown attribute `argz`" in err and "did you mean `args`?" in err
    assert "--> p/BUILD.toml:4, `[[program_images]]` table `t`, attribute `argz`" in err
    ws.write("p/BUILD.toml", '\n[[program_images]]\nname = "t"\nprograms = "/bin/sh"\n')
    assert "--> p/BUILD.toml:4, `[[program_images]]` table `t`, attribute `programs`" in failure(cli, ws.root)


def test_an_error_in_a_made_target_names_its_table(ws, cli):
    ws.write("p/BUILD.toml", '[[image]]\nname = "sh"\nbinaries = ["/bin/sh"]\n\n'
                             '[[program_images]]\nname = "t"\nprograms = ["bin/sh"]\n')
    err = failure(cli, ws.root)
    assert "binary `bin/sh` must be an absolute path" in err
    assert ("--> p/BUILD.toml:5, target `//p:t_sh` (made by `[[program_images]]` table `t`), "
            "attribute `binaries`") in err


def test_a_failed_action_of_a_made_target_names_its_table(ws, cli):
    ws.write("p/BUILD.toml", '\n[[program_images]]\nname = "t"\nprograms = ["/no/such/program"]\n')
    r = cli("build", "//...", "--no-load", cwd=ws.root)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "cannot build `//p:t_program`" in r.stderr and "/no/such/program" in r.stderr
    assert "--> p/BUILD.toml:2, target `//p:t_program` (made by `[[program_images]]` table `t`)" in r.stderr


def test_a_macro_fails_with_the_line_of_an_attribute(ws, cli):
    ws.write("p/BUILD.toml", '[[program_images]]\nname = "t"\nargs = []\nprograms = ["/bin/env", "/usr/bin/env"]\n')
    err = failure(cli, ws.root)
    assert "`/bin/env` and `/usr/bin/env` would both make `:t_env`" in err
    assert "--> p/BUILD.toml:4, `[[program_images]]` table `t`, attribute `programs`" in err


def test_made_names_collide_with_written_ones(ws, cli):
    ws.write("p/BUILD.toml", '[[image]]\nname = "t_sh"\nbinaries = ["/bin/sh"]\n\n'
                             '[[program_images]]\nname = "t"\nprograms = ["/bin/sh"]\n')
    err = failure(cli, ws.root)
    assert "duplicate target name `t_sh` in `p/BUILD.toml`" in err
    assert "--> p/BUILD.toml:5, target `//p:t_sh` (made by `[[program_images]]` table `t`)" in err
    assert "first declared at p/BUILD.toml:1, target `//p:t_sh`" in err


@pytest.mark.parametrize("table, message", [
    ('kind = "program_images"', "declares a target `t_x` of `program_images`, which is a macro too"),
    ('suffix = "a/b"', "declares a target `t_a/b`"),
    ('extra = { name = "y" }', "declares a target `t_x` with a `name` attribute"),
    ('kind = "imag"', "unknown rule `imag`"),
])
def test_what_a_macro_declares_is_checked(ws, cli, table, message):
    ws.write("p/BUILD.toml", f'[[bad]]\nname = "t"\n{table}\n')
    err = failure(cli, ws.root)
    assert message in err and "p/BUILD.toml:1" in err and "`[[bad]]` table `t`" in err


def test_editing_the_table_expands_it_again(ws, cli):
    ws.write("p/BUILD.toml", '[[program_images]]\nname = "t"\nprograms = ["/bin/sh"]\n')
    r = cli("build", "//...", "--json", "--no-load", cwd=ws.root)
    assert [t["label"] for t in r.json()["targets"]] == ["//p:t_sh", "//p:t_sh_test"]
    ws.write("p/BUILD.toml", '[[program_images]]\nname = "t"\nprograms = ["/bin/sh", "/usr/bin/env"]\n')
    r = cli("build", "//...", "--json", "--no-load", cwd=ws.root)
    rebuilt = {t["label"]: t["rebuilt"] for t in r.json()["targets"]}
    assert sorted(rebuilt) == ["//p:t_env", "//p:t_env_test", "//p:t_sh", "//p:t_sh_test"]
    assert rebuilt["//p:t_env"] is True


@pytest.mark.docker
def test_the_made_image_tests_run(example, cli, docker_engine):
    r = cli("test", "//programs/...", "--json", cwd=example)
    assert r.returncode == 0, r.stdout + r.stderr
    result = r.json()
    assert sorted(t["label"] for t in result["tests"]) == ["//programs:tools_bash_test", "//programs:tools_env_test"]
    assert result["failed"] == 0 and all(t["passed"] for t in result["tests"])
    for t in result["tests"]:
        subprocess.run([docker_engine, "rmi", "-f", t["tag"]], capture_output=True)
