"""The action cache: early cutoff, the stat cache, `--explain`.

What changed is decided by the test (the bytes it writes); what ran is read from `--json` and checked
against the files on disk.
"""

from __future__ import annotations

import os
import time

from tests.engine.helpers import image_files, out_dir

BUILD = """\
[[genrule]]
name = "gen"
srcs = ["words.txt"]
outs = ["words"]
cmd = "tr -d ' ' < $(SRC) > $(OUT)"

[[image]]
name = "img"
files = [{ src = "//pkg:gen", dest = "/words", mode = "0644" }]
"""


def _build(cli, workspace, *extra: str) -> dict:
    r = cli("build", "//pkg:all", "--json", "--no-load", *extra, cwd=workspace.root)
    assert r.returncode == 0, r.stderr
    return r.json()


def _rebuilt(out: dict) -> dict[str, bool]:
    return {t["label"]: t["rebuilt"] for t in out["targets"]}


def _words_in_image(workspace) -> bytes | None:
    return image_files(out_dir(workspace.root, "//pkg:img") / "oci")["/words"][1]


def test_early_cutoff(workspace, cli):
    workspace.write("pkg/BUILD.toml", BUILD)
    workspace.write("pkg/words.txt", "a b c\n")
    first = _build(cli, workspace)
    assert first["actions"]["run"] >= 2
    assert _words_in_image(workspace) == b"abc\n"
    digest = {t["label"]: t.get("digest") for t in first["targets"]}["//pkg:img"]

    # Only spaces change: the genrule runs again and writes the same bytes, so the image is not touched.
    workspace.write("pkg/words.txt", "a  b   c\n")
    second = _build(cli, workspace)
    assert second["actions"]["run"] == 1
    assert _rebuilt(second) == {"//pkg:gen": True, "//pkg:img": False}
    assert {t["label"]: t.get("digest") for t in second["targets"]}["//pkg:img"] == digest

    # A real change goes all the way to the image.
    workspace.write("pkg/words.txt", "a b d\n")
    third = _build(cli, workspace)
    assert _rebuilt(third) == {"//pkg:gen": True, "//pkg:img": True}
    assert _words_in_image(workspace) == b"abd\n"
    assert {t["label"]: t.get("digest") for t in third["targets"]}["//pkg:img"] != digest


def test_touch_rebuilds_nothing(workspace, cli):
    workspace.write("pkg/BUILD.toml", BUILD)
    src = workspace.write("pkg/words.txt", "a b c\n")
    first = _build(cli, workspace)
    st = src.stat()
    os.utime(src, ns=(st.st_atime_ns + 10**9, st.st_mtime_ns + 10**9))
    assert src.stat().st_mtime_ns != st.st_mtime_ns
    second = _build(cli, workspace)
    assert second["actions"] == {"run": 0, "cached": first["actions"]["run"] + first["actions"]["cached"], "remote": 0}
    assert not any(_rebuilt(second).values())
    # Same size and mtime as the touched file, different bytes: must rebuild.
    src.write_text("x y z\n")
    os.utime(src, ns=(st.st_atime_ns + 10**9, st.st_mtime_ns + 10**9))
    third = _build(cli, workspace)
    assert _rebuilt(third)["//pkg:gen"] is True
    assert _words_in_image(workspace) == b"xyz\n"


def test_stat_cache_is_not_fooled_by_same_size_and_mtime(workspace, cli):
    """A source rewritten with the same size and mtime (as `cp -p` or an archive extraction does).

    Files changed within a couple of seconds of being hashed are not trusted by the stat cache, so the
    test waits before building, to make sure the second build has a stat cache entry to go wrong with.
    """
    workspace.write("pkg/BUILD.toml", BUILD)
    src = workspace.write("pkg/words.txt", "a b c\n")
    os.utime(src, (1_000_000, 1_000_000))
    time.sleep(2.5)
    _build(cli, workspace)
    assert _build(cli, workspace)["actions"]["run"] == 0
    src.write_text("q r s\n")  # same size
    os.utime(src, (1_000_000, 1_000_000))  # same mtime as before: only the content (and ctime) differ
    third = _build(cli, workspace)
    assert _rebuilt(third)["//pkg:gen"] is True
    assert _words_in_image(workspace) == b"qrs\n"


def test_explain_names_the_changed_parameter(workspace, cli):
    workspace.write("pkg/BUILD.toml", BUILD + '\n[[genrule]]\nname = "other"\nouts = ["o"]\ncmd = "echo o > $(OUT)"\n')
    workspace.write("pkg/words.txt", "a b c\n")
    first = _build(cli, workspace, "--explain")
    assert all("never built before" in why for why in first["targets"][0]["explain"].values())

    workspace.write("pkg/BUILD.toml", BUILD.replace("tr -d ' '", "tr -d ' a'")
                    + '\n[[genrule]]\nname = "other"\nouts = ["o"]\ncmd = "echo o > $(OUT)"\n')
    r = cli("build", "//pkg:all", "--json", "--no-load", "--explain", cwd=workspace.root)
    assert r.returncode == 0, r.stderr
    explained = {t["label"]: t["explain"] for t in r.json()["targets"]}
    [why] = explained["//pkg:gen"].values()
    assert "parameter `cmd` changed" in why
    assert "input" not in why  # the source did not change
    assert explained["//pkg:other"] == {}
    # The image's layer action ran because its input (the genrule's output) changed, and says which one.
    layer_reasons = " ".join(explained["//pkg:img"].values())
    assert "input `pkg/gen/words` changed" in layer_reasons, explained
    assert "cmd" in r.stderr  # the human-readable form on stderr says it too

    workspace.write("pkg/words.txt", "a b c d\n")
    r = cli("build", "//pkg:gen", "--json", "--no-load", "--explain", cwd=workspace.root)
    [why] = r.json()["targets"][0]["explain"].values()
    assert "input `pkg/words.txt` changed" in why
    assert "parameter" not in why
