"""minibuild.image.runtime without Docker: parsing, the ld.so.cache writer, imports, and plans for host programs."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from minibuild import elf
from minibuild.elf.ldcache import parse_cache
from minibuild.elf.sysroot import Sysroot
from minibuild.image import runtime
from minibuild.image.runtime.copy import excluded
from minibuild.image.runtime.ldcache import libcmp, write_cache
from minibuild.image.runtime.nss import services
from minibuild.image.runtime.symbols import imported_symbols
from minibuild.image.runtime.zoneinfo import zone_of


def _plan(paths: list[str], **options) -> runtime.RuntimePlan:
    closure = elf.resolve(paths, "/")
    return runtime.plan(closure, Sysroot("/"), runtime.RuntimeOptions(**options))


def test_nsswitch_services():
    text = "passwd: files systemd\nhosts: files [NOTFOUND=return] mdns4_minimal dns # x\nnetgroup: nis\n# a: b\n"
    assert services(text) == ["files", "systemd", "mdns4_minimal", "dns", "nis"]


def test_zone_of():
    assert zone_of("Europe/Paris") == "/usr/share/zoneinfo/Europe/Paris"
    assert zone_of(":UTC") == "/usr/share/zoneinfo/UTC"
    assert zone_of("CET-1CEST,M3.5.0,M10.5.0/3") is None
    assert zone_of("") is None and zone_of(None) is None


def test_exclude_patterns():
    assert excluded("test/support/__init__.py", ("test",)) is False  # names match one component at a time
    assert excluded("test", ("test",)) and excluded("json/__pycache__", ("__pycache__",))
    assert excluded("lib-dynload/_tkinter.so", ("lib-dynload/_tk*",)) and not excluded("_tk.so", ("lib-dynload/_tk*",))


def test_libcmp_orders_like_ldconfig():
    """The host's cache, written by ldconfig, is sorted descending by libcmp; so is ours, byte for byte in order."""
    host = parse_cache(open("/etc/ld.so.cache", "rb").read())
    keys = [e.key for e in host.entries]
    assert all(libcmp(a, b) >= 0 for a, b in zip(keys, keys[1:], strict=False))
    assert libcmp("libc.so.10", "libc.so.9") > 0 and libcmp("libfoo.so", "libfoo.so.1") < 0
    plain = [(e.key, e.value) for e in host.entries if e.hwcap == 0]
    ours = parse_cache(write_cache(plain, "amd64"))
    assert [e.key for e in ours.entries] == [k for k, _ in plain]
    assert ours.generator == "minibuild" and {e.flags for e in ours.entries} == {0x0303}
    entry, _ = ours.lookup("libc.so.6", 0x0303, None)
    assert entry is not None and entry.value.endswith("/libc.so.6")


def test_imported_symbols(tmp_path):
    src = tmp_path / "t.c"
    src.write_text("#include <pthread.h>\nint main(void) { pthread_exit(0); }\n")
    subprocess.run(["cc", "-o", str(tmp_path / "t"), str(src)], check=True)
    syms = imported_symbols(str(tmp_path / "t"))
    assert "pthread_exit" in syms and "main" not in syms
    assert imported_symbols(str(src)) == frozenset()
    stripped = tmp_path / "s"
    subprocess.run(["strip", "-s", "-o", str(stripped), str(tmp_path / "t")],
                   check=True)
    assert "pthread_exit" in imported_symbols(str(stripped))


def test_bash_gets_nsswitch_and_terminfo_not_certs():
    plan = _plan(["/bin/bash"])
    assert "/etc/nsswitch.conf" in plan.files and b"passwd:         files\n" in plan.files["/etc/nsswitch.conf"].data
    terms = sorted(p.rsplit("/", 1)[1] for p in plan.files if "/terminfo/" in p and plan.files[p].kind == "file")
    assert terms == ["dumb", "linux", "screen", "vt100", "xterm", "xterm-256color"]
    assert not any("ssl" in p for p in plan.files)
    # bash imports iconv_open: the default gconv modules are its only ELF roots (tests/runtime/test_gconv.py).
    assert plan.elf_roots and all(p.startswith("/usr/lib/x86_64-linux-gnu/gconv/") for p in plan.elf_roots)
    assert not _plan(["/bin/bash"], terminfo=False, nsswitch=False, gconv=False).files


def test_explicit_terminfo_missing_is_an_error():
    with pytest.raises(Exception, match="no-such-terminal"):
        _plan(["/bin/bash"], terminfo=("no-such-terminal",))


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is a test package")
def test_curl_gets_the_bundle_with_symlink_chains():
    plan = _plan(["/usr/bin/curl"])
    bundle = plan.files["/etc/ssl/certs/ca-certificates.crt"]
    assert bundle.kind == "file" and bundle.source == "/etc/ssl/certs/ca-certificates.crt"
    link = plan.files["/usr/lib/ssl/cert.pem"]
    assert link.kind == "symlink" and link.target == "/etc/ssl/certs/ca-certificates.crt"
    assert plan.files["/usr/lib/ssl/certs"].kind == "symlink"
    assert not _plan(["/usr/bin/curl"], ca_certificates=False).files.get("/etc/ssl/certs/ca-certificates.crt")


