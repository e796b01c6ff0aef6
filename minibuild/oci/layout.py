"""OCI image layouts on disk: write one atomically, read one back (for base images and tests).

A layout is `oci-layout`, `index.json` and `blobs/sha256/<hex>`. write_layout builds the whole tree in a
temp directory beside the destination and swaps it in, so a reader sees the old layout or the new one.
"""

from __future__ import annotations

import ctypes
import errno
import gzip
import hashlib
import io
import json
import os
import shutil
import tempfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from minibuild.errors import BuildError, InputError
from minibuild.oci._io import atomic_file, read_error, write_error
from minibuild.oci.image import ImageConfig
from minibuild.oci.layer import Layer, import_zstandard
from minibuild.oci.spec import (
    ANNOTATION_REF_NAME,
    MEDIA_TYPE_INDEX,
    MEDIA_TYPE_MANIFEST,
    Descriptor,
    Platform,
    canonical_json,
    digest_hex,
    is_digest,
    sha256_digest,
)

__all__ = ["Layout", "LayoutImage", "OCI_LAYOUT", "read_layout", "write_layout"]

OCI_LAYOUT = canonical_json({"imageLayoutVersion": "1.0.0"})
DIR_MODE = 0o755
MANIFEST_TYPES = {MEDIA_TYPE_MANIFEST, "application/vnd.docker.distribution.manifest.v2+json"}
INDEX_TYPES = {MEDIA_TYPE_INDEX, "application/vnd.docker.distribution.manifest.list.v2+json"}
_COPY_CHUNK = 1 << 20


def blob_relpath(digest: str) -> str:
    return f"blobs/sha256/{digest_hex(digest)}"


# --- writing -------------------------------------------------------------------------------------------


def _blob_bytes(blobs: Mapping[str, str | bytes], digest: str) -> bytes:
    blob = blobs[digest]
    if isinstance(blob, bytes):
        return blob
    try:
        with open(blob, "rb") as f:
            return f.read()
    except OSError as exc:
        raise read_error(exc, blob, f"blob {digest}") from exc


def _blob_size(blob: str | bytes) -> int:
    if isinstance(blob, bytes):
        return len(blob)
    try:
        return os.stat(blob).st_size
    except OSError as exc:
        raise read_error(exc, blob, "blob") from exc


def _check_closure(blobs: Mapping[str, str | bytes], roots: Sequence[Descriptor]) -> None:
    """Every blob the index reaches must be given, with the size its descriptor states.

    A missing or mis-sized blob here is a bug in the caller, so it raises ValueError, not a user error.
    """
    pending = [d.to_json() for d in roots]
    seen: set[str] = set()
    while pending:
        desc = pending.pop()
        digest = desc["digest"]
        if digest in seen:
            continue
        seen.add(digest)
        if digest not in blobs:
            raise ValueError(
                f"the layout references blob {digest} ({desc['mediaType']}) but it was not given"
            )
        if _blob_size(blobs[digest]) != desc["size"]:
            raise ValueError(
                f"blob {digest} has size {_blob_size(blobs[digest])}, descriptor says {desc['size']}"
            )
        if desc["mediaType"] in MANIFEST_TYPES:
            doc = json.loads(_blob_bytes(blobs, digest))
            pending += [doc["config"], *doc.get("layers", [])]
        elif desc["mediaType"] in INDEX_TYPES:
            pending += json.loads(_blob_bytes(blobs, digest)).get("manifests", [])


def _copy(src: str, dest: str) -> None:
    with atomic_file(dest) as out:
        try:
            f = open(src, "rb")  # closed below; open errors must name the source
        except OSError as exc:
            raise read_error(exc, src) from exc
        with f:
            while True:
                try:
                    chunk = f.read(_COPY_CHUNK)
                except OSError as exc:
                    raise read_error(exc, src) from exc
                if not chunk:
                    break
                out.write(chunk)


def _place_blob(blob: str | bytes, dest: str) -> None:
    if isinstance(blob, bytes):
        with atomic_file(dest) as out:
            out.write(blob)
        return
    try:
        os.link(blob, dest)  # blobs are immutable by name, so sharing the inode with the store is safe
        return
    except FileNotFoundError as exc:
        raise read_error(exc, blob, "blob") from exc
    except OSError:
        pass  # another file system, or links not allowed: copy instead
    _copy(blob, dest)


