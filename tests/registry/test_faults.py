"""Retries: a proxy in front of the real registry fails some requests; transient ones must be retried."""

from __future__ import annotations

import pytest

from tests.registry.conftest import Seen, blob_count, fail_first
from tests.registry.test_push import skopeo_digest

pytestmark = pytest.mark.registry


def test_5xx_on_heads_uploads_and_manifest_are_retried(image_ws, cli, registry, repo, fault_proxy):
    proxy = fault_proxy([fail_first("blob-head", 2, 500), fail_first("upload-start", 1, 503),
                         fail_first("upload-put", 2, 502), fail_first("manifest", 1, 500)])
    r = cli("push", "//img:bash", "--to", f"{proxy.address}/{repo}:1", "--json", cwd=image_ws.root)
    assert r.returncode == 0, r.stderr
    assert proxy.injected == {"blob-head": 2, "upload-start": 1, "upload-put": 2, "manifest": 1}
    assert r.json()["blobs"]["uploaded"] == blob_count(image_ws)
    assert "transient failures retried" in r.stderr
    assert skopeo_digest(f"{registry}/{repo}:1") == r.json()["digest"]


def test_429_is_retried(image_ws, cli, registry, repo, fault_proxy):
    proxy = fault_proxy([fail_first("blob-head", 3, 429)])
    r = cli("push", "//img:bash", "--to", f"{proxy.address}/{repo}:1", "--json", cwd=image_ws.root)
    assert r.returncode == 0, r.stderr
    assert proxy.injected["blob-head"] == 3


def test_connection_dropped_mid_upload_is_retried(image_ws, cli, registry, repo, fault_proxy):
    proxy = fault_proxy([fail_first("upload-put", 2, "drop")])
    r = cli("push", "//img:bash", "--to", f"{proxy.address}/{repo}:1", "--json", cwd=image_ws.root)
    assert r.returncode == 0, r.stderr
    assert proxy.injected["upload-put"] == 2
    assert skopeo_digest(f"{registry}/{repo}:1") == r.json()["digest"]


def test_connection_dropped_mid_chunk_restarts_the_upload(image_ws, cli, registry, repo, fault_proxy):
    proxy = fault_proxy([fail_first("upload-patch", 2, "drop")])
    r = cli("push", "//img:bash", "--to", f"{proxy.address}/{repo}:1", "--chunk-size", "256K", "--json",
            cwd=image_ws.root)
    assert r.returncode == 0, r.stderr
    assert proxy.injected["upload-patch"] == 2
    assert skopeo_digest(f"{registry}/{repo}:1") == r.json()["digest"]


def test_persistent_5xx_gives_up_with_a_clear_error(image_ws, cli, repo, fault_proxy):
    proxy = fault_proxy([fail_first("manifest", 100, 503)])
    r = cli("push", "//img:bash", "--to", f"{proxy.address}/{repo}:1", cwd=image_ws.root)
    assert r.returncode == 1, r.stderr
    assert proxy.counts["manifest"] == 5  # bounded
    assert "failed after 5 tries" in r.stderr and "503" in r.stderr and "injected failure 503" in r.stderr
    assert "hint:" in r.stderr and "Traceback" not in r.stderr


def test_4xx_is_not_retried_and_names_status_and_message(image_ws, cli, repo, fault_proxy):
    def reject_manifest(seen: Seen, count: int) -> int | None:
        return 400 if seen.kind == "manifest" else None

    proxy = fault_proxy([reject_manifest])
    r = cli("push", "//img:bash", "--to", f"{proxy.address}/{repo}:1", cwd=image_ws.root)
    assert r.returncode == 1, r.stderr
    assert proxy.counts["manifest"] == 1
    assert "400" in r.stderr and "INJECTED: injected failure 400" in r.stderr
    assert "Traceback" not in r.stderr
    assert r.stdout == ""
