"""The Docker engine stopped in the middle of `minibuild load` (and of the load a `minibuild build` does).

The test starts a Docker Engine of its own (own socket, data root, exec root, pid file, config and network
namespace; no bridge, no iptables), so the shared engine other tests use is never disturbed. minibuild talks to it
through a small unix-socket relay that forwards every byte both ways and counts the body of
`POST /images/load`: when half of the image's tarball has gone through, the engine is killed (SIGKILL),
stopped (SIGTERM), frozen (SIGSTOP: a hung engine) or the connection is cut. Then:

- the command fails with one clear message (what failed, about which image, why in words, what to do),
  exit code 1 (an engine error), no traceback and nothing on stdout; except that an engine stopped with
  SIGTERM may finish the load it is serving (dockerd drains its requests), and then the image is there;
- the build's outputs (the OCI layout, image.tar) are byte for byte what they were, and the cache verifies;
- once the engine runs again (the same data root, after the kill), `minibuild load` loads the image, and
  the engine holds it under its tag with the image's config digest as its id.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.docker

START_TIMEOUT = 60.0


class Engine:
    """A dockerd of the test's own, started and stopped by it."""

    def __init__(self, docker: str, root: Path) -> None:
        self.docker = docker
        self.root = root
        self.socket = root / "engine.sock"
        self.proc: subprocess.Popen[bytes] | None = None
        self.signalled = False  # a signal was sent: the engine is gone or on its way out
        (root / "daemon.json").write_text("{}\n")  # never the machine's /etc/docker/daemon.json

    def ensure_running(self) -> None:
        if self.signalled or not self.running():
            self.stop()
            self.start()

    def start(self) -> None:
        self.signalled = False
        host_bridge = _ifindex("docker0")  # the shared engine's bridge: this engine must leave it alone
        log = open(self.root / "dockerd.log", "ab")  # the daemon's; closed here once it has it
        self.proc = subprocess.Popen(
            # In a network namespace of its own: a dockerd with `--bridge none` deletes the host's `docker0`
            # at start-up (libnetwork's removeDefaultBridgeInterface), which breaks every container of the
            # shared engine. `unshare` execs dockerd, so the pid is still dockerd's.
            ["unshare", "--net", "--", "dockerd", "--host", f"unix://{self.socket}",
             "--data-root", str(self.root / "data"),
             "--exec-root", str(self.root / "exec"), "--pidfile", str(self.root / "dockerd.pid"),
             "--config-file", str(self.root / "daemon.json"), "--bridge", "none", "--iptables=false",
             "--ip6tables=false", "--ip-masq=false"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"dockerd exited at start-up:\n{self.log_tail()}")
            if self.cli("version", "--format", "{{.Server.Version}}").returncode == 0:
                assert _ifindex("docker0") == host_bridge, "the test's engine changed the host's docker0"
                return
            time.sleep(0.1)
        pytest.fail(f"dockerd did not answer within {START_TIMEOUT:.0f} s:\n{self.log_tail()}")

    def send(self, sig: int) -> None:
        """Send `sig` to the engine (our own child process, by its pid); do not wait."""
        if self.proc is not None and self.proc.poll() is None:
            self.signalled = True
            self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Send `sig` (unless it is gone already) and wait until the engine and its containerd have exited."""
        if self.proc is not None:
            self.send(signal.SIGCONT)  # a stopped process acts on nothing else
            self.send(sig)
            self.proc.wait(timeout=90)
        self.proc = None
        # dockerd's own containerd outlives a killed dockerd for a moment, then stays a zombie until init
        # reaps it; a dockerd started meanwhile finds its pid "still running", waits for its socket and gives
        # up. So wait for it to exit, and forget its pid file.
        pid = self._containerd_pid()
        deadline = time.monotonic() + 30
        while pid and self._is_ours(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if pid and self._is_ours(pid):
            os.kill(pid, signal.SIGKILL)
        (self.root / "exec/containerd/containerd.pid").unlink(missing_ok=True)

    def _containerd_pid(self) -> int | None:
        try:
            return int((self.root / "exec/containerd/containerd.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def _is_ours(self, pid: int) -> bool:
        """`pid` runs a containerd of this engine's exec root (and is not a zombie)."""
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        return state != "Z" and b"containerd" in cmdline and str(self.root).encode() in cmdline

    def unmount(self) -> None:
        """dockerd makes its data root a mount point of its own; a killed dockerd leaves it mounted."""
        for line in reversed(Path("/proc/mounts").read_text().splitlines()):
            target = line.split()[1].replace("\\040", " ")
            if target == str(self.root) or target.startswith(str(self.root) + "/"):
                subprocess.run(["umount", "-l", target], check=False)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.docker, "-H", f"unix://{self.socket}", *args], capture_output=True, text=True,
                              timeout=60)

    def log_tail(self) -> str:
        try:
            return "\n".join((self.root / "dockerd.log").read_text(errors="replace").splitlines()[-30:])
        except OSError:
            return ""


