"""The team's OCI registry as a remote cache: `oci://HOST[:PORT]/REPOSITORY` (docs/remote-cache.md).

`oci://` speaks as `minibuild push` does: plain HTTP to a loopback host, HTTPS to any other. `oci+https://`
is HTTPS whatever the host (a registry on loopback behind TLS), `oci+http://` plain HTTP whatever the host
(`push --insecure` also falls back to it). HTTPS trusts `ca_file` or the system's CA bundle (`tls.py`),
never an unverified certificate: whoever answers for the cache decides what a build outputs.

Blobs are registry blobs of the repository: checked with `HEAD`, mounted from another repository of the same
registry when the workspace's push record knows one that has them (the images `minibuild push` pushed),
uploaded otherwise (monolithic, or chunked when large), downloaded streamed. An action-cache entry is a small
OCI artifact, an image manifest tagged `ac-<key hex>`:

    artifactType     application/vnd.minibuild.action-entry.v1
    config           application/vnd.minibuild.action-result.v1+protobuf  the REAPI ActionResult, the bytes the
                                                                           other protocols store
    layers           application/octet-stream, one per output file (title annotation: its path)

The layers are there so that the registry refuses an entry whose blobs it lacks and its garbage collector
keeps every blob a tagged entry names. The registry client is `minibuild.oci.registry`, the one `minibuild
push` uses: credentials from docker's config.json (or `user:password@` in the URL), basic or bearer tokens.
It does not retry: like the other protocols, a fault costs a local run.
"""

from __future__ import annotations

import base64
import io
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import BinaryIO, TypeVar
from urllib.parse import urlsplit

from requests.adapters import HTTPAdapter

from minibuild.errors import InputError, MinibuildError
from minibuild.oci.registry import (
    DOCKER_HUB,
    DOCKER_HUB_API,
    Credentials,
    PushRecord,
    RegistryClient,
    RegistryError,
    RetryPolicy,
    is_repository_name,
    load_credentials,
    push_record_path,
)
from minibuild.oci.spec import MEDIA_TYPE_MANIFEST, canonical_json
from minibuild.remote import action_result
from minibuild.remote.tls import trusted_cas
from minibuild.remote_cache import BlobNotFound, Digest, OutputFile, RemoteCacheError, RemoteSettings

ARTIFACT_TYPE = "application/vnd.minibuild.action-entry.v1"
ACTION_RESULT_TYPE = "application/vnd.minibuild.action-result.v1+protobuf"
OUTPUT_TYPE = "application/octet-stream"
TITLE = "org.opencontainers.image.title"
TAG_PREFIX = "ac-"
MAX_MANIFEST = 4 << 20  # what the distribution spec says every registry should accept
MAX_ACTION_RESULT = 16 << 20  # an entry's files inline stay far below; anything bigger is not ours
RACE_PAUSE = 0.5  # seconds before a call is made again (see OciCache._run)
SCHEMES = {"oci": None, "oci+https": "https", "oci+http": "http"}  # -> the scheme spoken (None: push's rule)

T = TypeVar("T")


def tag_of(key: Digest) -> str:
    """The tag of an action's entry: `ac-` and the key's 64 hex digits (tags allow 128 of `[A-Za-z0-9_.-]`)."""
    return TAG_PREFIX + key.hash


@dataclass(frozen=True)
class Entry:
    """What an entry's manifest says: the ActionResult blob and the digests of its layers."""

    config: Digest
    layers: frozenset[str]  # `sha256:<hex>`


def entry_manifest(result: Digest, files: Sequence[OutputFile]) -> bytes:
    """The manifest of an entry: canonical JSON, so the same entry is the same manifest from every writer."""
    layers = [{"mediaType": OUTPUT_TYPE, "digest": f.digest.local, "size": f.digest.size,
               "annotations": {TITLE: f.path}} for f in files]
    return canonical_json({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": {"mediaType": ACTION_RESULT_TYPE, "digest": result.local, "size": result.size},
        "layers": layers,
    })


def parse_entry_manifest(data: bytes) -> Entry:
    """The parts of an entry's manifest; RemoteCacheError for a manifest minibuild did not write."""
    try:
        doc = json.loads(data)
        config = doc["config"]
        if config.get("mediaType") != ACTION_RESULT_TYPE:
            raise RemoteCacheError(f"a tag of the repository is not a minibuild entry (config media type "
                                   f"`{str(config.get('mediaType'))[:80]}`)")
        layers = frozenset(str(d["digest"]) for d in doc.get("layers") or [])
        return Entry(Digest.from_local(str(config["digest"]), int(config["size"])), layers)
    except (ValueError, KeyError, TypeError, AttributeError):
        raise RemoteCacheError("an entry's manifest is not an OCI image manifest (corrupt or cut short)") from None


