"""Cycles, `minibuild graph` and `minibuild query`, against edges the test declares itself."""

from __future__ import annotations

import json
import re

# Three packages. Each edge below is declared once in the BUILD files, and nowhere else.
EDGES = {
    "//app:top": {"//app:img"},
    "//app:img": {"//lib:conf", "//gen:version"},
    "//app:solo": {"//lib:conf"},
    "//lib:conf": set(),
    "//gen:version": set(),
    "//gen:unused": set(),
}
RULES = {"//app:top": "image", "//app:img": "image", "//app:solo": "image", "//lib:conf": "files",
         "//gen:version": "genrule", "//gen:unused": "genrule"}


def _write(workspace) -> None:
    workspace.write("app/BUILD.toml", """\
[[image]]
name = "top"
files = [{ src = ":img", dest = "/img.tar" }]

[[image]]
name = "img"
files = [{ src = "//lib:conf", dest = "/etc/" }, { src = "//gen:version", dest = "/version" }]

[[image]]
name = "solo"
files = [{ src = "//lib:conf", dest = "/" }]
""")
    workspace.write("lib/BUILD.toml", '[[files]]\nname = "conf"\nfiles = [{ src = "a.conf", dest = "/a.conf" }]\n')
    workspace.write("lib/a.conf", "a = 1\n")
    workspace.write("gen/BUILD.toml", '[[genrule]]\nname = "version"\nouts = ["v"]\ncmd = "echo 1 > $(OUT)"\n\n'
                                      '[[genrule]]\nname = "unused"\nouts = ["u"]\ncmd = "echo u > $(OUT)"\n')


def _closure(roots: set[str]) -> set[str]:
    seen, todo = set(roots), list(roots)
    while todo:
        for d in EDGES[todo.pop()]:
            if d not in seen:
                seen.add(d)
                todo.append(d)
    return seen


def _rdeps(roots: set[str]) -> set[str]:
    return {t for t in EDGES if _closure({t}) & roots}


def test_three_target_cycle(workspace, cli):
    workspace.write("a/BUILD.toml", '[[image]]\nname = "x"\nfiles = [{ src = "//b:y", dest = "/y.tar" }]\n')
    workspace.write("b/BUILD.toml", '[[image]]\nname = "y"\n\nfiles = [{ src = "//c:z", dest = "/z.tar" }]\n')
    workspace.write("c/BUILD.toml", '# c\n[[image]]\nname = "z"\n\n\nfiles = [{ src = "//a:x", dest = "/x.tar" }]\n')
    for start, cycle in (("//a:x", "//a:x -> //b:y -> //c:z -> //a:x"),
                         ("//b:y", "//b:y -> //c:z -> //a:x -> //b:y"),
                         ("//c:z", "//c:z -> //a:x -> //b:y -> //c:z")):
        for command in (("build", start, "--no-load"), ("graph", start), ("query", "deps", start)):
            r = cli(*command, cwd=workspace.root)
            assert r.returncode == 2, r.stderr
            assert "Traceback" not in r.stderr
            assert f"dependency cycle: {cycle}" in r.stderr, r.stderr
            # Where each edge of the cycle is declared: file and line of the `files` key.
            for where in ("a/BUILD.toml:3", "b/BUILD.toml:4", "c/BUILD.toml:6"):
                assert where in r.stderr, r.stderr


def test_cycle_below_a_good_target(workspace, cli):
    """A target outside the cycle that reaches it: the message names the cycle, not the entry path."""
    workspace.write("a/BUILD.toml", '[[image]]\nname = "entry"\nfiles = [{ src = "//b:y", dest = "/y.tar" }]\n\n'
                                    '[[image]]\nname = "x"\nfiles = [{ src = "//b:y", dest = "/y.tar" }]\n')
    workspace.write("b/BUILD.toml", '[[image]]\nname = "y"\nfiles = [{ src = "//c:z", dest = "/z.tar" }]\n')
    workspace.write("c/BUILD.toml", '[[image]]\nname = "z"\nfiles = [{ src = "//b:y", dest = "/y.tar" }]\n')
    r = cli("build", "//a:entry", "--no-load", cwd=workspace.root)
    assert r.returncode == 2, r.stderr
    assert "dependency cycle: //b:y -> //c:z -> //b:y" in r.stderr, r.stderr


