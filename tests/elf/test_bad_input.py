"""Bad input gives one clean ElfError, quickly: never a traceback from struct, OSError or a hang."""

from __future__ import annotations

import os
import shutil
import struct
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minibuild.elf import ResolveOptions, resolve
from minibuild.elf.parse import clear_cache
from minibuild.errors import ElfError
from tests.elf import cc

TIME_LIMIT = 2.0  # seconds for any single bad input
SAMPLE = os.path.realpath("/usr/bin/true")


def _expect_error(path: str, match: str, sysroot: str = "/", **options) -> ElfError:
    start = time.monotonic()
    with pytest.raises(ElfError, match=match) as err:
        resolve([path], sysroot, ResolveOptions(**options))
    assert time.monotonic() - start < TIME_LIMIT
    assert "\n" not in err.value.message  # one line naming the file
    return err.value


def _write(tmp: Path, name: str, data: bytes, mode: int = 0o755) -> str:
    p = tmp / name
    p.write_bytes(data)
    p.chmod(mode)
    return str(p)


def test_truncated_elf(tmp_path):
    data = Path(SAMPLE).read_bytes()
    err = _expect_error(_write(tmp_path, "trunc", data[:200]), "not a valid ELF file")
    assert "trunc" in err.message
    _expect_error(_write(tmp_path, "short", data[:40]), "neither an ELF file|not a valid ELF file")


def test_absurd_phnum(tmp_path):
    data = bytearray(Path(SAMPLE).read_bytes())
    struct.pack_into("<H", data, 56, 0xFFFE)
    _expect_error(_write(tmp_path, "phnum", bytes(data)), "not a valid ELF file.*program headers")


def test_absurd_phoff(tmp_path):
    data = bytearray(Path(SAMPLE).read_bytes())
    struct.pack_into("<Q", data, 32, 2**62)
    _expect_error(_write(tmp_path, "phoff", bytes(data)), "not a valid ELF file")


def test_pn_xnum_without_sections(tmp_path):
    data = bytearray(Path(SAMPLE).read_bytes())
    struct.pack_into("<H", data, 56, 0xFFFF)
    struct.pack_into("<Q", data, 40, 2**40)  # e_shoff far away
    _expect_error(_write(tmp_path, "xnum", bytes(data)), "not a valid ELF file")


def test_dynamic_segment_past_the_end(tmp_path):
    data = bytearray(Path(SAMPLE).read_bytes())
    phoff, phnum = struct.unpack_from("<Q", data, 32)[0], struct.unpack_from("<H", data, 56)[0]
    for i in range(phnum):
        off = phoff + 56 * i
        if struct.unpack_from("<I", data, off)[0] == 2:  # PT_DYNAMIC: p_offset beyond EOF
            struct.pack_into("<Q", data, off + 8, len(data) + 4096)
    _expect_error(_write(tmp_path, "dyn", bytes(data)), "not a valid ELF file.*PT_DYNAMIC")


def test_bad_ident(tmp_path):
    data = bytearray(Path(SAMPLE).read_bytes())
    data[4] = 7  # EI_CLASS
    _expect_error(_write(tmp_path, "class", bytes(data)), "invalid ELF class")
    data = bytearray(Path(SAMPLE).read_bytes())
    data[16] = 1  # e_type ET_REL
    _expect_error(_write(tmp_path, "rel", bytes(data)), "ET_EXEC nor ET_DYN")


def test_directory():
    _expect_error("/usr", "is a directory")


def test_device():
    _expect_error("/dev/null", "not a regular file")


def test_missing():
    _expect_error("/usr/bin/definitely-not-here", "does not exist in sysroot")


def test_broken_symlink(tmp_path):
    (tmp_path / "dangling").symlink_to("nowhere/at/all")
    _expect_error(str(tmp_path / "dangling"), "broken symlink.*nowhere/at/all")


def test_symlink_loop(tmp_path):
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    _expect_error(str(tmp_path / "a"), "symbolic links")


def test_non_elf(tmp_path):
    _expect_error(_write(tmp_path, "text", b"hello world, no shebang here\n"), "neither an ELF file nor")
    _expect_error(_write(tmp_path, "empty", b""), "neither an ELF file nor")


def test_wrong_machine_without_loader(tmp_path):
    lib = cc.shared(tmp_path / "libarm.so", soname="libarm.so", cc="aarch64-linux-gnu-gcc") \
        if cc.have("aarch64-linux-gnu-gcc") else None
    if lib is None:
        pytest.skip("no aarch64 compiler")
    exe = cc.executable(tmp_path / "armexe", deps=(lib,), cc="aarch64-linux-gnu-gcc")
    _expect_error(str(exe), "interpreter `/lib/ld-linux-aarch64.so.1`.*does not exist")


def test_truncated_library_in_search_path(tmp_path):
    good = cc.shared(tmp_path / "G/libt.so", soname="libt.so")
    (tmp_path / "W").mkdir()
    (tmp_path / "W/libt.so").write_bytes(good.read_bytes()[:50])
    exe = cc.executable(tmp_path / "main", deps=(good,), runpath=f"{tmp_path}/W:{tmp_path}/G")
    err = _expect_error(str(exe), "candidate for `libt.so`")
    assert "W/libt.so" in err.message


def test_script_errors(tmp_path):
    _expect_error(_write(tmp_path, "crlf", b"#!/bin/sh\r\necho hi\r\n"), "interpreter `/bin/sh\r`")
    err = _expect_error(_write(tmp_path, "envmiss", b"#!/usr/bin/env no-such-program-xyz\n"),
                        "not on the image PATH", env={"PATH": "/usr/bin:/bin"})
    assert err.causes == ("not found: `/usr/bin/no-such-program-xyz`", "not found: `/bin/no-such-program-xyz`")
    _expect_error(_write(tmp_path, "noname", b"#!   \nx\n"), "cannot execute")
    _expect_error(_write(tmp_path, "toolong", b"#!/" + b"x" * 300), "cannot execute")
    a = _write(tmp_path, "loop1", f"#!{tmp_path}/loop2\n".encode())
    _write(tmp_path, "loop2", f"#!{tmp_path}/loop1\n".encode())
    _expect_error(a, "too many levels")


@pytest.fixture(scope="module")
def sample_bytes() -> bytes:
    return Path(SAMPLE).read_bytes()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flips=st.lists(st.tuples(st.integers(0, 4095), st.integers(0, 255)), min_size=1, max_size=8))
def test_flipped_bytes_never_crash(tmp_path_factory, sample_bytes, flips):
    data = bytearray(sample_bytes)
    for pos, value in flips:
        data[pos] = value
    d = tmp_path_factory.mktemp("flip")
    path = _write(d, "flipped", bytes(data))
    clear_cache()
    start = time.monotonic()
    try:
        resolve([path], "/", ResolveOptions(allow_missing=True))
    except ElfError:
        pass
    assert time.monotonic() - start < TIME_LIMIT
    shutil.rmtree(d)


def test_interpreter_of_the_wrong_machine(tmp_path):
    if not cc.have("aarch64-linux-gnu-gcc"):
        pytest.skip("no aarch64 compiler")
    root = tmp_path / "root"
    cc.executable(root / "bin/armexe", cc="aarch64-linux-gnu-gcc")
    (root / "lib").mkdir()
    shutil.copy2(os.path.realpath("/lib64/ld-linux-x86-64.so.2"), root / "lib/ld-linux-aarch64.so.1")
    err = _expect_error("/bin/armexe", "EM_X86_64.*EM_AARCH64", sysroot=str(root))
    assert "ld-linux-aarch64.so.1" in err.message
