"""Fixtures of the remote cache tests: a server of each protocol, started on 127.0.0.1 by the test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

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
