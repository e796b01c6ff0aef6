"""cache_gc on a store written through the Cache API, recency set by the test: what goes, what stays, in which
order; sizes checked against `du -sb`, files against the disk. No build runs here (test_gc.py builds)."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from minibuild import cache_gc
from minibuild.cache import Cache
from tests.cache.conftest import du

DAY = 86400.0


def test_sizes():
    assert cache_gc.parse_size("5GiB") == 5 * 1024**3
    assert cache_gc.parse_size("500MB") == 500_000_000
    assert cache_gc.parse_size("1.5G") == 1_500_000_000
    assert cache_gc.parse_size(" 64 kib ") == 65536
    assert cache_gc.parse_size("1200") == cache_gc.parse_size(1200) == 1200
    for bad in ("", "5XB", "-1", "1e9", "GiB", True, 0, "0.4"):
        with pytest.raises(ValueError):
            cache_gc.parse_size(bad)


class Store:
    """A workspace's `.minibuild/cache` and `.minibuild/out`, filled by hand."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cache = Cache(str(root / ".minibuild" / "cache"))
        self.out = root / ".minibuild" / "out"
        self.out.mkdir(parents=True)

    def blob(self, size: int, seed: str, mtime: float) -> str:
        digest = self.cache.put_bytes(seed.encode().ljust(size, b".")).digest
        os.utime(self.cache.blob_path(digest), (mtime, mtime))
        return digest

    def entry(self, key: str, outputs: list[str], used: float, blobs: tuple[str, ...] = (),
              discovered: tuple[str, ...] = ()) -> None:
        self.cache.put_action(key, {
            "outputs": {f"o{i}": {"digest": d, "size": 0, "executable": False} for i, d in enumerate(outputs)},
            "blobs": list(blobs), "discovered": {p: "x" for p in discovered}, "warnings": []})
        path = self.cache.root + f"/ac/{key[:2]}/{key}.json"
        os.utime(path, (used, used))

    def keys(self) -> set[str]:
        return {p.stem for p in Path(self.cache.root, "ac").glob("*/*.json")}

    def gc(self, limit: int, **kw) -> cache_gc.GcReport:
        return cache_gc.collect(self.cache, str(self.root), str(self.out), limit, **kw)


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path / "ws")


def _key(n: int) -> str:
    return f"{n:02d}" + "ab" * 31


def test_least_recently_used_first_and_shared_blobs_stay(store: Store):
    now = time.time()
    shared = store.blob(100_000, "shared", now - 9 * DAY)
    old, mid, new = (store.blob(1_000_000, name, now - 9 * DAY) for name in ("old", "mid", "new"))
    store.entry(_key(1), [old, shared], now - 3 * DAY)
    store.entry(_key(2), [mid], now - 2 * DAY)
    store.entry(_key(3), [new, shared], now - 1 * DAY)
    before = du(Path(store.cache.root))
    assert cache_gc.measure(store.cache) == before

    report = store.gc(before - 500_000)  # removing the oldest entry is enough
    assert [r.unit.name for r in report.removed] == [_key(1)]
    assert report.removed[0].resources == (old,)  # `shared` is needed by the newest entry
    assert store.keys() == {_key(2), _key(3)}
    assert not os.path.exists(store.cache.blob_path(old)) and os.path.exists(store.cache.blob_path(shared))
    assert du(Path(store.cache.root)) == report.after.bytes <= before - 500_000
    assert store.cache.get_action(_key(1)) is None

    # A hit is a use: reading the middle entry makes the newest one the least recently used.
    assert store.cache.get_action(_key(2)) is not None
    report = store.gc(du(Path(store.cache.root)) - 1)
    assert [r.unit.name for r in report.removed] == [_key(3)]
    assert set(report.removed[0].resources) == {new, shared}


def test_what_the_out_tree_holds_and_what_a_build_used_stay(store: Store):
    now = time.time()
    linked, named, alone, other = (store.blob(200_000, s, now - DAY) for s in ("linked", "named", "alone", "other"))
    store.entry(_key(1), [linked], now - 5 * DAY)  # its output is in the out tree: the entry stays too
    store.entry(_key(2), [named, other], now - 5 * DAY)  # one output is in the out tree
    store.entry(_key(3), [alone], now - 6 * DAY)
    store.entry(_key(4), [alone], now - 7 * DAY)
    (store.out / "pkg" / "img" / "oci" / "blobs" / "sha256").mkdir(parents=True)
    os.link(store.cache.blob_path(linked), store.out / "pkg" / "img" / "image.tar")
    layout_blob = store.out / "pkg" / "img" / "oci" / "blobs" / "sha256" / named.removeprefix("sha256:")
    layout_blob.write_bytes(Path(store.cache.blob_path(named)).read_bytes())  # a copy: named by its digest

    report = store.gc(1, keep=frozenset({_key(3)}))
    assert report.over_limit
    # Entry 4 first (`alone` stays: entry 3, which the build used, needs it), then entry 2 with `other`.
    assert [(r.unit.name, r.resources) for r in report.removed] == [(_key(4), ()), (_key(2), (other,))]
    assert store.keys() == {_key(1), _key(3)}
    assert all(os.path.exists(store.cache.blob_path(d)) for d in (linked, named, alone))
    assert not os.path.exists(store.cache.blob_path(other))
    assert report.pinned_bytes == 400_000


