"""examples/servers, as committed (lock included), built once in a fresh copy and run in the real Docker engine;
each server is spoken to by its own client from this machine (scripts/test.sh installs them): curl for nginx,
psql for postgres, redis-cli for redis, memcached's text protocol on a socket. Postgres's and redis's data must
survive a restart of the container and its replacement by a new one on the same volume.

The packages come from the Debian mirror this machine's apt uses (never written here; see docs/packages.md);
where it cannot be reached, this fails (it does not skip)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli

EXAMPLE = REPO / "examples" / "servers"
PASSWORD = "minibuild-servers-test"
# One build for the module: under `--dist loadgroup` its tests stay on one worker.
pytestmark = [pytest.mark.docker, pytest.mark.xdist_group("servers")]


@dataclass(frozen=True)
class Built:
    root: Path
    env: dict[str, str]
    images: dict[str, str]  # image name -> image id (the digest of its config), immune to tags moved meanwhile


@dataclass(frozen=True)
class Container:
    docker: str
    name: str
    port: int  # the container's port

    def host_port(self) -> int:
        """The published port on 127.0.0.1; asked again after a restart, which may publish another."""
        out = subprocess.run([self.docker, "port", self.name, f"{self.port}/tcp"], capture_output=True, text=True,
                             check=True).stdout
        return int(next(line for line in out.splitlines() if line.startswith("127.0.0.1:")).rsplit(":", 1)[1])

    def logs(self) -> str:
        out = subprocess.run([self.docker, "logs", self.name], capture_output=True, text=True)
        return out.stdout + out.stderr

    def uids(self) -> list[tuple[int, str]]:
        """(uid, command) of each process of the container, as the host's ps sees them."""
        out = subprocess.run([self.docker, "top", self.name, "-eo", "pid,uid,args"], capture_output=True, text=True,
                             check=True).stdout
        return [(int(line.split(None, 2)[1]), line.split(None, 2)[2]) for line in out.splitlines()[1:]]

    def users(self) -> set[str]:
        """The account name of each process's uid (from `docker top`) in the image's own /etc/passwd, read from the
        container with `docker cp`, as a process in it (getpwuid) would name itself."""
        tar = subprocess.run([self.docker, "cp", f"{self.name}:/etc/passwd", "-"], capture_output=True,
                             check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
            member = archive.next()
            assert member is not None and member.isfile()
            text = archive.extractfile(member).read().decode()  # type: ignore[union-attr]
        names = {int(f[2]): f[0] for f in (line.split(":") for line in text.splitlines()) if len(f) >= 7}
        return {names.get(uid, f"uid {uid} (not in the image's /etc/passwd)") for uid, _ in self.uids()}

    def restart(self) -> None:
        subprocess.run([self.docker, "restart", self.name], capture_output=True, check=True, timeout=120)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory, docker_engine: str) -> Built:
    """The example built (and loaded) once for the module, from a cold cache and a `.deb` store of its own."""
    root = tmp_path_factory.mktemp("servers") / "servers"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".minibuild"))
    env = {"MINIBUILD_DEB_CACHE": str(tmp_path_factory.mktemp("server-debs"))}
    check = run_cli("lock", "--check", cwd=root, env=env)
    assert check.returncode == 0, check.stdout + check.stderr
    built = run_cli("build", "//...", "--json", cwd=root, env=env, timeout=1800)
    assert built.returncode == 0, built.stderr
    images = {}
    for target in built.json()["targets"]:
        if target["kind"] == "image":
            config = (root / target["outputs"]["config.json"]).read_bytes()
            images[target["label"].rsplit(":", 1)[1]] = "sha256:" + hashlib.sha256(config).hexdigest()
    assert set(images) == {"nginx", "postgres", "redis", "memcached"}
    return Built(root, env, images)


@contextmanager
def _running(docker: str, image: str, port: int, *options: str) -> Iterator[Container]:
    """`docker run -d` with the port published on a free port of 127.0.0.1; removed at the end (its logs shown
    when the test failed)."""
    name = f"minibuild-test-servers-{uuid.uuid4().hex[:12]}"
    subprocess.run([docker, "run", "-d", "--name", name, "-p", f"127.0.0.1::{port}", *options, image],
                   capture_output=True, text=True, check=True)
    container = Container(docker, name, port)
    try:
        yield container
    except BaseException:
        print(f"--- logs of {name} ({image}) ---\n{container.logs()}")
        raise
    finally:
        subprocess.run([docker, "rm", "-f", "-v", name], capture_output=True)


@contextmanager
def _volume(docker: str) -> Iterator[str]:
    name = f"minibuild-test-servers-{uuid.uuid4().hex[:12]}"
    try:
        yield name
    finally:
        subprocess.run([docker, "volume", "rm", "-f", name], capture_output=True)


def _until(what: str, check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.3)


def _volumes(docker: str, image: str) -> dict[str, object]:
    out = subprocess.run([docker, "image", "inspect", "-f", "{{json .Config.Volumes}}", image], capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out) or {}