def test_graph_json(workspace, cli):
    _write(workspace)
    r = cli("graph", "--format", "json", cwd=workspace.root)
    assert r.returncode == 0, r.stderr
    got = {t["label"]: (t["rule"], set(t["deps"])) for t in r.json()["targets"]}
    assert got == {k: (RULES[k], v) for k, v in EDGES.items()}


def test_graph_dot(workspace, cli):
    _write(workspace)
    r = cli("graph", "--format", "dot", cwd=workspace.root)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("digraph")
    edges = set(re.findall(r'"([^"]+)"\s*->\s*"([^"]+)"', r.stdout))
    nodes = set(re.findall(r'^\s*"([^"]+)"\s*\[', r.stdout, re.M))
    assert nodes == set(EDGES)
    assert edges == {(a, b) for a, bs in EDGES.items() for b in bs}


def test_graph_mermaid(workspace, cli):
    _write(workspace)
    r = cli("graph", "--format", "mermaid", cwd=workspace.root)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("graph")
    ids = {}
    for m in re.finditer(r'^\s*(\w+)\["(//[^ "]+)[^"]*"\]', r.stdout, re.M):
        ids[m.group(1)] = m.group(2)
    assert set(ids.values()) == set(EDGES)
    edges = {(ids[a], ids[b]) for a, b in re.findall(r"^\s*(\w+)\s*-->\s*(\w+)\s*$", r.stdout, re.M)}
    assert edges == {(a, b) for a, bs in EDGES.items() for b in bs}


def test_graph_of_one_target(workspace, cli):
    _write(workspace)
    r = cli("graph", "//app:img", "--format", "json", cwd=workspace.root)
    assert r.returncode == 0, r.stderr
    assert {t["label"] for t in r.json()["targets"]} == _closure({"//app:img"})


def test_graph_tree_is_human_output(workspace, cli):
    _write(workspace)
    r = cli("graph", cwd=workspace.root)
    assert r.returncode == 0, r.stderr
    text = r.stdout + r.stderr
    for label in EDGES:
        assert label in text


def _query(cli, workspace, *args: str, cwd=None) -> list[str]:
    r = cli("query", *args, cwd=cwd or workspace.root)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines == sorted(set(lines)), "one label a line, sorted, no duplicates"
    return lines


def test_query_targets(workspace, cli):
    _write(workspace)
    assert set(_query(cli, workspace, "targets", "//...")) == set(EDGES)
    assert set(_query(cli, workspace, "targets", "//gen:all")) == {"//gen:version", "//gen:unused"}
    assert set(_query(cli, workspace, "targets", ":all", cwd=workspace.root / "lib")) == {"//lib:conf"}


def test_query_deps(workspace, cli):
    _write(workspace)
    for root in EDGES:
        assert set(_query(cli, workspace, "deps", root)) == _closure({root}), root
    assert set(_query(cli, workspace, "deps", "//app:all")) == _closure({"//app:top", "//app:img", "//app:solo"})


def test_query_rdeps(workspace, cli):
    _write(workspace)
    for root in EDGES:
        assert set(_query(cli, workspace, "rdeps", root)) == _rdeps({root}), root
    # Within a smaller universe, dependents outside it are not listed.
    assert set(_query(cli, workspace, "rdeps", "//lib:conf", "--universe", "//app:solo")) == {"//lib:conf",
                                                                                             "//app:solo"}


def test_query_output_is_data_only(workspace, cli):
    _write(workspace)
    r = cli("graph", "--format", "json", cwd=workspace.root)
    json.loads(r.stdout)  # nothing but the JSON on stdout


def test_graph_with_actions(workspace, cli):
    _write(workspace)
    r = cli("graph", "--actions", "--format", "json", cwd=workspace.root)
    assert r.returncode == 0, r.stderr
    actions = {t["label"]: t["actions"] for t in r.json()["targets"]}
    assert set(actions) == set(EDGES)
    assert actions["//lib:conf"] == []  # a group of source files runs nothing
    assert len(actions["//gen:version"]) == 1
    for image in ("//app:top", "//app:img", "//app:solo"):
        assert actions[image] and all(a.startswith(image + "#") for a in actions[image])
