"""daemon.EngineLoader: the docker SDK in a child process; what the build process hears when there is no engine,
and when the child itself fails (a bug: exit 3 with its traceback). Loads into the real engine are in
test_oci_docker.py and tests/reliability/test_engine_faults.py."""

from __future__ import annotations

import pytest

from minibuild.errors import EngineError
from minibuild.oci import daemon


def test_no_engine_is_said_once_the_child_tried(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/absent.sock")
    with daemon.EngineLoader() as engine:
        why = engine.ready()
        assert why.startswith(f"no Docker engine at `unix://{tmp_path}/absent.sock`") and "no such socket" in why
        with pytest.raises(EngineError) as caught:
            engine.load(str(tmp_path / "image.tar"), "t:1", "sha256:x")
    assert why in caught.value.message


def test_a_child_that_dies_is_a_bug_with_its_stderr(monkeypatch):
    monkeypatch.setattr(daemon, "_WORKER", "import sys; sys.stderr.write('worker broke\\n'); sys.exit(7)")
    with daemon.EngineLoader() as engine, pytest.raises(RuntimeError) as caught:
        engine.ready()
    assert "exited (code 7)" in str(caught.value) and "worker broke" in str(caught.value)


def test_a_bug_in_the_child_comes_back_with_its_traceback(monkeypatch):
    code = ("import sys; sys.path[0] = sys.argv.pop(1); from minibuild.oci import engine_worker, daemon; "
            "daemon.connect = lambda timeout: 1 / 0; engine_worker.main()")
    monkeypatch.setattr(daemon, "_WORKER", code)
    with daemon.EngineLoader() as engine, pytest.raises(RuntimeError) as caught:
        engine.ready()
    assert "failed while connecting to the Docker engine" in str(caught.value)
    assert "ZeroDivisionError" in str(caught.value)
