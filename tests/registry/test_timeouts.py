"""A registry that answers slowly or never: the push ends by its `--timeout` with a clear error, says while it
waits, and a request's answer limit holds against a server that trickles (docs/registry.md).

The slow servers are a proxy in front of the real registry that, for some requests, never answers or sends its
answer one byte every 2 s (tests/registry/conftest.py).
"""

from __future__ import annotations

import time

import pytest

from minibuild.oci.registry import RegistryClient, RegistryError, RetryPolicy
from minibuild.oci.registry.push import PARALLEL_BLOBS
from tests.registry.conftest import TRICKLE, fail_first

pytestmark = pytest.mark.registry

TIMEOUT = 8  # --timeout of the pushes here: one progress line (after 5 s), then the end
SLACK = 6  # start-up of the CLI and the requests before the slow one


@pytest.mark.parametrize(("kind", "action", "method"), [("upload-put", "silent", "PUT"),
                                                         ("manifest", "trickle", "PUT"),
                                                         ("blob-head", "trickle", "HEAD")])
def test_a_push_to_a_slow_registry_stops_by_its_timeout(image_ws, cli, repo, fault_proxy, kind, action, method):
    assert cli("build", "//img:bash", cwd=image_ws.root).returncode == 0  # the push times the registry only
    proxy = fault_proxy([fail_first(kind, 100, action)])
    start = time.monotonic()
    r = cli("push", "//img:bash", "--to", f"{proxy.address}/{repo}:1", "--timeout", str(TIMEOUT),
            cwd=image_ws.root, timeout=120)
    elapsed = time.monotonic() - start
    assert r.returncode == 1, r.stderr
    assert TIMEOUT <= elapsed < TIMEOUT + SLACK, r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
    assert f"error: push to `{proxy.address}` stopped: no answer within {TIMEOUT} s ({method} /v2/{repo}/" in r.stderr
    assert f"no answer yet to {method} /v2/{repo}/" in r.stderr  # the line while it waited
    assert "--timeout SECONDS" in r.stderr  # the hint
    # the time ran out within the one try of each request: the manifest's, or each blob's (a few go at once)
    assert proxy.counts[kind] == 1 if kind == "manifest" else 1 <= proxy.counts[kind] <= PARALLEL_BLOBS


@pytest.mark.parametrize("action", ["trickle", "trickle-headers"])
def test_a_request_gets_its_answer_limit_however_the_server_trickles(registry, repo, fault_proxy, action):
    # without a deadline (the remote cache's case): the answer limit, and one more try. Cut mid-headers, an
    # answer without a length would read as a whole `200 OK`: it must not count as one.
    proxy = fault_proxy([fail_first("blob-head", 100, action)])
    client = RegistryClient(proxy.address, timeout=2 * TRICKLE, retry=RetryPolicy(base_delay=0.01))
    start = time.monotonic()
    with pytest.raises(RegistryError) as caught:
        client.blob_exists(repo, "sha256:" + "0" * 64)
    elapsed = time.monotonic() - start
    assert caught.value.timed_out and caught.value.status is None
    assert "failed after 2 tries: no answer within 4 s" in caught.value.message
    assert proxy.counts["blob-head"] == 2
    assert 2 * 2 * TRICKLE <= elapsed < 2 * 2 * TRICKLE + 3


def test_a_trickling_blob_body_is_cut_at_the_answer_limit(registry, repo, fault_proxy, tmp_path):
    proxy = fault_proxy([fail_first("blob-get", 100, "trickle-body")])
    client = RegistryClient(proxy.address, timeout=2 * TRICKLE, retry=RetryPolicy(tries=1))
    start = time.monotonic()
    with (tmp_path / "out").open("wb") as out, pytest.raises(RegistryError) as caught:
        client.download_blob(repo, "sha256:" + "0" * 64, out)
    assert caught.value.timed_out
    assert time.monotonic() - start < 2 * TRICKLE + 3


def test_a_silent_registry_with_the_default_limits_is_left_after_two_tries(registry, repo, fault_proxy):
    proxy = fault_proxy([fail_first("manifest", 100, "silent")])
    lines: list[str] = []
    from minibuild.oci.registry import Deadline

    client = RegistryClient(proxy.address, timeout=3, deadline=Deadline(f"push to `{proxy.address}`", 60),
                            on_wait=lines.append)
    with pytest.raises(RegistryError) as caught:
        client.put_manifest(repo, "1", b"{}", "application/vnd.oci.image.manifest.v1+json")
    assert caught.value.message == (f"push to `{proxy.address}` stopped: no answer within 3 s "
                                    f"(PUT /v2/{repo}/manifests/1), 2 tries")
    assert proxy.counts["manifest"] == 2 and lines == []  # 3 s is before the first progress line


def test_timeout_must_be_a_positive_number(image_ws, cli, registry, repo):
    for bad in ("0", "-1", "soon"):
        r = cli("push", "//img:bash", "--to", f"{registry}/{repo}:1", "--timeout", bad, cwd=image_ws.root)
        assert r.returncode == 2 and "--timeout" in r.stderr and "Traceback" not in r.stderr