def repository_of(url: str) -> tuple[str, str]:
    """(registry, repository) of `oci://HOST[:PORT]/REPOSITORY` (or `oci+https://`, `oci+http://`); InputError
    naming the URL when unusable."""
    parts = urlsplit(url)
    repository = parts.path.strip("/")
    if (parts.scheme not in SCHEMES or not parts.netloc or not is_repository_name(repository) or parts.query
            or parts.fragment):
        raise InputError(f"remote cache `{url}`: not `oci://HOST[:PORT]/REPOSITORY`",
                         hint="a repository is lowercase components joined by `/`, e.g. "
                              "`oci://127.0.0.1:5000/team/cache`")
    return parts.netloc, repository


class OciCache:
    def __init__(self, settings: RemoteSettings, *, cache_dir: str | None = None) -> None:
        self.settings = settings
        self.url = settings.url
        self.registry, self.repository = repository_of(settings.url)
        self._scheme = SCHEMES[urlsplit(settings.url).scheme]
        self._slots = threading.BoundedSemaphore(settings.connections)
        self._lock = threading.Lock()
        self._client: RegistryClient | None = None
        self._broken: RemoteCacheError | None = None  # why the registry could not be reached: not tried again
        self._record = PushRecord(push_record_path(cache_dir)) if cache_dir else None
        self._known: set[str] = set()  # blobs this repository has, for the push record

    # -- the connection ------------------------------------------------------------------------
    def _connected(self) -> RegistryClient:
        """The registry client, made and pinged once (scheme, authentication challenge) under the lock."""
        with self._lock:
            if self._client is not None:
                return self._client
            if self._broken is not None:
                raise self._broken
            try:
                credentials, headers = _credentials(self.settings.headers)
                if credentials is None and not any(k.lower() == "authorization" for k in headers):
                    credentials, _ = load_credentials(self.registry)  # its warnings are for `push`: a 401 says more
                api_host = DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry
                client = RegistryClient(self.registry, api_host=api_host, credentials=credentials,
                                        retry=RetryPolicy(tries=1), timeout=self.settings.timeout,
                                        connect_timeout=min(10.0, self.settings.timeout),
                                        ca_file=trusted_cas(self.settings), scheme=self._scheme)
                client.session.headers.update(headers)
                adapter = HTTPAdapter(pool_maxsize=self.settings.connections)
                client.session.mount("http://", adapter)
                client.session.mount("https://", adapter)
                client.ping()
            except RegistryError as exc:
                self._broken = _cause(exc, "GET /v2/", self.settings.timeout, unavailable=True)
                raise self._broken from None
            except MinibuildError as exc:  # not a registry, a damaged docker config
                self._broken = RemoteCacheError(exc.message, unavailable=True)
                raise self._broken from None
            self._client = client
            return client

    def _run(self, what: str, op: Callable[[RegistryClient], T], *, also: tuple[int, ...] = ()) -> T:
        """One registry call (`what` names it for a warning, the same for every call of its kind), made once
        more after a pause when the registry answered 5xx, 429 or a status in `also`.

        Not to hide a broken server, which then costs a pause per call: distribution's filesystem storage
        rewrites a blob's link file in place, so while one writer commits a blob that another has committed
        already, a reader may find the file empty (HEAD answers 500, a manifest put 400).
        """
        client = self._connected()
        for attempt in range(2):
            with self._slots:
                try:
                    return op(client)
                except RegistryError as exc:
                    again = exc.status is not None and (exc.status >= 500 or exc.status in (429, *also))
                    if attempt or not again:
                        raise _cause(exc, what, self.settings.timeout) from None
                except MinibuildError as exc:  # authentication refused, a local file unreadable
                    raise RemoteCacheError(exc.message) from None
            time.sleep(RACE_PAUSE)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- action cache --------------------------------------------------------------------------
    def get_action_result(self, key: Digest) -> list[OutputFile] | None:
        got = self._run(f"GET /v2/{self.repository}/manifests/{TAG_PREFIX}…",
                        lambda c: c.get_manifest(self.repository, tag_of(key), [MEDIA_TYPE_MANIFEST]))
        if got is None:
            return None
        entry = parse_entry_manifest(got[0])
        if entry.config.size > MAX_ACTION_RESULT:
            raise RemoteCacheError("an entry's ActionResult is too large to be one minibuild wrote")
        data = self._read_blob(entry.config)
        if Digest.of_bytes(data) != entry.config:
            raise RemoteCacheError("an entry's ActionResult did not match its digest (corrupt or cut short)")
        files = action_result.decode(data)
        if any(f.digest.local not in entry.layers for f in files):
            raise RemoteCacheError("an entry's manifest does not list every blob of its ActionResult")
        self._remember([f.digest.local for f in files])
        return files

    def update_action_result(self, key: Digest, files: Sequence[OutputFile]) -> None:
        data = action_result.encode(files)
        result = Digest.of_bytes(data)
        manifest = entry_manifest(result, files)
        if len(manifest) > MAX_MANIFEST:
            raise RemoteCacheError(f"an entry of {len(files)} files makes a manifest over the 4 MiB registries "
                                   "accept; not stored")
        if self.find_missing_blobs([result]):
            with tempfile.TemporaryDirectory(prefix="minibuild-oci-") as tmp:
                path = os.path.join(tmp, "action-result")
                with open(path, "wb") as f:
                    f.write(data)
                self.upload_blobs([(result, path)])
        self._run(f"PUT /v2/{self.repository}/manifests/{TAG_PREFIX}…",
                  lambda c: c.put_manifest(self.repository, tag_of(key), manifest, MEDIA_TYPE_MANIFEST), also=(400,))
        self._remember([f.digest.local for f in files])

    # -- blobs ---------------------------------------------------------------------------------
    def find_missing_blobs(self, digests: Sequence[Digest]) -> set[Digest]:
        return {d for d in digests if not self._has(d)}

    def _has(self, d: Digest) -> bool:
        return self._run(f"HEAD /v2/{self.repository}/blobs/…", lambda c: c.blob_exists(self.repository, d.local))

    def upload_blobs(self, blobs: Sequence[tuple[Digest, str]]) -> None:
        for d, path in blobs:
            self._upload(d, path)

    def _upload(self, d: Digest, path: str) -> None:
        """Mount the blob from a repository the push record names, else upload it (into the upload session a
        declined mount opened, if one did)."""
        location = None
        for source in self._sources(d):
            location = self._run(f"POST /v2/{self.repository}/blobs/uploads/?mount=…",
                                 lambda c: c.mount_blob(self.repository, d.local, source))  # noqa: B023 - called now
            if location is None:
                return
        self._run(f"PUT /v2/{self.repository}/blobs/uploads/…",
                  lambda c: c.upload_blob(self.repository, d.local, path, d.size, location=location))

    def _sources(self, digest: Digest) -> list[str]:
        """At most two other repositories of this registry the push record says have the blob."""
        if self._record is None:
            return []
        with self._lock:
            return self._record.sources(self.registry, digest.local, self.repository)[:2]

    def download_blobs(self, blobs: Sequence[tuple[Digest, str]]) -> None:
        for d, path in blobs:
            with open(path, "wb") as f:
                self._download(d, f)

    def _download(self, d: Digest, out: BinaryIO) -> None:
        what = f"GET /v2/{self.repository}/blobs/…"
        found = self._run(what, lambda c: c.download_blob(self.repository, d.local, out))
        if not found:
            raise BlobNotFound(f"no blob {d}")

    def _read_blob(self, digest: Digest) -> bytes:
        out = io.BytesIO()
        self._download(digest, out)
        return out.getvalue()

    # -- the push record -----------------------------------------------------------------------
    def _remember(self, digests: Sequence[str]) -> None:
        """Blobs this repository has: saved to the push record at the end, so that `minibuild push` to
        another repository of the registry mounts them from here instead of uploading them."""
        with self._lock:
            self._known.update(digests)

    def close(self) -> None:
        with self._lock:
            if self._record is not None and self._known:
                self._record.add(self.registry, self.repository, sorted(self._known))
                self._record.save()
                self._known.clear()
            if self._client is not None:
                self._client.session.close()


