"""`docker load` of our archive in the real engine: needs a running Docker Engine, and fails without one."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid

import pytest

from minibuild.entry import TreeEntry
from minibuild.oci.archive import write_docker_archive
from minibuild.oci.image import ImageConfig, Platform, assemble_image
from minibuild.oci.layer import write_layer

pytestmark = pytest.mark.docker


def docker(*args: str) -> str:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode != 0:
        pytest.fail(f"docker {' '.join(args)} failed:\n{proc.stderr}")
    return proc.stdout


@pytest.fixture(scope="module")
def engine():
    if shutil.which("docker") is None:
        pytest.fail("the docker CLI is not installed; docker-marked tests need a running Docker Engine")
    proc = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode != 0:
        pytest.fail(f"`docker info` failed; docker-marked tests need a running Docker Engine:\n{proc.stderr}")


def host_closure(binary: str) -> list[tuple[str, str]]:
    """(in-image path, host path) of a binary and the libraries ldd names: enough for a runnable image."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    paths = [binary]
    for line in out.splitlines():
        match = re.search(r"(/\S+) \(0x", line)
        if match:
            paths.append(match.group(1))
    return [(p, os.path.realpath(p)) for p in paths]


def test_docker_loads_and_runs_our_archive(engine, tmp_path):
    entries = [
        TreeEntry(path, "file", 0o755, source=src, origin="host") for path, src in host_closure("/bin/bash")
    ]
    files = [
        TreeEntry("/etc/greeting", "file", data=b"ok from minibuild\n", origin="test"),
        TreeEntry("/tmp", "dir", 0o1777, origin="test"),
        TreeEntry("/usr/bin/sh", "symlink", target="/bin/bash", origin="test"),
    ]
    low = write_layer(entries, str(tmp_path / "low"))
    top = write_layer(files, str(tmp_path / "top"))
    image = assemble_image(
        Platform(),
        ImageConfig(entrypoint=("/bin/bash", "-c"), cmd=("echo default",), env=("GREETING=hi",)),
        [(low, str(tmp_path / "low")), (top, str(tmp_path / "top"))],
        ["bash and its libraries", "test files"],
    )
    tag = f"minibuild-test/oci:{uuid.uuid4().hex[:12]}"
    write_docker_archive(
        str(tmp_path / "image.tar"),
        config=image.config_bytes,
        layers=image.layers,
        repo_tags=[tag],
        manifest=image.manifest_bytes,
    )
    out = docker("load", "-i", str(tmp_path / "image.tar"))
    try:
        assert f"Loaded image: {tag}" in out
        [inspected] = json.loads(docker("image", "inspect", tag))
        assert inspected["Id"] == image.config.digest  # the engine names the image by our config digest
        assert inspected["RootFS"]["Layers"] == [low.diff_id, top.diff_id]
        assert inspected["Created"].startswith("1970-01-01T00:00:00")
        script = 'read -r line < /etc/greeting; echo "$line $GREETING"; [ -k /tmp ] && echo sticky; echo "$0"'
        assert docker("run", "--rm", tag, script).splitlines() == [
            "ok from minibuild hi",
            "sticky",
            "/bin/bash",
        ]
        assert docker("run", "--rm", tag).strip() == "default"
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, check=False)