def test_every_image_test_of_the_example_passes(servers: Built) -> None:
    r = run_cli("test", "//...", "--json", cwd=servers.root, env=servers.env, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    result = r.json()
    assert {t["label"] for t in result["tests"]} == {f"//{n}:{n}_test" for n in servers.images}
    assert result["failed"] == 0 and all(t["passed"] for t in result["tests"])


# ------------------------------------------------------------------------------------------------------ nginx --
def _curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["curl", "-sS", "--max-time", "10", *args], capture_output=True, text=True)


def test_nginx_serves_and_its_www_data_workers_write_uploads(servers: Built, docker_engine: str,
                                                              tmp_path: Path) -> None:
    with _running(docker_engine, servers.images["nginx"], 80) as nginx:
        url = f"http://127.0.0.1:{nginx.host_port()}"
        _until("nginx answers", lambda: _curl("-o", os.devnull, f"{url}/").returncode == 0)
        page = _curl("-f", f"{url}/")
        assert page.returncode == 0, page.stderr
        assert page.stdout == (EXAMPLE / "nginx" / "index.html").read_text()
        assert _curl("-o", os.devnull, "-w", "%{http_code}", f"{url}/missing").stdout == "404"

        # A body larger than client_body_buffer_size goes through /var/lib/nginx/body, then into uploads/.
        blob = tmp_path / "blob.bin"
        blob.write_bytes(os.urandom(256 * 1024))
        put = _curl("-o", os.devnull, "-w", "%{http_code}", "-T", str(blob), f"{url}/uploads/blob.bin")
        assert put.stdout == "201", put.stderr
        back = subprocess.run(["curl", "-sSf", "--max-time", "10", f"{url}/uploads/blob.bin"], capture_output=True)
        assert back.returncode == 0 and back.stdout == blob.read_bytes()

        www_data = int(subprocess.run(["id", "-u", "www-data"], capture_output=True, text=True,
                                      check=True).stdout)
        processes = nginx.uids()
        assert [uid for uid, args in processes if args.startswith("nginx: master")] == [0]
        workers = [uid for uid, args in processes if args.startswith("nginx: worker")]
        assert workers and set(workers) == {www_data}
        assert nginx.users() == {"root", "www-data"}
        # SIGQUIT (the image's stop signal) lets the workers finish: nginx exits 0, well before docker's 10 s.
        stop = subprocess.run([docker_engine, "stop", nginx.name], capture_output=True, timeout=60)
        assert stop.returncode == 0
        code = subprocess.run([docker_engine, "inspect", "-f", "{{.State.ExitCode}}", nginx.name],
                              capture_output=True, text=True, check=True).stdout.strip()
        assert code == "0", nginx.logs()