def _ifindex(interface: str) -> str | None:
    try:
        return Path(f"/sys/class/net/{interface}/ifindex").read_text().strip()
    except OSError:
        return None


class Relay:
    """A unix socket that relays every connection to the engine's socket, byte for byte.

    It watches what clients send: once `arm(after, action)` is set, `action` runs (once) when `after` bytes
    of a `POST .../images/load` request have gone through to the engine. `action` "cut" closes both ends.
    """

    def __init__(self, path: Path, upstream: Path) -> None:
        self.path = path
        self.upstream = upstream
        self.after: int | None = None
        self.action: Callable[[], None] | str | None = None
        self.fired = threading.Event()
        self.load_bytes = 0
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen(16)
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self, after: int | None, action: Callable[[], None] | str | None) -> None:
        self.after, self.action, self.load_bytes = after, action, 0
        self.fired.clear()

    def close(self) -> None:
        self._closed = True
        self._server.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                engine = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                engine.connect(str(self.upstream))
            except OSError:
                client.close()  # no engine behind the relay: the client sees the connection closed
                continue
            threading.Thread(target=self._pump, args=(client, engine, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(engine, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, upstream: bool) -> None:
        loading = False
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if upstream:
                    if b"POST " in data and b"/images/load" in data:
                        loading = True
                    if loading and self.after is not None and not self.fired.is_set():
                        room = self.after - self.load_bytes
                        if len(data) >= room:  # forward up to the trigger point, then act
                            dst.sendall(data[:room])
                            self.load_bytes += room
                            self.fired.set()
                            if self.action == "cut":
                                break
                            assert callable(self.action)
                            self.action()
                            data = data[room:]
                        else:
                            self.load_bytes += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()


@pytest.fixture(scope="module")
def engine(docker_engine) -> Iterator[Engine]:
    if shutil.which("dockerd") is None:
        pytest.fail("dockerd not found (scripts/test.sh installs docker.io)")
    root = Path(tempfile.mkdtemp(prefix="mbe-", dir="/tmp"))  # short: unix socket paths are limited to 108 bytes
    eng = Engine(docker_engine, root)
    eng.start()
    yield eng
    eng.stop()
    eng.unmount()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def relay(engine) -> Iterator[Relay]:
    r = Relay(engine.root / f"relay-{os.getpid()}-{time.monotonic_ns()}.sock", engine.socket)
    yield r
    r.close()
    r.path.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def image_ws(tmp_path_factory) -> Path:
    """A workspace with one image of a few MB that do not compress (so the load takes a while), built."""
    root = tmp_path_factory.mktemp("engine-faults")
    (root / "workspace.toml").write_text('[workspace]\nname = "engine-faults"\n')
    (root / "img").mkdir()
    (root / "img/blob").write_bytes(hashlib.shake_256(b"minibuild").digest(8 << 20))
    (root / "img/BUILD.toml").write_text(
        '[[image]]\nname = "big"\nbinaries = ["/bin/sh"]\ntag = "engine-faults/big:latest"\n'
        'files = [{ src = "blob", dest = "/data/blob" }]\n')
    r = run_cli("build", "//img:big", "--no-load", "--json", cwd=root)
    assert r.returncode == 0, r.stderr
    return root


def _outputs(root: Path) -> dict[str, str]:
    """Every file of the build's outputs and its sha256."""
    out = root / ".minibuild/out"
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*")) if p.is_file() and p.name != ".lock"}


def _summary(root: Path) -> dict:
    return json.loads((root / ".minibuild/out/img/big/summary.json").read_text())


# What happens when half of the tarball has reached the engine. The relay keeps forwarding after a signal:
# a stopping engine decides itself what becomes of the request.
FAULTS: dict[str, Callable[[Engine], Callable[[], None] | str]] = {
    "SIGKILL": lambda eng: lambda: eng.send(signal.SIGKILL),
    "SIGTERM": lambda eng: lambda: eng.send(signal.SIGTERM),
    "SIGSTOP (hung engine)": lambda eng: lambda: eng.send(signal.SIGSTOP),
    "connection cut": lambda eng: "cut",
}
TAG = "engine-faults/big:latest"


@pytest.mark.parametrize("command", ["load", "build"])
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_engine_stopped_mid_load(fault, command, engine, relay, image_ws, tally):
    engine.ensure_running()
    engine.cli("rmi", "-f", TAG)
    tarball = image_ws / ".minibuild/out/img/big/image.tar"
    before = _outputs(image_ws)
    relay.arm(tarball.stat().st_size // 2, FAULTS[fault](engine))
    env = {"DOCKER_HOST": f"unix://{relay.path}"}
    args = ["load", "//img:big"] if command == "load" else ["build", "//img:big", "--json"]
    tally["cases"] += 1
    r = run_cli(*args, cwd=image_ws, env=env, timeout=300)
    assert relay.fired.is_set(), f"the fault never fired: {r.stderr}"
    if fault.startswith("SIGSTOP"):
        engine.send(signal.SIGCONT)
    if r.returncode == 3 or "Traceback" in r.stderr:
        tally["crashes"] += 1
    assert "Traceback" not in r.stderr, r.stderr
    if fault == "SIGTERM" and r.returncode == 0:
        # A stopping engine may finish the requests it is serving (dockerd drains them): then the image
        # was loaded, and must still be there once the engine runs again.
        assert "loaded" in (r.stdout + r.stderr), r.stderr
        loaded_before_stop = True
    else:
        # One clear error: an engine failure (exit 1) naming the image and saying where it still is.
        assert r.returncode == 1, r.stderr
        assert f"error: loading `{TAG}` into the Docker engine failed" in r.stderr, r.stderr
        assert "hint:" in r.stderr and ".minibuild/out" in r.stderr, r.stderr
        assert r.stdout == "", r.stdout  # no half-written JSON
        loaded_before_stop = False
        tally["clean_errors"] += 1
    # Nothing the build made was touched, and the store verifies.
    after = _outputs(image_ws)
    verify = run_cli("cache", "verify", "--json", cwd=image_ws)
    if after != before or verify.returncode != 0:
        tally["data_lost"] += 1
    assert after == before
    assert verify.returncode == 0 and json.loads(verify.stdout)["corrupt_blobs"] == 0, verify.stderr
    # The engine again (the same data root after a kill or a stop): the next load completes.
    engine.ensure_running()
    relay.arm(None, None)
    again = run_cli("load", "//img:big", "--json", cwd=image_ws, env=env, timeout=300)
    assert again.returncode == 0, again.stderr
    assert again.json()["images"][0]["loaded"] == ("already loaded" if loaded_before_stop else "loaded")
    inspect = engine.cli("image", "inspect", "--format", "{{.Id}}", TAG)
    assert inspect.stdout.strip() == _summary(image_ws)["config_digest"], inspect.stderr
