"""Multi-platform images: one sysroot per platform, an OCI index, arm64 resolved on x86_64 without running it."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

HELLO = '#include <stdio.h>\nint main(void) { puts("hello from minibuild"); return 0; }\n'
ARM64_LIBS = Path("/usr/aarch64-linux-gnu/lib")


def _amd64_root(root: Path, src: Path) -> None:
    (root / "usr/bin").mkdir(parents=True)
    subprocess.run(["gcc", "-O2", "-o", str(root / "usr/bin/hello"), str(src)], check=True)
    libdir = root / "lib/x86_64-linux-gnu"
    libdir.mkdir(parents=True)
    for name in ("libc.so.6", "ld-linux-x86-64.so.2"):
        shutil.copy2(Path("/lib/x86_64-linux-gnu") / name, libdir / name)
    (root / "lib64").mkdir()
    (root / "lib64/ld-linux-x86-64.so.2").symlink_to("../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")


def _arm64_root(root: Path, src: Path) -> None:
    (root / "usr/bin").mkdir(parents=True)
    subprocess.run(["aarch64-linux-gnu-gcc", "-O2", "-o", str(root / "usr/bin/hello"), str(src)], check=True)
    libdir = root / "lib/aarch64-linux-gnu"
    libdir.mkdir(parents=True)
    for name in ("libc.so.6", "ld-linux-aarch64.so.1"):
        shutil.copy2(ARM64_LIBS / name, libdir / name)
    (root / "lib/ld-linux-aarch64.so.1").symlink_to("aarch64-linux-gnu/ld-linux-aarch64.so.1")


@pytest.fixture
def multi(workspace, tmp_path):
    if not ARM64_LIBS.is_dir() or not shutil.which("aarch64-linux-gnu-gcc"):
        pytest.fail("gcc-aarch64-linux-gnu and libc6-arm64-cross are needed (scripts/test.sh installs them)")
    src = tmp_path / "hello.c"
    src.write_text(HELLO)
    _amd64_root(workspace.root / "sysroots/amd64", src)
    _arm64_root(workspace.root / "sysroots/arm64", src)
    workspace.write("workspace.toml", '[workspace]\nname = "multi"\n\n[platforms]\n'
                                      '"linux/amd64" = { sysroot = "sysroots/amd64" }\n'
                                      '"linux/arm64" = { sysroot = "sysroots/arm64" }\n')
    workspace.write("app/BUILD.toml", '[[image]]\nname = "hello"\nbinaries = ["/usr/bin/hello"]\n'
                                      'platforms = ["linux/amd64", "linux/arm64"]\n')
    return workspace


def test_index_with_one_manifest_per_platform(multi, cli):
    r = cli("build", "//app:hello", "--json", "--no-load", cwd=multi.root)
    assert r.returncode == 0, r.stderr
    target = r.json()["targets"][0]
    layout = multi.root / target["oci"]
    raw = subprocess.run(["skopeo", "inspect", "--raw", f"oci:{layout}"], capture_output=True, text=True, check=True)
    index = json.loads(raw.stdout)
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert sorted(m["platform"]["architecture"] for m in index["manifests"]) == ["amd64", "arm64"]
    arm = subprocess.run(["skopeo", "--override-arch", "arm64", "inspect", f"oci:{layout}"],
                         capture_output=True, text=True, check=True)
    assert json.loads(arm.stdout)["Architecture"] == "arm64"
    # The arm64 image carries the arm64 loader at its PT_INTERP path, resolved in its own sysroot.
    arm_manifest = next(m for m in index["manifests"] if m["platform"]["architecture"] == "arm64")
    manifest = json.loads((layout / "blobs/sha256" / arm_manifest["digest"].split(":")[1]).read_text())
    names = set()
    for layer in manifest["layers"]:
        with tarfile.open(layout / "blobs/sha256" / layer["digest"].split(":")[1]) as tar:
            names |= set(tar.getnames())
    assert {"lib/ld-linux-aarch64.so.1", "lib/aarch64-linux-gnu/libc.so.6", "usr/bin/hello"} <= names
    again = cli("build", "//app:hello", "--json", "--no-load", cwd=multi.root)
    assert again.json()["targets"][0]["digest"] == target["digest"] and again.json()["actions"]["run"] == 0


def test_wrong_architecture_is_a_clear_error(multi, cli):
    multi.write("app/BUILD.toml", '[[image]]\nname = "hello"\nbinaries = ["/usr/bin/hello"]\n'
                                  'platforms = ["linux/arm64"]\n')
    multi.write("workspace.toml", '[workspace]\nname = "multi"\n\n[platforms]\n'
                                  '"linux/arm64" = { sysroot = "sysroots/amd64" }\n')
    r = cli("build", "//app:hello", "--no-load", cwd=multi.root)
    assert r.returncode == 2, r.stderr
    assert "is an ELF file for `amd64`, but the image's platform is `linux/arm64`" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.docker
def test_host_platform_runs(multi, cli, docker_engine):
    r = cli("build", "//app:hello", "--json", cwd=multi.root)
    assert r.returncode == 0, r.stderr
    out = subprocess.run([docker_engine, "run", "--rm", "app/hello:latest"], capture_output=True, text=True)
    assert out.stdout.strip() == "hello from minibuild", out.stderr
