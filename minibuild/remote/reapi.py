"""REAPI v2 over gRPC: the ActionCache, ContentAddressableStorage and ByteStream services.

Served by BuildGrid, Buildbarn, BuildBuddy, NativeLink, bazel-remote (`--grpc_address`). Small blobs travel
in batches (`FindMissingBlobs`, `BatchUpdateBlobs`, `BatchReadBlobs`, each request under the 4 MiB a gRPC
message may hold); a blob over `BATCH_BLOB` is streamed in 1 MiB chunks through ByteStream (`Read`, `Write`).
Headers become call metadata; `grpcs://` uses TLS with `ca_file` or the system's CA bundle (`tls.py`).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import grpc
from buildgrid.common.protos.build.bazel.remote.execution.v2 import remote_execution_pb2 as re_pb2
from buildgrid.common.protos.build.bazel.remote.execution.v2 import remote_execution_pb2_grpc as re_grpc
from buildgrid.common.protos.google.bytestream import bytestream_pb2, bytestream_pb2_grpc

from minibuild.remote import action_result
from minibuild.remote.tls import read_cas, tls_failure
from minibuild.remote_cache import BlobNotFound, Digest, OutputFile, RemoteCacheError, RemoteSettings

CHUNK = 1 << 20
BATCH_BLOB = 1 << 20  # bigger blobs go through ByteStream
BATCH_BYTES = 3 << 20  # a batch request stays well under the 4 MiB message limit of most servers
FIND_BATCH = 2000  # digests per FindMissingBlobs
_NOT_FOUND = grpc.StatusCode.NOT_FOUND.value[0]


class GrpcCache:
    def __init__(self, settings: RemoteSettings) -> None:
        self.settings = settings
        self.url = settings.url
        parts = urlsplit(settings.url)
        target = parts.netloc
        options = [("grpc.max_receive_message_length", 8 << 20), ("grpc.max_send_message_length", 8 << 20)]
        if parts.scheme == "grpcs":
            credentials = grpc.ssl_channel_credentials(read_cas(settings))
            self._channel = grpc.secure_channel(target, credentials, options=options)
        else:
            self._channel = grpc.insecure_channel(target, options=options)
        self._metadata = tuple((k.lower(), v) for k, v in settings.headers)
        self._instance = settings.instance
        self._ac = re_grpc.ActionCacheStub(self._channel)
        self._cas = re_grpc.ContentAddressableStorageStub(self._channel)
        self._bytestream = bytestream_pb2_grpc.ByteStreamStub(self._channel)
        self._slots = threading.BoundedSemaphore(settings.connections)

    def _call(self, what: str, method: Any, request: Any, timeout: float | None = None) -> Any:
        """One unary call; gRPC errors become RemoteCacheError (NOT_FOUND is the caller's to read)."""
        with self._slots:
            try:
                return method(request, timeout=timeout or self.settings.timeout, metadata=self._metadata)
            except grpc.RpcError as exc:
                raise _error(exc, what) from None

    def get_action_result(self, key: Digest) -> list[OutputFile] | None:
        request = re_pb2.GetActionResultRequest(instance_name=self._instance, action_digest=action_result.to_proto(key))
        try:
            result = self._call("GetActionResult", self._ac.GetActionResult, request)
        except _NotFound:
            return None
        return action_result.output_files(result)

    def update_action_result(self, key: Digest, files: Sequence[OutputFile]) -> None:
        request = re_pb2.UpdateActionResultRequest(instance_name=self._instance,
                                                   action_digest=action_result.to_proto(key),
                                                   action_result=action_result.action_result(files))
        self._call("UpdateActionResult", self._ac.UpdateActionResult, request)

    def find_missing_blobs(self, digests: Sequence[Digest]) -> set[Digest]:
        missing: set[Digest] = set()
        for i in range(0, len(digests), FIND_BATCH):
            chunk = [action_result.to_proto(d) for d in digests[i:i + FIND_BATCH]]
            request = re_pb2.FindMissingBlobsRequest(instance_name=self._instance, blob_digests=chunk)
            response = self._call("FindMissingBlobs", self._cas.FindMissingBlobs, request)
            missing |= {action_result.from_proto(d) for d in response.missing_blob_digests}
        return missing

    def upload_blobs(self, blobs: Sequence[tuple[Digest, str]]) -> None:
        small = [(d, p) for d, p in blobs if d.size <= BATCH_BLOB]
        for batch in _batches(small):
            requests = []
            for d, path in batch:
                with open(path, "rb") as f:
                    requests.append(re_pb2.BatchUpdateBlobsRequest.Request(digest=action_result.to_proto(d),
                                                                           data=f.read()))
            request = re_pb2.BatchUpdateBlobsRequest(instance_name=self._instance, requests=requests)
            response = self._call("BatchUpdateBlobs", self._cas.BatchUpdateBlobs, request)
            for r in response.responses:
                if r.status.code != 0:
                    raise RemoteCacheError(f"BatchUpdateBlobs refused a blob (status {r.status.code})")
        for d, path in blobs:
            if d.size > BATCH_BLOB:
                self._write(d, path)

    def _write(self, digest: Digest, path: str) -> None:
        prefix = f"{self._instance}/" if self._instance else ""
        name = f"{prefix}uploads/{uuid.uuid4()}/blobs/{digest.hash}/{digest.size}"

        def chunks() -> Iterator[bytestream_pb2.WriteRequest]:
            with open(path, "rb") as f:
                offset = 0
                while True:
                    data = f.read(CHUNK)
                    last = offset + len(data) >= digest.size
                    yield bytestream_pb2.WriteRequest(resource_name=name if offset == 0 else "", write_offset=offset,
                                                      data=data, finish_write=last)
                    offset += len(data)
                    if last or not data:
                        return

        response = self._call("ByteStream.Write", self._bytestream.Write, chunks(), self._stream_timeout(digest))
        if response.committed_size not in (digest.size, -1):
            raise RemoteCacheError(f"ByteStream.Write kept {response.committed_size} of {digest.size} bytes")

    def download_blobs(self, blobs: Sequence[tuple[Digest, str]]) -> None:
        small = [(d, p) for d, p in blobs if d.size <= BATCH_BLOB]
        for batch in _batches(small):
            paths = {d: p for d, p in batch}
            request = re_pb2.BatchReadBlobsRequest(instance_name=self._instance,
                                                   digests=[action_result.to_proto(d) for d, _ in batch])
            response = self._call("BatchReadBlobs", self._cas.BatchReadBlobs, request)
            for r in response.responses:
                d = action_result.from_proto(r.digest)
                if r.status.code == _NOT_FOUND:
                    raise BlobNotFound(f"no blob {d}")
                if r.status.code != 0 or d not in paths:
                    raise RemoteCacheError(f"BatchReadBlobs failed for a blob: status {r.status.code}")
                with open(paths[d], "wb") as f:
                    f.write(r.data)
        for d, path in blobs:
            if d.size > BATCH_BLOB:
                self._read(d, path)

    def _read(self, digest: Digest, path: str) -> None:
        prefix = f"{self._instance}/" if self._instance else ""
        request = bytestream_pb2.ReadRequest(resource_name=f"{prefix}blobs/{digest.hash}/{digest.size}")
        with self._slots:
            try:
                with open(path, "wb") as f:
                    for response in self._bytestream.Read(request, timeout=self._stream_timeout(digest),
                                                          metadata=self._metadata):
                        f.write(response.data)
            except grpc.RpcError as exc:
                raise _error(exc, "ByteStream.Read") from None

    def _stream_timeout(self, digest: Digest) -> float:
        """The timeout, plus a second per MiB: a big blob may take longer than one request, not forever."""
        return self.settings.timeout + digest.size / (1 << 20)

    def close(self) -> None:
        self._channel.close()


class _NotFound(RemoteCacheError):
    pass


def _error(exc: grpc.RpcError, what: str) -> RemoteCacheError:
    code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
    if code == grpc.StatusCode.NOT_FOUND:
        return _NotFound(f"{what}: not found") if what == "GetActionResult" else BlobNotFound(f"{what}: not found")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return RemoteCacheError(f"no answer in time ({what})", unavailable=True)
    if code == grpc.StatusCode.UNAVAILABLE:
        why = tls_failure(exc.details() or "") if isinstance(exc, grpc.Call) else None
        if why:
            return RemoteCacheError(f"TLS failed ({what}): {why}", unavailable=True)
        return RemoteCacheError(f"unreachable ({what})", unavailable=True)
    auth = " (check the credentials)" if code in (grpc.StatusCode.UNAUTHENTICATED,
                                                  grpc.StatusCode.PERMISSION_DENIED) else ""
    return RemoteCacheError(f"answered {code.name} to {what}{auth}")


def _batches(blobs: Sequence[tuple[Digest, str]]) -> Iterator[list[tuple[Digest, str]]]:
    batch: list[tuple[Digest, str]] = []
    total = 0
    for d, path in blobs:
        if batch and total + d.size > BATCH_BYTES:
            yield batch
            batch, total = [], 0
        batch.append((d, path))
        total += d.size
    if batch:
        yield batch

