"""daemon.load waits on the engine as long as a large image takes, then gives the client its short timeout back.

A cold load of examples/servers' postgres image (98 MB) outlasted the 5 s the client is made with; the real
engine's case is tests/servers, which loads it."""

from __future__ import annotations

from minibuild.oci import daemon


class _Api:
    def __init__(self) -> None:
        self.timeout = 5
        self.during: list[float] = []

    def load_image(self, data: object) -> list[dict[str, str]]:
        self.during.append(self.timeout)
        return [{"stream": "Loaded image: t:1\n"}]


class _Client:
    def __init__(self) -> None:
        self.api = _Api()


def test_a_load_may_take_minutes_and_the_client_keeps_its_own_timeout(tmp_path):
    tarball = tmp_path / "image.tar"
    tarball.write_bytes(b"")
    client = _Client()
    assert daemon.load(client, str(tarball), "t:1", "sha256:x") is True
    # (sending, answer): a tarball the engine stops taking ends the load in a minute; the answer may take ten
    assert client.api.during == [(daemon.LOAD_STALL, daemon.LOAD_TIMEOUT)] and daemon.LOAD_TIMEOUT >= 300
    assert client.api.timeout == 5


def test_a_known_image_is_not_loaded_again(tmp_path):
    client = _Client()
    assert daemon.load(client, str(tmp_path / "absent.tar"), "t:1", "sha256:x", {"t:1": "sha256:x"}) is False
    assert client.api.during == []
