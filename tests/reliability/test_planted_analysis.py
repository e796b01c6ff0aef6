"""Stored analyses planted in the cache, as by someone who can write it and not the workspace: a pickle that runs a
command when loaded (what minibuild stored before, and unpickled on every build), and JSON analyses forged from a
real one to name code to import or run, a rule file to load, labels and artifacts outside the workspace. Each
time: no code runs (the marker file the payload would write stays absent), nothing outside the workspace changes,
the build ends well and analyses the BUILD files again (the forged file is replaced), the image as before."""

from __future__ import annotations

import json
import os
import pickle
import shlex
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.reliability.cache_tools import build, image_files, make_workspace, no_traceback, state


class _Payload:
    """Unpickled, it runs a shell command."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def _analyses(root: Path) -> list[Path]:
    return sorted((root / ".minibuild/cache/analysis").iterdir())


def test_a_planted_pickle_runs_nothing(tmp_path, tally):
    """Issue 15 #6: `cache/analysis/*.pickle` was unpickled on every build."""
    root = make_workspace(tmp_path / "ws")
    first = build(root)
    assert first.returncode == 0, first.stderr
    marker = tmp_path / "ran"
    payload = pickle.dumps(_Payload(f"touch {shlex.quote(str(marker))}"))
    for stored in _analyses(root):  # under the names both the old and the new format use
        for name in {stored.name, stored.stem + ".pickle", stored.stem + ".json"}:
            (stored.parent / name).write_bytes(payload)
    tally["cases"] += 1
    tally["tampered"] += 1
    again = build(root)
    if marker.exists():
        tally["tampered_used"] += 1
    assert not marker.exists()
    assert again.returncode == 0 and no_traceback(again), again.stderr
    assert again.json()["targets"][0]["digest"] == first.json()["targets"][0]["digest"]
    tally["clean_errors"] += 1


def _classes(tmp: Path) -> Callable[[dict, list], None]:
    def forge(header: dict, _: list) -> None:
        header["classes"][0][0] = "os:system"
    return forge


def _function(tmp: Path) -> Callable[[dict, list], None]:
    def forge(header: dict, body: list) -> None:
        text = json.dumps(body)
        assert "minibuild_rules.image:resolve_closure" in text
        body[:] = json.loads(text.replace("minibuild_rules.image:resolve_closure", "os:system"))
    return forge


def _rule_file(tmp: Path) -> Callable[[dict, list], None]:
    """A rule file that would write the marker, inside the workspace but not loaded by workspace.toml, and
    outside it."""
    def forge(header: dict, _: list) -> None:
        evil = f"open({str(tmp / 'ran')!r}, 'w').close()\n"
        (tmp / "ws" / "evil.py").write_text(evil)
        (tmp / "evil.py").write_text(evil)
        header["user_modules"] = {"minibuild_user_rules.evil_1": "evil.py", "minibuild_user_rules.evil_2": "../evil.py"}
    return forge


def _label(tmp: Path) -> Callable[[dict, list], None]:
    def forge(header: dict, _: list) -> None:
        header["labels"][0][0] = "../../../" + str(tmp / "outside").lstrip("/")
    return forge


def _artifact(tmp: Path) -> Callable[[dict, list], None]:
    def forge(header: dict, _: list) -> None:
        for row in header["artifacts"]:
            if row[0] == "derived":
                row[1] = row[1].rsplit("/", 1)[0] + "/../../../../../" + str(tmp / "outside" / "x").lstrip("/")
            else:
                row[1] = "../" + str(tmp / "outside" / "src").lstrip("/")
    return forge


def _module_main(tmp: Path) -> Callable[[dict, list], None]:
    def forge(header: dict, _: list) -> None:
        header["classes"][0][0] = "minibuild.__main__:main"
    return forge


FORGERIES = {"a class of os": _classes, "an action function of os": _function, "a rule file to load": _rule_file,
             "a label outside": _label, "artifacts outside": _artifact, "minibuild.__main__": _module_main}


@pytest.mark.parametrize("case", sorted(FORGERIES))
def test_a_forged_analysis_is_analysed_again(tmp_path, tally, case):
    root = make_workspace(tmp_path / "ws")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "src").write_text("not for the image\n")
    first = build(root)
    assert first.returncode == 0, first.stderr
    files = image_files(root, first.json()["targets"][0])
    [stored] = _analyses(root)
    header_line, body_line = stored.read_text().split("\n")
    header, body = json.loads(header_line), json.loads(body_line)
    FORGERIES[case](tmp_path)(header, body)
    forged = json.dumps(header) + "\n" + json.dumps(body)
    stored.write_text(forged)
    outside = state(tmp_path / "outside")
    tally["cases"] += 1
    tally["tampered"] += 1
    again = build(root)
    if (tmp_path / "ran").exists():
        tally["tampered_used"] += 1
    assert not (tmp_path / "ran").exists()
    assert again.returncode == 0 and no_traceback(again), again.stderr
    assert stored.read_text() != forged  # analysed again, and stored anew
    target = again.json()["targets"][0]
    assert target["digest"] == first.json()["targets"][0]["digest"]
    assert image_files(root, target) == files
    assert state(tmp_path / "outside") == outside
    tally["clean_errors"] += 1
