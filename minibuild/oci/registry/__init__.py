"""Push an OCI layout to a registry by speaking the OCI distribution API over HTTP(S), without a daemon.

The client checks each blob with HEAD and skips what the registry has, mounts blobs across repositories
of the same registry when it knows (or is told) where they were pushed before, uploads the rest
monolithically or in chunks streamed from the file, then puts the manifests (children of an index first,
by digest) and the root under its tag.

Credentials come from the docker CLI's `config.json` (`auths` only). Authentication is basic or bearer
token (a token per scope, fetched from the realm of the registry's challenge); credentials go to the
registry's own origin and that realm only, never to another host an upload `Location` or a redirect names.
Transient failures (5xx, 429, broken connections) are retried with bounded exponential backoff; 4xx never
is. Each request has an answer limit a trickling server cannot stretch, and a push a Deadline. Every failure
is an EngineError naming the registry, the status and the registry's own error message.

Modules: `reference` (parsing `registry/name:tag`), `credentials` (docker's config.json), `connection`
(scheme discovery, authentication, retries), `deadlines` (time limits), `client` (the distribution API
calls), `push_record` (where blobs were pushed before) and `push` (pushing a layout). The names below are
the package's interface; the OCI remote cache (`minibuild/remote/oci.py`) uses the client too.
"""

from __future__ import annotations

from minibuild.oci.registry.client import DEFAULT_CHUNK_SIZE, RegistryClient
from minibuild.oci.registry.connection import Body, RegistryConnection, RegistryError, RetryPolicy
from minibuild.oci.registry.credentials import Credentials, docker_config_path, load_credentials
from minibuild.oci.registry.deadlines import Deadline
from minibuild.oci.registry.push import BlobEvent, PushResult, push_layout
from minibuild.oci.registry.push_record import PushRecord, push_record_path
from minibuild.oci.registry.reference import (
    DOCKER_HUB,
    DOCKER_HUB_API,
    Reference,
    is_local_host,
    is_repository_name,
    parse_reference,
)

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DOCKER_HUB",
    "DOCKER_HUB_API",
    "BlobEvent",
    "Body",
    "Credentials",
    "Deadline",
    "PushRecord",
    "PushResult",
    "Reference",
    "RegistryClient",
    "RegistryConnection",
    "RegistryError",
    "RetryPolicy",
    "docker_config_path",
    "is_local_host",
    "is_repository_name",
    "load_credentials",
    "parse_reference",
    "push_layout",
    "push_record_path",
]
