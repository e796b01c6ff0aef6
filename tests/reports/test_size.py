"""`minibuild size`: per-image rows and catalog totals, checked against the build's own JSON."""

from __future__ import annotations

from tests.conftest import run_cli


def test_size_json_matches_the_build(catalog):
    root, built = catalog
    r = run_cli("size", "//...", "--json", cwd=root)
    assert r.returncode == 0, r.stderr
    report = r.json()
    targets = {t["label"]: t for t in built["targets"]}
    assert [i["label"] for i in report["images"]] == sorted(targets)
    owners: dict[str, int] = {}
    for t in targets.values():
        for layer in t["layers"]:
            owners[layer["digest"]] = owners.get(layer["digest"], 0) + 1
    for row in report["images"]:
        t = targets[row["label"]]
        assert row["bytes"] == t["size"] and row["compressed_bytes"] == t["compressed_size"]
        assert row["layers"] == len(t["layers"]) and row["files"] == t["files"]
        assert row["shared_bytes"] == sum(x["size"] for x in t["layers"] if owners[x["digest"]] > 1)
        assert 0 < row["shared_bytes"] <= row["compressed_bytes"]  # the loader+libc layer at least
        assert row["budget"]["status"] == "-"
    unique = {x["digest"]: x["size"] for t in targets.values() for x in t["layers"]}
    assert report["total"]["sum_bytes"] == sum(t["compressed_size"] for t in targets.values())
    assert report["total"]["unique_bytes"] == sum(unique.values())
    assert report["total"]["unique_bytes"] < report["total"]["sum_bytes"]


def test_size_table(catalog):
    root, _ = catalog
    r = run_cli("size", "//shells/...", cwd=root)
    assert r.returncode == 0, r.stderr
    assert "//shells:bash" in r.stderr and "//shells:dash" in r.stderr and "2 images" in r.stderr
    assert r.stdout == ""


def test_budget_from_summary():
    from minibuild.reports.size import budget, parse_size

    assert parse_size("5 MiB") == 5 * 1024 * 1024 and parse_size(1200) == 1200 and parse_size("2kB") == 2000
    assert parse_size("lots") is None
    assert budget({"size": 10, "max_size": 20})["status"] == "ok"
    assert budget({"size": 30, "max_size": "20"})["status"] == "over"
    assert budget({"size": 30})["status"] == "-"


def test_budget_column_reads_the_image_max_size(workspace):
    workspace.write("img/BUILD.toml", '[[image]]\nname = "a"\nbinaries = ["/bin/dash"]\nmax_size = "10 MiB"\n\n'
                                      '[[image]]\nname = "b"\nbinaries = ["/bin/dash"]\n')
    r = run_cli("size", "//...", "--json", cwd=workspace.root)
    assert r.returncode == 0, r.stderr
    a, b = r.json()["images"]
    assert a["budget"] == {"max_size": 10 * 1024 * 1024, "status": "ok", "headroom": 10 * 1024 * 1024 - a["bytes"]}
    assert b["budget"]["status"] == "-"