def _exchange(a: str, b: str) -> bool:
    """Atomically swap two directories with renameat2(RENAME_EXCHANGE); False if the system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), b)


def _swap_in(tmp: str, dest: str) -> None:
    """Put the finished tree `tmp` at `dest`, replacing an old layout there.

    Another process may create `dest` between the check and the rename: then it is replaced like any
    existing layout.
    """
    if not os.path.lexists(dest):
        try:
            os.rename(tmp, dest)
            return
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
    if not os.path.isdir(dest) or os.path.islink(dest):
        raise BuildError(f"cannot write the OCI layout `{dest}`: it exists and is not a directory")
    if os.listdir(dest) and not os.path.exists(os.path.join(dest, "oci-layout")):
        raise BuildError(
            f"refusing to replace `{dest}`: it is a directory that is not an OCI layout",
            hint="choose another output directory, or remove it",
        )
    if _exchange(tmp, dest):
        shutil.rmtree(tmp, ignore_errors=True)
        return
    old = tmp + ".old"
    os.rename(dest, old)
    os.rename(tmp, dest)
    shutil.rmtree(old, ignore_errors=True)


def write_layout(
    dest_dir: str,
    blobs: Mapping[str, str | bytes],
    manifests: Sequence[Descriptor],
    *,
    ref_name: str | None = None,
) -> None:
    """Write an OCI layout whose index.json lists `manifests`, replacing `dest_dir` as a whole.

    blobs: digest -> bytes, or the host path of a blob (hard-linked when possible, else copied). Every blob
    the manifests reach must be there. ref_name, if given, annotates the (single) entry of index.json as
    `org.opencontainers.image.ref.name`; for a multi-platform image, list the image index, not its manifests.
    """
    if ref_name is not None:
        if len(manifests) != 1:
            raise ValueError("ref_name needs exactly one descriptor in index.json")
        annotations = dict(manifests[0].annotations)
        annotations[ANNOTATION_REF_NAME] = ref_name
        manifests = [replace(manifests[0], annotations=tuple(sorted(annotations.items())))]
    for digest, blob in blobs.items():
        if not is_digest(digest):
            raise ValueError(f"blob key {digest!r} is not a sha256 digest")
        if isinstance(blob, bytes) and sha256_digest(blob) != digest:
            raise ValueError(f"blob given as {digest} has digest {sha256_digest(blob)}")
    _check_closure(blobs, manifests)
    index = canonical_json(
        {"schemaVersion": 2, "mediaType": MEDIA_TYPE_INDEX, "manifests": [m.to_json() for m in manifests]}
    )

    dest_dir = os.path.abspath(dest_dir)
    parent = os.path.dirname(dest_dir)
    try:
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(dir=parent, prefix="." + os.path.basename(dest_dir) + ".", suffix=".tmp")
    except OSError as exc:
        raise write_error(exc, dest_dir) from exc
    try:
        try:
            os.chmod(tmp, DIR_MODE)
            blob_dir = os.path.join(tmp, "blobs", "sha256")
            os.makedirs(blob_dir)
            os.chmod(os.path.dirname(blob_dir), DIR_MODE)
            os.chmod(blob_dir, DIR_MODE)
        except OSError as exc:
            raise write_error(exc, dest_dir) from exc
        for digest in sorted(blobs):
            _place_blob(blobs[digest], os.path.join(blob_dir, digest_hex(digest)))
        with atomic_file(os.path.join(tmp, "oci-layout")) as out:
            out.write(OCI_LAYOUT)
        with atomic_file(os.path.join(tmp, "index.json")) as out:
            out.write(index)
        try:
            _swap_in(tmp, dest_dir)
        except OSError as exc:
            raise write_error(exc, dest_dir) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# --- reading -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayoutImage:
    """One single-platform image found in a layout: enough to rebuild on top of it without touching it."""

    manifest: Descriptor  # as the index that lists it says, platform included when given there
    manifest_bytes: bytes
    config: Descriptor
    config_bytes: bytes
    layers: tuple[tuple[Layer, str], ...]  # each layer with the path of its blob inside the layout
    ref_name: str | None = None  # of the index.json entry it was reached from

    @property
    def config_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.config_bytes)
        return doc

    @property
    def platform(self) -> Platform:
        doc = self.config_doc
        return Platform(
            os=doc.get("os", ""), architecture=doc.get("architecture", ""), variant=doc.get("variant")
        )

    def image_config(self) -> ImageConfig:
        return ImageConfig.from_json(self.config_doc.get("config"))

    def history(self) -> list[dict[str, Any]]:
        """History entries verbatim, to put before a derived image's own (see image.config_json)."""
        return list(self.config_doc.get("history") or [])