def test_python_stdlib_minimal_and_extension_roots():
    plan = _plan(["/usr/bin/python3"])
    files = plan.files
    assert "/usr/lib/python3.11/os.py" in files and "/usr/lib/python3.11/json/__init__.py" in files
    assert not any(p.startswith("/usr/lib/python3.11/test/") or "/__pycache__/" in p for p in files)
    assert not any("/idlelib/" in p or "/tkinter/" in p for p in files)
    dynload = [p for p in plan.elf_roots if "/lib-dynload/" in p]
    assert any("_ssl." in p for p in dynload) and any("_sqlite3." in p for p in dynload)
    assert all(plan.elf_roots[p][1] == "runtime" for p in dynload)
    assert any(p.endswith("/libgcc_s.so.1") for p in plan.elf_roots)  # python3.11 imports pthread_exit
    # Debian's sitecustomize.py is a symlink out of the tree: the link and its target are both copied.
    if files.get("/usr/lib/python3.11/sitecustomize.py"):
        target = files["/usr/lib/python3.11/sitecustomize.py"]
        assert target.kind == "symlink" and any(p.startswith("/etc/python3.11/") for p in files)
    full = _plan(["/usr/bin/python3"], python_stdlib="full").files
    assert len(full) > len(files)
    assert not _plan(["/usr/bin/python3"], python_stdlib="none").files.get("/usr/lib/python3.11/os.py")


def test_user_nsswitch_names_modules():
    plan = _plan(["/bin/bash"], nsswitch_conf="passwd: files compat_nothere\nhosts: files dns\n")
    assert "/etc/nsswitch.conf" not in plan.files  # the image's own file is used
    assert any("libnss_compat_nothere.so.2" in w for w in plan.warnings)


def test_tzdata():
    plan = _plan(["/bin/bash"], tzdata=("Europe/Paris", "UTC"), terminfo=False)
    assert "/usr/share/zoneinfo/Europe/Paris" in plan.files and "/usr/share/zoneinfo/UTC" in plan.files
    auto = _plan(["/bin/bash"], env=(("TZ", ":Asia/Tokyo"),), terminfo=False)
    assert [p for p in auto.files if "zoneinfo" in p] == ["/usr/share/zoneinfo/Asia/Tokyo"]
    full = _plan(["/bin/bash"], tzdata=True, terminfo=False)
    assert len([p for p in full.files if "zoneinfo" in p]) > 500


def test_trees_resolve_elf_files(tmp_path):
    plan = _plan(["/bin/bash"], trees=(runtime.TreeSpec("/usr/lib/python3.11/lib-dynload", ("_sqlite3*",)),))
    assert plan.elf_roots and not any("_sqlite3" in p for p in plan.elf_roots)


def test_python_packages_and_minimal_leaves_out_deprecated_modules():
    plan = _plan(["/usr/bin/python3"], python_packages=("/usr/lib/python3.11/json", "/usr/lib/python3.11/csv.py"))
    assert not any("/lib-dynload/nis." in p or "/lib-dynload/_dbm." in p for p in plan.elf_roots)
    assert "/usr/lib/python3.11/csv.py" in plan.files
    with pytest.raises(Exception, match="is not in sysroot"):
        _plan(["/bin/bash"], python_packages=("/no/such/package",))


@pytest.mark.parametrize(("attr", "value", "message"), [
    ("tzdata", '["../etc/passwd"]', "must be a name such as"),
    ("terminfo", '["/lib/terminfo/x/xterm"]', "must be a name such as"),
    ("python_stdlib", '"tiny"', "python_stdlib"),
    ("trees", '[{ src = "relative" }]', "must be an absolute path"),
    ("trees", '[{ src = "/usr/share", excludes = ["x"] }]', "excludes"),
])
def test_bad_runtime_attributes_are_exit_2(workspace, cli, attr, value, message):
    workspace.write("app/BUILD.toml", f'[[image]]\nname = "a"\nbinaries = ["/bin/bash"]\n{attr} = {value}\n')
    r = cli("build", "//app:a", "--no-load", cwd=workspace.root)
    assert r.returncode == 2 and message in r.stderr and "app/BUILD.toml:4" in r.stderr, r.stderr


def test_trees_only_image_and_missing_tree(workspace, cli):
    workspace.write("app/BUILD.toml", '[[image]]\nname = "zones"\ntzdata = ["UTC"]\n'
                                      'trees = [{ src = "/lib/terminfo" }]\n'
                                      '\n[[image]]\nname = "bad"\ntrees = [{ src = "/no/such/dir" }]\n')
    r = cli("build", "//app:zones", "--json", "--no-load", cwd=workspace.root)
    assert r.returncode == 0, r.stderr
    bad = cli("build", "//app:bad", "--no-load", cwd=workspace.root)
    assert bad.returncode == 2 and "`/no/such/dir` is not a directory" in bad.stderr, bad.stderr
