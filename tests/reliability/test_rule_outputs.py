"""An action of any rule (a custom one here) that leaves a link where its output should be: a symbolic link is
refused and never followed, a hard link to a file outside is stored as a copy; the file outside is never
changed (the store makes what it takes read-only) and never shared with the store."""

from __future__ import annotations

import os
import stat
from pathlib import Path

RULE = '''
import os
from minibuild.rule import Attrs, RuleContext, rule
from minibuild_rules.providers import DefaultInfo


class LinkAttrs(Attrs):
    victim: str
    kind: str


def link_out(run) -> None:
    [out] = run.outputs.values()
    (os.symlink if run.params["kind"] == "symlink" else os.link)(run.params["victim"], out)


def _impl(ctx: RuleContext[LinkAttrs]) -> list[object]:
    out = ctx.actions.declare("out")
    ctx.actions.run(mnemonic="Link", function=link_out, version=1,
                    params={"victim": ctx.attrs.victim, "kind": ctx.attrs.kind},
                    inputs=[], outputs=[out], description=f"linking `{ctx.label}`")
    return [DefaultInfo((out,))]


link_file = rule(implementation=_impl, attrs=LinkAttrs, doc="Links its output to `victim`.")
'''


def _workspace(workspace, victim: Path, kind: str):
    workspace.write("workspace.toml", '[workspace]\nname = "links"\n\n[rules]\nload = ["tools/link.py"]\n')
    workspace.write("tools/link.py", RULE)
    workspace.write("pkg/BUILD.toml", f'[[link_file]]\nname = "l"\nvictim = "{victim}"\nkind = "{kind}"\n')
    return workspace


def _victim(tmp_path: Path) -> tuple[Path, os.stat_result]:
    victim = tmp_path / "outside" / "secret"
    victim.parent.mkdir()
    victim.write_text("not for the store\n")
    victim.chmod(0o600)
    return victim, victim.stat()


def test_a_symbolic_link_output_is_refused(workspace, cli, tmp_path):
    victim, before = _victim(tmp_path)
    _workspace(workspace, victim, "symlink")
    r = cli("build", "//pkg:l", "--no-load", cwd=workspace.root)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "as a symbolic link" in r.stderr
    assert stat.S_IMODE(victim.stat().st_mode) == 0o600 and victim.read_text() == "not for the store\n"
    assert victim.stat().st_mtime_ns == before.st_mtime_ns


def test_a_hard_link_output_is_stored_as_a_copy(workspace, cli, tmp_path):
    victim, before = _victim(tmp_path)
    _workspace(workspace, victim, "hardlink")
    r = cli("build", "//pkg:l", "--no-load", cwd=workspace.root)
    # Same filesystem: the link is made and the store takes a copy; another filesystem: the action fails.
    if r.returncode == 0:
        out = workspace.root / ".minibuild" / "out" / "pkg" / "l" / "out"
        assert out.read_text() == "not for the store\n"
        assert out.stat().st_ino != victim.stat().st_ino
    else:
        assert "Traceback" not in r.stderr and "Invalid cross-device link" in r.stderr, r.stderr
    assert stat.S_IMODE(victim.stat().st_mode) == 0o600
    assert victim.stat().st_nlink == 1 and victim.read_text() == "not for the store\n"
