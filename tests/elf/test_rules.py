"""Each glibc loader rule the host has no example of, on a fixture built here; the real loader decides.

Expected results come from the loader's trace mode (tests/elf/oracle.py), compared path string by
path string (the strict variant of docs/loader.md#sec-11, step 5).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from minibuild.elf import ResolveOptions, resolve
from minibuild.errors import ElfError
from tests.elf import cc, compare, oracle

LOADER_REAL = os.path.realpath(oracle.GLIBC_LOADER)
DIAG = oracle.glibc_diagnostics()
CPU_LEVEL = oracle.glibc_cpu_level()
PLATFORM = DIAG.get("dl_platform", "x86_64")
DST_LIB = DIAG.get("dl_dst_lib", "lib/x86_64-linux-gnu")


@dataclass
class Case:
    path: str
    cwd: str = "/"
    env: dict[str, str] = field(default_factory=dict)
    options: dict = field(default_factory=dict)


def _rpath_inherit(d: Path) -> Case:
    libb = cc.shared(d / "B/libb.so", soname="libb.so")
    liba = cc.shared(d / "A/liba.so", soname="liba.so", deps=(libb,))
    return Case(str(cc.executable(d / "main", deps=(liba,), rpath=f"{d}/A:{d}/B")))


def _rpath_chain(d: Path) -> Case:
    libc_x = cc.shared(d / "C/libcx.so", soname="libcx.so")
    libb = cc.shared(d / "B/libb.so", soname="libb.so", deps=(libc_x,))
    liba = cc.shared(d / "A/liba.so", soname="liba.so", deps=(libb,), rpath=f"{d}/B:{d}/C")
    return Case(str(cc.executable(d / "main", deps=(liba,), runpath=f"{d}/A")))


def _runpath_noinherit(d: Path) -> Case:
    libb = cc.shared(d / "B/libb.so", soname="libb.so")
    liba = cc.shared(d / "A/liba.so", soname="liba.so", deps=(libb,))
    return Case(str(cc.executable(d / "main", deps=(liba,), runpath=f"{d}/A:{d}/B")))


def _runpath_blocks_rpath(d: Path) -> Case:
    libb = cc.shared(d / "B/libb.so", soname="libb.so")
    liba = cc.shared(d / "A/liba.so", soname="liba.so", deps=(libb,), runpath=f"{d}/nowhere")
    return Case(str(cc.executable(d / "main", deps=(liba,), rpath=f"{d}/A:{d}/B")))


def _lib_origin_symlink(d: Path) -> Case:
    dep = cc.shared(d / "S/libdep.so", soname="libdep.so")
    orig = cc.shared(d / "T/liborig.so.1", soname="liborig.so.1", deps=(dep,), runpath="$ORIGIN")
    (d / "S/liborig.so.1").symlink_to("../T/liborig.so.1")
    return Case(str(cc.executable(d / "main", deps=(orig,), runpath=f"{d}/S")))


def _dst_lib(d: Path) -> Case:
    lib = cc.shared(d / DST_LIB / "libdl1.so", soname="libdl1.so")
    return Case(str(cc.executable(d / "main", deps=(lib,), runpath="$ORIGIN/$LIB")))


def _dst_platform(d: Path) -> Case:
    for plat in ("x86_64", "haswell", "xeon_phi"):
        lib = cc.shared(d / plat / "libplat.so", soname="libplat.so")
    return Case(str(cc.executable(d / "main", deps=(lib,), runpath="${ORIGIN}/$PLATFORM")),
                options={"platform": PLATFORM})


def _hwcaps(d: Path) -> Case:
    lib = cc.shared(d / "H/libhw.so.1", soname="libhw.so.1")
    cc.shared(d / "H/glibc-hwcaps/x86-64-v3/libhw.so.1", soname="libhw.so.1")
    return Case(str(cc.executable(d / "main", deps=(lib,), runpath=f"{d}/H")), options={"cpu_level": CPU_LEVEL})


def _legacy_tls(d: Path) -> Case:
    lib = cc.shared(d / "D/libleg.so", soname="libleg.so")
    cc.shared(d / "D/tls/libleg.so", soname="libleg.so")
    return Case(str(cc.executable(d / "main", deps=(lib,), runpath=f"{d}/D")))


def _nodeflib(d: Path) -> Case:
    liba = cc.shared(d / "A/liba.so", soname="liba.so")
    return Case(str(cc.executable(d / "main", deps=(liba,), runpath=f"{d}/A", extra=("-Wl,-z,nodefaultlib",))))


def _needed_slash(d: Path) -> Case:
    lib = cc.shared(d / "B/libslash.so")  # no soname: DT_NEEDED is the path given to the linker
    return Case(str(cc.executable(d / "main", deps=(lib,))))


def _needed_origin(d: Path) -> Case:
    lib = cc.shared(d / "A/liborg.so", soname="liborg.so")
    main = cc.executable(d / "main", deps=(lib,))
    cc.patchelf("--replace-needed", "liborg.so", "$ORIGIN/A/liborg.so", str(main))
    return Case(str(main))


def _soname_dedup(d: Path) -> Case:
    libb = cc.shared(d / "B/libb.so.1", soname="libb.so.1")
    liba = cc.shared(d / "A/liba.so", soname="liba.so", deps=(libb,))
    main = cc.executable(d / "main", deps=(liba, libb), runpath=f"{d}/A")
    cc.patchelf("--replace-needed", "libb.so.1", f"{d}/B/libb.so.1", str(main))
    return Case(str(main))


def _skip_w32(d: Path) -> Case:
    cc.i386_shared(d / "W/libw.so", "libw.so")
    good = cc.shared(d / "G/libw.so", soname="libw.so")
    return Case(str(cc.executable(d / "main", deps=(good,), runpath=f"{d}/W:{d}/G")))


def _skip_wm(d: Path) -> Case:
    if not cc.have("aarch64-linux-gnu-gcc"):
        pytest.fail("aarch64-linux-gnu-gcc is required (package gcc-aarch64-linux-gnu)")
    cc.shared(d / "W/libw.so", soname="libw.so", cc="aarch64-linux-gnu-gcc")
    good = cc.shared(d / "G/libw.so", soname="libw.so")
    return Case(str(cc.executable(d / "main", deps=(good,), runpath=f"{d}/W:{d}/G")))


def _skip_ne(d: Path) -> Case:
    (d / "W").mkdir(parents=True)
    (d / "W/libw.so").write_text("INPUT(-lw)\n" * 10)  # a linker script, as found in /usr/lib
    good = cc.shared(d / "G/libw.so", soname="libw.so")
    return Case(str(cc.executable(d / "main", deps=(good,), runpath=f"{d}/W:{d}/G")))


def _runpath_cwd(d: Path) -> Case:
    lib = cc.shared(d / "cwd/libcwd.so", soname="libcwd.so")
    main = cc.executable(d / "main", deps=(lib,))
    cc.patchelf("--set-rpath", f"{d}/nowhere:", str(main))
    return Case(str(main), cwd=str(d / "cwd"))


def _origin_exe(d: Path) -> Case:
    lib = cc.shared(d / "T/lib/libo.so", soname="libo.so")
    cc.executable(d / "T/prog", deps=(lib,), rpath="$ORIGIN/lib")
    (d / "L").mkdir()
    (d / "L/prog").symlink_to("../T/prog")
    return Case(str(d / "L/prog"))


def _ld_library_path(d: Path) -> Case:
    lib = cc.shared(d / "E/libenv.so", soname="libenv.so")
    return Case(str(cc.executable(d / "main", deps=(lib,))), env={"LD_LIBRARY_PATH": f"{d}/nowhere;{d}/E"})


def _version_mismatch(d: Path) -> Case:
    (d / "new").mkdir(parents=True)
    (d / "new.map").write_text("V_1 { global: fv_old; local: *; };\nV_2 { global: fv; } V_1;\n")
    (d / "old.map").write_text("V_1 { global: fv; local: *; };\n")
    src = "int fv(void) { return 1; } int fv_old(void) { return 0; }\n"
    new = cc.shared(d / "new/libv.so.1", soname="libv.so.1", source=src, extra=(f"-Wl,--version-script={d}/new.map",))
    cc.shared(d / "old/libv.so.1", soname="libv.so.1", source="int fv(void) { return 1; }\n",
              extra=(f"-Wl,--version-script={d}/old.map",))
    main = cc.executable(d / "main", deps=(new,), runpath=f"{d}/old",
                         source="extern int fv(void);\nint main(void) { return fv(); }\n")
    return Case(str(main))


def _ld_preload(d: Path) -> Case:
    pre = cc.shared(d / "P/libpre.so", soname="libpre.so")
    dep = cc.shared(d / "E/libpdep.so", soname="libpdep.so")
    cc.patchelf("--add-needed", "libpdep.so", str(pre))
    cc.patchelf("--set-rpath", f"{d}/E", str(pre))
    return Case(str(cc.executable(d / "main", deps=(dep,), runpath=f"{d}/E")),
                env={"LD_PRELOAD": f"{d}/P/libpre.so"})


def _identity_dedup(d: Path) -> Case:
    lib = cc.shared(d / "A/libid.so.1", soname="libid.so.1")
    (d / "A/libid-alias.so").symlink_to("libid.so.1")
    main = cc.executable(d / "main", deps=(lib,), runpath=f"{d}/A")
    cc.patchelf("--add-needed", "libid-alias.so", str(main))
    return Case(str(main))


FIXTURES: dict[str, Callable[[Path], Case]] = {
    "ld_preload": _ld_preload,
    "identity_dedup": _identity_dedup,
    "rpath_inherit": _rpath_inherit,
    "rpath_chain": _rpath_chain,
    "runpath_noinherit": _runpath_noinherit,
    "runpath_blocks_rpath": _runpath_blocks_rpath,
    "lib_origin_symlink": _lib_origin_symlink,
    "dst_lib": _dst_lib,
    "dst_platform": _dst_platform,
    "hwcaps": _hwcaps,
    "legacy_tls": _legacy_tls,
    "nodeflib": _nodeflib,
    "needed_slash": _needed_slash,
    "needed_origin": _needed_origin,
    "soname_dedup": _soname_dedup,
    "skip_W32": _skip_w32,
    "skip_WM": _skip_wm,
    "skip_NE": _skip_ne,
    "runpath_cwd": _runpath_cwd,
    "origin_exe": _origin_exe,
    "ld_library_path": _ld_library_path,
    "version_mismatch": _version_mismatch,
}


# What each fixture is there to show, checked on the loader's own output so that a fixture that
# silently lost its point (a linker flag ignored, say) fails instead of passing vacuously.
POINT: dict[str, Callable[[oracle.Trace], bool]] = {
    "ld_preload": lambda t: any(b.endswith("/P/libpre.so") for b in t.bare) and "libpdep.so" in t.needed,
    "identity_dedup": lambda t: ("libid.so.1" in t.needed) != ("libid-alias.so" in t.needed),  # loaded once
    "rpath_inherit": lambda t: t.needed["libb.so"].endswith("/B/libb.so"),
    "rpath_chain": lambda t: t.needed["libcx.so"].endswith("/C/libcx.so"),
    "runpath_noinherit": lambda t: t.needed["libb.so"] is None,
    "runpath_blocks_rpath": lambda t: t.needed["libb.so"] is None,
    "lib_origin_symlink": lambda t: t.needed["libdep.so"].endswith("/S/libdep.so"),
    "dst_lib": lambda t: t.needed["libdl1.so"].endswith(f"/{DST_LIB}/libdl1.so"),
    "dst_platform": lambda t: t.needed["libplat.so"].endswith(f"/{PLATFORM}/libplat.so"),
    "hwcaps": lambda t: t.needed["libhw.so.1"].endswith(
        "/H/glibc-hwcaps/x86-64-v3/libhw.so.1" if CPU_LEVEL in ("x86-64-v3", "x86-64-v4") else "/H/libhw.so.1"),
    "legacy_tls": lambda t: t.needed["libleg.so"].endswith("/D/tls/libleg.so"),
    "nodeflib": lambda t: "libc.so.6" in t.missing,
    "needed_slash": lambda t: any(b.endswith("/B/libslash.so") for b in t.bare),
    "needed_origin": lambda t: any(b.endswith("/A/liborg.so") for b in t.bare),
    "soname_dedup": lambda t: "libb.so.1" not in t.needed and any(b.endswith("/B/libb.so.1") for b in t.bare),
    "skip_W32": lambda t: t.needed["libw.so"].endswith("/G/libw.so"),
    "skip_WM": lambda t: t.needed["libw.so"].endswith("/G/libw.so"),
    "skip_NE": lambda t: "invalid ELF header" in (t.fatal or "") or "too short" in (t.fatal or ""),
    "runpath_cwd": lambda t: t.needed["libcwd.so"] == "libcwd.so",
    "origin_exe": lambda t: t.needed["libo.so"].endswith("/L/../T/lib/libo.so") or
    t.needed["libo.so"].endswith("/T/lib/libo.so"),
    "ld_library_path": lambda t: t.needed["libenv.so"].endswith("/E/libenv.so"),
    "version_mismatch": lambda t: "V_2" in (t.fatal or ""),
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    base = tmp_path_factory.mktemp("rules")
    cache: dict[str, Case] = {}

    def get(name: str) -> Case:
        if name not in cache:
            d = base / name
            d.mkdir()
            cache[name] = FIXTURES[name](d)
        return cache[name]

    return get


def _resolve(case: Case, **extra):
    opts = ResolveOptions(env=case.env, workdir=case.cwd, allow_missing=True, **{**case.options, **extra})
    return resolve([case.path], "/", opts)


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_fixture_matches_loader(built, name):
    case = built(name)
    expected = oracle.trace_exec(case.path, cwd=case.cwd, env=case.env)
    assert POINT[name](expected), f"fixture {name} does not show its rule:\n{expected.stdout}{expected.stderr}"
    if expected.fatal:
        with pytest.raises(ElfError):
            _resolve(case)
        return
    closure = _resolve(case)
    want = compare.theirs(expected, LOADER_REAL, case.cwd, strict=True)
    got = compare.ours(closure, LOADER_REAL, case.cwd, strict=True)
    assert got == want, f"{name}: loader printed\n{expected.stdout}"


def test_skip_ne_message_names_the_file(built):
    case = built("skip_NE")
    with pytest.raises(ElfError) as err:
        _resolve(case)
    assert "W/libw.so" in str(err.value) and "not a valid ELF file" in str(err.value)


def test_version_mismatch_names_both_files(built):
    case = built("version_mismatch")
    with pytest.raises(ElfError) as err:
        _resolve(case)
    msg = str(err.value)
    assert "`V_2`" in msg and case.path in msg and "old/libv.so.1" in msg
    closure = _resolve(case, check_versions=False)
    assert any(o.path.endswith("old/libv.so.1") for o in closure.objects)


def test_missing_library_lists_searched_dirs(built):
    case = built("runpath_noinherit")
    with pytest.raises(ElfError) as err:
        resolve([case.path], "/", ResolveOptions())
    e = err.value
    assert "`libb.so`" in e.message and "A/liba.so" in e.message
    text = "\n".join(e.causes)
    assert "ld.so.cache" in text and "default directories" in text
    order = [c.split(":")[0] for c in e.causes]
    assert order.index("ld.so.cache of the sysroot") < order.index("default directories")


def test_hwcaps_baseline_copies_every_variant(built):
    case = built("hwcaps")
    d = os.path.dirname(case.path)
    # a CPU without AVX2 supports at most x86-64-v2: the loader then takes the baseline file
    baseline = oracle.trace_exec(case.path, env={"GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX2"})
    closure = _resolve(case, cpu_level=None)
    assert compare.ours(closure, LOADER_REAL, strict=True) == compare.theirs(baseline, LOADER_REAL, strict=True)
    files = {e.path for e in closure.entries}
    assert f"{d}/H/glibc-hwcaps/x86-64-v3/libhw.so.1" in files and f"{d}/H/libhw.so.1" in files
    variant = [o for o in closure.objects if o.variant_of]
    assert [o.path for o in variant] == [f"{d}/H/glibc-hwcaps/x86-64-v3/libhw.so.1"]


def test_hwcaps_fixed_levels(built):
    case = built("hwcaps")
    d = os.path.dirname(case.path)
    for level, want in (("x86-64-v2", "H/libhw.so.1"), ("x86-64-v3", "H/glibc-hwcaps/x86-64-v3/libhw.so.1"),
                        ("x86-64-v4", "H/glibc-hwcaps/x86-64-v3/libhw.so.1")):
        closure = _resolve(case, cpu_level=level)
        assert dict(closure.objects[0].needed)["libhw.so.1"] == f"{d}/{want}", level
        assert not [o for o in closure.objects if o.variant_of]
    with pytest.raises(ElfError, match="unknown CPU level"):
        _resolve(case, cpu_level="pentium")


def test_platform_unknown_copies_candidates(built):
    case = built("dst_platform")
    d = os.path.dirname(case.path)
    closure = _resolve(case, platform=None)
    files = {e.path for e in closure.entries}
    assert {f"{d}/{p}/libplat.so" for p in ("x86_64", "haswell", "xeon_phi")} <= files
    assert dict(closure.objects[0].needed)["libplat.so"] == f"{d}/x86_64/libplat.so"
    assert any("$PLATFORM" in w for w in closure.warnings)


def test_symlinked_main_keeps_its_chain(built):
    """L6: main's $ORIGIN is the real directory, so the link and the real file are both copied."""
    case = built("origin_exe")
    d = os.path.dirname(os.path.dirname(case.path))
    closure = _resolve(case)
    kinds = {e.path: e.kind for e in closure.entries}
    assert kinds[f"{d}/L/prog"] == "symlink" and kinds[f"{d}/T/prog"] == "file"
    assert kinds[f"{d}/T/lib/libo.so"] == "file"


