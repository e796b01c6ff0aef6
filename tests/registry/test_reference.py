"""Units of the registry client that need no registry: references, plain-HTTP hosts, backoff, the push record."""

from __future__ import annotations

import pytest

from minibuild.errors import InputError
from minibuild.oci.registry import PushRecord, Reference, RetryPolicy, is_local_host, parse_reference


@pytest.mark.parametrize(("text", "want"), [
    ("127.0.0.1:5000/demo/bash:1", Reference("127.0.0.1:5000", "demo/bash", "1")),
    ("localhost/bash", Reference("localhost", "bash", "latest")),
    ("ghcr.io/o/r/x:v1.2", Reference("ghcr.io", "o/r/x", "v1.2")),
    ("[::1]:5000/a:b", Reference("[::1]:5000", "a", "b")),
    ("bash", Reference("docker.io", "library/bash", "latest")),
    ("me/bash:2", Reference("docker.io", "me/bash", "2")),
])
def test_parse_reference(text, want):
    assert parse_reference(text) == want


@pytest.mark.parametrize("text", ["", "Bash", "a b", "host:5000/", "x:", "a:b:c", "x@sha256:" + "0" * 64])
def test_bad_references_are_input_errors(text):
    with pytest.raises(InputError) as info:
        parse_reference(text)
    assert info.value.exit_code == 2 and info.value.hint


def test_docker_hub_api_host():
    assert parse_reference("bash").api_host == "registry-1.docker.io"
    assert parse_reference("127.0.0.1:5000/x").api_host == "127.0.0.1:5000"


@pytest.mark.parametrize(("registry", "local"), [
    ("127.0.0.1:5000", True), ("127.1.2.3", True), ("localhost:5000", True), ("[::1]:5000", True), ("::1", True),
    ("10.0.0.1:5000", False), ("registry.example:443", False), ("localhost.example", False),
])
def test_plain_http_only_for_loopback(registry, local):
    assert is_local_host(registry) is local


def test_backoff_is_bounded():
    policy = RetryPolicy()
    delays = [policy.delay(i) for i in range(policy.tries)]
    assert delays == sorted(delays) and max(delays) <= policy.max_delay
    assert sum(delays[: policy.tries - 1]) < 10


def test_push_record(tmp_path):
    path = tmp_path / "cache" / "pushed.json"
    record = PushRecord(str(path))
    record.add("r:5000", "a", ["sha256:1", "sha256:2"])
    record.add("r:5000", "b", ["sha256:1"])
    record.save()
    again = PushRecord(str(path))
    assert again.sources("r:5000", "sha256:1", exclude="c") == ["b", "a"]
    assert again.sources("r:5000", "sha256:1", exclude="b") == ["a"]
    assert again.sources("other", "sha256:1", exclude="c") == []
    path.write_text("{damaged")
    assert PushRecord(str(path)).sources("r:5000", "sha256:1", exclude="") == []
