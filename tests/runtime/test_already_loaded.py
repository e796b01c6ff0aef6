"""G19 (docs/loader.md#g19): a plugin's DT_NEEDED name matched by soname among the objects already loaded.

The program dlopens `/opt/app/lib/libfoo.so.1` by full path (RTLD_LOCAL or RTLD_GLOBAL, or not at all with
`none`), then `/opt/app/plugins/plugin.so`, whose DT_NEEDED names `libfoo.so.1` and which has no RUNPATH: the
library is on no search path of the plugin. What the program prints, and whether it fails, is decided by the
real glibc loader (chrooted in the sysroot, and in the Docker engine from the images minibuild builds), never
by minibuild.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from minibuild import elf
from minibuild.errors import ElfError
from minibuild.image.probe import load_orders
from tests.runtime.rootfs import glibc_sysroot, materialize, run_in, sysroot_workspace

MAIN = r"""
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "local";
    if (strcmp(mode, "none") != 0) {
        int flags = RTLD_NOW | (strcmp(mode, "global") == 0 ? RTLD_GLOBAL : RTLD_LOCAL);
        if (!dlopen("/opt/app/lib/libfoo.so.1", flags)) { fprintf(stderr, "dlopen: %s\n", dlerror()); return 3; }
    }
    void *h = dlopen("/opt/app/plugins/plugin.so", RTLD_NOW);
    if (!h) { fprintf(stderr, "dlopen: %s\n", dlerror()); return 4; }
    int (*value)(void) = (int (*)(void))dlsym(h, "plugin_value");
    printf("plugin says %d\n", value());
    return 0;
}
"""
APP, LIB, PLUGIN = "/opt/app/bin/app", "/opt/app/lib/libfoo.so.1", "/opt/app/plugins/plugin.so"
NOT_FOUND = "libfoo.so.1: cannot open shared object file"


def _cc(*args: str, cwd: Path) -> None:
    subprocess.run(["gcc", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def sysroot(tmp_path_factory) -> Path:
    """The host's loader and libc, the program, the library in /opt/app/lib, the plugin in /opt/app/plugins."""
    tmp = tmp_path_factory.mktemp("g19")
    root, src = tmp / "sysroot", tmp / "src"
    src.mkdir()
    glibc_sysroot(root)
    for d in ("bin", "lib", "plugins"):
        (root / "opt/app" / d).mkdir(parents=True)
    (src / "main.c").write_text(MAIN)
    (src / "foo.c").write_text("int foo_value(void) { return 40; }\n")
    (src / "plugin.c").write_text("int foo_value(void);\nint plugin_value(void) { return foo_value() + 2; }\n")
    _cc("-shared", "-fPIC", "-Wl,-soname,libfoo.so.1", "-o", str(root / LIB[1:]), "foo.c", cwd=src)
    _cc("-shared", "-fPIC", "-o", str(root / PLUGIN[1:]), "plugin.c", f"-L{root / 'opt/app/lib'}", "-l:libfoo.so.1",
        cwd=src)
    _cc("-o", str(root / APP[1:]), "main.c", cwd=src)
    return root


def _real(root: Path, mode: str) -> subprocess.CompletedProcess[str]:
    return run_in(root, [APP, mode])


def test_the_real_loader_matches_the_loaded_library_by_soname(sysroot):
    # The fixture keeps its point: the plugin's need is on no search path, yet the program runs (G3 across a
    # dlopen, with RTLD_LOCAL as with RTLD_GLOBAL), and fails when it did not load the library first.
    needed = subprocess.run(["readelf", "-d", str(sysroot / PLUGIN[1:])], capture_output=True, text=True).stdout
    assert "[libfoo.so.1]" in needed and "RUNPATH" not in needed and "RPATH" not in needed
    for mode in ("local", "global"):
        r = _real(sysroot, mode)
        assert (r.returncode, r.stdout) == (0, "plugin says 42\n"), (mode, r.stderr)
    r = _real(sysroot, "none")
    assert r.returncode == 4 and NOT_FOUND in r.stderr, r.stderr


