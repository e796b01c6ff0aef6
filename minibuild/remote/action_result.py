"""Action-cache entries as REAPI v2 `ActionResult` messages, the form both protocols store them in.

The messages come from generated stubs (the `buildgrid-common` package ships them, generated from the
remote-apis protos); only output files are used, each with its digest and executable bit.
"""

from __future__ import annotations

from collections.abc import Sequence

from buildgrid.common.protos.build.bazel.remote.execution.v2 import remote_execution_pb2 as re_pb2
from google.protobuf.message import DecodeError

from minibuild.remote_cache import Digest, OutputFile, RemoteCacheError


def to_proto(digest: Digest) -> re_pb2.Digest:
    return re_pb2.Digest(hash=digest.hash, size_bytes=digest.size)


def from_proto(digest: re_pb2.Digest) -> Digest:
    return Digest(digest.hash, digest.size_bytes)


def action_result(files: Sequence[OutputFile]) -> re_pb2.ActionResult:
    result = re_pb2.ActionResult(exit_code=0)
    for f in files:
        result.output_files.add(path=f.path, digest=to_proto(f.digest), is_executable=f.executable,
                                contents=f.contents or b"")
    return result


def output_files(result: re_pb2.ActionResult) -> list[OutputFile]:
    """The files of an entry; RemoteCacheError for one minibuild cannot use (directories, symlinks, a failure)."""
    if result.exit_code != 0 or result.output_directories or result.output_symlinks or result.output_file_symlinks:
        raise RemoteCacheError("an entry holds directories, symlinks or a failed run: not one minibuild wrote")
    # proto3 cannot tell inline empty bytes from none: an empty file needs no download either way.
    return [OutputFile(f.path, from_proto(f.digest), f.is_executable,
                       f.contents if f.contents or f.digest.size_bytes == 0 else None) for f in result.output_files]


def encode(files: Sequence[OutputFile]) -> bytes:
    return action_result(files).SerializeToString(deterministic=True)


def decode(data: bytes) -> list[OutputFile]:
    result = re_pb2.ActionResult()
    try:
        result.ParseFromString(data)
    except DecodeError:
        raise RemoteCacheError("an entry is not an ActionResult message (corrupt or cut short)") from None
    return output_files(result)
