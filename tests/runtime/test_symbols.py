"""`imported_symbols` against binutils' readelf: the undefined, named entries of `.dynsym`."""

from __future__ import annotations

import os
import subprocess

import pytest

from minibuild.image.runtime.symbols import imported_symbols

FILES = ["/bin/bash", "/usr/bin/python3", "/lib/x86_64-linux-gnu/libc.so.6", "/lib/x86_64-linux-gnu/libcurl.so.4",
         "/usr/aarch64-linux-gnu/lib/libc.so.6"]


def _readelf_imports(path: str) -> frozenset[str]:
    out = subprocess.run(["readelf", "--dyn-syms", "--wide", path], capture_output=True, text=True, check=True)
    names = set()
    for line in out.stdout.splitlines():
        fields = line.split()
        # Num: Value Size Type Bind Vis Ndx Name[@version]
        if len(fields) >= 8 and fields[0].rstrip(":").isdigit() and fields[6] == "UND":
            names.add(fields[7].split("@")[0])
    return frozenset(names)


@pytest.mark.parametrize("path", FILES)
def test_imports_equal_readelf(path):
    if not os.path.exists(path):
        pytest.fail(f"{path} missing: scripts/test.sh installs it")
    assert imported_symbols(os.path.realpath(path)) == _readelf_imports(path)


def test_not_elf_has_no_imports(tmp_path):
    text = tmp_path / "script"
    text.write_text("#!/bin/sh\n")
    assert imported_symbols(str(text)) == frozenset()
    (tmp_path / "short").write_bytes(b"\x7fELF\x02\x01")
    assert imported_symbols(str(tmp_path / "short")) == frozenset()