def test_relative_search_dir_is_relative_to_workdir(built):
    case = built("runpath_cwd")
    closure = _resolve(case)
    assert f"{case.cwd}/libcwd.so" in {e.path for e in closure.entries}


def test_repeated_resolves_see_changes(tmp_path):
    """Lookups are shared between resolve() calls; they must notice a changed file system."""
    b = cc.shared(tmp_path / "B/libch.so", soname="libch.so")
    main = cc.executable(tmp_path / "main", deps=(b,), runpath=f"{tmp_path}/A:{tmp_path}/B")
    first = resolve([str(main)])
    assert dict(first.objects[0].needed)["libch.so"] == f"{tmp_path}/B/libch.so"
    assert f"{tmp_path}/A" in first.probed  # the engine re-checks this path to invalidate its cache
    (tmp_path / "A").mkdir()
    (tmp_path / "A/libch.so").write_bytes(b.read_bytes())
    second = resolve([str(main)])
    assert dict(second.objects[0].needed)["libch.so"] == f"{tmp_path}/A/libch.so"
    assert f"{tmp_path}/A/libch.so" in second.probed
    # retarget a symlink on the way: same path string, other file
    (tmp_path / "T1").mkdir()
    (tmp_path / "T2").mkdir()
    for d in ("T1", "T2"):
        (tmp_path / d / "libch.so").write_bytes(b.read_bytes())
    (tmp_path / "A/libch.so").unlink()
    (tmp_path / "A/libch.so").symlink_to("../T1/libch.so")
    assert resolve([str(main)]).objects[2].realpath == f"{tmp_path}/T1/libch.so"
    (tmp_path / "tmp-link").symlink_to("../T2/libch.so")
    os.replace(tmp_path / "tmp-link", tmp_path / "A/libch.so")
    assert resolve([str(main)]).objects[2].realpath == f"{tmp_path}/T2/libch.so"


def test_session_gives_the_same_closures(built):
    """Session memoises lookups; each closure must still list everything it probed."""
    from minibuild.elf import Session

    names = ["rpath_chain", "lib_origin_symlink", "hwcaps", "soname_dedup", "origin_exe"]
    session = Session("/")
    for name in names * 2:  # the second round runs on a warm memo
        case = built(name)
        opts = ResolveOptions(env=case.env, workdir=case.cwd, allow_missing=True)
        assert session.resolve([case.path], opts) == resolve([case.path], "/", opts), name
