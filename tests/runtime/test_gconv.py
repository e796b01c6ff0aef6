"""gconv modules (docs/loader.md#r3), checked against glibc itself: a program calling iconv_open(3) runs chrooted in a
root file system holding exactly what the plan adds, and must convert as it does on the host (every module
installed), or fail with EINVAL where the plan added nothing."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from minibuild import elf
from minibuild.elf.sysroot import Sysroot
from minibuild.errors import InputError
from minibuild.image.runtime import gconv
from tests.conftest import REPO
from tests.runtime.rootfs import compile_c, materialize, plan_for, run_in

GCONV_DIR = "/usr/lib/x86_64-linux-gnu/gconv"
TEXT = "h\u00e9 \u20ac"  # e-acute is in latin1, the euro sign in latin9 and cp1252 but not in latin1


@pytest.fixture(scope="module")
def iconvert(tmp_path_factory) -> str:
    d = tmp_path_factory.mktemp("iconvert")
    return str(compile_c(REPO / "examples/runtime/programs/tools/iconvert.c", d / "iconvert"))


def _host(program: str, to: str, text: str = TEXT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([program, to, "UTF-8", text], capture_output=True, text=True)


def _image(tmp_path: Path, program: str, **options) -> Path:
    plan, closure = plan_for("/", [program], nsswitch=False, **options)
    return materialize(tmp_path / "root", "/", plan, closure)


def test_the_gconv_directory_is_read_from_libc():
    libc = next(o for o in elf.resolve(["/bin/true"], "/").objects if o.soname == "libc.so.6")
    assert gconv.gconv_directory(Sysroot("/"), libc.realpath) == GCONV_DIR
    arm = Path("/usr/aarch64-linux-gnu/lib/libc.so.6")  # libc6-arm64-cross: the target's compiled-in path
    if arm.exists():
        assert gconv.gconv_directory(Sysroot("/"), str(arm)) == "/usr/lib/aarch64-linux-gnu/gconv"


def test_builtin_names_convert_without_any_module_and_the_default_set_needs_one(tmp_path, iconvert):
    """Every name of BUILTIN works in a root with no gconv directory; every charset of DEFAULT fails there."""
    root = _image(tmp_path, iconvert, gconv=False)
    assert not (root / GCONV_DIR.lstrip("/")).exists()
    for name in sorted(gconv.BUILTIN):
        r = run_in(root, [iconvert, name, "UTF-8", "hi"])
        assert r.returncode == 0 and r.stdout == _host(iconvert, name, "hi").stdout, (name, r.stdout, r.stderr)
    for name in gconv.DEFAULT + ("ISO-8859-1", "LATIN1", "UTF-16LE", "EUC-JP"):
        r = run_in(root, [iconvert, name, "UTF-8", "hi"])
        assert r.returncode == 1 and "failed: Invalid argument" in r.stdout, (name, r.stdout)


def test_auto_adds_the_default_set_for_an_iconv_open_importer(tmp_path, iconvert):
    plan, _ = plan_for("/", [iconvert], nsswitch=False)
    modules = sorted(Path(p).name for p in plan.elf_roots)
    assert modules == ["CP1252.so", "ISO8859-1.so", "ISO8859-15.so", "UTF-16.so", "UTF-32.so"]
    assert all(plan.elf_roots[p][1] == "runtime" and "iconv_open in" in plan.elf_roots[p][0] for p in plan.elf_roots)
    assert [p for p in plan.files if "gconv" in p] == [f"{GCONV_DIR}/gconv-modules"]
    root = _image(tmp_path, iconvert)
    for name in ("UTF-16", "UTF-16BE", "UTF-32LE", "ISO-8859-15", "LATIN9", "CP1252", "WINDOWS-1252", "UTF-8"):
        r = run_in(root, [iconvert, name, "UTF-8", TEXT])
        host = _host(iconvert, name)
        assert r.returncode == 0 and r.stdout == host.stdout, (name, r.stdout, host.stdout)
    # Not in the default set: fails in the image, works on the host.
    assert run_in(root, [iconvert, "EUC-JP", "UTF-8", "hi"]).stdout.endswith("failed: Invalid argument\n")
    assert _host(iconvert, "EUC-JP", "hi").returncode == 0


def test_a_program_without_iconv_open_gets_nothing():
    plan, _ = plan_for("/", ["/usr/bin/true"], nsswitch=False)
    assert not plan.elf_roots and not any("gconv" in p for p in plan.files)


def test_named_modules_bring_their_libraries_and_config(tmp_path, iconvert):
    """EUC-JP.so NEEDs libJIS.so (RUNPATH $ORIGIN); it is configured by gconv-modules.d/*.conf only."""
    plan, closure = plan_for("/", [iconvert], nsswitch=False, gconv=("euc-jp", "IBM037", "utf-8", "UCS-2//TRANSLIT"))
    assert sorted(Path(p).name for p in plan.elf_roots) == ["EUC-JP.so", "IBM037.so"]
    assert any(o.path == f"{GCONV_DIR}/libJIS.so" for o in closure.objects)
    confs = [p for p in plan.files if "gconv-modules" in p]
    assert confs and all(p.startswith(f"{GCONV_DIR}/gconv-modules.d/") for p in confs)
    root = materialize(tmp_path / "root", "/", plan, closure)
    for name, text in (("EUC-JP", "h\u00e9 \u65e5\u672c"), ("IBM037", "hi")):
        r = run_in(root, [iconvert, name, "UTF-8", text])
        assert r.returncode == 0 and r.stdout == _host(iconvert, name, text).stdout, (name, r.stdout)
    (root / GCONV_DIR.lstrip("/") / "libJIS.so").unlink()  # the test can fail: without libJIS, no EUC-JP
    assert run_in(root, [iconvert, "EUC-JP", "UTF-8", "hi"]).returncode == 1
    assert run_in(root, [iconvert, "UTF-16", "UTF-8", "hi"]).returncode == 1  # named only: no default set


def test_gconv_true_copies_the_directory():
    plan, _ = plan_for("/", ["/usr/bin/true"], nsswitch=False, gconv=True)
    assert f"{GCONV_DIR}/gconv-modules.cache" in plan.files
    modules = [p for p in plan.elf_roots if p.startswith(GCONV_DIR)]
    on_host = [p for p in Path(GCONV_DIR).glob("*.so")]
    assert len(modules) == len(on_host) > 200


def test_unknown_charset_is_an_error_with_a_hint(iconvert):
    with pytest.raises(InputError, match="`gconv`: no module .* converts `UTF-61`") as info:
        plan_for("/", [iconvert], gconv=("UTF-61",))
    assert "UTF-16" in (info.value.hint or "")


@pytest.mark.skipif(shutil.which("musl-gcc") is None, reason="musl-tools is a test package")
def test_musl_has_iconv_built_in(tmp_path):
    src = REPO / "examples/runtime/programs/tools/iconvert.c"
    subprocess.run(["musl-gcc", "-o", str(tmp_path / "m"), str(src)], check=True)
    plan, _ = plan_for("/", [str(tmp_path / "m")])
    assert not any("gconv" in p for p in [*plan.files, *plan.elf_roots])
    with pytest.raises(InputError, match="`gconv`: the closure has no glibc"):
        plan_for("/", [str(tmp_path / "m")], gconv=("UTF-16",))


def test_gconv_attribute_errors_are_exit_2(workspace, cli):
    workspace.write("app/BUILD.toml", '[[image]]\nname = "a"\nbinaries = ["/usr/bin/iconv"]\ngconv = ["LATIN-99"]\n')
    r = cli("build", "//app:a", "--no-load", cwd=workspace.root)
    assert r.returncode == 2 and "`gconv`: no module" in r.stderr and "LATIN-99" in r.stderr, r.stderr
    assert "did you mean" in r.stderr
