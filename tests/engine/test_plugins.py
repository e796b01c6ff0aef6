"""Rules as plugins: rule kinds (and macros) from installed packages, through the `minibuild.rules` entry points.

Most tests install a plugin the cheap way: a package and a hand-written `.dist-info` (what pip leaves behind)
in a directory on PYTHONPATH. `test_pip_installed_plugin` does it for real: a fresh virtual environment,
minibuild (a copy of this checkout) and tests/plugins/minibuild_hello installed into it with pip, offline.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli
from tests.engine.helpers import out_dir

HELLO = REPO / "tests" / "plugins" / "minibuild_hello"
BUILD = '[[hello]]\nname = "greet"\nto = "world"\n\n[[hellos]]\nname = "team"\nto = ["ann", "bob"]\n'


def fake_dist(site: Path, name: str, version: str, entry_points: dict[str, str],
              modules: dict[str, str] | None = None) -> Path:
    """An installed distribution as importlib.metadata sees one: `<name>-<version>.dist-info` with its METADATA
    and entry_points.txt, and its modules, in `site`."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(
        "[minibuild.rules]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items()))
    for rel, text in (modules or {}).items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(text)
    return info


def hello_dist(site: Path) -> Path:
    """tests/plugins/minibuild_hello, "installed" in `site`."""
    shutil.copytree(HELLO / "minibuild_hello", site / "minibuild_hello")
    return fake_dist(site, "minibuild-hello", "0.1.0", {"hello": "minibuild_hello.rules",
                                                        "hellos": "minibuild_hello.rules:hellos"})


@pytest.fixture
def site(tmp_path):
    return tmp_path / "site"


@pytest.fixture
def ws(workspace):
    workspace.write("p/BUILD.toml", BUILD)
    return workspace.root


def imported(stderr: str) -> set[str]:
    """The modules a `python -v` run imported (importlib.import_module included, which -X importtime misses)."""
    return set(re.findall(r"^import '([\w.]+)'", stderr, re.M))


def mb(site: Path, root: Path, *args: str, verbose: bool = False):
    """`python [-v] -m minibuild ARGS` with `site` on PYTHONPATH."""
    return run_cli(*args, cwd=root, env={"PYTHONPATH": str(site), **({"PYTHONVERBOSE": "1"} if verbose else {})})


def build(site: Path, root: Path, verbose: bool = False) -> tuple[dict, set[str]]:
    """Build //... (no load); the JSON summary and the modules imported (with `verbose`)."""
    r = mb(site, root, "build", "//...", "--json", "--no-load", verbose=verbose)
    assert r.returncode == 0, r.stderr
    return r.json(), imported(r.stderr)


def one_error(r) -> str:
    """The stderr of a clean failure: exit 2, one `error:` line, no traceback."""
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    assert r.stderr.count("error:") == 1, r.stderr
    return r.stderr


def test_a_plugin_rule_and_macro_build(site, ws):
    hello_dist(site)
    out, _ = build(site, ws)
    assert sorted(t["label"] for t in out["targets"]) == ["//p:greet", "//p:team_ann", "//p:team_bob"]
    assert (out_dir(ws, "//p:greet") / "greet.txt").read_text() == "hello, world!\n"
    assert (out_dir(ws, "//p:team_bob") / "team_bob.txt").read_text() == "hello, bob!\n"


def test_the_analysis_cache_follows_the_plugins(site, ws):
    """A no-op build imports no rule module; editing a plugin's code, installing or removing one, analyses again."""
    info = hello_dist(site)
    build(site, ws)
    out, imports = build(site, ws, verbose=True)
    assert out["actions"]["run"] == 0
    # (minibuild_hello.actions is: the params of the stored actions are instances of a class of it.)
    assert not imports & {"minibuild.analysis", "minibuild_hello.rules", "minibuild_rules.image", "pydantic"}

    rules = site / "minibuild_hello" / "rules.py"
    rules.write_text(rules.read_text().replace('GREETING = "hello"', 'GREETING = "hi"'))
    out, imports = build(site, ws, verbose=True)
    assert "minibuild_hello.rules" in imports
    assert (out_dir(ws, "//p:greet") / "greet.txt").read_text() == "hi, world!\n"

    # Another package defining `hello` appears: the stored analysis must not hide the conflict.
    fake_dist(site, "other-hello", "2.0", {"hello": "other_hello"}, {"other_hello.py": ""})
    assert "other-hello 2.0" in one_error(mb(site, ws, "build", "//...", "--no-load"))
    shutil.rmtree(site / "other_hello-2.0.dist-info")
    build(site, ws)

    shutil.rmtree(info)  # uninstalled
    err = one_error(mb(site, ws, "build", "//...", "--no-load"))
    assert "unknown rule `hello`" in err


