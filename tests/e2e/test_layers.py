"""Layering: images of one workspace share their lowest layer; `layering = "single"`; path conflicts."""

from __future__ import annotations

import tarfile
from pathlib import Path


def _members(root: Path, target: dict, index: int) -> set[str]:
    digest = target["layers"][index]["digest"].split(":")[1]
    with tarfile.open(root / target["oci"] / "blobs/sha256" / digest) as tar:
        return set(tar.getnames())


def test_catalog_shares_the_loader_and_libc_layer(workspace, cli):
    workspace.write("img/BUILD.toml", "".join(
        f'[[image]]\nname = "{n}"\nbinaries = ["{b}"]\n\n'
        for n, b in (("bash", "/bin/bash"), ("xz", "/usr/bin/xz"), ("gzip", "/bin/gzip"))))
    r = cli("build", "//img/...", "--json", "--no-load", cwd=workspace.root)
    assert r.returncode == 0, r.stderr
    targets = r.json()["targets"]
    lowest = {t["layers"][0]["digest"] for t in targets}
    assert len(lowest) == 1, "the loader+libc layer must be byte-identical across images"
    names = _members(workspace.root, targets[0], 0)
    assert "usr/lib/x86_64-linux-gnu/libc.so.6" in names and "lib64" in names
    assert not any(n.endswith(("bin/bash", "bin/xz", "bin/gzip")) for n in names)
    # Each image's own binary is in its top layer.
    for t in targets:
        top = _members(workspace.root, t, -1)
        assert any(n.startswith("usr/bin/") for n in top), top


def test_single_layer(workspace, cli):
    workspace.write("img/BUILD.toml", '[[image]]\nname = "one"\nbinaries = ["/bin/bash"]\nlayering = "single"\n')
    r = cli("build", "//img:one", "--json", "--no-load", cwd=workspace.root)
    assert r.returncode == 0, r.stderr
    [layer] = r.json()["targets"][0]["layers"]
    names = _members(workspace.root, r.json()["targets"][0], 0)
    assert {"usr/bin/bash", "usr/lib/x86_64-linux-gnu/libc.so.6", "etc/passwd"} <= names
    assert layer["size"] > 0


def test_two_contents_for_one_path_name_both(workspace, cli):
    workspace.write("img/a.txt", "a\n")
    workspace.write("img/b.txt", "b\n")
    workspace.write("img/BUILD.toml", '[[image]]\nname = "x"\nbinaries = ["/bin/bash"]\nfiles = [\n'
                                      '  { src = "a.txt", dest = "/etc/x" },\n'
                                      '  { src = "b.txt", dest = "/etc/x" },\n]\n')
    r = cli("build", "//img:x", "--no-load", cwd=workspace.root)
    assert r.returncode == 2, r.stderr
    assert "two different contents for `/etc/x`" in r.stderr
    assert "files[0]" in r.stderr and "files[1]" in r.stderr
    # A file over a library the closure brings is a conflict too, naming the closure.
    workspace.write("img/BUILD.toml", '[[image]]\nname = "x"\nbinaries = ["/bin/bash"]\n'
                                      'files = [{ src = "a.txt", dest = "/lib/x86_64-linux-gnu/libc.so.6" }]\n')
    r = cli("build", "//img:x", "--no-load", cwd=workspace.root)
    assert r.returncode == 2 and "ELF closure" in r.stderr and "files[0]" in r.stderr, r.stderr


def test_size_budget(workspace, cli):
    workspace.write("img/BUILD.toml", '[[image]]\nname = "b"\nbinaries = ["/bin/bash"]\nmax_size = "1MiB"\n')
    r = cli("build", "//img:b", "--no-load", cwd=workspace.root)
    assert r.returncode == 1, r.stderr
    assert "over its `max_size` of 1,048,576 bytes" in r.stderr
    assert "libc.so.6" in r.stderr and "/usr/bin/bash" in r.stderr  # the biggest contributors
    workspace.write("img/BUILD.toml", '[[image]]\nname = "b"\nbinaries = ["/bin/bash"]\nmax_size = "8MiB"\n')
    assert cli("build", "//img:b", "--no-load", cwd=workspace.root).returncode == 0
    workspace.write("img/BUILD.toml", '[[image]]\nname = "b"\nbinaries = ["/bin/bash"]\nmax_size = "8 parsecs"\n')
    r = cli("build", "//img:b", "--no-load", cwd=workspace.root)
    assert r.returncode == 2 and "max_size" in r.stderr and "img/BUILD.toml:4" in r.stderr, r.stderr
