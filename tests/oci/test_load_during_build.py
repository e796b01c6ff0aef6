"""`minibuild build` loads each image into the real engine as soon as that image is finished, while the rest of the
build goes on; a build that fails leaves the engine as it found it.

When the load happened comes from the engine itself (`docker events`: its `load` events, with its clock), and
when the rest of the build ended from a genrule that writes `date`'s clock as its last act: neither is something
minibuild reports about itself.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from minibuild.errors import EngineError
from minibuild.oci import daemon
from tests.conftest import run_cli

pytestmark = pytest.mark.docker

BUILD = """\
[[image]]
name = "fast"
binaries = ["/bin/sh"]
files = [{{ src = "stamp", dest = "/stamp", mode = "0644" }}]
tag = "{fast}"

[[genrule]]
name = "slow"
outs = ["s"]
cmd = "sleep 5; {end}"

[[image]]
name = "late"
binaries = ["/bin/sh"]
files = [{{ src = "stamp", dest = "/stamp", mode = "0644" }}, {{ src = ":slow", dest = "/s", mode = "0644" }}]
tag = "{late}"
"""


def _docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        pytest.fail(f"docker {' '.join(args)} failed:\n{proc.stderr}")
    return proc


def _load_events(since: float) -> dict[str, float]:
    """Image id -> when the engine says it loaded it (seconds since the epoch, the engine's clock)."""
    out = _docker("events", "--since", f"{since:.3f}", "--until", f"{time.time() + 1:.3f}", "--filter", "type=image",
                  "--filter", "event=load", "--format", "{{json .}}").stdout
    return {e["Actor"]["ID"]: e["timeNano"] / 1e9 for e in map(json.loads, out.splitlines())}


@pytest.fixture
def tags(workspace):
    stamp = uuid.uuid4().hex
    workspace.write("pkg/stamp", stamp + "\n")
    names = {"fast": f"minibuild-test/fast-{stamp[:12]}:latest", "late": f"minibuild-test/late-{stamp[:12]}:latest"}
    _docker("info")  # fails (not skips) without an engine
    yield names
    _docker("rmi", "-f", *names.values(), check=False)


def test_an_image_is_loaded_while_the_rest_builds(workspace, tags):
    workspace.write("pkg/BUILD.toml", BUILD.format(end="date +%s.%N > $(OUT)", **tags))
    since = time.time()
    r = run_cli("build", "//pkg:all", "--json", cwd=workspace.root)
    assert r.returncode == 0, r.stderr
    loaded = {t["label"]: t["loaded"] for t in r.json()["targets"] if "loaded" in t}
    assert loaded == {"//pkg:fast": "loaded", "//pkg:late": "loaded"}
    ids = {name: _docker("image", "inspect", "--format", "{{.Id}}", tag).stdout.strip() for name, tag in tags.items()}
    events = _load_events(since)
    slow_end = float((workspace.root / ".minibuild/out/pkg/slow/s").read_text())
    # The fast image was in the engine before the genrule the late image waits on had ended.
    assert events[ids["fast"]] < slow_end, (events, slow_end)
    assert events[ids["late"]] > slow_end


def test_a_failed_build_leaves_no_image_it_loaded(workspace, tags):
    workspace.write("pkg/BUILD.toml", BUILD.format(end="exit 1", **tags))
    since = time.time()
    r = run_cli("build", "//pkg:all", "--keep-going", cwd=workspace.root)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr and "//pkg:slow" in r.stderr
    # The fast image was loaded while the genrule slept (the engine says so), then taken out again.
    fast_id = _config_digest(workspace.root / ".minibuild/out/pkg/fast/oci")
    assert fast_id in _load_events(since), "the fast image was not loaded while the build ran"
    assert _docker("image", "inspect", fast_id, check=False).returncode != 0
    assert _docker("image", "inspect", tags["fast"], check=False).returncode != 0
    assert _docker("image", "inspect", tags["late"], check=False).returncode != 0


def _config_digest(layout: Path) -> str:
    """The image id the engine gives an OCI layout's image: its config's digest."""
    [manifest] = json.loads((layout / "index.json").read_text())["manifests"]
    blob = layout / "blobs" / Path(*manifest["digest"].split(":"))
    return str(json.loads(blob.read_text())["config"]["digest"])


def test_after_a_failed_load_the_loader_loads_nothing_more(workspace, tags, tmp_path):
    workspace.write("pkg/BUILD.toml", BUILD.format(end="true > $(OUT)", **tags))
    r = run_cli("build", "//pkg:fast", "--no-load", "--json", cwd=workspace.root)
    assert r.returncode == 0, r.stderr
    [fast] = r.json()["targets"]
    config = _config_digest(workspace.root / ".minibuild/out/pkg/fast/oci")
    with daemon.EngineLoader() as engine:
        engine.send(str(tmp_path / "absent.tar"), "minibuild-test/absent:latest", "sha256:0")
        engine.send(str(workspace.root / fast["tarball"]), tags["fast"], config)
        with pytest.raises(EngineError) as caught:
            engine.answers()
    assert "`minibuild-test/absent:latest`" in caught.value.message
    assert _docker("image", "inspect", tags["fast"], check=False).returncode != 0
