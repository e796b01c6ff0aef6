"""`base = "//pkg:image"`: the base's layers are reused as they are, new files go on top."""

from __future__ import annotations

import subprocess

import pytest


@pytest.fixture
def built(workspace, cli):
    workspace.write("base/BUILD.toml", '[[image]]\nname = "base"\nbinaries = ["/bin/bash"]\n')
    workspace.write("app/BUILD.toml", '[[image]]\nname = "xz"\nbase = "//base"\nbinaries = ["/usr/bin/xz"]\n'
                                      'cmd = ["--version"]\n\n'
                                      '[[image]]\nname = "motd"\nbase = "//base"\n'
                                      'files = [{ src = "motd", dest = "/etc/motd" }]\n')
    workspace.write("app/motd", "hello from the top layer\n")
    r = cli("build", "//...", "--json", cwd=workspace.root)
    assert r.returncode == 0, r.stderr
    return {t["label"]: t for t in r.json()["targets"]}


def test_base_layers_are_reused_untouched(built):
    base = [layer["digest"] for layer in built["//base:base"]["layers"]]
    for label in ("//app:xz", "//app:motd"):
        layers = [layer["digest"] for layer in built[label]["layers"]]
        assert layers[: len(base)] == base
        assert len(layers) > len(base)


def test_identical_files_are_not_written_again(built):
    # The top layer of //app:motd holds only what the base lacks: the motd (and no second libc or bash).
    assert built["//app:motd"]["layers"][-1]["size"] < 1024


@pytest.mark.docker
def test_derived_images_run(built, docker_engine):
    out = subprocess.run([docker_engine, "run", "--rm", "app/xz:latest"], capture_output=True, text=True)
    assert out.returncode == 0 and "xz (XZ Utils)" in out.stdout, out.stderr
    # The entrypoint (bash) comes from the base config; the file from the top layer.
    out = subprocess.run([docker_engine, "run", "--rm", "app/motd:latest", "-c", "read l < /etc/motd; echo $l"],
                         capture_output=True, text=True)
    assert out.stdout.strip() == "hello from the top layer", out.stderr
