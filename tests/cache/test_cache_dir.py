"""MINIBUILD_CACHE puts the cache elsewhere (docs/cache.md): builds, `cache verify`, `cache gc` and `clean --cache`
use that directory, `.minibuild` keeps only the outputs; two workspaces can share one cache (what one built, the
other finds); a directory holding other things is never taken for a cache, and `clean` empties only a cache
minibuild made (CACHEDIR.TAG, bford.info/cachedir). Checked on the disk with the test's own walk."""

from __future__ import annotations

import shutil

from tests.conftest import run_cli
from tests.reliability.cache_tools import build, make_workspace, no_traceback, state

TAG_SIGNATURE = "Signature: 8a477f597d28d172789f06886806bc55"


def test_the_cache_where_the_environment_says(tmp_path):
    cache = tmp_path / "shared" / "cache"
    env = {"MINIBUILD_CACHE": str(cache)}
    root = make_workspace(tmp_path / "ws")
    first = build(root, env)
    assert first.returncode == 0, first.stderr
    assert (cache / "CACHEDIR.TAG").read_text().startswith(TAG_SIGNATURE)
    assert list((cache / "ac").glob("*/*.json")) and list((cache / "cas" / "sha256").glob("*/*"))
    assert list((cache / "analysis").iterdir())
    assert not (root / ".minibuild" / "cache").exists() and (root / ".minibuild" / "out" / "img" / "b").is_dir()
    again = build(root, env)
    assert again.json()["actions"]["run"] == 0, again.stderr

    # Another workspace (a copy at another path, nothing built there) finds everything in the shared cache.
    other = tmp_path / "other"
    shutil.copytree(root, other, ignore=shutil.ignore_patterns(".minibuild"))
    there = build(other, env)
    assert there.returncode == 0 and there.json()["actions"]["run"] == 0, there.stderr
    assert there.json()["targets"][0]["digest"] == first.json()["targets"][0]["digest"]

    verify = run_cli("cache", "verify", "--json", cwd=root, env=env)
    assert verify.returncode == 0 and verify.json()["actions"] == len(list((cache / "ac").glob("*/*.json")))
    gc = run_cli("cache", "gc", "--max-size", "1", "--json", cwd=root, env=env)
    assert gc.returncode == 0, gc.stderr

    (cache / "ac" / "extra").mkdir(exist_ok=True)
    clean = run_cli("clean", "--cache", cwd=root, env=env)
    assert clean.returncode == 0 and "MINIBUILD_CACHE" in clean.stderr, clean.stderr
    assert cache.is_dir() and list(cache.iterdir()) == []  # emptied, the directory the user named kept
    assert not (root / ".minibuild" / "out").exists()


def test_a_relative_setting_is_taken_from_the_current_directory(tmp_path):
    root = make_workspace(tmp_path / "ws")
    r = run_cli("build", "//...", "--no-load", cwd=root / "img", env={"MINIBUILD_CACHE": "../../c"})
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "c" / "CACHEDIR.TAG").is_file() and not (root / ".minibuild" / "cache").exists()


def test_a_link_the_user_names_is_followed(tmp_path):
    """The setting is the user's explicit choice: a link there is resolved (unlike one inside `.minibuild`)."""
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    root = make_workspace(tmp_path / "ws")
    assert build(root, {"MINIBUILD_CACHE": str(tmp_path / "link")}).returncode == 0
    assert (tmp_path / "real" / "CACHEDIR.TAG").is_file()


def test_a_directory_holding_other_things_is_not_a_cache(tmp_path):
    home = tmp_path / "home"
    for rel in ("tmp/notes.txt", "logs/app.log", "documents/a"):
        (home / rel).parent.mkdir(parents=True, exist_ok=True)
        (home / rel).write_text(rel)
    before = state(home)
    root = make_workspace(tmp_path / "ws")
    r = build(root, {"MINIBUILD_CACHE": str(home)})
    assert r.returncode == 2 and no_traceback(r), r.stderr
    assert "is not a minibuild cache" in r.stderr and "documents" in r.stderr, r.stderr
    clean = run_cli("clean", "--cache", cwd=root, env={"MINIBUILD_CACHE": str(home)})
    assert clean.returncode == 2 and no_traceback(clean) and "CACHEDIR.TAG" in clean.stderr, clean.stderr
    assert state(home) == before


def test_an_older_cache_is_marked_and_kept(tmp_path):
    """`.minibuild/cache` of a minibuild from before CACHEDIR.TAG: taken for what it is, and marked."""
    root = make_workspace(tmp_path / "ws")
    assert build(root).returncode == 0
    (root / ".minibuild" / "cache" / "CACHEDIR.TAG").unlink()
    again = build(root)
    assert again.returncode == 0 and again.json()["actions"]["run"] == 0, again.stderr
    assert (root / ".minibuild" / "cache" / "CACHEDIR.TAG").is_file()


def test_a_cache_another_build_marks_meanwhile_is_taken(tmp_path, monkeypatch):
    """Builds starting together on a new cache: while one looks at the directory, another makes CACHEDIR.TAG.
    That interleaving is forced here (the other build's write lands just before the directory is listed); the
    directory is then a minibuild cache, never one "holding other files" (CI saw that once, four builds at once)."""
    from minibuild import cache

    root = tmp_path / "cache"
    root.mkdir()
    listing = cache._listing

    def another_build_marks_it_first(path: str) -> list[str]:
        (root / "CACHEDIR.TAG").write_text(TAG_SIGNATURE + "\n")
        return listing(path)

    monkeypatch.setattr(cache, "_listing", another_build_marks_it_first)
    cache._own_cache_dir(str(root))
    assert (root / "CACHEDIR.TAG").read_text().startswith(TAG_SIGNATURE)
