"""`probe`: a library that only dlopen loads is found by running the program in the image under strace.

The program dlopens `libplugin.so.1` by its bare soname; the plugin needs `libdep.so.1` (DT_NEEDED) and,
when called, dlopens `libsecond.so.1`: a chain no static analysis sees. Whether the image works is decided
by the real Docker engine, not by minibuild.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from minibuild.image.probe import parse_trace, unescape
from tests.runtime.rootfs import glibc_sysroot, sysroot_workspace

MAIN = r"""
#include <dlfcn.h>
#include <stdio.h>
int main(void) {
    void *h = dlopen("libplugin.so.1", RTLD_NOW);
    if (!h) { fprintf(stderr, "dlopen: %s\n", dlerror()); return 3; }
    int (*value)(void) = (int (*)(void))dlsym(h, "plugin_value");
    printf("plugin says %d\n", value());
    return 0;
}
"""
PLUGIN = r"""
#include <dlfcn.h>
int dep_value(void);
int plugin_value(void) {
    void *h = dlopen("libsecond.so.1", RTLD_NOW);
    if (!h) return -1;
    int (*second)(void) = (int (*)(void))dlsym(h, "second_value");
    return dep_value() + second();
}
"""
LIBDIR = "usr/lib/x86_64-linux-gnu"


def _cc(*args: str, cwd: Path) -> None:
    subprocess.run(["cc", *args], cwd=cwd, check=True, capture_output=True)


def _sysroot(root: Path, tmp: Path) -> None:
    """The host's loader and libc, the program in /usr/bin, its plugins in the multiarch directory."""
    src = tmp / "src"
    src.mkdir()
    (src / "main.c").write_text(MAIN)
    (src / "plugin.c").write_text(PLUGIN)
    (src / "dep.c").write_text("int dep_value(void) { return 40; }\n")
    (src / "second.c").write_text("int second_value(void) { return 2; }\n")
    libdir = glibc_sysroot(root)
    _cc("-shared", "-fPIC", "-Wl,-soname,libdep.so.1", "-o", str(libdir / "libdep.so.1"), "dep.c", cwd=src)
    _cc("-shared", "-fPIC", "-Wl,-soname,libsecond.so.1", "-o", str(libdir / "libsecond.so.1"), "second.c", cwd=src)
    _cc("-shared", "-fPIC", "-Wl,-soname,libplugin.so.1", "-o", str(libdir / "libplugin.so.1.0"), "plugin.c",
        f"-L{libdir}", "-l:libdep.so.1", cwd=src)
    os.symlink("libplugin.so.1.0", libdir / "libplugin.so.1")
    _cc("-o", str(root / "usr/bin/dlopener"), "main.c", cwd=src)


IMAGES = """
[[image]]
name = "static"
binaries = ["/usr/bin/dlopener"]
tag = "minibuild-test/probe-static:latest"

[[image]]
name = "probed"
binaries = ["/usr/bin/dlopener"]
probe = [["dlopener"]]
tag = "minibuild-test/probe-probed:latest"
"""


def _files(ws: Path, name: str) -> dict[str, dict]:
    layers = json.loads((ws / f".minibuild/out/app/{name}/layers.json").read_text())
    return {f["path"]: f for layer in layers["layers"] for f in layer["files"]}


