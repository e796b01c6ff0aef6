"""Issue 2's acceptance, end to end: build //images:bash from fresh clones, run it in the real engine."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import clone_repo


@pytest.fixture(scope="module")
def clones(tmp_path_factory):
    base = tmp_path_factory.mktemp("clones")
    return clone_repo(base / "one"), clone_repo(base / "elsewhere" / "two")


@pytest.fixture(scope="module")
def built(clones):
    from tests.conftest import run_cli

    first = run_cli("build", "//images:bash", "--json", cwd=clones[0])
    assert first.returncode == 0, first.stderr
    return first


def test_build_reports_the_image(built):
    out = built.json()
    [target] = out["targets"]
    assert target["label"] == "//images:bash"
    assert target["tag"] == "images/bash:latest"
    assert target["digest"].startswith("sha256:")
    assert target["files"] >= 4  # bash, the loader, libc, libtinfo at least
    assert target["compressed_size"] < target["size"]
    assert target["oci"] == ".minibuild/out/images/bash/oci"
    assert target["tarball"] == ".minibuild/out/images/bash/image.tar"
    assert out["actions"]["run"] >= 1


def test_noop_rebuild_runs_nothing_and_keeps_the_digest(built, clones, cli):
    again = cli("build", "//images:bash", "--json", cwd=clones[0])
    assert again.returncode == 0, again.stderr
    assert again.json()["actions"] == {"run": 0, "cached": built.json()["actions"]["run"], "remote": 0}
    assert again.json()["targets"][0]["digest"] == built.json()["targets"][0]["digest"]
    assert again.json()["targets"][0]["rebuilt"] is False


def test_two_clones_give_the_same_digest(built, clones, cli):
    other = cli("build", "//images:bash", "--json", "--no-load", cwd=clones[1])
    assert other.returncode == 0, other.stderr
    assert other.json()["targets"][0]["digest"] == built.json()["targets"][0]["digest"]


def test_size_table_on_stderr(clones, cli):
    r = cli("build", "//images:bash", "--no-load", cwd=clones[0])
    assert r.returncode == 0, r.stderr
    for needle in ("/usr/bin/bash", "binary", "interpreter of /bin/bash", "libtinfo.so.6", "digest sha256:"):
        assert needle in r.stderr, r.stderr


def test_input_changes_rebuild_what_depends_on_them(tmp_path, cli):
    ws = clone_repo(tmp_path / "ws")
    first = cli("build", "//images:bash", "--json", "--no-load", cwd=ws).json()
    (ws / "images" / "motd").write_text("hello\n")
    build_toml = ws / "images" / "BUILD.toml"
    build_toml.write_text(build_toml.read_text() + 'files = [{ src = "motd", dest = "/etc/motd" }]\n')
    second = cli("build", "//images:bash", "--json", "--no-load", cwd=ws).json()
    assert second["targets"][0]["digest"] != first["targets"][0]["digest"]
    assert second["actions"]["run"] == 2  # layers and image; the ELF closure is unchanged
    (ws / "images" / "motd").write_text("changed\n")
    third = cli("build", "//images:bash", "--json", "--no-load", cwd=ws).json()
    assert third["actions"]["run"] == 2
    assert third["targets"][0]["digest"] != second["targets"][0]["digest"]
    (ws / "images" / "motd").touch()  # touched, same bytes: nothing runs
    fourth = cli("build", "//images:bash", "--json", "--no-load", cwd=ws).json()
    assert fourth["actions"]["run"] == 0


@pytest.mark.docker
def test_bash_runs_in_docker(built, docker_engine):
    assert built.json()["targets"][0]["loaded"] in ("loaded", "already loaded")

    def run(script: str) -> str:
        proc = subprocess.run([docker_engine, "run", "--rm", "images/bash:latest", "-c", script],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    assert run("echo $((6*7))") == "42"
    assert run('P="\\u"; echo ${P@P}') == "root"


def test_why_gives_the_chain(built, clones, cli):
    r = cli("why", "//images:bash", "/lib/x86_64-linux-gnu/libtinfo.so.6", "--json", cwd=clones[0])
    assert r.returncode == 0, r.stderr
    steps = r.json()
    assert steps[0] == "/bin/bash (binary)"
    assert "DT_NEEDED `libtinfo.so.6` of /bin/bash" in steps[1]
    r = cli("why", "//images:bash", "/etc/passwd", "--json", cwd=clones[0])
    assert r.returncode == 0 and "users" in r.json()[0]
    r = cli("why", "//images:bash", "/usr/bin/python3", cwd=clones[0])
    assert r.returncode == 2 and "is not in `//images:bash`" in r.stderr
