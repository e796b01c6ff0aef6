"""The stored analysis (minibuild/analysis_cache.py) follows the files it came from as they were read: a BUILD file
saved while a build analyses is seen by the next build (issue 15 #9), and a workspace copied or moved with its
`.minibuild` checks its own files, not the original's (CI restoring `.minibuild` into another path). It is JSON:
nothing in it is code. What the image holds is read from its tarball with tarfile."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from minibuild import analysis
from minibuild.build import analyse
from minibuild.digest import StatCache
from minibuild.workspace import Workspace
from tests.reliability.cache_tools import build, image_files, make_workspace


def _layers_params(targets) -> str:
    return next(a.params for t in targets for a in t.actions if a.mnemonic == "Layers")


def test_a_build_file_saved_while_it_is_analysed(tmp_path, monkeypatch):
    """The analysis is stored with the digest of the bytes it parsed: the BUILD file saved meanwhile (here, just
    as the analysis ends, which the issue's loop hit 2 times in 93) differs from it, so the next build analyses
    again and sees the new file. Before, the new file's digest was stored beside the old targets: every later
    build shipped the old contents and ran nothing."""
    root = make_workspace(tmp_path / "ws")
    build_file = root / "img" / "BUILD.toml"
    original = analysis.Analysis.analyse

    def analyse_then_save(self, labels):
        configured = original(self, labels)
        build_file.write_text(build_file.read_text().replace("/etc/motd", "/etc/issue"))  # the editor saves
        return configured

    monkeypatch.setattr(analysis.Analysis, "analyse", analyse_then_save)
    _, targets = analyse(Workspace(root), ["//..."], "", StatCache())
    assert "/etc/motd" in _layers_params(targets)  # what it parsed
    monkeypatch.undo()
    _, targets = analyse(Workspace(root), ["//..."], "", StatCache())
    assert "/etc/issue" in _layers_params(targets)
    r = build(root)
    assert r.returncode == 0, r.stderr
    files = image_files(root, r.json()["targets"][0])
    assert "/etc/issue" in files and "/etc/motd" not in files


def test_a_copied_workspace_checks_its_own_files(tmp_path):
    root = make_workspace(tmp_path / "ws")
    first = build(root)
    assert first.returncode == 0, first.stderr
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(root), str(copy)], check=True)  # with its .minibuild, as a CI cache restores it

    same = build(copy)  # nothing changed: the stored analysis and every action are reused
    assert same.returncode == 0 and same.json()["actions"]["run"] == 0, same.stderr

    copied = copy / "img" / "BUILD.toml"
    copied.write_text(copied.read_text().replace("/etc/motd", "/etc/issue"))
    edited = build(copy)
    assert edited.returncode == 0, edited.stderr
    files = image_files(copy, edited.json()["targets"][0])
    assert "/etc/issue" in files and "/etc/motd" not in files
    untouched = build(root)  # and the original, unchanged, is still a no-op
    assert untouched.json()["actions"]["run"] == 0
    assert "/etc/motd" in image_files(root, untouched.json()["targets"][0])


@pytest.mark.parametrize("rule_file", [False, True], ids=["built-in rules", "a workspace rule file"])
def test_it_is_json_naming_files_by_their_path_in_the_workspace(tmp_path, rule_file):
    root = make_workspace(tmp_path / "ws")
    if rule_file:
        (root / "rules").mkdir()
        (root / "rules" / "text.py").write_text((Path(__file__).parents[2] / "examples" / "custom-rule" / "tools" /
                                                "rules" / "text_file.py").read_text())
        (root / "workspace.toml").write_text('[workspace]\nname = "t"\n\n[rules]\nload = ["rules/text.py"]\n')
        (root / "img" / "BUILD.toml").write_text((root / "img" / "BUILD.toml").read_text() +
                                                 '\n[[text_file]]\nname = "t"\nout = "t.txt"\nlines = ["a"]\n')
    assert build(root).returncode == 0
    [stored] = (root / ".minibuild" / "cache" / "analysis").iterdir()
    assert stored.suffix == ".json"
    header, body = (json.loads(line) for line in stored.read_text().split("\n"))
    assert set(header["files"]) == {"workspace.toml", "img/BUILD.toml", *(["rules/text.py"] if rule_file else [])}
    assert str(root) not in json.dumps(header["files"]) + json.dumps(header["user_modules"]) + json.dumps(body)
    again = build(root)
    assert again.json()["actions"]["run"] == 0