@dataclass(frozen=True)
class Layout:
    path: str
    manifests: tuple[Descriptor, ...]  # the entries of index.json
    images: tuple[LayoutImage, ...]  # every image reachable from them, nested indexes flattened

    def blob_path(self, digest: str) -> str:
        return os.path.join(self.path, blob_relpath(digest))

    def image(self, platform: Platform | None = None, ref_name: str | None = None) -> LayoutImage:
        """The one image for `platform` (and `ref_name`); InputError if there is none or more than one."""
        found = [
            img
            for img in self.images
            if (ref_name is None or img.ref_name == ref_name)
            and (platform is None or img.platform == platform)
        ]
        if len(found) == 1:
            return found[0]
        wanted = [f"platform `{platform}`"] if platform else []
        wanted += [f"ref `{ref_name}`"] if ref_name else []
        want = " for " + " and ".join(wanted) if wanted else ""
        have = ", ".join(
            f"`{img.platform}`" + (f" (ref `{img.ref_name}`)" if img.ref_name else "") for img in self.images
        )
        if not found:
            raise InputError(f"the OCI layout `{self.path}` has no image{want}; it has {have or 'none'}")
        raise InputError(
            f"the OCI layout `{self.path}` has {len(found)} images{want}: {have}",
            hint="name the platform or the ref name of the one to use",
        )