def _credentials(headers: Sequence[tuple[str, str]]) -> tuple[Credentials | None, dict[str, str]]:
    """A basic-auth header (from `user:password@` in the URL or a headers file) as registry credentials, so
    that the registry's token flow can use them; the other headers as they are."""
    credentials, rest = None, {}
    for name, value in headers:
        scheme, _, token = value.partition(" ")
        if name.lower() == "authorization" and scheme.lower() == "basic":
            try:
                user, sep, password = base64.b64decode(token.strip(), validate=True).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                sep = ""
            if sep:
                credentials = Credentials(user, password)
                continue
        rest[name] = value
    return credentials, rest


def _cause(exc: RegistryError, what: str, timeout: float, *, unavailable: bool = False) -> RemoteCacheError:
    """A warning's cause for a failed call: the same words for every call that fails the same way."""
    if exc.tls:
        return RemoteCacheError(f"TLS failed ({what}): {exc.reason}", unavailable=True)
    if exc.status is not None:
        auth = " (check the credentials)" if exc.status in (401, 403) else ""
        return RemoteCacheError(f"answered HTTP {exc.status} to {what}{auth}", unavailable=unavailable)
    if exc.timed_out:
        return RemoteCacheError(f"no answer within {timeout:g} s ({what})", unavailable=True)
    if exc.cut_short:
        return RemoteCacheError(f"the answer to {what} was {exc.reason}", unavailable=unavailable)
    return RemoteCacheError(f"unreachable ({what}): {exc.reason}", unavailable=True)
