"""`/bin/sh`: the warning when the closure imports `popen` or `system` and the image has none, and `shell = true`
(docs/runtime.md, "shell"). sqlite3 (scripts/test.sh installs it) imports both; `.shell CMD` runs CMD with
system(), so the image's behaviour in the engine shows whether it has a shell."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile

import pytest

from minibuild.image.runtime.shell import TRIGGERS
from minibuild.image.runtime.symbols import imported_symbols

IMAGES = """
[[image]]
name = "nosh"
binaries = ["/usr/bin/sqlite3"]
tag = "minibuild-test/shell-none:latest"

[[image]]
name = "sh"
binaries = ["/usr/bin/sqlite3"]
shell = true
tag = "minibuild-test/shell-true:latest"

[[image]]
name = "quiet"
binaries = ["/usr/bin/sqlite3"]
shell = false

[[image]]
name = "env"
binaries = ["/usr/bin/env"]
"""


def _undefined(tool: list[str], path: str) -> set[str]:
    """The undefined dynamic symbols `nm -D` or `readelf --dyn-syms` lists, without their versions."""
    out = subprocess.run([*tool, path], capture_output=True, text=True, check=True).stdout.splitlines()
    if tool[0] == "nm":
        return {line.split()[1].split("@")[0] for line in out if line.split()[:1] == ["U"]}
    return {f[7].split("@")[0] for f in (line.split() for line in out) if len(f) >= 8 and f[6] == "UND"}


def test_the_symbol_reader_agrees_with_nm_and_readelf():
    for path in ("/usr/bin/sqlite3", "/usr/bin/env", "/usr/bin/dpkg-deb"):
        mine = imported_symbols(path) & TRIGGERS
        assert mine == _undefined(["nm", "-D"], path) & TRIGGERS == _undefined(["readelf", "--dyn-syms", "-W"], path) \
            & TRIGGERS, path
    assert {"popen", "system"} <= imported_symbols("/usr/bin/sqlite3")


def _layer_members(tarball) -> dict[str, tarfile.TarInfo]:
    out = {}
    with tarfile.open(tarball) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))  # type: ignore[arg-type]
        for layer in manifest[0]["Layers"]:
            with tarfile.open(fileobj=outer.extractfile(layer)) as inner:
                out.update({"/" + m.name.strip("/"): m for m in inner.getmembers()})
    return out


@pytest.mark.docker
def test_the_warning_and_shell_true_in_the_engine(workspace, cli, docker_engine):
    workspace.write("app/BUILD.toml", IMAGES)
    r = cli("build", "//app:nosh", "//app:sh", cwd=workspace.root)
    assert r.returncode == 0, r.stderr
    warning = "`/usr/bin/sqlite3` imports `popen`, `system`: `popen` and `system` run commands with `/bin/sh -c`"
    assert warning in " ".join(r.stderr.split()) and "//app:nosh" in r.stderr, r.stderr
    assert r.stderr.count("shell = true") == 1  # the image with a shell is not warned of
    run = [docker_engine, "run", "--rm"]
    without = subprocess.run([*run, "minibuild-test/shell-none:latest", ":memory:", ".shell echo from-a-shell"],
                             capture_output=True, text=True, timeout=120)
    assert "from-a-shell" not in without.stdout, without.stdout
    with_sh = subprocess.run([*run, "minibuild-test/shell-true:latest", ":memory:", ".shell echo from-a-shell"],
                             capture_output=True, text=True, timeout=120)
    assert with_sh.returncode == 0 and with_sh.stdout == "from-a-shell\n", (with_sh.stdout, with_sh.stderr)
    # The sysroot's /bin/sh, its links followed as the host has them (Debian: /bin -> usr/bin, sh -> dash).
    held = _layer_members(next(workspace.root.glob("**/app/sh/image.tar")))
    real = os.path.realpath("/bin/sh")
    link = held["/usr/bin/sh"]
    assert held[real].isfile() and link.issym() and link.linkname == os.readlink("/bin/sh")


def test_no_warning_with_shell_false_or_exec_p_alone(workspace, cli):
    workspace.write("app/BUILD.toml", IMAGES)
    r = cli("build", "//app:quiet", "//app:env", "--no-load", cwd=workspace.root)
    assert r.returncode == 0 and "/bin/sh" not in r.stderr, r.stderr


def test_shell_true_without_a_shell_in_the_sysroot_is_exit_2(workspace, cli, tmp_path):
    (tmp_path / "root/etc").mkdir(parents=True)
    workspace.write("app/BUILD.toml", f'[[image]]\nname = "i"\nsysroot = "{tmp_path / "root"}"\nshell = true\n'
                                      'dirs = [{ path = "/data" }]\n')
    r = cli("build", "//app:i", "--no-load", cwd=workspace.root)
    assert r.returncode == 2 and "`shell = true`, but sysroot" in r.stderr and "has no `/bin/sh`" in r.stderr, \
        r.stderr
    assert "Traceback" not in r.stderr


def test_no_warning_on_a_base_with_shell_true(workspace, cli):
    # The base holds /bin -> usr/bin, /usr/bin/sh -> dash: the image's /bin/sh is found through the base's links.
    workspace.write("app/BUILD.toml", '[[image]]\nname = "base"\nbinaries = ["/usr/bin/env"]\nshell = true\n\n'
                                      '[[image]]\nname = "child"\nbase = ":base"\nbinaries = ["/usr/bin/sqlite3"]\n')
    assert os.path.islink("/bin"), "the host is expected to have a merged /usr"
    r = cli("build", "//app:child", "--no-load", cwd=workspace.root)
    assert r.returncode == 0 and "has no `/bin/sh`" not in r.stderr, r.stderr
    held = _layer_members(next(workspace.root.glob("**/app/child/image.tar")))
    assert held["/bin"].issym() and "/bin/sh" not in held  # the child's own tree has no /bin: the base's link counts
