"""`minibuild cache gc` and `[cache] max_size` on examples/catalog built in three generations.

What is on disk is measured without minibuild: `du -sb`, the entry and blob files read with json and pathlib,
every OCI layout copied by skopeo (which checks each blob's digest), an image loaded and run by Docker.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from tests.cache.conftest import Generations, blob_names, build, digests, du, entries, set_generation


def _cache(root: Path) -> Path:
    return root / ".minibuild" / "cache"


def _nothing_dangling(cli, root: Path) -> None:
    """Every blob a remaining entry names is on disk, and `cache verify` agrees."""
    stored = blob_names(_cache(root))
    for key, entry in entries(_cache(root)).items():
        named = {o["digest"] for o in entry["outputs"].values()} | set(entry["blobs"])
        assert named <= stored, f"entry {key} lost {sorted(named - stored)}"
    verify = cli("cache", "verify", "--json", cwd=root)
    assert verify.returncode == 0, verify.stderr
    assert verify.json()["corrupt_blobs"] == 0 and verify.json()["discarded_actions"] == 0


def _layouts_read_back(root: Path, built: dict, tmp_path: Path) -> None:
    (tmp_path / "skopeo").mkdir()
    for t in built["targets"]:
        dest = tmp_path / "skopeo" / t["label"].replace("/", "_").replace(":", "_")
        r = subprocess.run(["skopeo", "copy", "-q", f"oci:{root / t['oci']}", f"dir:{dest}"],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, f"{t['label']}: {r.stderr}"


def test_gc_to_a_size_between_generations(generations: Generations, tmp_path, cli, docker_engine):
    root = generations.copy(tmp_path / "ws")
    oldest, newest = generations.sizes[0], du(_cache(root))  # the copy's directories may be smaller
    limit = (oldest + newest) // 2

    r = cli("cache", "gc", "--max-size", str(limit), "--json", cwd=root)
    assert r.returncode == 0, r.stderr
    report = r.json()
    after = du(_cache(root))
    assert after <= limit < newest
    assert report["before"]["bytes"] == newest and report["after"]["bytes"] == after
    assert report["freed"] == newest - after > 0
    assert report["after"]["entries"] == len(entries(_cache(root))) < report["before"]["entries"]
    assert report["after"]["blobs"] == len(blob_names(_cache(root)))
    assert not report["over_limit"]

    # The newest build's entries stayed: building it again runs nothing and gives the same images.
    again = build(root)
    assert again["actions"]["run"] == 0
    assert digests(again) == digests(generations.built[-1])
    _nothing_dangling(cli, root)
    _layouts_read_back(root, again, tmp_path)
    bash = json.loads((root / ".minibuild/out/shells/bash/summary.json").read_text())["config_digest"]
    load = subprocess.run([docker_engine, "load", "-i", str(root / ".minibuild/out/shells/bash/image.tar")],
                          capture_output=True, text=True, timeout=120)
    assert load.returncode == 0, load.stderr
    ran = subprocess.run([docker_engine, "run", "--rm", bash], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0 and ran.stdout.startswith("bash 5"), ran.stderr

    # The oldest generation went first: building it again writes every image anew (closures and layers stay).
    set_generation(root, 1)
    first = build(root)
    assert first["actions"]["run"] == len(first["targets"])
    assert digests(first) == digests(generations.built[0])


def test_text_output_and_dry_run(generations: Generations, tmp_path, cli):
    root = generations.copy(tmp_path / "ws")
    files, before = sorted(p for p in _cache(root).rglob("*")), du(_cache(root))
    limit = (generations.sizes[0] + generations.sizes[-1]) // 2
    dry = cli("cache", "gc", "--max-size", str(limit), "--dry-run", cwd=root)
    assert dry.returncode == 0, dry.stderr
    listed = dry.stdout.splitlines()
    assert any("action entry" in line for line in listed), dry.stdout
    assert all("action entry" in line or "stored analysis" in line for line in listed), dry.stdout
    assert re.search(r"would free \d+\.\d MiB \(\d+ action entries, \d+ blobs", dry.stderr), dry.stderr
    assert sorted(p for p in _cache(root).rglob("*")) == files and du(_cache(root)) == before

    as_json = cli("cache", "gc", "--max-size", str(limit), "--dry-run", "--json", cwd=root).json()
    assert as_json["dry_run"] and len(as_json["removed"]) == len(listed)
    assert as_json["after"]["bytes"] <= limit

    real = cli("cache", "gc", "--max-size", str(limit), cwd=root)
    assert real.returncode == 0, real.stderr
    assert re.search(r"cache: freed \d+\.\d MiB .*: \d+\.\d MiB -> \d+\.\d MiB, limit \d+\.\d MiB \(--max-size\)",
                     real.stderr), real.stderr
    assert du(_cache(root)) == as_json["after"]["bytes"]  # the dry run said what the real one did
    again = cli("cache", "gc", "--max-size", str(limit), cwd=root)
    assert "nothing to remove" in again.stderr


def test_what_the_out_tree_holds_stays(generations: Generations, tmp_path, cli):
    """A limit of one byte: every older entry goes, what the out tree was built from stays (and says so)."""
    root = generations.copy(tmp_path / "ws")
    r = cli("cache", "gc", "--max-size", "1", "--json", cwd=root)
    assert r.returncode == 0, r.stderr
    report = r.json()
    assert report["over_limit"] and report["after"]["bytes"] == du(_cache(root))
    assert "still over its limit" in r.stderr and "minibuild clean" in r.stderr
    kept = entries(_cache(root))
    assert len(kept) == generations.built[-1]["actions"]["run"] + generations.built[-1]["actions"]["cached"]
    again = build(root)
    assert again["actions"]["run"] == 0 and digests(again) == digests(generations.built[-1])
    _nothing_dangling(cli, root)


def test_max_size_setting_applies_after_a_build(generations: Generations, tmp_path, cli):
    root = generations.copy(tmp_path / "ws")
    limit = (generations.sizes[0] + generations.sizes[-1]) // 2
    with open(root / "workspace.toml", "a") as f:
        f.write(f'\n[cache]\nmax_size = "{limit / 1e6:.1f}MB"\n')
    noop = build(root)  # stored nothing: the limit waits for a build that does
    assert noop["actions"]["run"] == 0 and du(_cache(root)) > limit
    set_generation(root, 4)
    fourth = build(root)
    assert fourth["actions"]["run"] == len(fourth["targets"])
    assert du(_cache(root)) <= limit
    assert build(root)["actions"]["run"] == 0
    _nothing_dangling(cli, root)
    # `cache gc` with no option uses the same setting.
    r = cli("cache", "gc", "--json", cwd=root)
    assert r.returncode == 0 and r.json()["limit_from"] == "`[cache] max_size` of workspace.toml"


def test_max_size_from_the_environment(generations: Generations, tmp_path, cli):
    root = generations.copy(tmp_path / "ws")
    limit = (generations.sizes[0] + generations.sizes[-1]) // 2
    with open(root / "workspace.toml", "a") as f:
        f.write('\n[cache]\nmax_size = "1"\n')  # the environment wins over it
    set_generation(root, 4)
    build(root, env={"MINIBUILD_CACHE_MAX_SIZE": str(limit)})
    after = du(_cache(root))
    assert after <= limit
    assert build(root)["actions"]["run"] == 0  # the fourth generation stayed whole (a no-op applies no limit)
    set_generation(root, 5)
    build(root, env={"MINIBUILD_CACHE_MAX_SIZE": "off"})
    assert du(_cache(root)) > after  # no limit: the fifth generation was added, nothing removed
    r = cli("cache", "gc", "--json", cwd=root, env={"MINIBUILD_CACHE_MAX_SIZE": "150MB"})
    assert r.returncode == 0 and r.json()["limit"] == 150_000_000
    assert r.json()["limit_from"] == "$MINIBUILD_CACHE_MAX_SIZE" and du(_cache(root)) <= 150_000_000


def test_bad_limits_are_exit_2_with_a_hint(workspace, cli):
    workspace.write("pkg/BUILD.toml", '[[image]]\nname = "sh"\nbinaries = ["/bin/sh"]\n')
    none = cli("cache", "gc", cwd=workspace.root)
    assert none.returncode == 2 and "no size to bring the cache under" in none.stderr
    assert "hint: `minibuild cache gc --max-size 5GiB`" in none.stderr
    for bad in ("5XB", "lots", "-1", "0"):
        r = cli("cache", "gc", "--max-size", bad, cwd=workspace.root)
        assert r.returncode == 2 and f"--max-size: `{bad}` is not a limit for the cache" in r.stderr, r.stderr
        assert "hint:" in r.stderr and "Traceback" not in r.stderr
    env = cli("build", "//pkg:sh", "--no-load", cwd=workspace.root, env={"MINIBUILD_CACHE_MAX_SIZE": "5 apples"})
    assert env.returncode == 2 and "$MINIBUILD_CACHE_MAX_SIZE: `5 apples`" in env.stderr
    assert not (workspace.root / ".minibuild" / "out").exists()  # refused before anything was built
    off = cli("cache", "gc", cwd=workspace.root, env={"MINIBUILD_CACHE_MAX_SIZE": "off"})
    assert off.returncode == 2 and "MINIBUILD_CACHE_MAX_SIZE=off" in off.stderr
    (workspace.root / "workspace.toml").write_text('[workspace]\nname = "test"\n\n[cache]\nmax_size = "5 GiBs"\n')
    toml = cli("build", "//pkg:sh", "--no-load", cwd=workspace.root)
    assert toml.returncode == 2 and "workspace.toml:5" in toml.stderr and "cache.max_size" in toml.stderr
    assert "`5GiB`, `500MB`, `1.5G` or a number of bytes" in toml.stderr and "Traceback" not in toml.stderr
