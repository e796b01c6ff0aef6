"""Which remote cache a build uses: the command line over the environment over workspace.toml."""

from __future__ import annotations

import base64

import pytest

from minibuild.errors import InputError
from minibuild.remote_entry import EntryError, entry_files, parse_entry
from minibuild.remote_settings import RemoteChoice, remote_settings
from minibuild.workspace import Workspace


def _workspace(tmp_path, cache: str = "") -> Workspace:
    (tmp_path / "workspace.toml").write_text('[workspace]\nname = "s"\n' + cache)
    return Workspace(tmp_path)


def test_nothing_configured(tmp_path):
    assert remote_settings(_workspace(tmp_path), RemoteChoice(), {}) is None


def test_precedence(tmp_path):
    ws = _workspace(tmp_path, '[cache]\nremote = "http://ws/c"\ninstance = "main"\nwrite = false\ntimeout = 3\n')
    s = remote_settings(ws, RemoteChoice(), {})
    assert (s.url, s.instance, s.read, s.write, s.timeout) == ("http://ws/c", "main", True, False, 3)
    assert remote_settings(ws, RemoteChoice(), {"MINIBUILD_REMOTE_CACHE": "grpc://env:1"}).url == "grpc://env:1"
    chosen = RemoteChoice(url="http://cli/x/")
    assert remote_settings(ws, chosen, {"MINIBUILD_REMOTE_CACHE": "grpc://env:1"}).url == "http://cli/x"
    assert remote_settings(ws, RemoteChoice(), {"MINIBUILD_REMOTE_CACHE": "off"}) is None
    assert remote_settings(ws, RemoteChoice(disabled=True), {}) is None
    (tmp_path / "other").mkdir()
    cli = _workspace(tmp_path / "other")
    ro = remote_settings(cli, RemoteChoice(read_only=True), {"MINIBUILD_REMOTE_CACHE": "http://e"})
    assert ro.read and not ro.write
    env_ro = remote_settings(cli, RemoteChoice(), {"MINIBUILD_REMOTE_CACHE": "http://e",
                                                   "MINIBUILD_REMOTE_CACHE_READ_ONLY": "1"})
    assert not env_ro.write


def test_credentials_leave_the_url(tmp_path):
    s = remote_settings(_workspace(tmp_path), RemoteChoice(url="https://me:p%40ss@cache.example:8443/team"), {})
    assert s.url == "https://cache.example:8443/team"
    assert s.headers == (("Authorization", "Basic " + base64.b64encode(b"me:p@ss").decode()),)
    assert "p@ss" not in repr(s) and "Authorization" not in repr(s)


def test_headers_from_env_and_file(tmp_path):
    (tmp_path / "h").write_text("# team token\nX-Token: abc\n")
    ws = _workspace(tmp_path, '[cache]\nremote = "grpcs://c:1"\nheaders_file = "h"\n')
    s = remote_settings(ws, RemoteChoice(), {"MINIBUILD_REMOTE_CACHE_HEADERS": "Authorization: Bearer t"})
    assert s.headers == (("Authorization", "Bearer t"), ("X-Token", "abc"))


@pytest.mark.parametrize("cache,message", [
    ('[cache]\nremote = "ftp://x"\n', "scheme must be one of"),
    ('[cache]\nremote = "http://x"\nheaders_file = "missing"\n', "cannot read the remote cache's headers file"),
])
def test_bad_configuration_is_an_input_error(tmp_path, cache, message):
    with pytest.raises(InputError, match=message):
        remote_settings(_workspace(tmp_path, cache), RemoteChoice(), {})


def test_a_header_line_error_never_shows_the_value(tmp_path):
    with pytest.raises(InputError) as info:
        remote_settings(_workspace(tmp_path), RemoteChoice(url="http://x"),
                        {"MINIBUILD_REMOTE_CACHE_HEADERS": "Bearer-secret-without-a-name"})
    assert "secret" not in str(info.value)


def test_an_entry_round_trips_and_tampering_is_refused():
    entry = {"outputs": {"a.json": {"digest": "sha256:" + "1" * 64, "size": 3, "executable": False}},
             "blobs": ["sha256:" + "2" * 64], "discovered": {"/usr/lib": "dir:x"}, "warnings": ["w"]}
    files, data = entry_files(entry, {"sha256:" + "2" * 64: 10})
    assert parse_entry(files, data, ["a.json"]) == entry
    with pytest.raises(EntryError):
        parse_entry(files[1:], data, ["a.json"])
    with pytest.raises(EntryError):
        parse_entry(files, data, ["b.json"])
    escape = "../../../etc/passwd".ljust(64, "x")  # a "digest" that would name a path outside the store
    bad = {**entry, "outputs": {"a.json": {**entry["outputs"]["a.json"], "digest": "sha256:" + escape}}}
    files2, data2 = entry_files(bad, {"sha256:" + "2" * 64: 10})
    with pytest.raises(EntryError):
        parse_entry(files2, data2, ["a.json"])
