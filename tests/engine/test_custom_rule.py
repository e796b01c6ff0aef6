"""A rule a workspace defines itself (`[rules] load`), built from a copy of examples/custom-rule."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile

import pytest

from tests.conftest import REPO
from tests.engine.helpers import image_files, out_dir

EXAMPLE = REPO / "examples" / "custom-rule"
MOTD = b"Welcome to the custom-rule example.\nThis file was written by a rule the workspace defines.\n"


@pytest.fixture
def example(tmp_path):
    dest = tmp_path / "custom-rule"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns(".minibuild"))
    return dest


def _build(cli, root, *labels: str, load: bool = False) -> dict:
    r = cli("build", *(labels or ("//site/...",)), "--json", *(() if load else ("--no-load",)), cwd=root)
    assert r.returncode == 0, r.stderr
    return r.json()


def _docker_archive_file(tarball, path: str) -> bytes:
    """A file of the image, read from the `docker load` tarball (manifest.json -> layer tars)."""
    found = None
    with tarfile.open(tarball) as outer:
        [manifest] = json.load(outer.extractfile("manifest.json"))
        for layer in manifest["Layers"]:
            data = outer.extractfile(layer).read()
            with tarfile.open(fileobj=io.BytesIO(data)) as inner:
                for m in inner.getmembers():
                    if "/" + m.name.lstrip("./") == path and m.isfile():
                        found = inner.extractfile(m).read()
    assert found is not None, f"{path} not in {tarball}"
    return found


def test_custom_rule_output_lands_in_the_image(example, cli):
    out = _build(cli, example)
    kinds = {t["label"]: t["kind"] for t in out["targets"]}
    assert kinds == {"//site:motd": "text_file", "//site:site": "image"}
    assert (out_dir(example, "//site:motd") / "motd").read_bytes() == MOTD
    files = image_files(out_dir(example, "//site:site") / "oci")
    assert files["/etc/motd"] == (0o644, MOTD)
    assert _docker_archive_file(out_dir(example, "//site:site") / "image.tar", "/etc/motd") == MOTD
    again = _build(cli, example)
    assert again["actions"]["run"] == 0


def test_changing_an_attribute_of_the_custom_rule_rebuilds(example, cli):
    _build(cli, example)
    build = example / "site" / "BUILD.toml"
    build.write_text(build.read_text().replace('out = "motd"', 'out = "motd"\nupper = true'))
    out = _build(cli, example)
    assert {t["label"]: t["rebuilt"] for t in out["targets"]} == {"//site:motd": True, "//site:site": True}
    assert image_files(out_dir(example, "//site:site") / "oci")["/etc/motd"][1] == MOTD.upper()


def test_editing_the_action_function_rebuilds(example, cli):
    """The rule file is code the action runs: an edit to it must not reuse outputs the old code wrote."""
    _build(cli, example)
    rule_file = example / "tools" / "rules" / "text_file.py"
    rule_file.write_text(rule_file.read_text().replace('line + "\\n"', '"> " + line + "\\n"'))
    out = _build(cli, example)
    assert {t["label"]: t["rebuilt"] for t in out["targets"]}["//site:motd"] is True
    expected = b"".join(b"> " + line + b"\n" for line in MOTD.splitlines())
    assert image_files(out_dir(example, "//site:site") / "oci")["/etc/motd"][1] == expected


def test_a_broken_rule_file_is_bad_input(example, cli):
    (example / "tools" / "rules" / "text_file.py").write_text("this is not python\n")
    r = cli("build", "//...", "--no-load", cwd=example)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert "tools/rules/text_file.py" in r.stderr


RULE_FILE = '''\
from minibuild.rule import Attrs, rule
from minibuild_rules.providers import DefaultInfo


class A(Attrs):
    pass


def write(run):
    with open(run.outputs["out"], "w") as f:
        f.write("{word}\\n")


def _impl(ctx):
    out = ctx.actions.declare("out")
    ctx.actions.run(mnemonic="Write", function=write, version=1, params={{}}, inputs=[],
                    outputs=[out], description=f"writing `{{ctx.label}}`")
    return [DefaultInfo((out,))]


{word} = rule(implementation=_impl, attrs=A)
'''


def test_two_rule_files_with_colliding_module_names(workspace, cli):
    workspace.write("workspace.toml", '[workspace]\nname = "t"\n\n[rules]\nload = ["tools/a_b.py", "tools_a/b.py"]\n')
    workspace.write("tools/a_b.py", RULE_FILE.format(word="one"))
    workspace.write("tools_a/b.py", RULE_FILE.format(word="two"))
    workspace.write("p/BUILD.toml", '[[one]]\nname = "x"\n\n[[two]]\nname = "y"\n')
    _build(cli, workspace.root, "//...")
    assert (out_dir(workspace.root, "//p:x") / "out").read_text() == "one\n"
    assert (out_dir(workspace.root, "//p:y") / "out").read_text() == "two\n"


@pytest.mark.docker
def test_custom_rule_image_runs(example, cli, docker_engine):
    out = _build(cli, example, "//site:site", load=True)
    [target] = out["targets"]
    assert target["loaded"] in ("loaded", "already loaded")
    r = subprocess.run([docker_engine, "run", "--rm", target["tag"]], capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout == MOTD
