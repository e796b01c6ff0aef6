"""Remote cache clients: the Bazel HTTP cache protocol (`http.py`) and REAPI v2 over gRPC (`reapi.py`), each an
implementation of the engine's `minibuild.remote_cache.RemoteCache`."""

from __future__ import annotations

from urllib.parse import urlsplit

from minibuild.remote_cache import RemoteCache, RemoteSettings


def connect(settings: RemoteSettings) -> RemoteCache:
    """The client for `settings.url`'s scheme. Nothing is sent until the build asks for something."""
    scheme = urlsplit(settings.url).scheme
    if scheme in ("grpc", "grpcs"):
        # lazy: grpcio and the REAPI stubs, loaded only for a grpc:// cache
        from minibuild.remote.reapi import GrpcCache

        return GrpcCache(settings)
    from minibuild.remote.http import HttpCache

    return HttpCache(settings)
