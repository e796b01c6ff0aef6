"""A genrule's outputs are regular files it wrote: a link to something outside its work directory is refused,
and the file it names is neither changed (mode, links, bytes) nor shipped; a link inside is stored as a copy."""

from __future__ import annotations

import os

import pytest

from tests.engine.helpers import out_dir
from tests.genrule.helpers import fingerprint, links_in_store, scratch_left


@pytest.fixture
def victim(tmp_path_factory):
    """A private file outside the workspace, as `echo s >/tmp/p; chmod 600 /tmp/p`."""
    path = tmp_path_factory.mktemp("outside") / "p"
    path.write_text("secret\n")
    path.chmod(0o600)
    return path


def _genrule(cmd: str, *, sandbox: bool = True, outs: str = '["o"]', srcs: str = "[]") -> str:
    """A genrule `//pkg:g`; `sandbox` is written only when false (so that, but for those, each test runs as
    it is on a minibuild from before the sandbox, and fails there)."""
    return (f'[[genrule]]\nname = "g"\nsrcs = {srcs}\nouts = {outs}\ncmd = """{cmd}"""\n'
            + ("" if sandbox else "sandbox = false\n"))


@pytest.mark.parametrize("sandbox", [True, False], ids=["sandbox", "no-sandbox"])
def test_a_symlink_to_a_file_outside_is_refused(workspace, cli, victim, sandbox):
    before = fingerprint(victim)
    workspace.write("pkg/BUILD.toml", _genrule(f"ln -s {victim} $(OUT)", sandbox=sandbox))
    r = cli("build", "//pkg:g", "--no-load", cwd=workspace.root)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert f"output `o` of `//pkg:g` is a symbolic link to `{victim}`, outside its work directory" in r.stderr
    assert fingerprint(victim) == before  # was chmod-ed to 0444 and stored
    assert links_in_store(workspace.root) == []
    assert not (out_dir(workspace.root, "//pkg:g") / "o").exists()
    assert scratch_left(workspace.root) == []


def test_a_hard_link_to_a_file_outside_is_refused(workspace, cli, victim):
    """Only without the sandbox can a command link a file of the host (in it, the work directory is a mount
    of its own, and link(2) does not cross mounts)."""
    before = fingerprint(victim)
    workspace.write("pkg/BUILD.toml", _genrule(f"ln {victim} $(OUT)", sandbox=False))
    r = cli("build", "//pkg:g", "--no-load", cwd=workspace.root)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert "output `o` of `//pkg:g` is a hard link to a file outside its work directory" in r.stderr
    assert fingerprint(victim) == before  # one link again: the command's work directory is gone
    assert not (out_dir(workspace.root, "//pkg:g") / "o").exists()


@pytest.mark.parametrize("sandbox", [True, False], ids=["sandbox", "no-sandbox"])
def test_a_hard_link_to_a_source_leaves_the_source_alone(workspace, cli, sandbox):
    src = workspace.write("pkg/in.txt", "source\n")
    src.chmod(0o644)
    before = fingerprint(src)
    workspace.write("pkg/BUILD.toml", _genrule("ln $(SRC) $(OUT)", sandbox=sandbox, srcs='["in.txt"]'))
    r = cli("build", "//pkg:g", "--no-load", cwd=workspace.root)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    if sandbox:  # its sources are a read-only mount of their own: ln fails
        assert "Invalid cross-device link" in r.stderr or "Read-only file system" in r.stderr, r.stderr
    else:
        assert "is a hard link to a file outside its work directory" in r.stderr
    assert fingerprint(src) == before
    assert scratch_left(workspace.root) == []


@pytest.mark.parametrize("target", ["a", "./sub/../a", "/build/a"])
def test_a_symlink_inside_the_work_directory_is_stored_as_a_copy(workspace, cli, target):
    workspace.write("pkg/BUILD.toml", _genrule(f"mkdir sub; printf made > a; ln -s {target} $(OUT)"))
    r = cli("build", "//pkg:g", "--no-load", cwd=workspace.root)
    assert r.returncode == 0, r.stderr
    built = out_dir(workspace.root, "//pkg:g") / "o"
    assert not built.is_symlink() and built.read_bytes() == b"made"
    assert links_in_store(workspace.root) == []


def test_hard_links_between_outputs_are_copies(workspace, cli):
    workspace.write("pkg/BUILD.toml", _genrule("printf x > a; ln a b; chmod 755 a", outs='["a", "b"]',
                                               sandbox=False))
    r = cli("build", "//pkg:g", "--no-load", cwd=workspace.root)
    assert r.returncode == 0, r.stderr
    a, b = (out_dir(workspace.root, "//pkg:g") / n for n in "ab")
    assert a.read_bytes() == b.read_bytes() == b"x"
    assert os.stat(a).st_mode & 0o111  # both executable: the one file they were has mode 0755


@pytest.mark.parametrize("cmd, says", [
    ("mkdir $(OUT)", "output `o` of `//pkg:g` is a directory, not a regular file"),
    ("mkfifo $(OUT)", "output `o` of `//pkg:g` is a device, socket or pipe, not a regular file"),
    ("ln -s nowhere $(OUT)", "`//pkg:g` did not write its declared output `o` (a symbolic link to nothing)"),
    ("true", "`//pkg:g` did not write its declared output `o`"),
])
def test_what_is_not_a_regular_file_is_one_clear_error(workspace, cli, cmd, says):
    workspace.write("pkg/BUILD.toml", _genrule(cmd))
    r = cli("build", "//pkg:g", "--no-load", cwd=workspace.root)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert says in r.stderr
