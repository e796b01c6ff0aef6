"""Locales (docs/loader.md#r8), checked against glibc itself.

The test makes its own sysroots with `localedef` (the host has only C.utf8): one with locale directories
(`--no-archive`), one with a locale-archive only. The expected output of each locale is what glibc prints on
the host reading the generated locale through LOCPATH; the same program then runs chrooted in a root holding
only what the plan adds, and in the real Docker engine from a built image.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from minibuild.errors import InputError
from minibuild.image.runtime import locales
from tests.conftest import REPO
from tests.runtime.rootfs import compile_c, host_sysroot, materialize, plan_for, run_in, sysroot_workspace

PROGRAM = "/usr/bin/localeinfo"
GCONV_DIR = "/usr/lib/x86_64-linux-gnu/gconv"
HOST_DATA = ("/usr/lib/locale/C.utf8", "/usr/share/locale/locale.alias", GCONV_DIR)


def _localedef(*args: str) -> None:
    subprocess.run(["localedef", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def program(tmp_path_factory) -> Path:
    return compile_c(REPO / "examples/runtime/programs/tools/localeinfo.c",
                     tmp_path_factory.mktemp("localeinfo") / "localeinfo")


@pytest.fixture(scope="module")
def dir_sysroot(tmp_path_factory, program) -> Path:
    """Locales as directories: en_US.utf8 and de_DE.iso88591 (the form `localedef --no-archive` writes)."""
    root = host_sysroot(tmp_path_factory.mktemp("dirs") / "sysroot", {PROGRAM: program}, HOST_DATA)
    (root / "usr/lib/locale").mkdir(parents=True, exist_ok=True)
    _localedef("-i", "en_US", "-f", "UTF-8", "--no-archive", str(root / "usr/lib/locale/en_US.utf8"))
    _localedef("-i", "de_DE", "-f", "ISO-8859-1", "--no-archive", str(root / "usr/lib/locale/de_DE.iso88591"))
    return root


@pytest.fixture(scope="module")
def archive_sysroot(tmp_path_factory, program) -> Path:
    """Locales in a locale-archive only (the form Debian's locale-gen writes): fr_FR.utf8 and de_DE.iso88591."""
    root = host_sysroot(tmp_path_factory.mktemp("archive") / "sysroot", {PROGRAM: program}, (GCONV_DIR,))
    (root / "usr/lib/locale").mkdir(parents=True, exist_ok=True)
    _localedef("-i", "fr_FR", "-f", "UTF-8", f"--prefix={root}", "fr_FR.UTF-8")
    _localedef("-i", "de_DE", "-f", "ISO-8859-1", f"--prefix={root}", "de_DE.ISO-8859-1")
    return root


def _expected(program: Path, name: str, locpath: Path | None) -> str:
    """What glibc prints on the host for `name`, reading the test's locale data (LOCPATH, or the archive)."""
    env = {"PATH": "/usr/bin", **({"LOCPATH": str(locpath)} if locpath else {})}
    r = subprocess.run([str(program), name], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stdout
    return r.stdout


def test_env_locales_and_names():
    assert locales.env_locales({"LANG": "de_DE.UTF-8", "LC_TIME": "en_GB.UTF-8"}) == ["en_GB.UTF-8", "de_DE.UTF-8"]
    assert locales.env_locales({"LC_ALL": "fr_FR.UTF-8", "LANG": "de_DE.UTF-8"}) == ["fr_FR.UTF-8"]
    assert locales.env_locales({"LANG": "C", "LC_ALL": ""}) == [] and locales.env_locales({}) == []
    assert locales.candidates("en_US.UTF-8") == ["en_US.UTF-8", "en_US.utf8"]
    assert locales.candidates("de_DE.ISO-8859-15@euro") == ["de_DE.ISO-8859-15@euro", "de_DE.iso885915@euro"]
    assert locales.candidates("C.utf8") == ["C.utf8"] and locales.normalize_codeset("8859-1") == "iso88591"


def test_c_utf8_is_data_not_built_in(tmp_path, dir_sysroot):
    """glibc 2.36 has only C/POSIX built in: C.UTF-8 needs /usr/lib/locale/C.utf8 (auto from LANG)."""
    plan, closure = plan_for(str(dir_sysroot), [PROGRAM], env=(("LANG", "C.UTF-8"),))
    assert "/usr/lib/locale/C.utf8/LC_CTYPE" in plan.files
    assert not any("gconv" in p for p in [*plan.files, *plan.elf_roots])  # UTF-8 is built into libc
    root = materialize(tmp_path / "with", str(dir_sysroot), plan, closure)
    r = run_in(root, [PROGRAM], env={"LANG": "C.UTF-8"})
    assert r.stdout == "C.UTF-8|UTF-8|Sunday 04 February 2024|1234567.89|U+00E9\n", r
    bare_plan, bare_closure = plan_for(str(dir_sysroot), [PROGRAM], env=(("LANG", "C.UTF-8"),), locales=False)
    bare = materialize(tmp_path / "without", str(dir_sysroot), bare_plan, bare_closure)
    assert run_in(bare, [PROGRAM], env={"LANG": "C.UTF-8"}).stdout == "setlocale failed\n"


def test_named_locales_work_in_a_chroot_as_on_the_host(tmp_path, program, dir_sysroot):
    names = ("en_US.UTF-8", "de_DE.ISO-8859-1", "C.UTF-8", "POSIX")
    plan, closure = plan_for(str(dir_sysroot), [PROGRAM], locales=names)
    assert {p.split("/")[4] for p in plan.files if p.startswith("/usr/lib/locale/")} == \
        {"C.utf8", "en_US.utf8", "de_DE.iso88591"}
    # libc converts the ISO-8859-1 locale's text through ISO8859-1.so: the locale brings its charset's module.
    assert [(Path(p).name, why) for p, (why, _) in plan.elf_roots.items()] == \
        [("ISO8859-1.so", "charset ISO-8859-1 of locale de_DE.ISO-8859-1")]
    root = materialize(tmp_path / "root", str(dir_sysroot), plan, closure)
    locpath = dir_sysroot / "usr/lib/locale"
    for name in names[:3]:
        assert run_in(root, [PROGRAM, name]).stdout == _expected(program, name, locpath), name
    assert "Sonntag 04 Februar 2024|1.234.567,89|U+00E9" in _expected(program, "de_DE.ISO-8859-1", locpath)
    assert "1,234,567.89" in _expected(program, "en_US.UTF-8", locpath)
    # The module is what makes mbstowcs work in that locale: without it, setlocale succeeds but mbstowcs fails.
    (root / GCONV_DIR.lstrip("/") / "ISO8859-1.so").unlink()
    assert run_in(root, [PROGRAM, "de_DE.ISO-8859-1"]).stdout.endswith("|mbstowcs failed\n")


def test_auto_takes_the_locale_of_the_environment(dir_sysroot):
    plan, _ = plan_for(str(dir_sysroot), [PROGRAM], env=(("LANG", "de_DE.ISO-8859-1"), ("LC_TIME", "en_US.UTF-8")))
    assert {p.split("/")[4] for p in plan.files if p.startswith("/usr/lib/locale/")} == \
        {"en_US.utf8", "de_DE.iso88591"}
    why = plan.files["/usr/lib/locale/de_DE.iso88591/LC_CTYPE"].reason
    assert "of the image's environment" in why and PROGRAM in why  # localeinfo imports setlocale
    missing, _ = plan_for(str(dir_sysroot), [PROGRAM], env=(("LANG", "xx_YY.UTF-8"),))
    assert any("`xx_YY.UTF-8` is not in" in w and "`C` locale" in w for w in missing.warnings)
    # A program that never calls setlocale runs in C whatever LANG says: nothing to add.
    none, _ = plan_for(str(dir_sysroot), ["/usr/lib/x86_64-linux-gnu/libc.so.6"], env=(("LANG", "en_US.UTF-8"),))
    assert not any(p.startswith("/usr/lib/locale/") for p in none.files)


def test_an_archive_only_locale_brings_the_archive(tmp_path, program, archive_sysroot):
    listed = subprocess.run(["localedef", f"--prefix={archive_sysroot}", "--list-archive"], capture_output=True,
                            text=True, check=True).stdout.split()
    archive = locales.archive_locales(str(archive_sysroot / "usr/lib/locale/locale-archive"))
    assert sorted(archive) == sorted(listed) == ["de_DE.iso88591", "fr_FR.utf8"]
    assert archive == {"de_DE.iso88591": "ISO-8859-1", "fr_FR.utf8": "UTF-8"}
    plan, closure = plan_for(str(archive_sysroot), [PROGRAM], locales=("fr_FR.UTF-8",))
    assert plan.files["/usr/lib/locale/locale-archive"].kind == "file"
    assert any("copied whole" in w and "2 locales" in w for w in plan.warnings)
    root = materialize(tmp_path / "root", str(archive_sysroot), plan, closure)
    # The oracle: the same locale compiled as a directory, read by the host's glibc through LOCPATH.
    _localedef("-i", "fr_FR", "-f", "UTF-8", "--no-archive", str(tmp_path / "fr_FR.utf8"))
    want = _expected(program, "fr_FR.UTF-8", tmp_path)
    assert want.startswith("fr_FR.UTF-8|UTF-8|dimanche 04 f\u00e9vrier 2024|")
    assert run_in(root, [PROGRAM, "fr_FR.UTF-8"]).stdout == want
    (root / "usr/lib/locale/locale-archive").unlink()
    assert run_in(root, [PROGRAM, "fr_FR.UTF-8"]).stdout == "setlocale failed\n"


def test_alias_names(tmp_path, dir_sysroot):
    """`deutsch` is an alias of de_DE.ISO-8859-1 in locale.alias: the file comes with the locale."""
    plan, closure = plan_for(str(dir_sysroot), [PROGRAM], locales=("deutsch",))
    assert "/usr/share/locale/locale.alias" in plan.files
    root = materialize(tmp_path / "root", str(dir_sysroot), plan, closure)
    assert run_in(root, [PROGRAM, "deutsch"]).stdout.startswith("deutsch|ISO-8859-1|Sonntag")


def test_unknown_locale_is_an_error_with_a_hint(dir_sysroot):
    with pytest.raises(InputError, match="`locales`: locale `en_US.UTF8x` is not in") as info:
        plan_for(str(dir_sysroot), [PROGRAM], locales=("en_US.UTF8x",))
    assert "`en_US.utf8`" in (info.value.hint or "")
    with pytest.raises(InputError, match="not a locale name"):
        plan_for(str(dir_sysroot), [PROGRAM], locales=("/usr/lib/locale/C.utf8",))


def test_locales_attribute_errors_are_exit_2(workspace, cli):
    workspace.write("app/BUILD.toml", '[[image]]\nname = "a"\nbinaries = ["/usr/bin/python3"]\n'
                                      'locales = ["xx_YY.UTF-8"]\n')
    r = cli("build", "//app:a", "--no-load", cwd=workspace.root)
    assert r.returncode == 2 and "`locales`: locale `xx_YY.UTF-8` is not in" in r.stderr, r.stderr


IMAGES = """
[[image]]
name = "german"
binaries = ["/usr/bin/localeinfo"]
env = { LANG = "de_DE.ISO-8859-1" }
tag = "minibuild-test/locale-german:latest"

[[image]]
name = "german_nogconv"
binaries = ["/usr/bin/localeinfo"]
env = { LANG = "de_DE.ISO-8859-1" }
gconv = false
tag = "minibuild-test/locale-german-nogconv:latest"

[[image]]
name = "german_nolocales"
binaries = ["/usr/bin/localeinfo"]
env = { LANG = "de_DE.ISO-8859-1" }
locales = false
tag = "minibuild-test/locale-german-nolocales:latest"
"""


@pytest.mark.docker
def test_images_with_a_locale_run_in_docker(tmp_path, program, dir_sysroot, cli, docker_engine):
    ws = sysroot_workspace(tmp_path / "ws", dir_sysroot, IMAGES)
    r = cli("build", "//app:all", "--json", cwd=ws)
    assert r.returncode == 0, r.stderr

    def run(tag: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([docker_engine, "run", "--rm", tag], capture_output=True, text=True, timeout=60)

    want = _expected(program, "de_DE.ISO-8859-1", dir_sysroot / "usr/lib/locale")
    ok = run("minibuild-test/locale-german:latest")
    assert ok.returncode == 0 and ok.stdout == want, (ok.stdout, want)
    nogconv = run("minibuild-test/locale-german-nogconv:latest")
    assert nogconv.stdout.startswith("de_DE.ISO-8859-1|ISO-8859-1|Sonntag") and "mbstowcs failed" in nogconv.stdout
    nolocales = run("minibuild-test/locale-german-nolocales:latest")
    assert nolocales.returncode == 1 and nolocales.stdout == "setlocale failed\n"
