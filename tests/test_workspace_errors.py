"""Bad input gets one clear message naming file, line, target and attribute, exit code 2, no traceback."""

import pytest


def check(result, *needles):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in result.stderr, f"{needle!r} not in:\n{result.stderr}"


def test_unknown_key_suggests_closest(workspace, cli):
    workspace.write("images/BUILD.toml", '# comment\n\n[[image]]\nname = "bash"\nbinarys = ["/bin/bash"]\n')
    r = cli("build", "//images:bash", "--no-load", cwd=workspace.root)
    check(r, "unknown attribute `binarys`", "images/BUILD.toml:5", "`//images:bash`", "did you mean `binaries`?")


def test_unknown_rule_suggests_closest(workspace, cli):
    workspace.write("images/BUILD.toml", '[[imagee]]\nname = "bash"\n')
    r = cli("build", "//images:bash", cwd=workspace.root)
    check(r, "unknown rule `imagee`", "images/BUILD.toml:1", "did you mean `image`?")


def test_wrong_type(workspace, cli):
    workspace.write("images/BUILD.toml", '[[image]]\nname = "bash"\n\nbinaries = "/bin/bash"\n')
    r = cli("build", "//images:bash", cwd=workspace.root)
    check(r, "`binaries`", "images/BUILD.toml:4", "list")


def test_nested_attribute_error_points_at_key(workspace, cli):
    workspace.write("images/BUILD.toml",
                    '[[image]]\nname = "x"\nfiles = [\n  { src = "a", dest = "/etc/../../x" },\n]\n')
    r = cli("build", "//images:x", cwd=workspace.root)
    check(r, "files[0].dest", "escapes the image root", "images/BUILD.toml:3")


def test_toml_syntax_error(workspace, cli):
    workspace.write("images/BUILD.toml", '[[image]]\nname = "bash"\nbinaries = [/bin/bash]\n')
    r = cli("build", "//images:bash", cwd=workspace.root)
    check(r, "TOML syntax error", "images/BUILD.toml:3")


def test_duplicate_target(workspace, cli):
    workspace.write("images/BUILD.toml", '[[image]]\nname = "a"\nbinaries = ["/bin/sh"]\n\n'
                                         '[[image]]\nname = "a"\nbinaries = ["/bin/sh"]\n')
    r = cli("build", "//images:a", cwd=workspace.root)
    check(r, "duplicate target name `a`", "images/BUILD.toml:5", "first declared at images/BUILD.toml:1")


def test_missing_target_lists_near_ones(workspace, cli):
    workspace.write("images/BUILD.toml", '[[image]]\nname = "bash"\nbinaries = ["/bin/bash"]\n')
    check(cli("build", "//images:bsah", cwd=workspace.root), "no target `//images:bsah`", "`//images:bash`")
    check(cli("build", "//imagez:bash", cwd=workspace.root), "no package `//imagez`", "`//images`")


@pytest.mark.parametrize("label", ["//images:ba d", "//images:", "images:bash:x"])
def test_malformed_label(workspace, cli, label):
    workspace.write("images/BUILD.toml", '[[image]]\nname = "bash"\nbinaries = ["/bin/bash"]\n')
    check(cli("build", label, cwd=workspace.root), "malformed")


def test_no_workspace(tmp_path, cli):
    check(cli("build", "//images:bash", cwd=tmp_path), "no `workspace.toml` found", "minibuild init")


def test_cycle_prints_whole_cycle(workspace, cli):
    workspace.write("a/BUILD.toml", '[[image]]\nname = "x"\nfiles = [{ src = "//b:y", dest = "/y.tar" }]\n')
    workspace.write("b/BUILD.toml", '[[image]]\nname = "y"\n\nfiles = [{ src = "//a:x", dest = "/x.tar" }]\n')
    r = cli("build", "//a:x", cwd=workspace.root)
    check(r, "dependency cycle: //a:x -> //b:y -> //a:x", "a/BUILD.toml:3", "b/BUILD.toml:4")


def test_usage_error_exit_2(workspace, cli):
    r = cli("build", cwd=workspace.root)
    assert r.returncode == 2 and "error:" in r.stderr
    r = cli("frobnicate", cwd=workspace.root)
    assert r.returncode == 2
