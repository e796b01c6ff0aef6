"""`cache gc` and builds at once, as separate processes: gc waits for a build in progress, a build waits for a gc
in progress, and an entry whose blobs went between its lookup and its use is built again, not a failure."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from minibuild.cache import Cache
from tests.cache.conftest import entries
from tests.engine.helpers import image_files, out_dir

BUILD = """\
[[genrule]]
name = "gen"
outs = ["g"]
cmd = "sleep {sleep}; echo {word} > $(OUT)"

[[image]]
name = "img"
binaries = ["/bin/sh"]
files = [{{ src = ":gen", dest = "/g" }}]
"""


def _write(workspace, word: str, sleep: float = 0) -> None:
    workspace.write("pkg/BUILD.toml", BUILD.format(word=word, sleep=sleep))


def _start(root: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "minibuild", *args], cwd=root, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "NO_COLOR": "1"})


def _store_taken(root: Path) -> bool:
    """Whether some process holds the store lock (tried without waiting, released at once)."""
    fd = os.open(root / ".minibuild/cache/locks/store.lock", os.O_CREAT | os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _word_in_image(root: Path) -> bytes | None:
    return image_files(out_dir(root, "//pkg:img") / "oci")["/g"][1]


def test_gc_waits_for_a_build_in_progress(workspace, cli):
    _write(workspace, "first")
    assert cli("build", "//pkg:all", "--no-load", cwd=workspace.root).returncode == 0
    _write(workspace, "second", sleep=4)
    build = _start(workspace.root, "build", "//pkg:all", "--no-load", "--json")
    deadline = time.monotonic() + 60
    while not (Path(workspace.root, ".minibuild/cache/locks/store.lock").exists() and _store_taken(workspace.root)):
        assert build.poll() is None and time.monotonic() < deadline, build.communicate()
        time.sleep(0.05)
    gc = _start(workspace.root, "cache", "gc", "--max-size", "1", "--json")  # everything it may remove
    time.sleep(1.5)
    assert build.poll() is None and gc.poll() is None  # the build sleeps on; gc waits for it
    out, err = build.communicate(timeout=120)
    assert build.returncode == 0, err
    gc_out, gc_err = gc.communicate(timeout=120)
    assert gc.returncode == 0, gc_err
    assert "waiting for the builds using the cache to end" in gc_err
    assert json.loads(gc_out)["after"]["entries"] < json.loads(gc_out)["before"]["entries"]  # the first build's
    assert _word_in_image(workspace.root) == b"second\n"
    # Everything the second build made is in .minibuild/out (both targets were asked for): all of it stayed.
    again = cli("build", "//pkg:all", "--no-load", "--json", cwd=workspace.root)
    assert again.returncode == 0 and again.json()["actions"]["run"] == 0, again.stderr
    verify = cli("cache", "verify", "--json", cwd=workspace.root).json()
    assert verify["corrupt_blobs"] == verify["discarded_actions"] == 0


def test_a_build_waits_for_a_gc_in_progress(workspace, cli):
    _write(workspace, "first")
    cache = Cache(str(workspace.root / ".minibuild" / "cache"))
    with cache.exclusive() as held:  # what `cache gc` holds while it removes
        assert held
        build = _start(workspace.root, "build", "//pkg:img", "--no-load", "--json")
        time.sleep(3)
        assert build.poll() is None  # waiting for the store
        assert not (workspace.root / ".minibuild" / "out").exists()
    out, err = build.communicate(timeout=120)
    assert build.returncode == 0, err
    assert json.loads(out)["actions"]["run"] >= 2
    assert _word_in_image(workspace.root) == b"first\n"


def test_an_entry_whose_blobs_went_is_built_again(workspace, cli):
    """What a build sees when it read an entry just before gc removed it (gc removes an entry before its blobs):
    the entry, and its blobs gone. The action runs again and the build gives the same image."""
    _write(workspace, "first")
    first = cli("build", "//pkg:img", "--no-load", "--json", cwd=workspace.root)
    assert first.returncode == 0, first.stderr
    cache = workspace.root / ".minibuild" / "cache"
    genrule = [e for e in entries(cache).values() if set(e["outputs"]) == {"g"}]
    assert len(genrule) == 1
    for output in genrule[0]["outputs"].values():
        hex_ = output["digest"].removeprefix("sha256:")
        (cache / "cas" / "sha256" / hex_[:2] / hex_).unlink()
    again = cli("build", "//pkg:img", "--no-load", "--json", cwd=workspace.root)
    assert again.returncode == 0, again.stderr
    assert again.json()["actions"]["run"] == 1  # the genrule; the same bytes leave the image's actions cached
    assert [t["digest"] for t in again.json()["targets"] if "digest" in t] == \
        [t["digest"] for t in first.json()["targets"] if "digest" in t]
    assert _word_in_image(workspace.root) == b"first\n"
