"""Action-cache entries tampered with, as an attacker who can write the cache (a CI cache restored from elsewhere)
or a damaged disk would leave them: a digest naming a path outside the cache, entries of the wrong shape, an
output swapped for another blob, an entry copied to another action's key. Each time the build ends well (exit 0,
no traceback) with the tampered entry discarded and said so, the action run again, the image byte for byte what
an untouched cache gives (its digest, its files read with tarfile), nothing outside the workspace touched; and
`cache verify` finds the entry, says so, removes it and exits 1. The entry format is the one docs/cache.md gives:
the test writes it as an attacker would, checksum and all."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import CliResult, run_cli
from tests.reliability.cache_tools import (
    blobs,
    build,
    entry_for,
    image_files,
    make_workspace,
    no_traceback,
    read_entry,
    state,
    write_entry,
)


@dataclass(frozen=True)
class Built:
    root: Path
    digest: str  # the image's, from the untouched cache
    files: dict[str, bytes]  # the image's files

    @property
    def cache(self) -> Path:
        return self.root / ".minibuild" / "cache"


@pytest.fixture
def built(tmp_path: Path) -> Built:
    root = make_workspace(tmp_path / "ws")
    first = build(root)
    assert first.returncode == 0, first.stderr
    target = first.json()["targets"][0]
    return Built(root, target["digest"], image_files(root, target))


def tampered_build(built: Built, tally, *, warned: bool = True) -> CliResult:
    """Build after tampering: it ends well, with the entry discarded (and said, when `warned`), the action run again
    and the image as an untouched cache gives it."""
    tally["cases"] += 1
    tally["tampered"] += 1
    r = build(built.root)
    if not no_traceback(r):
        tally["crashes"] += 1
    assert r.returncode == 0 and no_traceback(r), r.stderr
    target = r.json()["targets"][0]
    if target["digest"] != built.digest or r.json()["actions"]["run"] == 0:
        tally["tampered_used"] += 1
    assert r.json()["actions"]["run"] >= 1, r.stderr
    assert target["digest"] == built.digest
    assert image_files(built.root, target) == built.files
    if warned:
        assert "was unusable" in r.stderr, r.stderr
    tally["clean_errors"] += 1
    return r


def verify_finds(built: Built, path: Path) -> CliResult:
    """`cache verify` on a cache holding a tampered entry: said, removed, exit 1, nothing else lost."""
    r = run_cli("cache", "verify", "--json", cwd=built.root)
    assert r.returncode == 1 and no_traceback(r), r.stderr
    assert r.json()["invalid_actions"] == 1 and r.json()["corrupt_blobs"] == 0, r.stdout
    assert "action entry" in r.stderr and not path.exists()
    again = run_cli("cache", "verify", "--json", cwd=built.root)
    assert again.returncode == 0 and again.json()["invalid_actions"] == 0, again.stderr
    return r


@pytest.mark.parametrize("where", ["output", "extra blob"])
def test_a_digest_naming_a_path_outside_the_cache(built, tmp_path, tally, where):
    """Issue 15 #5: `sha256:../../.../victim` made the next build delete the victim, and verify did not flag it."""
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    before = state(tmp_path / "victim")
    evil = "sha256:" + "../" * 40 + str(victim).lstrip("/")
    output = "closure.json" if where == "output" else "layers.json"
    path = entry_for(built.cache, output)
    entry, checked = read_entry(path)
    saved = path.read_bytes()

    def plant() -> None:
        if where == "output":
            entry["outputs"][output]["digest"] = evil
        else:
            entry["blobs"] = [*entry["blobs"], evil]
        write_entry(path, entry, checked)

    plant()
    tampered_build(built, tally)
    assert state(tmp_path / "victim") == before
    path.write_bytes(saved)
    plant()
    verify_finds(built, path)
    assert state(tmp_path / "victim") == before


WRONG_SHAPES = {
    "a list": b"[]",
    "a number": b"42",
    "outputs a string": b'{"outputs": "x"}',
    "not JSON": b"{\"outputs\": {",
    "empty": b"",
    "binary": bytes(range(256)),
    "outputs of the wrong kind": json.dumps({"outputs": {"closure.json": {"digest": 5, "size": "big"}},
                                             "blobs": {}, "discovered": [], "warnings": None}).encode(),
    "a checksum over nothing": b'{"check":"sha256:' + b"0" * 64 + b'","entry":{}}',
}


@pytest.mark.parametrize("case", sorted(WRONG_SHAPES))
def test_an_entry_of_the_wrong_shape(built, tally, case):
    """Issue 15 #7: valid JSON of the wrong shape ended every build and every `cache verify` in a traceback."""
    path = entry_for(built.cache, "closure.json")
    path.write_bytes(WRONG_SHAPES[case])
    # One with exactly the keys an older minibuild wrote is taken for that: a miss, not worth a warning.
    tampered_build(built, tally, warned=case != "outputs of the wrong kind")
    path.write_bytes(WRONG_SHAPES[case])
    r = run_cli("cache", "verify", "--json", cwd=built.root)
    assert no_traceback(r) and not path.exists(), r.stderr
    assert r.json()["discarded_actions"] == 1


def test_an_output_swapped_for_another_blob(built, tally):
    """Issue 15 #7: an entry whose output names another valid blob of the store was used as it was. A hand edit
    (the checksum left as it was) is detected by build and verify, whether the size was changed to match or not."""
    path = entry_for(built.cache, "closure.json")
    entry, checked = read_entry(path)
    original = path.read_bytes()
    mine = entry["outputs"]["closure.json"]["digest"]
    other, blob = next((d, p) for d, p in sorted(blobs(built.cache).items()) if d != mine)
    check = json.loads(original)["check"] if checked else None
    for size in (entry["outputs"]["closure.json"]["size"], blob.stat().st_size):
        entry["outputs"]["closure.json"].update(digest=other, size=size)
        write_entry(path, entry, checked, check=check)
        tampered_build(built, tally)
        closure = built.root / ".minibuild/out/img/b/closure.json"
        assert "sha256:" + hashlib.sha256(closure.read_bytes()).hexdigest() == mine
        write_entry(path, entry, checked, check=check)
        verify_finds(built, path)
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(original)


def test_an_output_swapped_with_the_checksum_made_again(built, tally):
    """A swap by someone who computes the checksum too, to a blob of another size: the size the entry gives is
    checked against the blob's, by the build and by verify. (One to a blob of the very same size is not
    detectable without running the action again: docs/cache.md.)"""
    path = entry_for(built.cache, "closure.json")
    entry, checked = read_entry(path)
    mine = entry["outputs"]["closure.json"]["digest"]
    other = next(d for d, p in sorted(blobs(built.cache).items())
                 if d != mine and p.stat().st_size != entry["outputs"]["closure.json"]["size"])
    entry["outputs"]["closure.json"]["digest"] = other
    write_entry(path, entry, checked)
    tampered_build(built, tally)
    write_entry(path, entry, checked)
    verify_finds(built, path)


def test_an_entry_copied_to_another_key(built, tally):
    """The whole entry of one action put at another action's key: the entry says which key it was written for."""
    closure, layers = entry_for(built.cache, "closure.json"), entry_for(built.cache, "layers.json")
    saved = layers.read_bytes()
    layers.write_bytes(closure.read_bytes())
    tampered_build(built, tally)
    layers.write_bytes(closure.read_bytes())
    verify_finds(built, layers)
    layers.write_bytes(saved)