def _trace(root: Path, mode: str) -> list[str]:
    """The real program's strace in the sysroot, as the probe takes it."""
    log = root.parent / f"trace-{mode}"
    run_in(root, ["/bin/true"])  # the chroot works here (root, or a user namespace)
    argv = ["strace", "-f", "-qq", "-y", "-s", "4096", "-e", "trace=%file,%process", "-o", str(log),
            "chroot", str(root), APP, mode]
    if subprocess.run(["id", "-u"], capture_output=True, text=True).stdout.strip() != "0":
        argv = ["unshare", "-r", *argv]
    subprocess.run(argv, capture_output=True, timeout=60)
    return log.read_text(encoding="latin-1").splitlines()


@pytest.mark.parametrize("mode", ["local", "global"])
def test_the_image_minibuild_makes_from_the_trace_runs_as_in_the_sysroot(sysroot, tmp_path, mode):
    orders = load_orders(_trace(sysroot, mode))
    [order] = [o for o in orders if PLUGIN in o]
    assert order.index(LIB) < order.index(PLUGIN)
    options = elf.ResolveOptions(load_orders=(elf.LoadOrder(order, f"probe `app {mode}`"),))
    closure = elf.resolve([APP, LIB, PLUGIN], str(sysroot), options)
    [match] = closure.already_loaded
    assert (match.requester, match.name, match.provider, match.by) == (PLUGIN, "libfoo.so.1", LIB, "soname")
    assert dict(next(o for o in closure.objects if o.path == PLUGIN).needed) == {"libfoo.so.1": LIB}
    assert elf.why(closure, PLUGIN)[-1] == (f"-> DT_NEEDED libfoo.so.1 of {PLUGIN}: matched by soname: already "
                                            f"loaded from {LIB}, by probe `app {mode}`")
    # Only the planned files: the real loader prints what it prints in the whole sysroot.
    from minibuild.image.runtime import RuntimePlan

    image = materialize(tmp_path / "image", str(sysroot), RuntimePlan(), closure)
    assert (image / "opt/app/plugins/plugin.so").exists()
    assert _real(image, mode).stdout == _real(sysroot, mode).stdout == "plugin says 42\n"


def test_without_the_library_loaded_first_it_stays_an_error(sysroot):
    # The real loader fails (test above); the trace shows the plugin opened with no libfoo before it.
    orders = load_orders(_trace(sysroot, "none"))
    assert not any(LIB in o for o in orders)
    plugin_orders = tuple(elf.LoadOrder(o, "probe `app none`") for o in orders if PLUGIN in o)
    assert plugin_orders
    for options in (elf.ResolveOptions(), elf.ResolveOptions(load_orders=plugin_orders),
                    # loaded, but after the plugin
                    elf.ResolveOptions(load_orders=(elf.LoadOrder((APP, PLUGIN, LIB), "declared"),))):
        with pytest.raises(ElfError) as e:
            elf.resolve([APP, LIB, PLUGIN], str(sysroot), options)
        assert f"`libfoo.so.1` (needed by `{PLUGIN}`) not found" in str(e.value)
        assert "loaded_before" in (e.value.hint or "")


def test_a_declared_program_brings_its_link_map_and_a_name_it_was_requested_by(sysroot, tmp_path):
    # Loading an object loads what it needs: a program that links libfoo by its RUNPATH has it loaded before
    # any plugin; the plugin's `libfoo.so.1` is the name the program requested it by, and its soname.
    src = tmp_path / "linked.c"
    src.write_text(MAIN.replace('dlopen("/opt/app/lib/libfoo.so.1", flags)', "foo_value() == 40")
                   .replace("#include <string.h>", "#include <string.h>\nint foo_value(void);"))
    out = sysroot / "opt/app/bin/linked"
    _cc("-o", str(out), str(src), f"-L{sysroot / 'opt/app/lib'}", "-l:libfoo.so.1", "-Wl,-rpath,/opt/app/lib",
        cwd=tmp_path)
    assert run_in(sysroot, ["/opt/app/bin/linked", "local"]).stdout == "plugin says 42\n"
    options = elf.ResolveOptions(load_orders=(elf.LoadOrder(("/opt/app/bin/linked", PLUGIN), "declared"),))
    closure = elf.resolve(["/opt/app/bin/linked", PLUGIN], str(sysroot), options)
    [match] = closure.already_loaded
    assert (match.provider, match.by, match.source) == (LIB, "soname", "declared")


