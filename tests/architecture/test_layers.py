"""The shape of the code (docs/architecture.md): imports point only down the layers, modules and functions
stay small. Read from the source with `ast`, so imports inside functions count too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80

# Lowest first. A module may import from its own layer's package and from any lower layer.
LAYERS = [
    ("engine", 0),  # minibuild/*.py: labels, workspace, rule API, actions, analysis, executor, cache, build
    ("elf", 1),
    ("oci", 1),
    ("image", 2),
    ("packages", 2),  # package sysroots: Debian indices, resolver, lock, fetch, unpack
    ("remote", 2),  # remote cache clients: the engine defines their interface (remote_cache.py)
    ("rules", 3),
    ("reports", 4),
    ("cli", 5),
]
RANK = dict(LAYERS)


def _sources() -> list[Path]:
    return sorted([*(REPO / "minibuild").rglob("*.py"), *(REPO / "rules").rglob("*.py")])


def _module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    if parts[0] == "rules":
        parts[0] = "minibuild_rules"
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str | None:
    """The layer of a project module, or None for anything outside the project."""
    parts = module.split(".")
    if parts[0] == "minibuild_rules":
        return "rules"
    if parts[0] != "minibuild":
        return None
    if module == "minibuild.__main__":
        return "cli"
    if len(parts) > 1 and parts[1] in RANK and parts[1] != "engine":
        return parts[1]
    return "engine"


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return found


def _upward_imports() -> list[str]:
    bad = []
    for path in _sources():
        here = layer_of(_module_name(path))
        assert here is not None
        for line, name in _imports(path):
            there = layer_of(name)
            if there is None or there == here:
                continue
            if name in ("minibuild.__version__",) or (there == "engine" and name.count(".") > 1
                                                        and layer_of(name.rsplit(".", 1)[0]) != "engine"):
                continue
            if RANK[there] >= RANK[here]:
                bad.append(f"{path.relative_to(REPO)}:{line}: {here} imports {name} ({there})")
    return bad


def test_imports_point_down_the_layers():
    assert _upward_imports() == []


def test_the_engine_knows_nothing_of_images():
    engine = [p for p in _sources() if layer_of(_module_name(p)) == "engine"]
    assert len(engine) > 10
    for path in engine:
        for line, name in _imports(path):
            assert layer_of(name) in (None, "engine"), f"{path.relative_to(REPO)}:{line} imports {name}"


def test_the_check_sees_an_upward_import(tmp_path, monkeypatch):
    """The layer test itself can fail: an engine module importing the CLI is caught."""
    fake = REPO / "minibuild" / "_layer_probe_tmp.py"
    fake.write_text("def f():\n    from minibuild.cli import ui\n", encoding="utf-8")
    try:
        assert any("_layer_probe_tmp.py:2: engine imports minibuild.cli" in b for b in _upward_imports())
    finally:
        fake.unlink()


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(REPO)))
def test_modules_and_functions_are_small(path):
    text = path.read_text(encoding="utf-8")
    assert text.count("\n") <= MAX_MODULE_LINES, f"{path.name} has {text.count(chr(10))} lines"
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for node in ast.walk(ast.parse(text))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.end_lineno is not None and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert long == []


def test_every_package_is_listed_in_pyproject():
    """A package missing from pyproject's `packages` works in a checkout and is absent from a wheel."""
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {_module_name(p) for p in _sources() if p.name == "__init__.py"}
    assert found == listed
