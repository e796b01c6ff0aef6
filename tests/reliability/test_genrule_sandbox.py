"""Genrule commands that try to get out of their sandbox, as an attacker's or a careless BUILD file would: each
one tried, counted in the summary table, and checked by means of the test's own (the victim files' stat and
bytes, the host's /tmp, what the command could print). Afterwards nothing outside the command's work directory
has changed: the workspace, the user's home, the files beside it, the cache."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.genrule.helpers import fingerprint, links_in_store, scratch_left

REGISTRY = os.environ.get("MINIBUILD_TEST_REGISTRY", "127.0.0.1:5000")  # started by scripts/test.sh
HOST, PORT = REGISTRY.rsplit(":", 1)


@dataclass(frozen=True)
class Escape:
    name: str
    cmd: str  # `{ws}`, `{outside}`, `{home}`, `{token}` are filled in
    escaped: Callable[[Path, dict[str, str]], bool]  # (its output, the names filled in) -> it got out
    srcs: str = "[]"


def _out_holds(*needles: str) -> Callable[[Path, dict[str, str]], bool]:
    """It got out if its output holds one of `needles` (`{token}` filled in)."""
    return lambda out, ctx: out.is_file() and any(n.format(**ctx).encode() in out.read_bytes() for n in needles if n)


def _exists(template: str) -> Callable[[Path, dict[str, str]], bool]:
    """It got out if the path `template` names exists."""
    return lambda _, ctx: Path(template.format(**ctx)).exists()


def _shadow_lines() -> list[str]:
    lines = [line.replace("{", "{{").replace("}", "}}") for line in Path("/etc/shadow").read_text().splitlines()
             if line.strip()]
    assert lines, "/etc/shadow is empty here: the check would prove nothing"
    return lines


ESCAPES = [
    Escape("write to ~", 'echo pwned > ~/pwned || true; echo pwned > {home}/pwned || true; echo x > $(OUT)',
           _exists("{home}/pwned")),
    Escape("read /etc/shadow", "cat /etc/shadow > $(OUT) 2>&1 || true", _out_holds(*_shadow_lines())),
    Escape("read minibuild's environment", "{{ cat /proc/$PPID/environ; cat /proc/[0-9]*/environ; }} > $(OUT) "
           "2>/dev/null || true", _out_holds("{token}")),
    Escape(f"reach the network ({REGISTRY})",
           f"(exec 3<>/dev/tcp/{HOST}/{PORT}) && echo reached > $(OUT) || echo blocked > $(OUT)",
           _out_holds("reached")),
    Escape("edit a workspace file", "echo pwned >> $(SRC) || true; mount -o remount,rw,bind /src || true; "
           "echo pwned >> $(SRC) || true; echo pwned >> {ws}/pkg/victim.txt || true; "
           "echo pwned > {ws}/pkg/new.txt || true; echo x > $(OUT)", _exists("{ws}/pkg/new.txt"),
           srcs='["victim.txt"]'),
    Escape("read an undeclared workspace file", "cat {ws}/pkg/private.txt > $(OUT) 2>&1 || true",
           _out_holds("private-words")),
    Escape("write into the cache", "echo pwned > {ws}/.minibuild/cache/planted || true; echo x > $(OUT)",
           _exists("{ws}/.minibuild/cache/planted")),
    Escape("write outside the workspace", "echo pwned > {outside}/new || true; echo x > $(OUT)",
           _exists("{outside}/new")),
    Escape("write to the host's /tmp", "echo pwned > /tmp/minibuild-escape-{token} || true; echo x > $(OUT)",
           _exists("/tmp/minibuild-escape-{token}")),
    Escape("write outside through a symlink output", "ln -s {outside}/victim $(OUT)", _out_holds("victim-words")),
    Escape("write outside through a hard link output", "ln {outside}/victim $(OUT)", _out_holds("victim-words")),
    Escape("kill minibuild", "kill -KILL $PPID || true; sleep 0.2; echo x > $(OUT)", lambda out, _: not out.exists()),
]


def _workspace(root: Path, ctx: dict[str, str]) -> None:
    rules = [f'[[genrule]]\nname = "e{i}"\nsrcs = {e.srcs}\nouts = ["o"]\ncmd = """{e.cmd.format(**ctx)}"""\n'
             for i, e in enumerate(ESCAPES)]
    controls = [f'[[genrule]]\nname = "network_allowed"\nnetwork = true\nouts = ["o"]\n'
                f'cmd = "(exec 3<>/dev/tcp/{HOST}/{PORT}) && echo reached > $(OUT) || echo blocked > $(OUT)"\n',
                f'[[genrule]]\nname = "unsandboxed"\nsandbox = false\nouts = ["o"]\n'
                f'cmd = "echo reached > {ctx["outside"]}/control; echo x > $(OUT)"\n']
    for package, text in (("pkg", rules), ("control", controls)):
        (root / package).mkdir()
        (root / package / "BUILD.toml").write_text("\n".join(text))
    (root / "pkg" / "victim.txt").write_text("workspace-words\n")
    (root / "pkg" / "private.txt").write_text("private-words\n")


def _snapshot(*dirs: Path) -> dict[str, tuple[int, int, int, int, bytes]]:
    return {str(p): fingerprint(p) for d in dirs for p in sorted(d.rglob("*"))
            if p.is_file() and ".minibuild" not in p.parts}


def test_sandbox_escapes(tmp_path_factory, tally):
    root, outside, home = (tmp_path_factory.mktemp(n) for n in ("ws", "outside", "home"))
    (root / "workspace.toml").write_text('[workspace]\nname = "escapes"\n')
    (outside / "victim").write_text("victim-words\n")
    (outside / "victim").chmod(0o600)
    token = secrets.token_hex(12)
    ctx = {"ws": str(root), "outside": str(outside), "home": str(home), "token": token}
    _workspace(root, ctx)
    before = _snapshot(root, outside, home)

    env = {**os.environ, "HOME": str(home), "MINIBUILD_TEST_SECRET": token}

    def build(pattern: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "minibuild", "build", pattern, "-k", "--no-load"], cwd=root,
                              env=env, capture_output=True, text=True, timeout=600)

    done = build("//pkg:all")
    assert done.returncode in (0, 1), done.stderr  # the link outputs fail, cleanly
    assert "Traceback" not in done.stderr

    out = root / ".minibuild" / "out" / "pkg"
    got_out = []
    for i, escape in enumerate(ESCAPES):
        tally["escapes_tried"] += 1
        if escape.escaped(out / f"e{i}" / "o", ctx):
            got_out.append(escape.name)
            tally["escaped"] += 1
    leftover = Path(f"/tmp/minibuild-escape-{token}")
    if leftover.exists():
        leftover.unlink()
    assert got_out == []
    for name in ("e9", "e10"):
        assert f"`//pkg:{name}`" in done.stderr, done.stderr
    # Controls: the checks see a way out where the target asks for one.
    assert build("//control:all").returncode == 0
    assert (out.parent / "control" / "network_allowed" / "o").read_text() == "reached\n"
    assert (outside / "control").read_text() == "reached\n"
    (outside / "control").unlink()
    assert _snapshot(root, outside, home) == before
    assert links_in_store(root) == [] and scratch_left(root) == []
    assert not (root / ".minibuild" / "cache" / "planted").exists()


@pytest.mark.parametrize("sandbox", ["true", "false"])
def test_a_link_output_is_one_clean_error(workspace, cli, tmp_path_factory, sandbox, tally):
    """A link output is refused with the target's label and a hint, in and out of the sandbox (exit 1)."""
    tally["cases"] += 1
    victim = tmp_path_factory.mktemp("outside") / "victim"
    victim.write_text("victim-words\n")
    workspace.write("pkg/BUILD.toml", '[[genrule]]\nname = "g"\nouts = ["o"]\n'
                                      + ("sandbox = false\n" if sandbox == "false" else "")
                                      + f'cmd = "ln -s {victim} $(OUT)"\n')
    r = cli("build", "//pkg:g", "--no-load", cwd=workspace.root)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert f"output `o` of `//pkg:g` is a symbolic link to `{victim}`, outside its work directory" in r.stderr
    assert "hint: write the output itself" in r.stderr
    tally["clean_errors"] += 1
    tally["links_refused"] += 1
