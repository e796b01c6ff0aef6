"""`dirs` and `volumes` as the layers' tar headers say them (read with Python's tarfile, not minibuild's reader):
/tmp's default mode, a path declared twice, a base image's directory kept (docs/runtime.md, "owners and
directories")."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path


def _headers(root: Path, target: str) -> list[dict[str, tuple[int, int, int]]]:
    """Each layer of the image's tarball, bottom first: path -> (uid, gid, mode) of its entries."""
    tarball = next(root.glob(f"**/{target}/image.tar"))
    out = []
    with tarfile.open(tarball) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))  # type: ignore[arg-type]
        for name in manifest[0]["Layers"]:
            with tarfile.open(fileobj=outer.extractfile(name)) as layer:
                out.append({"/" + m.name.strip("/"): (m.uid, m.gid, m.mode) for m in layer.getmembers()})
    return out


def _build(workspace, cli, build: str, *targets: str) -> None:
    workspace.write("app/BUILD.toml", build)
    r = cli("build", *targets, "--no-load", cwd=workspace.root)
    assert r.returncode == 0, r.stderr


def test_a_dirs_entry_for_tmp_without_a_mode_keeps_1777(workspace, cli):
    _build(workspace, cli, '[[image]]\nname = "i"\nbinaries = ["/bin/dash"]\n'
                           'dirs = [{ path = "/tmp" }, { path = "/srv/t", owner = "daemon" }, '
                           '{ path = "/srv/m", mode = "1777" }]\n', "//app:i")
    merged = {k: v for layer in _headers(workspace.root, "app/i") for k, v in layer.items()}
    assert merged["/tmp"] == (0, 0, 0o1777), merged
    assert merged["/srv/t"][2] == 0o755 and merged["/srv/m"][2] == 0o1777


def test_a_directory_listed_twice_is_exit_2_naming_both_entries(workspace, cli):
    for second in ('{ path = "/srv/d/", owner = "daemon" }', '{ path = "/srv/d", mode = "0700" }',
                   '{ path = "/srv/d", owner = "www-data", mode = "0750" }'):
        workspace.write("app/BUILD.toml", '[[image]]\nname = "i"\nbinaries = ["/bin/dash"]\n'
                                          'dirs = [{ path = "/srv/d", owner = "www-data", mode = "0750" }, '
                                          f'{{ path = "/srv/e" }}, {second}]\n')
        r = cli("build", "//app:i", "--no-load", cwd=workspace.root)
        assert r.returncode == 2 and "Traceback" not in r.stderr, (second, r.stderr)
        assert "directory `/srv/d` is listed twice, as `dirs[0]` and `dirs[2]`" in r.stderr, r.stderr
        assert "app/BUILD.toml:4" in r.stderr and "attribute `dirs`" in r.stderr, r.stderr


BASE_VOLUME = """
[[image]]
name = "base"
binaries = ["/bin/dash"]
dirs = [{ path = "/data", owner = "999:999", mode = "0700" }]
volumes = ["/data"]

[[image]]
name = "volume"
base = ":base"
volumes = ["/data"]

[[image]]
name = "dir"
base = ":base"
dirs = [{ path = "/data" }, { path = "/srv/new" }]

[[image]]
name = "owned"
base = ":base"
dirs = [{ path = "/data", owner = "1234:1234" }]
"""


def test_a_volume_or_plain_dirs_entry_the_base_has_keeps_the_base_owner_and_mode(workspace, cli):
    _build(workspace, cli, BASE_VOLUME, "//app:base", "//app:volume", "//app:dir", "//app:owned")
    base = _headers(workspace.root, "app/base")
    assert {k: v for layer in base for k, v in layer.items()}["/data"] == (999, 999, 0o700)
    for target in ("volume", "dir"):
        layers = _headers(workspace.root, f"app/{target}")
        assert layers[:len(base)] == base
        added = {k: v for layer in layers[len(base):] for k, v in layer.items()}
        assert "/data" not in added, (target, added)  # no new entry: the base's stays
    added = {k: v for layer in _headers(workspace.root, "app/dir")[len(base):] for k, v in layer.items()}
    assert added["/srv/new"] == (0, 0, 0o755)
    added = {k: v for layer in _headers(workspace.root, "app/owned")[len(base):] for k, v in layer.items()}
    assert added["/data"] == (1234, 1234, 0o755)  # an owner declared: the image's entry wins
