"""Property-based tests of what minibuild reads that someone else may have written: action-cache entries and the
Docker config file. Whatever an entry file holds (random bytes, random JSON, a real entry with one part replaced by
a random value, with or without a checksum made to match), the executor runs the target's actions to the very
outputs an untouched cache gives, raises nothing, touches nothing outside the cache, and `cache gc` and `cache
verify` read the store without failing; verify leaves no entry it could not use. Whatever `config.json` holds,
reading credentials returns them or raises EngineError (one message, exit 1), nothing else.

Runs in-process on a workspace built once by the CLI (the executor, gc's inventory and the `cache verify` command
as minibuild calls them); inputs come from hypothesis with a fixed seed."""

from __future__ import annotations

import json
import os
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minibuild import cache_gc
from minibuild.build import analyse
from minibuild.cache import Cache
from minibuild.cli.main import main
from minibuild.digest import StatCache
from minibuild.errors import EngineError
from minibuild.executor import Executor
from minibuild.oci.registry.credentials import load_credentials
from minibuild.workspace import Workspace
from tests.reliability.cache_tools import build, entry_bytes, entry_for, make_workspace, state

PROPERTY = settings(deadline=None, derandomize=True, database=None, print_blob=False,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
SCALE = float(os.environ.get("MINIBUILD_PROPERTY_SCALE", "1"))

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=12)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A workspace built by the CLI, its image action (the last one) to tamper with, what an untouched cache gives,
    and a folder beside it that must not change."""
    tmp = tmp_path_factory.mktemp("properties")
    root = make_workspace(tmp / "ws")
    assert build(root).returncode == 0
    (tmp / "beside").mkdir()
    (tmp / "beside" / "victim").write_text("keep\n")
    _, targets = analyse(Workspace(root), ["//..."], "", StatCache())
    actions = list(targets[0].actions)
    cache = Cache(str(root / ".minibuild" / "cache"))
    results, failures = Executor(str(root), cache, StatCache(), jobs=1).run(actions)
    assert not failures and all(r.cached for r in results.values())
    path = entry_for(root / ".minibuild" / "cache", "manifest.json")
    return root, tmp / "beside", actions, {k: r.outputs for k, r in results.items()}, path, path.read_bytes()


def _paths(value, where=()):
    """Every place in a JSON value (a tuple of keys and indexes)."""
    yield where
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        yield from _paths(item, (*where, key))


def _replace(value, where, new):
    if not where:
        return new
    value[where[0]] = _replace(value[where[0]], where[1:], new)
    return value


@st.composite
def tampered(draw, original: bytes) -> bytes:
    """Random bytes, random JSON, or the real entry with one part replaced (its checksum made again, or not)."""
    kind = draw(st.sampled_from(["bytes", "json", "part", "part, checksum made again"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "json":
        return json.dumps(draw(JSON)).encode()
    doc = json.loads(original)
    checked = set(doc) == {"check", "entry"}
    entry = doc["entry"] if checked else doc
    where = draw(st.sampled_from(sorted(_paths(entry), key=repr)[1:]))
    entry = _replace(entry, where, draw(JSON))
    return entry_bytes(entry, checked, None if kind == "part, checksum made again" else doc.get("check"))


def _digests(outputs: dict) -> dict:
    return {action: {name: (b.digest, b.size) for name, b in blobs.items()} for action, blobs in outputs.items()}


@given(data=st.data())
@settings(PROPERTY, max_examples=max(1, int(60 * SCALE)))
def test_tampered_action_entries(built, data, tally, monkeypatch, capsys):
    root, beside, actions, outputs, path, original = built
    before = state(beside)
    bad = data.draw(tampered(original))
    tally["cases"] += 1
    tally["tampered"] += 1
    cache = Cache(str(root / ".minibuild" / "cache"))
    path.write_bytes(bad)
    try:
        results, failures = Executor(str(root), cache, StatCache(), jobs=1).run(actions)
        cache_gc.inventory(cache, str(root), str(root / ".minibuild" / "out"))
        path.write_bytes(bad)
        monkeypatch.chdir(root)
        code = main(["cache", "verify", "--json"])
    except Exception:
        tally["crashes"] += 1
        raise
    assert not failures, failures
    # The outputs an untouched cache gives (an entry rewritten whole, checksum and all, that is still well-formed
    # and names the same blobs may change only their executable bit or the warnings shown: docs/cache.md).
    if _digests({k: r.outputs for k, r in results.items()}) != _digests(outputs):
        tally["tampered_used"] += 1
    assert _digests({k: r.outputs for k, r in results.items()}) == _digests(outputs)
    assert state(beside) == before
    verified = json.loads(capsys.readouterr().out)
    assert code in (0, 1) and verified["corrupt_blobs"] == verified["unchecked"] == 0
    assert not path.exists() or path.read_bytes() == bad and code == 0  # kept only when it was usable after all
    tally["clean_errors"] += 1
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(original)


DOCKER_KEYS = ["auths", "credHelpers", "credsStore", "auth", "username", "password", "identitytoken",
               "127.0.0.1:5000", "https://127.0.0.1:5000/v1/"]


@st.composite
def docker_configs(draw) -> bytes:
    keys = st.sampled_from(DOCKER_KEYS) | st.text(max_size=6)
    value = st.recursive(JSON, lambda inner: st.dictionaries(keys, inner, max_size=4), max_leaves=10)
    if draw(st.booleans()):
        return json.dumps(draw(st.dictionaries(keys, value, max_size=4))).encode()
    return draw(st.binary(max_size=60)) if draw(st.booleans()) else json.dumps(draw(JSON)).encode()


@given(config=docker_configs())
@settings(PROPERTY, max_examples=max(1, int(300 * SCALE)))
def test_docker_config_files(config, tmp_path, monkeypatch, tally):
    (tmp_path / "config.json").write_bytes(config)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    tally["cases"] += 1
    try:
        credentials, warnings = load_credentials(random.Random(config).choice(["127.0.0.1:5000", "docker.io"]))
    except EngineError as exc:
        assert exc.exit_code == 1 and "config.json" in str(exc) and exc.hint, str(exc)
        tally["clean_errors"] += 1
        return
    except Exception:
        tally["crashes"] += 1
        raise
    assert credentials is None or isinstance(credentials.username, str) and isinstance(credentials.password, str)
    assert all(isinstance(w, str) for w in warnings)