def test_load_orders_follow_processes_threads_and_forks():
    root = "/scratch/mnt/root"
    trace = [
        f'5 chroot("{root}") = 0',
        '5 execve("/app", ["app"], 0x0 /* 1 var */) = 0',
        f'5 openat(AT_FDCWD<{root}>, "/lib/libc.so.6", O_RDONLY|O_CLOEXEC) = 3<{root}/lib/libc.so.6>',
        '5 clone3({flags=CLONE_VM|CLONE_FS|CLONE_THREAD, exit_signal=0} <unfinished ...>',
        f'6 openat(AT_FDCWD<{root}>, "/opt/libfoo.so.1", O_RDONLY|O_CLOEXEC) = 3<{root}/opt/libfoo.so.1>',
        '5 <... clone3 resumed> => {parent_tid=[6]}, 88) = 6',
        f'5 openat(AT_FDCWD<{root}>, "/opt/missing.so", O_RDONLY) = -1 ENOENT (No such file or directory)',
        f'5 openat(AT_FDCWD<{root}>, "/opt/plugin.so", O_RDONLY|O_CLOEXEC <unfinished ...>',
        f'5 <... openat resumed>) = 4<{root}/opt/plugin.so>',
        '5 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|SIGCHLD, child_tidptr=0x7f) = 7',
        f'7 openat(AT_FDCWD<{root}>, "/opt/child.so", O_RDONLY|O_CLOEXEC) = 3<{root}/opt/child.so>',
        '7 execve("/bin/other", ["other"], 0x0 /* 1 var */) = 0',
        f'7 openat(AT_FDCWD<{root}>, "/lib/libc.so.6", O_RDONLY|O_CLOEXEC) = 3<{root}/lib/libc.so.6>',
    ]
    assert sorted(load_orders(trace)) == sorted([
        ("/app", "/lib/libc.so.6", "/opt/libfoo.so.1", "/opt/plugin.so"),  # the thread's open is the process's
        ("/bin/other", "/lib/libc.so.6"),  # the fork's copy ended at its execve
    ])


PER_MODE = """
[[image]]
name = "probed_{mode}"
binaries = ["/opt/app/bin/app"]
cmd = ["{mode}"]
probe = [["/opt/app/bin/app", "{mode}"]]
tag = "minibuild-test/g19-probed-{mode}:latest"

[[image]]
name = "shipped_probed_{mode}"
binaries = ["/opt/app/bin/app"]
trees = [{{ src = "/opt/app/lib" }}, {{ src = "/opt/app/plugins" }}]
probe = [["/opt/app/bin/app", "{mode}"]]
cmd = ["{mode}"]
tag = "minibuild-test/g19-shipped_probed-{mode}:latest"
"""
DECLARED = """
[[image]]
name = "declared"
binaries = ["/opt/app/bin/app"]
trees = [{ src = "/opt/app/lib" }, { src = "/opt/app/plugins" }]
loaded_before = { "/opt/app/plugins/plugin.so" = ["/opt/app/lib/libfoo.so.1"] }
cmd = ["local"]
tag = "minibuild-test/g19-declared:latest"
"""
TAGS = {"declared": "minibuild-test/g19-declared:latest",
        **{f"{kind}_{m}": f"minibuild-test/g19-{kind}-{m}:latest" for kind in ("probed", "shipped_probed")
           for m in ("local", "global")}}


def _workspace(tmp_path: Path, sysroot: Path) -> Path:
    text = DECLARED + "".join(PER_MODE.format(mode=m) for m in ("local", "global", "none"))
    return sysroot_workspace(tmp_path / "ws", sysroot, text)