@pytest.mark.docker
def test_probe_finds_what_only_dlopen_loads(tmp_path, cli, docker_engine):
    root = tmp_path / "sysroot"
    _sysroot(root, tmp_path)
    ws = sysroot_workspace(tmp_path / "ws", root, IMAGES)
    r = cli("build", "//app:static", "//app:probed", "--json", cwd=ws)
    assert r.returncode == 0, r.stderr

    static, probed = _files(ws, "static"), _files(ws, "probed")
    plugin, dep, second = (f"/{LIBDIR}/{n}" for n in ("libplugin.so.1.0", "libdep.so.1", "libsecond.so.1"))
    assert not {plugin, dep, second} & set(static)
    assert probed[plugin]["reason"] == "probe: dlopener"
    assert probed[second]["reason"] == "probe: dlopener"
    assert f"/{LIBDIR}/libplugin.so.1" in probed  # the soname link the loader opened
    assert dep in probed  # the plugin's DT_NEEDED: opened by the loader in the probe, and in its closure
    closure = json.loads((ws / ".minibuild/out/app/probed/closure.json").read_text())
    [report] = closure["probe"]
    assert report["command"] == ["dlopener"] and report["exit_code"] == 0
    assert report["rounds"] == 2  # everything found at once over the sysroot, then nothing new
    assert {plugin, second} <= set(report["added"])

    # The real engine decides: the static image cannot load its plugin, the probed one prints 42.
    run = [docker_engine, "run", "--rm"]
    bad = subprocess.run([*run, "minibuild-test/probe-static:latest"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 3 and "libplugin.so.1" in bad.stderr, (bad.returncode, bad.stderr)
    ok = subprocess.run([*run, "minibuild-test/probe-probed:latest"], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and ok.stdout == "plugin says 42\n", (ok.returncode, ok.stdout, ok.stderr)

    # Cached: a second build runs nothing, the probe included.
    again = cli("build", "//app:probed", "--json", "--no-load", cwd=ws)
    assert again.returncode == 0 and again.json()["actions"]["run"] == 0, again.stdout


def test_probe_output_names_a_failing_command(tmp_path, cli):
    root = tmp_path / "sysroot"
    _sysroot(root, tmp_path)
    # The plugin is gone from the sysroot: the probe cannot help, and says how the command ended.
    os.unlink(root / LIBDIR / "libplugin.so.1")
    ws = sysroot_workspace(tmp_path / "ws", root, IMAGES)
    r = cli("build", "//app:probed", "--no-load", cwd=ws)
    assert r.returncode == 0, r.stderr
    assert "probe `dlopener` exited with 3" in r.stderr and "libplugin.so.1" in r.stderr, r.stderr


def test_parse_trace_keeps_what_the_image_looked_up():
    rootfs = "/scratch/probe-1/mnt/root"
    trace = [
        '7 execve("/usr/sbin/unshare", ["unshare"], 0x0 /* 1 var */) = 0',
        '7 openat(AT_FDCWD</work>, "/etc/ld.so.cache", O_RDONLY|O_CLOEXEC) = 3</etc/ld.so.cache>',
        f'7 chroot("{rootfs}") = 0',
        '7 chdir("/srv") = 0',
        '7 execve("/usr/bin/app", ["app"], 0x0 /* 1 var */) = 0',
        f'7 openat(AT_FDCWD<{rootfs}/srv>, "data/conf", O_RDONLY) = -1 ENOENT (No such file or directory)',
        f'7 openat(3<{rootfs}/usr/lib>, "libx.so", O_RDONLY) = -1 ENOENT (No such file or directory)',
        f'7 newfstatat(3<{rootfs}/usr/lib/liby.so>, "", {{st_mode=S_IFREG}}, AT_EMPTY_PATH) = 0',
        '7 clone(child_stack=NULL, flags=SIGCHLD) = 8',
        '8 access("/etc/caf\\303\\251", R_OK) = -1 ENOENT (No such file or directory)',
        '8 openat(AT_FDCWD</elsewhere>, "x", O_RDONLY) = -1 ENOENT (No such file or directory)',
        '8 stat("../up", 0x7ffd) = -1 ENOENT (No such file or directory)',
        '7 <... wait4 resumed>[{WIFEXITED(s)}], 0, NULL) = 8',
    ]
    assert parse_trace(trace, "/") == [
        "/srv", "/usr/bin/app", "/srv/data/conf", "/usr/lib/libx.so", "/etc/café", "/up",
    ]
    assert unescape('a\\"b\\\\c\\n') == 'a"b\\c\n'


def test_a_probe_that_runs_too_long_is_stopped_and_its_trace_used(workspace, cli):
    workspace.write("app/BUILD.toml", """
[[image]]
name = "sleeper"
binaries = ["/usr/bin/sh"]
probe = [["sh", "-c", "cat /etc/os-release > /dev/null; sleep 60"]]
probe_timeout = 2
""")
    started = time.monotonic()
    r = cli("build", "//app:sleeper", "--no-load", cwd=workspace.root)
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - started < 30
    assert "was stopped after its timeout" in r.stderr, r.stderr
    files = _files(workspace.root, "sleeper")
    # What it did before the timeout counts: the programs it ran and the file it read.
    assert files["/usr/bin/cat"]["reason"].startswith("probe: sh -c") and "/usr/bin/sleep" in files
    assert any(p.endswith("os-release") and f["kind"] == "file" for p, f in files.items())


@pytest.mark.parametrize(("value", "message"), [
    ("[[]]", "each probe is a command with its arguments"),
    ('["ls"]', "probe"),
])
def test_bad_probe_values_are_input_errors(workspace, cli, value, message):
    workspace.write("app/BUILD.toml", f'[[image]]\nname = "x"\nbinaries = ["/usr/bin/ls"]\nprobe = {value}\n')
    r = cli("build", "//app:x", "--no-load", cwd=workspace.root)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert message in r.stderr and "app/BUILD.toml" in r.stderr, r.stderr


def _running(marker: str) -> list[str]:
    """Command lines of the running processes that contain `marker`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in args:
            found.append(f"{pid} {args}")
    return found


def test_killing_minibuild_mid_probe_leaves_no_process_behind(workspace):
    marker = "sleep 287"  # a duration nothing else uses, to find the probe's process
    workspace.write("app/BUILD.toml", f"""
[[image]]
name = "sleeper"
binaries = ["/usr/bin/sh"]
probe = [["sh", "-c", "{marker}"]]
probe_timeout = 600
""")
    proc = subprocess.Popen([sys.executable, "-m", "minibuild", "build", "//app:sleeper", "--no-load"],
                            cwd=workspace.root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not _running(marker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _running(marker), "the probe never started"
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 10
    while _running(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _running(marker)
