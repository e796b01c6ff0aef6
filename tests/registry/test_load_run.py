"""`minibuild load` and `minibuild run` in the real Docker engine."""

from __future__ import annotations

import subprocess

import pytest

pytestmark = [pytest.mark.registry, pytest.mark.docker]


def test_run_prints_hi(image_ws, cli, docker_engine):
    r = cli("run", "//img:bash", "--", "-c", "echo hi", cwd=image_ws.root)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hi\n"


def test_run_returns_the_container_exit_code(image_ws, cli, docker_engine):
    r = cli("run", "//img:bash", "--", "-c", "echo out; echo err >&2; exit 7", cwd=image_ws.root)
    assert r.returncode == 7, r.stderr
    assert r.stdout == "out\n" and "err" in r.stderr


def test_run_relative_label_and_docker_args(image_ws, cli, docker_engine):
    r = cli("run", "--docker-arg=--env=GREETING=hello", ":bash", "--", "-c", 'echo "$GREETING"',
            cwd=image_ws.root / "img")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hello\n"
    # As with `docker run`, everything after the image is the container's, `--` or not.
    r = cli("run", "--plain", ":bash", "-c", 'echo "$0" --plain', cwd=image_ws.root / "img")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "/bin/bash --plain\n"


def test_load_then_docker_runs_it(image_ws, cli, docker_engine):
    r = cli("load", "//img:bash", "--json", cwd=image_ws.root)
    assert r.returncode == 0, r.stderr
    [image] = r.json()["images"]
    assert image["tag"] == image_ws.tag and image["loaded"] == "loaded"
    run = subprocess.run([docker_engine, "run", "--rm", image_ws.tag, "-c", 'echo "$(</stamp)"'],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == (image_ws.root / "img/stamp").read_text().strip()
    again = cli("load", "//img:bash", "--json", cwd=image_ws.root)
    assert again.json()["images"][0]["loaded"] == "already loaded"


def test_load_without_an_engine_is_exit_1(image_ws, cli, tmp_path):
    r = cli("load", "//img:bash", cwd=image_ws.root, env={"DOCKER_HOST": f"unix://{tmp_path}/no.sock"})
    assert r.returncode == 1, r.stderr
    assert "cannot load images" in r.stderr and "hint:" in r.stderr and "Traceback" not in r.stderr
