"""A layer several images of one build share is written once (minibuild/image/layers.py): the images are byte for
byte those each would be when built alone, and what the secret check finds in a shared layer's files stops every
image that ships them without `allow_secrets`, not only the one that wrote the layer.

Expected digests come from separate builds in fresh workspaces (each image alone: nothing to share); the key is
made by openssl."""

from __future__ import annotations

import json
import subprocess

from tests.conftest import run_cli

IMAGES = """\
[[image]]
name = "a"
binaries = ["/bin/true"]
files = [{{ src = "data.txt", dest = "/srv/data.txt", mode = "0644" }}]
cmd = ["a"]
{allow}
[[image]]
name = "b"
binaries = ["/bin/true"]
files = [{{ src = "data.txt", dest = "/srv/data.txt", mode = "0644" }}]
cmd = ["b"]
"""


def _workspace(root, data: bytes, allow: str = "") -> None:
    (root / "pkg").mkdir(parents=True)
    (root / "workspace.toml").write_text('[workspace]\nname = "shared"\n')
    (root / "pkg" / "BUILD.toml").write_text(IMAGES.format(allow=allow))
    (root / "pkg" / "data.txt").write_bytes(data)


def _layers(out: dict) -> dict[str, list[str]]:
    return {t["label"]: [layer["digest"] for layer in t["layers"]] for t in out["targets"] if t["kind"] == "image"}


def test_images_sharing_layers_are_those_built_alone(tmp_path) -> None:
    together = tmp_path / "together"
    _workspace(together, b"hello\n")
    r = run_cli("build", "//pkg:all", "--no-load", "--json", "-j", "1", cwd=together)
    assert r.returncode == 0, r.stderr
    both = _layers(json.loads(r.stdout))
    assert both["//pkg:a"] == both["//pkg:b"]  # same files: every layer shared, only the configs differ
    for name in ("a", "b"):
        alone = tmp_path / f"alone-{name}"
        _workspace(alone, b"hello\n")
        r = run_cli("build", f"//pkg:{name}", "--no-load", "--json", cwd=alone)
        assert r.returncode == 0, r.stderr
        assert _layers(json.loads(r.stdout))[f"//pkg:{name}"] == both[f"//pkg:{name}"]


def test_a_secret_in_a_shared_layer_stops_each_image_that_ships_it(tmp_path) -> None:
    key = subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"],
                         capture_output=True, check=True).stdout
    _workspace(tmp_path, key, allow='allow_secrets = ["/srv/data.txt"]\n')
    # One job: //pkg:a writes the layer with the key (and may ship it), //pkg:b finds it written.
    r = run_cli("build", "//pkg:all", "--no-load", "--json", "-j", "1", "--keep-going", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert "`//pkg:b` would ship a file that looks like a secret" in r.stderr, r.stderr
    assert "`/srv/data.txt` looks like a secret: a PEM private key block" in r.stderr, r.stderr
    assert "//pkg:a" not in r.stderr.split("would ship")[0].splitlines()[-1]