@pytest.mark.docker
def test_images_run_in_the_engine_as_the_program_runs_in_the_sysroot(sysroot, tmp_path, cli, docker_engine):
    ws = _workspace(tmp_path, sysroot)
    good = ["probed_local", "probed_global", "declared", "shipped_probed_local", "shipped_probed_global"]
    r = cli("build", *(f"//app:{n}" for n in good), cwd=ws)
    assert r.returncode == 0, r.stderr
    for name in good:
        tag = TAGS[name]
        mode = "global" if name.endswith("global") else "local"
        ran = subprocess.run([docker_engine, "run", "--rm", tag], capture_output=True, text=True, timeout=60)
        host = _real(sysroot, mode)
        assert (ran.returncode, ran.stdout) == (host.returncode, host.stdout) == (0, "plugin says 42\n"), \
            (name, ran.stderr)
        closure = json.loads((ws / f".minibuild/out/app/{name}/closure.json").read_text())
        [match] = closure["already_loaded"]
        source = "`loaded_before` of //app:declared" if name == "declared" else f"probe `/opt/app/bin/app {mode}`"
        assert (match["requester"], match["provider"], match["source"]) == (PLUGIN, LIB, source)

    why = cli("why", "//app:probed_local", PLUGIN, "--json", cwd=ws)
    assert why.returncode == 0, why.stderr
    assert json.loads(why.stdout) == [
        f"{PLUGIN} (probe: /opt/app/bin/app local)",
        f"  -> DT_NEEDED `libfoo.so.1` of {PLUGIN}: matched by soname: already loaded from {LIB}, by probe "
        "`/opt/app/bin/app local`"], why.stdout


def test_images_whose_program_does_not_load_the_library_first_fail_to_build(sysroot, tmp_path, cli):
    # The real loader fails the same program (`none`): minibuild refuses to build what cannot run.
    assert NOT_FOUND in _real(sysroot, "none").stderr
    ws = _workspace(tmp_path, sysroot)
    (ws / "app/BUILD.toml").write_text((ws / "app/BUILD.toml").read_text() + """
[[image]]
name = "undeclared"
binaries = ["/opt/app/bin/app"]
trees = [{ src = "/opt/app/lib" }, { src = "/opt/app/plugins" }]
""")
    for name in ("probed_none", "shipped_probed_none", "undeclared"):
        r = cli("build", f"//app:{name}", "--no-load", cwd=ws)
        assert r.returncode == 2 and "Traceback" not in r.stderr, (name, r.stderr)
        assert f"`libfoo.so.1` (needed by `{PLUGIN}`) not found" in r.stderr, (name, r.stderr)
        assert "loaded_before" in r.stderr, r.stderr


@pytest.mark.parametrize(("value", "message"), [
    ('{ "plugins/plugin.so" = [] }', "library `plugins/plugin.so` must be an absolute path in the image"),
    ('{ "/opt/app/plugins/plugin.so" = ["/opt/app/lib/../../x"] }', "escapes the image root"),
    ('{ "/opt/app/plugins/plugin.so" = "/opt/app/lib/libfoo.so.1" }', "loaded_before"),
])
def test_bad_loaded_before_values_are_input_errors(workspace, cli, value, message):
    workspace.write("app/BUILD.toml", f'[[image]]\nname = "x"\nbinaries = ["/usr/bin/ls"]\nloaded_before = {value}\n')
    r = cli("build", "//app:x", "--no-load", cwd=workspace.root)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert message in r.stderr and "app/BUILD.toml" in r.stderr, r.stderr


def test_loaded_before_naming_a_file_the_image_lacks_is_an_input_error(sysroot, tmp_path, cli):
    ws = sysroot_workspace(tmp_path / "ws", sysroot, """
[[image]]
name = "x"
binaries = ["/opt/app/bin/app"]
trees = [{ src = "/opt/app/lib" }, { src = "/opt/app/plugins" }]
loaded_before = { "/opt/app/plugins/plugin.so" = ["/opt/app/lib/libfoo.so.1"], "/opt/app/plugins/gone.so" = [
    "/opt/app/lib/libfoo.so.1"] }
""")
    r = cli("build", "//app:x", "--no-load", cwd=ws)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert ("`loaded_before` of `//app:x` names `/opt/app/plugins/gone.so`, which is not a program or library of "
            "the image") in r.stderr, r.stderr
