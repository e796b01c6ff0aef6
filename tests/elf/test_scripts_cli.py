"""`#!` scripts (docs/loader.md#sec-8), `why`, and the `minibuild closure` command against ldd."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from pathlib import Path

import pytest

from minibuild.cli.commands import closure as closure_cmd
from minibuild.elf import ResolveOptions, resolve, why
from minibuild.elf.scripts import env_program, parse_shebang
from minibuild.errors import ElfError
from tests.elf import cc, oracle


@pytest.mark.parametrize("line, expected", [
    (b"#!/bin/sh\n", ("/bin/sh", None)),
    (b"#! /usr/bin/perl -w\n", ("/usr/bin/perl", "-w")),
    (b"#!/bin/sh -\n", ("/bin/sh", "-")),
    (b"#!/usr/bin/env python3 -u -x  \n", ("/usr/bin/env", "python3 -u -x")),
    (b"#!/bin/sh\t-e\t\n", ("/bin/sh", "-e")),
    (b"#!/bin/sh\r\n", ("/bin/sh\r", None)),
    (b"#!/bin/sh", ("/bin/sh", None)),  # short file without newline: NUL-padded buffer ends the name
    (b"#!", (None, None)),
    (b"#!/" + b"a" * 300, (None, None)),  # name runs past the 256-byte buffer: ENOEXEC
])
def test_parse_shebang(line, expected):
    assert parse_shebang(line) == expected


@pytest.mark.parametrize("arg, expected", [
    ("python3", "python3"), ("-S python3 -u", "python3"), ("-Spython3", "python3"),
    ("-i FOO=1 node", "node"), ("-u HOME perl", "perl"), ("--", None),
])
def test_env_program(arg, expected):
    assert env_program(arg) == expected


@pytest.fixture(scope="module")
def scripts(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("scripts")
    lib = cc.shared(d / "lib/libtool.so", soname="libtool.so")
    cc.executable(d / "bin/tool", deps=(lib,), runpath="$ORIGIN/../lib")
    for name, text in {
        "sh_arg": "#!/bin/sh -e\necho hi\n",
        "via_env": "#!/usr/bin/env -S tool --flag\n",
        "nested": f"#!{d}/sh_arg\n",
        "relative": "#!bin/tool\n",
    }.items():
        (d / name).write_text(text)
        (d / name).chmod(0o755)
    return d


def test_script_with_argument(scripts):
    closure = resolve([str(scripts / "sh_arg")])
    files = {e.path for e in closure.entries}
    assert str(scripts / "sh_arg") in files and os.path.realpath("/bin/sh") in files
    assert ("/bin/sh" in files) or any(e.path == "/bin" and e.kind == "symlink" for e in closure.entries)
    assert closure.scripts == ((str(scripts / "sh_arg"), "/bin/sh"),)
    assert any("script" in w for w in closure.warnings)


def test_env_uses_the_image_path(scripts):
    opts = ResolveOptions(env={"PATH": f"/nonexistent:{scripts}/bin"})
    closure = resolve([str(scripts / "via_env")], "/", opts)
    files = {e.path for e in closure.entries}
    assert os.path.realpath("/usr/bin/env") in files
    assert f"{scripts}/bin/tool" in files and f"{scripts}/lib/libtool.so" in files
    assert why(closure, f"{scripts}/lib/libtool.so") == [
        f"{scripts}/via_env (script)", f"-> #! {scripts}/bin/tool",
        f"-> DT_NEEDED libtool.so -> {scripts}/bin/../lib/libtool.so", f"-> symlink target {scripts}/lib/libtool.so",
    ]
    with pytest.raises(ElfError, match="not on the image PATH"):
        resolve([str(scripts / "via_env")], "/", ResolveOptions(env={"PATH": "/nonexistent"}))


def test_nested_and_relative_interpreters(scripts):
    closure = resolve([str(scripts / "nested")])
    assert [s for s, _ in closure.scripts] == [str(scripts / "nested"), str(scripts / "sh_arg")]
    closure = resolve(["relative"], "/", ResolveOptions(workdir=str(scripts)))
    assert f"{scripts}/bin/tool" in {e.path for e in closure.entries}


def test_why_for_bash():
    closure = resolve(["/bin/bash"])
    chain = why(closure, os.path.realpath("/lib/x86_64-linux-gnu/libtinfo.so.6"))
    assert chain[0] == "/bin/bash (binary)"
    assert chain[1] == "-> DT_NEEDED libtinfo.so.6 -> /lib/x86_64-linux-gnu/libtinfo.so.6"
    with pytest.raises(ElfError):
        why(closure, "/etc/passwd")


def _run_cli(capsys, *argv: str) -> dict:
    parser = argparse.ArgumentParser()
    closure_cmd.add_arguments(parser)
    assert closure_cmd.run(parser.parse_args(list(argv))) == 0
    return json.loads(capsys.readouterr().out)


def test_cli_json_bash_matches_ldd(capsys):
    doc = _run_cli(capsys, "/bin/bash", "--json")["/bin/bash"]
    ldd = subprocess.run(["ldd", "/bin/bash"], capture_output=True, text=True, env={}, check=True).stdout
    trace = oracle.parse_trace(ldd)
    assert doc["interpreter"] == oracle.interp_of("/bin/bash")[1]
    for name in ("libc.so.6", "libtinfo.so.6"):
        assert os.path.realpath(doc["needed"][name]) == os.path.realpath(trace.needed[name])
    files = set(doc["files"])
    for name in ("libc.so.6", "libtinfo.so.6"):
        assert os.path.realpath(trace.needed[name]) in files
    assert os.path.realpath(trace.bare[0]) in files  # the loader
    assert doc["missing"] == [] and doc["architecture"] == "amd64"


def test_cli_env_and_errors(capsys, scripts):
    doc = _run_cli(capsys, str(scripts / "via_env"), "--json", "--env", f"PATH={scripts}/bin")
    assert f"{scripts}/bin/tool" in doc[str(scripts / "via_env")]["files"]
    with pytest.raises(ElfError, match="KEY=VALUE"):
        _run_cli(capsys, "/bin/bash", "--env", "nonsense")


def test_capabilities_and_setuid_are_kept(tmp_path):
    import shutil
    import struct

    exe = tmp_path / "capped"
    shutil.copy2(os.path.realpath("/usr/bin/true"), exe)
    cap = struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0)  # VFS_CAP_REVISION_2, effective, CAP_NET_RAW
    try:
        os.setxattr(exe, "security.capability", cap)
    except OSError as exc:
        pytest.skip(f"cannot set file capabilities here: {exc}")
    closure = resolve([str(exe)], "/", ResolveOptions(env={"LD_LIBRARY_PATH": "/opt"}))
    entry = next(e for e in closure.entries if e.path == str(exe))
    assert entry.xattrs == (("security.capability", cap),)
    assert any("secure mode" in w for w in closure.warnings)

    suid = tmp_path / "suid"
    shutil.copy2(os.path.realpath("/usr/bin/true"), suid)
    suid.chmod(0o4755)
    closure = resolve([str(suid)])
    assert next(e for e in closure.entries if e.path == str(suid)).mode == 0o4755


def test_through_the_cli(monkeypatch, capsys):
    """`minibuild closure` as the CLI dispatches it (registered here if cli.py does not list it yet)."""
    from minibuild.cli import main as cli

    if "closure" not in cli.COMMANDS:
        monkeypatch.setattr(cli, "COMMANDS", (*cli.COMMANDS, "closure"))
    assert cli.main(["closure", "/bin/bash", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert "libc.so.6" in doc["/bin/bash"]["needed"]
    assert cli.main(["closure", "/no/such/program"]) == 2
    assert "does not exist" in capsys.readouterr().err