# --------------------------------------------------------------------------------------------------- postgres --
def _psql(port: int, *commands: str, password: str = PASSWORD) -> subprocess.CompletedProcess[str]:
    args = ["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1",
            f"host=127.0.0.1 port={port} user=postgres dbname=postgres connect_timeout=5"]
    for c in commands:
        args += ["-c", c]
    return subprocess.run(args, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PGPASSWORD": password})


def _postgres_ready(container: Container) -> None:
    _until("postgres accepts connections", lambda: _psql(container.host_port(), "SELECT 1").returncode == 0,
           timeout=120)


INITDB_DONE = "Success. You can now start the database server"


def test_postgres_initialises_its_volume_once_and_keeps_the_data(servers: Built, docker_engine: str) -> None:
    image = servers.images["postgres"]
    assert _volumes(docker_engine, image) == {"/var/lib/postgresql/data": {}}
    with _volume(docker_engine) as volume:
        options = ("-e", f"POSTGRES_PASSWORD={PASSWORD}", "-v", f"{volume}:/var/lib/postgresql/data")
        with _running(docker_engine, image, 5432, *options) as pg:
            _postgres_ready(pg)
            made = _psql(pg.host_port(), "CREATE TABLE kept (v text)", "INSERT INTO kept VALUES ('before')",
                         "CREATE EXTENSION pg_trgm", "SELECT current_user, current_setting('data_directory')")
            assert made.returncode == 0, made.stderr
            assert made.stdout.splitlines()[-1] == "postgres|/var/lib/postgresql/data"
            wrong = _psql(pg.host_port(), "SELECT 1", password="wrong")
            assert wrong.returncode != 0 and 'password authentication failed for user "postgres"' in wrong.stderr
            assert {uid for uid, _ in pg.uids()} == {999}
            assert pg.users() == {"postgres"}  # the declared account, not a generated `user999`
            # Without llvmjit.so (left out by `exclude`) the JIT is unavailable, and a query that would use it runs.
            jit = _psql(pg.host_port(), "SELECT pg_jit_available()", "SET jit_above_cost = 0",
                        "SELECT sum(i * 2) FROM generate_series(1, 100000) AS i")
            assert jit.returncode == 0 and jit.stdout.split() == ["f", "SET", "10000100000"], jit.stderr

            pg.restart()
            _postgres_ready(pg)
            kept = _psql(pg.host_port(), "SELECT v FROM kept", "SELECT similarity('kept', 'kept')")
            assert kept.stdout.split() == ["before", "1"], kept.stderr
            logs = pg.logs()
            assert logs.count(INITDB_DONE) == 1  # initdb ran on the first start only
            # initdb names the process's own account (getpwuid in the image's /etc/passwd).
            assert 'The files belonging to this database system will be owned by user "postgres".' in logs
            # The restart stopped it with the image's SIGINT, postgres's fast shutdown, not docker's SIGKILL.
            assert "received fast shutdown request" in logs and "database system is shut down" in logs

        # A new container on the same volume finds the cluster and the row.
        with _running(docker_engine, image, 5432, *options) as again:
            _postgres_ready(again)
            assert _psql(again.host_port(), "SELECT v FROM kept").stdout.split() == ["before"]
            assert INITDB_DONE not in again.logs()


def test_postgres_refuses_root_and_an_empty_volume_without_a_password(servers: Built, docker_engine: str) -> None:
    image = servers.images["postgres"]
    root = subprocess.run([docker_engine, "run", "--rm", "--user", "0", "-e", f"POSTGRES_PASSWORD={PASSWORD}", image],
                          capture_output=True, text=True, timeout=120)
    assert root.returncode == 1 and "initdb: error: cannot be run as root" in root.stderr, root.stderr
    bare = subprocess.run([docker_engine, "run", "--rm", image], capture_output=True, text=True, timeout=120)
    assert bare.returncode == 1 and "POSTGRES_PASSWORD is not set" in bare.stderr, bare.stderr


# ------------------------------------------------------------------------------------------------------ redis --
def _redis(port: int, *command: str) -> str:
    out = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port), *command], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_redis_keeps_its_data_in_its_volume(servers: Built, docker_engine: str) -> None:
    image = servers.images["redis"]
    assert _volumes(docker_engine, image) == {"/var/lib/redis": {}}
    with _volume(docker_engine) as volume:
        with _running(docker_engine, image, 6379, "-v", f"{volume}:/var/lib/redis") as redis:
            _until("redis answers", lambda: subprocess.run(
                ["redis-cli", "-h", "127.0.0.1", "-p", str(redis.host_port()), "PING"], capture_output=True,
                text=True).stdout.strip() == "PONG")
            assert _redis(redis.host_port(), "SET", "greeting", "kept across restarts") == "OK"
            assert _redis(redis.host_port(), "RPUSH", "list", "a", "b", "c") == "3"
            assert _redis(redis.host_port(), "CONFIG", "GET", "dir").splitlines() == ["dir", "/var/lib/redis"]
            assert {uid for uid, _ in redis.uids()} == {999}
            assert redis.users() == {"redis"}
            redis.restart()
            _until("redis answers again", lambda: subprocess.run(
                ["redis-cli", "-h", "127.0.0.1", "-p", str(redis.host_port()), "PING"], capture_output=True,
                text=True).stdout.strip() == "PONG")
            assert _redis(redis.host_port(), "GET", "greeting") == "kept across restarts"
        with _running(docker_engine, image, 6379, "-v", f"{volume}:/var/lib/redis") as again:
            _until("a new redis answers", lambda: subprocess.run(
                ["redis-cli", "-h", "127.0.0.1", "-p", str(again.host_port()), "PING"], capture_output=True,
                text=True).stdout.strip() == "PONG")
            assert _redis(again.host_port(), "LRANGE", "list", "0", "-1").splitlines() == ["a", "b", "c"]


# -------------------------------------------------------------------------------------------------- memcached --
def _memcached(port: int, request: bytes, ends: bytes) -> bytes:
    """Send a request in memcached's text protocol and read until the answer ends with `ends`."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        answer = b""
        while not answer.endswith(ends):
            chunk = s.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer


def test_memcached_stores_and_serves_over_its_text_protocol(servers: Built, docker_engine: str) -> None:
    with _running(docker_engine, servers.images["memcached"], 11211) as mc:
        def version() -> bool:
            try:
                return _memcached(mc.host_port(), b"version\r\n", b"\r\n").startswith(b"VERSION 1.6.")
            except OSError:
                return False
        _until("memcached answers", version)
        value = b"x" * 1000
        assert _memcached(mc.host_port(), b"set k 42 0 %d\r\n%s\r\n" % (len(value), value), b"\r\n") == b"STORED\r\n"
        assert _memcached(mc.host_port(), b"get k\r\n", b"END\r\n") == b"VALUE k 42 %d\r\n%s\r\nEND\r\n" % (
            len(value), value)
        assert _memcached(mc.host_port(), b"incr missing 1\r\n", b"\r\n") == b"NOT_FOUND\r\n"
        stats = _memcached(mc.host_port(), b"stats\r\n", b"END\r\n").decode()
        assert "STAT limit_maxbytes 67108864\r\n" in stats  # --memory-limit=64 from the image's cmd
        assert {uid for uid, _ in mc.uids()} == {11211}
        assert mc.users() == {"memcache"}