def test_sysroot_trees_debs_and_leftovers(store: Store):
    now = time.time()
    sysroots = Path(store.cache.root, "sysroots")
    for key, size in (("t1", 300_000), ("t2", 50_000)):
        (sysroots / key / "usr" / "bin").mkdir(parents=True)
        (sysroots / key / "usr" / "bin" / "prog").write_bytes(b"x" * size)
        os.link(sysroots / key / "usr" / "bin" / "prog", sysroots / key / "usr" / "bin" / "prog2")
        for record in ("owners", "control"):
            (sysroots / f"{key}.{record}.json").write_text(json.dumps({"/usr/bin/prog": "pkg"}))
    deb = store.blob(400_000, "!<arch>\ndebian-binary", now - 20 * DAY)
    doc = store.blob(1000, "sysroot.json", now - DAY)
    store.entry(_key(1), [doc], now - 10 * DAY, discovered=(".minibuild/cache/sysroots/t1",))
    store.entry(_key(2), [doc], now - 1 * DAY, discovered=(".minibuild/cache/sysroots/t2/usr/bin/prog",))
    tmp = Path(store.cache.root, "tmp")
    (tmp / "old-work").mkdir()
    (tmp / "old-work" / "f").write_bytes(b"y" * 70_000)
    os.utime(tmp / "old-work", (now - 2 * 3600, now - 2 * 3600))
    (tmp / "download.deb").write_bytes(b"z" * 10_000)  # a `minibuild lock` download in progress: stays
    before = cache_gc.measure(store.cache)  # (which writes gc-trees.json: the trees' sizes)
    assert before == du(Path(store.cache.root))  # the hard link counted once, as du counts it

    dry = store.gc(before - 700_000, dry_run=True)
    assert [(r.unit.kind, r.unit.name) for r in dry.removed] == [
        ("tmp", "old-work"), ("blob", deb), ("action", _key(1))]
    assert cache_gc.describe(store.cache, dry.removed[1].unit).startswith(".deb package")
    assert du(Path(store.cache.root)) == before

    report = store.gc(before - 700_000)
    assert report.after.sysroots == 1 and report.removed[2].resources == ("sysroot:t1",)
    assert sorted(p.name for p in sysroots.iterdir()) == ["t2", "t2.control.json", "t2.owners.json"]
    assert sorted(p.name for p in tmp.iterdir()) == ["download.deb"]
    assert du(Path(store.cache.root)) == report.after.bytes


def test_unreadable_and_dangling_entries_go_first(store: Store):
    now = time.time()
    kept = store.blob(10_000, "kept", now)
    store.entry(_key(1), [kept], now - DAY)
    store.entry(_key(2), ["sha256:" + "0" * 64], now)  # its blob is gone: worth nothing
    bad = Path(store.cache.root, "ac", _key(3)[:2], _key(3) + ".json")
    bad.parent.mkdir(exist_ok=True)
    bad.write_text("{not json")
    report = store.gc(du(Path(store.cache.root)) - 1)
    assert {r.unit.name for r in report.removed} <= {_key(2), _key(3)}
    assert _key(1) in store.keys()


def test_a_reader_finds_a_whole_entry_or_none(store: Store):
    """An entry read while gc removes it (no lock on either side): `get_action` returns the entry only while all
    its blobs are there, else None, and never fails; gc removes the entry before its blobs."""
    now = time.time()
    blobs = [store.blob(50_000, f"b{i}", now) for i in range(4)]
    store.entry(_key(1), blobs, now - DAY)
    saved = {d: Path(store.cache.blob_path(d)).read_bytes() for d in blobs}
    entry_file = Path(store.cache.root, "ac", _key(1)[:2], _key(1) + ".json")
    saved_entry = entry_file.read_text()
    stop = threading.Event()
    seen: list[str] = []
    errors: list[BaseException] = []

    def read() -> None:
        while not stop.is_set():
            try:
                entry = store.cache.get_action(_key(1))
            except BaseException as exc:  # noqa: BLE001 - the assertion below reports it
                errors.append(exc)
                return
            seen.append("hit" if entry is not None else "miss")

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for _ in range(200):
            inv = cache_gc.inventory(store.cache, str(store.root), str(store.out))
            cache_gc.remove(store.cache, inv, cache_gc.plan(inv, 1))
            for data in saved.values():
                store.cache.put_bytes(data)
            entry_file.parent.mkdir(exist_ok=True)
            tmp = entry_file.with_suffix(".tmp")  # as the cache writes it: whole, or not at all
            tmp.write_text(saved_entry)
            tmp.replace(entry_file)
    finally:
        stop.set()
        reader.join()
    assert not errors
    assert "hit" in seen and "miss" in seen


def test_tree_sizes_are_remembered(store: Store):
    tree = Path(store.cache.root, "sysroots", "t1")
    (tree / "usr").mkdir(parents=True)
    (tree / "usr" / "f").write_bytes(b"x" * 5000)
    assert cache_gc.measure(store.cache) == du(Path(store.cache.root))
    memo = json.loads(Path(store.cache.root, "gc-trees.json").read_text())
    assert set(memo) == {"t1"} and memo["t1"][2] == du(tree)
    # A tree never changes once in place, so its size is not walked again (this one is changed behind the
    # memo's back, which leaves the directory's own inode and mtime as they were).
    (tree / "usr" / "f").write_bytes(b"x" * 9000)
    assert cache_gc.measure(store.cache) == du(Path(store.cache.root)) - 4000
