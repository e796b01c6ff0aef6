"""Files and folders minibuild may not write or read, and a Docker config of the wrong shape (issue 15 #10): each
was a traceback (exit 3). Now one message saying what and where, no traceback, and nothing claimed that did not
happen (`cache verify` said "removed" of a blob it could not remove).

File modes stop no one running as root, and CI runs as root: these tests run the CLI as the user `nobody`
(`setpriv`: uid and gid 65534, no groups, no capabilities) in a workspace under /tmp that user can reach."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from minibuild.errors import EngineError
from minibuild.oci.registry.credentials import load_credentials
from tests.conftest import run_cli
from tests.reliability.cache_tools import as_nobody, give_to_nobody, make_workspace, no_traceback, nobody_dir


@pytest.fixture
def place():
    with nobody_dir() as path:
        (path / "home").mkdir()
        give_to_nobody(path / "home")
        yield path


def _clean_error(r, tally, code: int, *needles: str) -> None:
    tally["cases"] += 1
    if not no_traceback(r):
        tally["crashes"] += 1
    assert r.returncode == code and no_traceback(r), r.stderr
    for needle in needles:
        assert needle in r.stderr, r.stderr
    tally["clean_errors"] += 1


def test_a_workspace_folder_that_is_not_writable(place, tally):
    root = make_workspace(place / "ws")  # root's, 0755: nobody reads it and cannot write it
    root.chmod(0o755)
    (root / "img").chmod(0o755)
    r = as_nobody("build", "//...", "--no-load", cwd=root, home=place / "home")
    _clean_error(r, tally, 2, "cannot create `.minibuild`", "Permission denied", "writable")
    assert not (root / ".minibuild").exists()


def _built_by_nobody(place: Path) -> Path:
    root = make_workspace(place / "ws")
    give_to_nobody(root)
    r = as_nobody("build", "//...", "--no-load", cwd=root, home=place / "home")
    assert r.returncode == 0, r.stderr
    return root


def test_a_cache_tmp_folder_of_mode_000(place, tally):
    root = _built_by_nobody(place)
    (root / "img" / "motd").write_text("changed\n")  # the layers run again: they need a work directory
    (root / ".minibuild" / "cache" / "tmp").chmod(0)
    r = as_nobody("build", "//...", "--no-load", cwd=root, home=place / "home")
    _clean_error(r, tally, 1, "cache/tmp", "Permission denied")


def test_unreadable_cas_folders_and_blobs_in_cache_verify(place, tally):
    root = _built_by_nobody(place)
    cas = root / ".minibuild" / "cache" / "cas" / "sha256"
    shards = sorted(p for p in cas.iterdir())
    shards[0].chmod(0)
    blob = next(p for p in sorted(shards[1].iterdir()))
    blob.chmod(0)
    entries = sorted((root / ".minibuild" / "cache" / "ac").glob("*/*.json"))
    r = as_nobody("cache", "verify", "--json", cwd=root, home=place / "home")
    _clean_error(r, tally, 1, f"cannot list `cas/sha256/{shards[0].name}`", "not checked")
    assert f"blob `sha256:{blob.name}` cannot be read (Permission denied): not checked, left in place" in r.stderr
    assert "removed" not in r.stderr.replace("(removed)", "")  # the summary line says what removing there was
    counts = json.loads(r.stdout)
    assert counts["corrupt_blobs"] == counts["discarded_actions"] == 0 and counts["unchecked"] >= 2
    # An entry naming a blob of the folder it cannot list is not taken for one whose blob is gone: it stays.
    assert blob.exists() and sorted((root / ".minibuild" / "cache" / "ac").glob("*/*.json")) == entries


def test_a_blob_verify_cannot_remove(place, tally):
    """A corrupt blob in a shard folder the user may not write: said to be corrupt and left, not "removed"."""
    root = _built_by_nobody(place)
    shard = sorted((root / ".minibuild" / "cache" / "cas" / "sha256").iterdir())[0]
    blob = next(iter(sorted(shard.iterdir())))
    os.chmod(blob, 0o644)
    blob.write_bytes(b"not what it was\n")
    shard.chmod(0o555)
    r = as_nobody("cache", "verify", cwd=root, home=place / "home")
    _clean_error(r, tally, 1, "does not hash to its name, and cannot be removed (Permission denied)")
    assert blob.exists()


CONFIGS = {  # the config, and what the message says of it
    "auths a list": ({"auths": ["127.0.0.1:5000"]}, "`auths` in the docker config"),
    "credHelpers a list": ({"credHelpers": ["127.0.0.1:5000"]}, "`credHelpers` in the docker config"),
    "auths a string": ({"auths": "127.0.0.1:5000"}, "is a string, not an object"),
    "auth a number": ({"auths": {"127.0.0.1:5000": {"auth": 42}}}, "is a number, not a string"),
    "password a list": ({"auths": {"127.0.0.1:5000": {"username": "u", "password": ["p"]}}},
                        "`auths.127.0.0.1:5000.password` in the docker config"),
}


@pytest.mark.parametrize("case", sorted(CONFIGS))
def test_a_docker_config_of_the_wrong_shape(tmp_path, monkeypatch, tally, case):
    (tmp_path / "docker").mkdir()
    config, said = CONFIGS[case]
    (tmp_path / "docker" / "config.json").write_text(json.dumps(config))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    with pytest.raises(EngineError, match="in the docker config"):  # the message: checked through the CLI below
        load_credentials("127.0.0.1:5000")
    root = make_workspace(tmp_path / "ws")
    # The push reads the config before it sends anything: no registry is needed to see the error.
    r = run_cli("push", "//img:b", "--to", "127.0.0.1:5000/minibuild-test/b:1", cwd=root,
                env={"DOCKER_CONFIG": str(tmp_path / "docker")})
    _clean_error(r, tally, 1, "config.json", said)
