"""Push an OCI layout: its blobs first (skipped, mounted or uploaded), then its manifests, the root under its tag.

Manifests are put children first: those of an image index by digest, then the root under the tag. The blobs
of a manifest go up side by side (a few at a time, each on a connection of the session's pool): the three
requests of a new blob (HEAD, POST, PUT) wait mostly on the registry, and one after another they were most of
a push's time (docs/architecture.md, performance notes). Their events are reported in the manifest's order.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from minibuild.errors import EngineError, InputError
from minibuild.oci._io import read_error
from minibuild.oci.layout import INDEX_TYPES, MANIFEST_TYPES, Layout, read_layout
from minibuild.oci.registry.client import DEFAULT_CHUNK_SIZE, RegistryClient
from minibuild.oci.registry.push_record import PushRecord
from minibuild.oci.registry.reference import Reference
from minibuild.oci.spec import Descriptor, sha256_digest


@dataclass(frozen=True)
class PushResult:
    reference: str  # registry/repository:tag@digest
    digest: str
    uploaded: int
    skipped: int
    mounted: int


BlobEvent = Callable[[str, Descriptor, str], None]  # (kind, descriptor, "uploaded" | "skipped" | "mounted")
PARALLEL_BLOBS = 4  # blobs of one manifest pushed at once


def push_layout(
    layout_dir: str,
    ref: Reference,
    client: RegistryClient,
    *,
    from_repositories: Sequence[str] = (),
    record: PushRecord | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    on_blob: BlobEvent | None = None,
) -> PushResult:
    """Push the one image (or image index) of an OCI layout to `ref`; blobs first, manifests last.

    from_repositories: repositories of the same registry to try mounting missing blobs from, before the
    ones `record` remembers. The record is updated with every blob the repository now has.
    """
    layout = read_layout(layout_dir)
    if len(layout.manifests) != 1:
        raise InputError(f"the OCI layout `{layout.path}` lists {len(layout.manifests)} entries in index.json; "
                         "a push needs exactly one (an image or an image index)")
    pusher = _Pusher(layout, ref, client, list(from_repositories), record, chunk_size, on_blob)
    if not client.base:
        client.ping()  # once, before the blobs' threads would each find the scheme and the challenge
    root = layout.manifests[0]
    pusher.manifest_tree(root, ref.tag, depth=0)
    if record is not None:
        record.add(ref.registry, ref.repository, pusher.done)
        record.save()
    return PushResult(reference=f"{ref}@{root.digest}", digest=root.digest, uploaded=pusher.counts["uploaded"],
                      skipped=pusher.counts["skipped"], mounted=pusher.counts["mounted"])


class _Pusher:
    def __init__(self, layout: Layout, ref: Reference, client: RegistryClient, from_repositories: list[str],
                 record: PushRecord | None, chunk_size: int, on_blob: BlobEvent | None) -> None:
        self.layout, self.ref, self.client = layout, ref, client
        self.from_repositories = [r for r in from_repositories if r != ref.repository]
        self.record, self.chunk_size, self.on_blob = record, chunk_size, on_blob
        self.counts = {"uploaded": 0, "skipped": 0, "mounted": 0}
        self.done: list[str] = []

    def document(self, desc: Descriptor) -> bytes:
        path = self.layout.blob_path(desc.digest)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise read_error(exc, path, desc.media_type) from exc
        if sha256_digest(data) != desc.digest or len(data) != desc.size:
            raise InputError(f"`{path}` does not match its descriptor (digest or size)",
                             hint="build the image again")
        return data

    def manifest_tree(self, desc: Descriptor, reference: str, depth: int) -> None:
        if depth > 8:
            raise InputError(f"image indexes in `{self.layout.path}` nest too deep")
        data = self.document(desc)
        try:
            doc = json.loads(data)
            if desc.media_type in INDEX_TYPES:
                children = [Descriptor.from_json(d) for d in doc.get("manifests") or []]
                for child in children:
                    self.manifest_tree(child, child.digest, depth + 1)
            elif desc.media_type in MANIFEST_TYPES:
                blobs = [Descriptor.from_json(doc["config"])]
                blobs += [Descriptor.from_json(d) for d in doc.get("layers") or []]
                self.blobs(list(zip(["config"] + ["layer"] * (len(blobs) - 1), blobs, strict=True)))
            else:
                raise InputError(f"`{desc.digest}` in `{self.layout.path}` has media type `{desc.media_type}`, "
                                 "which is neither an image manifest nor an image index")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InputError(f"the document `{desc.digest}` in `{self.layout.path}` is malformed ({exc})") from None
        pushed = self.client.put_manifest(self.ref.repository, reference, data, desc.media_type)
        if pushed != desc.digest:
            raise EngineError(f"registry `{self.ref.registry}` stored manifest `{reference}` as `{pushed}`, "
                              f"not as the pushed `{desc.digest}`",
                              hint="the registry rewrote the manifest; it does not keep OCI manifests byte for byte")

    def blobs(self, blobs: list[tuple[str, Descriptor]]) -> None:
        """Push `blobs` side by side; each one's event in the given order; the first failure is raised once all
        running ones have ended (those not started yet are dropped)."""
        todo, seen = [], set(self.done)
        for kind, desc in blobs:
            if desc.digest not in seen:
                seen.add(desc.digest)
                todo.append((kind, desc))
        if len(todo) <= 1:
            for kind, desc in todo:
                self._report(kind, desc, self.blob(kind, desc))
            return
        with ThreadPoolExecutor(max_workers=min(PARALLEL_BLOBS, len(todo)),
                                thread_name_prefix="minibuild-push") as pool:
            futures = [(kind, desc, pool.submit(self.blob, kind, desc)) for kind, desc in todo]
            try:
                for kind, desc, future in futures:
                    self._report(kind, desc, future.result())
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise

    def _report(self, kind: str, desc: Descriptor, outcome: str) -> None:
        self.counts[outcome] += 1
        self.done.append(desc.digest)
        if self.on_blob is not None:
            self.on_blob(kind, desc, outcome)

    def blob(self, kind: str, desc: Descriptor) -> str:
        """Skip, mount or upload one blob (in a thread of `blobs`): "skipped" | "mounted" | "uploaded"."""
        repo = self.ref.repository
        path = self.layout.blob_path(desc.digest)
        try:
            size = os.stat(path).st_size
        except OSError as exc:
            raise read_error(exc, path, f"{kind} blob {desc.digest}") from exc
        if size != desc.size:
            raise InputError(f"blob `{path}` has {size} bytes but its descriptor says {desc.size}",
                             hint="build the image again")
        if self.client.blob_exists(repo, desc.digest):
            return "skipped"
        sources = list(self.from_repositories)
        if self.record is not None:
            sources += [r for r in self.record.sources(self.ref.registry, desc.digest, repo) if r not in sources]
        location: str | None = None
        for source in sources[:2]:
            location = self.client.mount_blob(repo, desc.digest, source)
            if location is None:
                return "mounted"
        self.client.upload_blob(repo, desc.digest, path, size, chunk_size=self.chunk_size, location=location)
        return "uploaded"