def test_a_plugin_that_fails_to_import(site, ws):
    fake_dist(site, "minibuild-broken", "1.0", {"broken": "broken_rules"},
              {"broken_rules.py": "raise RuntimeError('the plugin is broken')\n"})
    err = one_error(mb(site, ws, "build", "//...", "--no-load"))
    assert "minibuild-broken 1.0" in err and "the plugin is broken" in err
    assert "pip uninstall minibuild-broken" in err
    fake_dist(site, "minibuild-exits", "1.0", {"exits": "exits_rules"},
              {"exits_rules.py": "import sys\nsys.exit(3)\n"})
    shutil.rmtree(site / "minibuild_broken-1.0.dist-info")
    assert "minibuild-exits 1.0" in one_error(mb(site, ws, "rules"))


def test_two_packages_defining_one_rule(site, ws):
    hello_dist(site)
    fake_dist(site, "other-hello", "2.0", {"hello": "other_hello"}, {"other_hello.py": ""})
    err = one_error(mb(site, ws, "build", "//...", "--no-load"))
    assert "rule `hello` is defined by two installed packages" in err
    assert "minibuild-hello 0.1.0" in err and "other-hello 2.0" in err


def test_a_plugin_cannot_replace_a_built_in_rule(site, ws):
    fake_dist(site, "my-image", "1.0", {"image": "my_image"}, {"my_image.py": ""})
    err = one_error(mb(site, ws, "build", "//...", "--no-load"))
    assert "plugin `my-image 1.0` defines the rule `image`" in err and "built into minibuild" in err


@pytest.mark.parametrize("value, why", [
    ("minibuild_hello.actions", "`minibuild_hello.actions` has no `extra`"),
    ("minibuild_hello.rules:GREETING", "`minibuild_hello.rules.GREETING` is a `str`, not a rule or macro"),
])
def test_an_entry_point_that_names_no_rule(site, ws, value, why):
    shutil.copytree(HELLO / "minibuild_hello", site / "minibuild_hello")
    fake_dist(site, "minibuild-extra", "0.2", {"extra": value})
    err = one_error(mb(site, ws, "build", "//...", "--no-load"))
    assert f'the entry point `extra = "{value}"` of plugin `minibuild-extra 0.2` names no rule' in err
    assert why in err


def test_a_workspace_rule_file_and_a_plugin_define_one_rule(site, workspace):
    hello_dist(site)
    workspace.write("workspace.toml", '[workspace]\nname = "t"\n\n[rules]\nload = ["tools/hello.py"]\n')
    workspace.write("tools/hello.py", "from minibuild_hello.rules import hello\n")
    workspace.write("p/BUILD.toml", BUILD)
    err = one_error(mb(site, workspace.root, "build", "//...", "--no-load"))
    assert "rule `hello` from `tools/hello.py` is already defined by plugin `minibuild-hello 0.1.0`" in err
    assert "workspace.toml:5" in err


# --- the real thing: pip, a fresh virtual environment, no network -------------------------------------------

