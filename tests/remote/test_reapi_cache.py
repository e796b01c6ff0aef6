"""REAPI v2 over gRPC against BuildGrid (CAS, ByteStream, ActionCache) on 127.0.0.1."""

from __future__ import annotations

import hashlib
import os

import grpc
import pytest
from buildgrid.common.protos.build.bazel.remote.execution.v2 import remote_execution_pb2 as re_pb2
from buildgrid.common.protos.build.bazel.remote.execution.v2 import remote_execution_pb2_grpc as re_grpc

from minibuild.remote.reapi import GrpcCache
from minibuild.remote_cache import BlobNotFound, Digest, OutputFile, RemoteSettings
from tests.remote import scenario


@pytest.mark.docker
def test_team_scenario(buildgrid, tmp_path):
    first, _ = scenario.team_scenario(tmp_path, buildgrid.url)
    out = scenario.run_in_docker(tmp_path / "bob" / "src" / "clone-b", buildgrid.url, tmp_path / "home-b")
    assert "hello again from a genrule" in out


def _blob(tmp_path, name: str, data: bytes) -> tuple[Digest, str]:
    path = tmp_path / name
    path.write_bytes(data)
    return Digest(hashlib.sha256(data).hexdigest(), len(data)), str(path)


def test_blobs_both_ways_batched_and_streamed(buildgrid, tmp_path):
    """Small blobs in batches, one over 4 MiB (BuildGrid's message limit) through ByteStream; read back by
    BuildGrid's own answers (FindMissingBlobs, BatchReadBlobs through the plain stubs)."""
    client = GrpcCache(RemoteSettings(url=buildgrid.url, connections=2))
    small = [_blob(tmp_path, f"s{i}", os.urandom(1000 + i)) for i in range(50)]
    big = _blob(tmp_path, "big", os.urandom((4 << 20) + 12345))
    everything = [*small, big]
    assert client.find_missing_blobs([d for d, _ in everything]) == {d for d, _ in everything}
    client.upload_blobs(everything)
    assert client.find_missing_blobs([d for d, _ in everything]) == set()
    stub = re_grpc.ContentAddressableStorageStub(grpc.insecure_channel(buildgrid.url.removeprefix("grpc://")))
    answer = stub.BatchReadBlobs(re_pb2.BatchReadBlobsRequest(digests=[
        re_pb2.Digest(hash=d.hash, size_bytes=d.size) for d, _ in small[:5]]))
    assert sorted(hashlib.sha256(r.data).hexdigest() for r in answer.responses) == sorted(d.hash for d, _ in small[:5])
    back = [(d, str(tmp_path / f"back-{d.hash}")) for d, _ in everything]
    client.download_blobs(back)
    for (_, path), (_, original) in zip(back, everything, strict=True):
        assert open(path, "rb").read() == open(original, "rb").read()
    with pytest.raises(BlobNotFound):
        client.download_blobs([(Digest("0" * 64, 3), str(tmp_path / "nothing"))])
    client.close()


def test_action_results(buildgrid, tmp_path):
    client = GrpcCache(RemoteSettings(url=buildgrid.url))
    blob = _blob(tmp_path, "out", b"output bytes")
    client.upload_blobs([blob])
    key = Digest(hashlib.sha256(b"a key manifest").hexdigest(), 14)
    assert client.get_action_result(key) is None
    files = [OutputFile("out", blob[0], executable=True)]
    client.update_action_result(key, files)
    assert client.get_action_result(key) == files
    client.close()
