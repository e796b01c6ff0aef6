"""The machine names parse.py knows without pyelftools are pyelftools' own names for those numbers."""

from __future__ import annotations

import subprocess
import sys

from elftools.elf.enums import ENUM_E_MACHINE

from minibuild.elf import parse


def test_known_machines_have_pyelftools_names() -> None:
    first: dict[int, str] = {}
    for name, value in ENUM_E_MACHINE.items():
        if name.startswith("EM_"):
            first[value] = name  # the last name of a value, as parse.machine_name takes it
    assert parse.KNOWN_MACHINES == {m: first[m] for m in parse.KNOWN_MACHINES}
    assert parse.machine_name(62) == "EM_X86_64"
    assert parse.machine_name(2) == first[2]  # EM_SPARC: from pyelftools' table
    assert parse.machine_name(0xFFF0) == "EM_65520"


def test_closure_of_a_program_does_not_import_pyelftools() -> None:
    code = ("import sys; from minibuild import elf; elf.resolve(['/bin/ls']); "
            "print('elftools' in ' '.join(sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
