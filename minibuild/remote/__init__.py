"""Remote cache clients: the Bazel HTTP cache protocol (`http.py`), REAPI v2 over gRPC (`reapi.py`) and an OCI
registry (`oci.py`), each an implementation of the engine's `minibuild.remote_cache.RemoteCache`."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from minibuild.remote_cache import RemoteCache, RemoteSettings


def connect(settings: RemoteSettings, *, cache_dir: str | None = None) -> RemoteCache:
    """The client for `settings.url`'s scheme. Nothing is sent until the build asks for something. `cache_dir`,
    the workspace's, is where the OCI client finds and adds to the record of where blobs were pushed."""
    scheme = urlsplit(settings.url).scheme
    if scheme in ("grpc", "grpcs"):
        # lazy: grpcio and the REAPI stubs, loaded only for a grpc:// cache; grpcio reads GRPC_VERBOSITY when it
        # loads and would otherwise print a log line of its own for each failed TLS handshake
        quiet = "GRPC_VERBOSITY" not in os.environ
        if quiet:
            os.environ["GRPC_VERBOSITY"] = "ERROR"
        try:
            from minibuild.remote.reapi import GrpcCache
        finally:
            if quiet:
                del os.environ["GRPC_VERBOSITY"]

        return GrpcCache(settings)
    if scheme.startswith("oci"):
        from minibuild.remote.oci import OciCache

        return OciCache(settings, cache_dir=cache_dir)
    from minibuild.remote.http import HttpCache

    return HttpCache(settings)
