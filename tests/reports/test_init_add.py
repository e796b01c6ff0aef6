"""`minibuild init` and `minibuild add`: a workspace from nothing, targets added and edited in place."""

from __future__ import annotations

import tomllib

from tests.conftest import run_cli


def test_init_then_add_keeps_comments_and_builds(tmp_path):
    r = run_cli("init", "ws", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    root = tmp_path / "ws"
    assert tomllib.loads((root / "workspace.toml").read_text())["workspace"]["name"] == "ws"
    build_file = root / "images" / "BUILD.toml"
    build_file.write_text(build_file.read_text() + "# my own note, keep me\n")
    r = run_cli("add", "//images:gzip", "/usr/bin/gzip", "--cmd=--version", cwd=root)
    assert r.returncode == 0 and "added `//images:gzip`" in r.stderr, r.stderr
    r = run_cli("add", ":gzip", "/usr/bin/gzip", "/usr/bin/tar", "--entrypoint", "/usr/bin/tar",
                cwd=root / "images")
    assert r.returncode == 0 and "updated `//images:gzip`" in r.stderr, r.stderr
    text = build_file.read_text()
    assert "# my own note, keep me" in text
    assert "# absolute paths in the sysroot; their ELF closure comes along" in text  # an inline comment
    images = tomllib.loads(text)["image"]
    assert [i["name"] for i in images] == ["bash", "gzip"]
    assert images[1] == {"name": "gzip", "binaries": ["/usr/bin/gzip", "/usr/bin/tar"],
                         "entrypoint": ["/usr/bin/tar"], "cmd": ["--version"]}
    assert "\n\n[[image]]\nname = \"gzip\"" in text
    r = run_cli("add", "//tools:ls", "/usr/bin/ls", cwd=root)  # a new package
    assert r.returncode == 0, r.stderr
    r = run_cli("build", "//...", "--no-load", "--json", cwd=root)
    assert r.returncode == 0, r.stderr
    assert sorted(t["label"] for t in r.json()["targets"]) == ["//images:bash", "//images:gzip", "//tools:ls"]


def test_init_refuses_an_existing_workspace(workspace):
    r = run_cli("init", ".", cwd=workspace.root)
    assert r.returncode == 2 and "already holds a `workspace.toml`" in r.stderr


def test_add_refuses_a_name_another_rule_has_and_relative_binaries(workspace):
    workspace.write("pkg/BUILD.toml", '[[files]]\nname = "x"\nfiles = []\n')
    r = run_cli("add", "//pkg:x", "/usr/bin/ls", cwd=workspace.root)
    assert r.returncode == 2 and "already exists as a `files` target" in r.stderr, r.stderr
    r = run_cli("add", "//pkg:y", "ls", cwd=workspace.root)
    assert r.returncode == 2 and "must be an absolute path" in r.stderr, r.stderr
