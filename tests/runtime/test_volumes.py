"""`volumes`: the config's `Volumes`, each directory in the image with the owner and mode a new Docker volume
starts with (docs/runtime.md, "volumes"), checked in the real engine with the image's own `stat`."""

from __future__ import annotations

import json
import subprocess

import pytest

IMAGE = """
[[image]]
name = "vol"
binaries = ["/usr/bin/stat"]
entrypoint = ["/usr/bin/stat", "-c", "%u:%g %a"]
dirs = [{ path = "/var/lib/app", owner = "www-data", mode = "0750" }]
volumes = ["/var/lib/app", "/srv/cache", "/tmp"]
tag = "minibuild-test/volumes:latest"
"""


def _getent(db: str, key: str) -> list[str]:
    return subprocess.run(["getent", db, key], capture_output=True, text=True, check=True).stdout.strip().split(":")


@pytest.mark.docker
def test_a_new_volume_starts_with_the_declared_owner_and_mode(workspace, cli, docker_engine, tmp_path):
    workspace.write("app/BUILD.toml", IMAGE)
    r = cli("build", "//app:vol", cwd=workspace.root)
    assert r.returncode == 0, r.stderr
    image = "minibuild-test/volumes:latest"
    inspected = json.loads(subprocess.run([docker_engine, "image", "inspect", image], capture_output=True, text=True,
                                          check=True).stdout)[0]
    assert inspected["Config"]["Volumes"] == {"/var/lib/app": {}, "/srv/cache": {}, "/tmp": {}}
    www = _getent("passwd", "www-data")
    expected = {"/var/lib/app": f"{www[2]}:{www[3]} 750", "/srv/cache": "0:0 755", "/tmp": "0:0 1777"}
    volume = f"minibuild-test-volumes-{tmp_path.name}"
    try:
        for path, want in expected.items():
            # A named volume Docker creates on first use, and the anonymous one `docker run` makes for a Volume.
            for args in (["-v", f"{volume}-{path.replace('/', '_')}:{path}"], []):
                out = subprocess.run([docker_engine, "run", "--rm", *args, image, path], capture_output=True,
                                     text=True, timeout=120)
                assert out.returncode == 0 and out.stdout == want + "\n", (path, args, out.stdout, out.stderr)
            listed = subprocess.run([docker_engine, "volume", "inspect", f"{volume}-{path.replace('/', '_')}"],
                                    capture_output=True, text=True)
            assert listed.returncode == 0, listed.stderr
    finally:
        for path in expected:
            subprocess.run([docker_engine, "volume", "rm", f"{volume}-{path.replace('/', '_')}"], capture_output=True)


def test_bad_volumes_are_exit_2(workspace, cli):
    cases = {
        'volumes = ["data"]': "volume `data` must be an absolute path",
        'volumes = ["/"]': "a volume on `/` would hide the whole image",
        'volumes = ["/data", "/data/"]': "volume `/data` is listed twice",
        'files = [{ src = "f", dest = "/data" }]\nvolumes = ["/data"]': "two different contents for `/data`",
    }
    workspace.write("app/f", "x\n")
    for attrs, message in cases.items():
        workspace.write("app/BUILD.toml", f'[[image]]\nname = "i"\nbinaries = ["/bin/dash"]\n{attrs}\n')
        r = cli("build", "//app:i", "--no-load", cwd=workspace.root)
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, (attrs, r.stderr)
    workspace.write("app/BUILD.toml", '[[image]]\nname = "i"\nbinaries = ["/bin/dash"]\nvolumes = ["/data"]\n')
    r = cli("build", "//app:i", "--no-load", cwd=workspace.root)
    assert r.returncode == 0, r.stderr


def test_an_image_on_a_base_adds_its_volumes_to_the_base_ones():
    from minibuild.oci.image import ImageConfig

    mine = ImageConfig(volumes=("/data",)).inherit(ImageConfig.from_json({"Volumes": {"/logs": {}}}))
    assert mine.to_json()["Volumes"] == {"/logs": {}, "/data": {}}