class _Reader:
    def __init__(self, path: str, verify_layers: bool) -> None:
        self.path = path
        self.verify_layers = verify_layers

    def bad(self, why: str) -> InputError:
        return InputError(f"`{self.path}` is not a usable OCI layout: {why}")

    def read_small(self, desc: Descriptor | None, relpath: str) -> bytes:
        """Read and check a JSON document; these are small, so they are always verified."""
        full = os.path.join(self.path, relpath)
        try:
            with open(full, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise self.bad(f"`{relpath}` is missing") from None
        except OSError as exc:
            raise read_error(exc, full) from exc
        if desc is not None and (sha256_digest(data) != desc.digest or len(data) != desc.size):
            raise self.bad(f"blob `{relpath}` does not match its descriptor (digest or size)")
        return data

    def json(self, data: bytes, what: str) -> dict[str, Any]:
        try:
            doc = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise self.bad(f"{what} is not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise self.bad(f"{what} is not a JSON object")
        return doc

    def descriptors(self, docs: Any, what: str) -> list[Descriptor]:
        try:
            return [Descriptor.from_json(d) for d in docs]
        except (KeyError, TypeError, ValueError) as exc:
            raise self.bad(f"{what} has an invalid descriptor ({exc})") from None

    def layer(self, desc: Descriptor, diff_id: str) -> tuple[Layer, str]:
        full = os.path.join(self.path, blob_relpath(desc.digest))
        try:
            size = os.stat(full).st_size
        except FileNotFoundError:
            raise self.bad(f"layer blob `{blob_relpath(desc.digest)}` is missing") from None
        except OSError as exc:
            raise read_error(exc, full) from exc
        if size != desc.size:
            raise self.bad(
                f"layer blob `{blob_relpath(desc.digest)}` has size {size}, manifest says {desc.size}"
            )
        uncompressed: int | None = None
        if self.verify_layers:
            digest, actual_diff_id, uncompressed = _hash_layer(full, desc.media_type)
            if digest != desc.digest or actual_diff_id != diff_id:
                raise self.bad(
                    f"layer blob `{blob_relpath(desc.digest)}` does not match its digest or diff_id"
                )
        return Layer(descriptor=desc, diff_id=diff_id, uncompressed_size=uncompressed), full

    def image(self, desc: Descriptor, ref_name: str | None) -> LayoutImage:
        manifest_bytes = self.read_small(desc, blob_relpath(desc.digest))
        manifest = self.json(manifest_bytes, f"manifest {desc.digest}")
        config_desc = self.descriptors([manifest.get("config")], f"manifest {desc.digest}")[0]
        layer_descs = self.descriptors(manifest.get("layers") or [], f"manifest {desc.digest}")
        config_bytes = self.read_small(config_desc, blob_relpath(config_desc.digest))
        config = self.json(config_bytes, f"config {config_desc.digest}")
        diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
        if len(diff_ids) != len(layer_descs) or not all(
            isinstance(d, str) and is_digest(d) for d in diff_ids
        ):
            raise self.bad(
                f"config {config_desc.digest} lists {len(diff_ids)} diff_ids for {len(layer_descs)} layers"
            )
        layers = tuple(self.layer(d, diff_id) for d, diff_id in zip(layer_descs, diff_ids, strict=True))
        return LayoutImage(desc, manifest_bytes, config_desc, config_bytes, layers, ref_name)

    def walk(self, descs: Sequence[Descriptor], ref_name: str | None, depth: int = 0) -> list[LayoutImage]:
        if depth > 8:
            raise self.bad("image indexes nest too deep")
        images: list[LayoutImage] = []
        for desc in descs:
            ref = dict(desc.annotations).get(ANNOTATION_REF_NAME, ref_name) if depth == 0 else ref_name
            if desc.media_type in MANIFEST_TYPES:
                images.append(self.image(desc, ref))
            elif desc.media_type in INDEX_TYPES:
                doc = self.json(self.read_small(desc, blob_relpath(desc.digest)), f"index {desc.digest}")
                images += self.walk(
                    self.descriptors(doc.get("manifests") or [], f"index {desc.digest}"), ref, depth + 1
                )
            # Anything else (attestations, artifacts) is not an image: skip it.
        return images


def _hash_layer(path: str, media_type: str) -> tuple[str, str, int]:
    """(digest, diff_id, uncompressed size) of a layer blob, by reading it whole."""
    blob_hash, tar_hash, size = hashlib.sha256(), hashlib.sha256(), 0
    damaged: tuple[type[BaseException], ...] = (OSError, EOFError, zlib.error)
    try:
        with open(path, "rb") as raw:
            tee = _Tee(raw, blob_hash)
            stream: Any
            if media_type.endswith("zstd"):
                zstandard = import_zstandard()
                damaged += (zstandard.ZstdError,)
                stream = zstandard.ZstdDecompressor().stream_reader(tee, read_across_frames=True)
            elif media_type.endswith("gzip"):
                stream = gzip.GzipFile(fileobj=tee, mode="rb")
            else:
                stream = tee
            while chunk := stream.read(_COPY_CHUNK):
                tar_hash.update(chunk)
                size += len(chunk)
            while rest := raw.read(_COPY_CHUNK):  # bytes after the end of the compressed stream
                blob_hash.update(rest)
    except damaged as exc:
        raise InputError(f"layer blob `{path}` is damaged: {exc}") from exc
    return "sha256:" + blob_hash.hexdigest(), "sha256:" + tar_hash.hexdigest(), size


class _Tee:
    def __init__(self, f: Any, h: Any) -> None:
        self._f, self._h = f, h

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self._h.update(data)
        return data

    def seek(self, offset: int, /) -> int:
        # GzipFile's reader type asks for it, but only a rewind calls it, and a read front to back never
        # rewinds; the running hash could not follow one anyway.
        raise io.UnsupportedOperation("a hashing reader cannot seek")


def read_layout(path: str, *, verify_layers: bool = False) -> Layout:
    """Read an OCI layout: every image in it with its config, layers, diff_ids and blob paths.

    Manifests, indexes and configs are always checked against their digests; layer blobs only for size,
    unless verify_layers, which reads them whole to check digest and diff_id and to learn their
    uncompressed size (else Layer.uncompressed_size is None).
    """
    path = os.path.abspath(path)
    reader = _Reader(path, verify_layers)
    if not os.path.isdir(path):
        raise InputError(f"OCI layout `{path}` does not exist or is not a directory")
    layout = reader.json(reader.read_small(None, "oci-layout"), "oci-layout")
    if layout.get("imageLayoutVersion") != "1.0.0":
        raise reader.bad(f"unsupported imageLayoutVersion {layout.get('imageLayoutVersion')!r}")
    index = reader.json(reader.read_small(None, "index.json"), "index.json")
    manifests = reader.descriptors(index.get("manifests") or [], "index.json")
    return Layout(path=path, manifests=tuple(manifests), images=tuple(reader.walk(manifests, None)))
