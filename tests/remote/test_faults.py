"""Faults of a remote cache never fail a build and never give a wrong output: the server killed, stopped past
the timeout, answering 500, sending a flipped byte or a blob cut short, and four builds writing at once (on
nginx, BuildGrid and an OCI registry alike). Each ends with the images a cold local build makes and one warning
line for the cause."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.remote import scenario
from tests.remote.proxy import damage_inline, faulty_proxy
from tests.remote.servers import Server, start_buildgrid, start_nginx, start_registry
from tests.remote.workspaces import cli_env, make_team_workspace


@pytest.fixture(params=["nginx", "buildgrid", "registry"])
def server(request, tmp_path_factory) -> Server:
    start = {"nginx": start_nginx, "buildgrid": start_buildgrid, "registry": start_registry}[request.param]
    srv = start(tmp_path_factory.mktemp(request.param))
    yield srv
    srv.close()


def _seeded(base: Path, url: str, timeout: float | None = None) -> tuple[dict, Path]:
    """Clone A's build (every action run here, uploaded), and clone B, not built yet."""
    a, b = scenario.make_clones(base)
    if timeout is not None:
        for root in (a, b):
            with open(root / "workspace.toml", "a") as f:
                f.write(f"\n[cache]\ntimeout = {timeout}\n")
    first = scenario.build(a, url, base / "home-a")
    assert first["actions"]["run"] == scenario.ACTIONS
    return first, b


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning")]


def _ran_locally(result: dict, expected: dict, cause: str) -> None:
    assert scenario.digests(result) == scenario.digests(expected)
    assert result["actions"]["run"] == scenario.ACTIONS and result["actions"]["remote"] == 0
    remote = [w for w in _warnings(result["stderr"]) if "remote cache" in w]
    assert len(remote) == 1 and cause in remote[0], result["stderr"]
    assert "Traceback" not in result["stderr"]


def test_server_gone(server, tmp_path):
    first, b = _seeded(tmp_path, server.url)
    server.kill()
    started = time.monotonic()
    result = scenario.build(b, server.url, tmp_path / "home-b")
    _ran_locally(result, first, "unreachable")
    assert "not asked again" in result["stderr"]
    assert time.monotonic() - started < 60


def test_server_killed_mid_build(server, tmp_path):
    first, b = _seeded(tmp_path, server.url)
    proc = subprocess.Popen([sys.executable, "-m", "minibuild", "build", "//...", "--no-load", "--json",
                             "--remote-cache", server.url], cwd=b, env=cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(0.4)
    server.kill()
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    result = json.loads(out)
    assert scenario.digests(result) == scenario.digests(first)
    assert result["actions"]["run"] + result["actions"]["remote"] == scenario.ACTIONS
    assert all("unreachable" in w or "no answer" in w for w in _warnings(err) if "remote cache" in w), err


def test_server_stopped_past_the_timeout(server, tmp_path):
    first, b = _seeded(tmp_path, server.url, timeout=1)
    server.stop()
    try:
        started = time.monotonic()
        result = scenario.build(b, server.url, tmp_path / "home-b")
        elapsed = time.monotonic() - started
    finally:
        server.resume()
    _ran_locally(result, first, "no answer")
    assert elapsed < 30  # one timeout, then the server is not asked again


@pytest.mark.parametrize("mode,cause", [("500", "answered HTTP 500"), ("flip", "did not match its digest"),
                                        ("truncate", "cut short")])
def test_faulty_http_server(nginx, tmp_path, mode, cause):
    first, b = _seeded(tmp_path, nginx.url)
    with faulty_proxy(nginx.url, mode) as proxy:
        result = scenario.build(b, proxy.url, tmp_path / "home-b", "--remote-cache-read-only")
    assert proxy.faults > 0
    _ran_locally(result, first, cause)


def test_uploads_answered_500(nginx, tmp_path):
    """A build whose uploads all fail still succeeds, says so once, and leaves no entry on the server."""
    root = make_team_workspace(tmp_path / "ws")
    with faulty_proxy(nginx.url, "500") as proxy:
        result = scenario.build(root, proxy.url, tmp_path / "home")
    assert result["actions"]["run"] == scenario.ACTIONS and result["bytes"]["uploaded"] == 0
    remote = [w for w in _warnings(result["stderr"]) if "remote cache" in w]
    assert any("upload failed: answered HTTP 500" in w for w in remote), result["stderr"]
    assert not (nginx.data / "ac").exists()


def test_corrupt_blob_in_buildgrids_storage(buildgrid, tmp_path):
    """BuildGrid checks blobs when they are uploaded, not when they are read: one flipped on its disk is
    served as it is, and refused here."""
    first, b = _seeded(tmp_path, buildgrid.url)
    # The blobs clone A stored (outputs and entry documents), as BuildGrid's disk storage names them.
    stored = {p.name for p in (tmp_path / "alice" / "work" / "team" / ".minibuild" / "cache" / "cas").rglob("*")}
    blobs = [p for p in buildgrid.data.rglob("*") if p.is_file() and p.parent.name + p.name in stored]
    assert len(blobs) > scenario.ACTIONS
    for path in blobs:
        data = bytearray(path.read_bytes())
        if data:
            data[len(data) // 2] ^= 0x01
            path.write_bytes(bytes(data))
    result = scenario.build(b, buildgrid.url, tmp_path / "home-b")
    # Its action cache (in memory) still holds the small files inline, intact: the actions whose every file
    # is inline may come from it; every action with a blob only the damaged storage holds runs here.
    assert scenario.digests(result) == scenario.digests(first)
    big = {t["label"] for t in first["targets"] if t.get("digest")}  # the images: layers and tarballs
    assert all(t["actions"]["run"] > 0 for t in result["targets"] if t["label"] in big), result["targets"]
    assert result["actions"]["run"] + result["actions"]["remote"] == scenario.ACTIONS
    remote = [w for w in _warnings(result["stderr"]) if "remote cache" in w]
    assert len(remote) == 1 and "did not match its digest" in remote[0], result["stderr"]


def test_four_writers_at_once(server, tmp_path):
    clones = [make_team_workspace(tmp_path / f"w{i}" / "ws") for i in range(4)]
    procs = [subprocess.Popen([sys.executable, "-m", "minibuild", "build", "//...", "--no-load", "--json",
                               "--remote-cache", server.url], cwd=c, env=cli_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for c in clones]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        assert not [w for w in _warnings(err) if "remote cache" in w], err
        results.append(json.loads(out))
    assert len({json.dumps(scenario.digests(r), sort_keys=True) for r in results}) == 1
    fifth = tmp_path / "fifth" / "ws"
    shutil.copytree(clones[0], fifth, ignore=shutil.ignore_patterns(".minibuild"))
    after = scenario.build(fifth, server.url, tmp_path / "home-5")
    assert after["actions"] == {"run": 0, "cached": 0, "remote": scenario.ACTIONS}
    assert scenario.digests(after) == scenario.digests(results[0])


def test_blobs_cut_short_in_nginx_storage(nginx, tmp_path):
    """A WebDAV server serves whatever its files hold: blobs cut to half their length on its disk are served
    with a matching Content-Length, and refused here by their size and sha256."""
    first, b = _seeded(tmp_path, nginx.url)
    for path in (nginx.data / "cas").iterdir():
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    for path in (nginx.data / "ac").iterdir():  # the small files an entry carries inline, likewise
        path.write_bytes(damage_inline(path.read_bytes(), "truncate")[0])
    result = scenario.build(b, nginx.url, tmp_path / "home-b", "--remote-cache-read-only")
    _ran_locally(result, first, "did not match its digest")