def _run(*cmd: str | os.PathLike[str], cwd: Path | None = None, env: dict[str, str] | None = None,
         check: bool = True) -> subprocess.CompletedProcess[str]:
    # Not PYTHONPATH: the venv must import its own minibuild (the copy), whatever runs the tests.
    base = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={**base, "NO_COLOR": "1", "COLUMNS": "200", "PIP_NO_CACHE_DIR": "1",
                               "PIP_DISABLE_PIP_VERSION_CHECK": "1", **(env or {})})
    if check:
        assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def make_venv(tmp: Path) -> tuple[Path, Path]:
    """A virtual environment (without pip of its own, and without the system's site-packages) that sees the
    packages of the one running the tests through a .pth file; minibuild installed into it with pip from a copy
    of this checkout (editable, so the test can edit its files), offline. (python, copy of the checkout)"""
    venv = tmp / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    purelib = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
    (purelib / "_minibuild_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    src = tmp / "minibuild-src"
    src.mkdir()
    for name in ("minibuild", "rules"):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    _run(python, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-build-isolation", "-e", src)
    return python, src


def test_pip_installed_plugin(tmp_path):
    python, src = make_venv(tmp_path)
    plugin = tmp_path / "minibuild-hello"
    shutil.copytree(HELLO, plugin, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    _run(python, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-build-isolation", plugin)
    ws = tmp_path / "ws"
    (ws / "p").mkdir(parents=True)
    (ws / "workspace.toml").write_text('[workspace]\nname = "t"\n')
    (ws / "p" / "BUILD.toml").write_text(BUILD)

    def mb_build(*, verbose: bool = False) -> tuple[dict, set[str]]:
        r = _run(python, "-m", "minibuild", "build", "//...", "--json", "--no-load", cwd=ws,
                 env={"PYTHONVERBOSE": "1"} if verbose else {})
        return json.loads(r.stdout), imported(r.stderr)

    def ran(out: dict) -> dict[str, bool]:
        return {t["label"]: t["rebuilt"] for t in out["targets"]}

    out, _ = mb_build()
    assert ran(out) == {"//p:greet": True, "//p:team_ann": True, "//p:team_bob": True}
    assert (out_dir(ws, "//p:greet") / "greet.txt").read_text() == "hello, world!\n"
    assert (out_dir(ws, "//p:team_ann") / "team_ann.txt").read_text() == "hello, ann!\n"

    listed = json.loads(_run(python, "-m", "minibuild", "rules", "--json", cwd=ws).stdout)
    kinds = {r["name"]: r for r in listed["rules"]}
    assert kinds["hello"]["source"] == {"kind": "plugin", "package": "minibuild-hello", "version": "0.1.0",
                                        "where": "minibuild_hello.rules"}
    assert kinds["hellos"]["kind"] == "macro" and kinds["image"]["source"]["kind"] == "built-in"

    out, imports = mb_build(verbose=True)  # a no-op: nothing runs, no rule module is imported
    assert out["actions"]["run"] == 0
    assert not imports & {"minibuild.analysis", "minibuild_hello.rules", "minibuild_rules.image"}

    # The plugin's action module is in its action's key: an edit runs the action again.
    actions = Path(_run(python, "-c", "import minibuild_hello.actions as m; print(m.__file__)").stdout.strip())
    assert actions.is_relative_to(python.parent.parent), actions  # installed in the venv, not the copy
    actions.write_text(actions.read_text().replace("run.params.text + ", "run.params.text.upper() + "))
    out, _ = mb_build()
    assert ran(out) == {"//p:greet": True, "//p:team_ann": True, "//p:team_bob": True}
    assert (out_dir(ws, "//p:greet") / "greet.txt").read_text() == "HELLO, WORLD!\n"

    # A minibuild file no action imports (the CLI): analysed again, but no action runs.
    clean = src / "minibuild" / "cli" / "commands" / "clean.py"
    clean.write_text(clean.read_text() + "\n# edited by test_pip_installed_plugin\n")
    out, imports = mb_build(verbose=True)
    assert "minibuild_hello.rules" in imports, "the stored analysis survived an edit of minibuild"
    assert out["actions"]["run"] == 0, ran(out)

    _run(python, "-m", "pip", "uninstall", "-q", "-y", "minibuild-hello")
    r = _run(python, "-m", "minibuild", "build", "//...", "--no-load", cwd=ws, check=False)
    assert r.returncode == 2 and "unknown rule `hello`" in r.stderr and "Traceback" not in r.stderr, r.stderr
