"""Fixtures of the remote cache tests: a server of each protocol, started on 127.0.0.1 by the test, and a
repository of its own on the shared OCI registry of scripts/test.sh."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import requests

from tests.remote.servers import Server, start_buildgrid, start_nginx


@pytest.fixture
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_nginx(tmp_path_factory.mktemp("nginx"))
    yield server
    server.close()


@pytest.fixture
def buildgrid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_buildgrid(tmp_path_factory.mktemp("buildgrid"))
    yield server
    server.close()


@pytest.fixture
def registry() -> str:
    """host:port of the OCI registry scripts/test.sh starts (no authentication); a failure, never a skip, when
    it does not answer."""
    address = os.environ.get("MINIBUILD_TEST_REGISTRY", "127.0.0.1:5000")
    try:
        code = requests.get(f"http://{address}/v2/", timeout=5).status_code
    except requests.RequestException as exc:
        pytest.fail(f"registry {address} unreachable ({type(exc).__name__}): scripts/test.sh --setup-only starts it")
    if code != 200:
        pytest.fail(f"registry {address}: GET /v2/ answered {code}, not 200")
    return address


@pytest.fixture
def oci_cache(registry: str) -> str:
    """An `oci://` remote cache in a repository no other test or earlier run has used."""
    return f"oci://{registry}/minibuild-test/cache-{uuid.uuid4().hex[:12]}"
