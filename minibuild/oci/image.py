"""Image config, manifest and index documents, as the OCI image spec defines them.

Each function returns the bytes of one document, serialised once by `canonical_json`; hash and write
those bytes, never a re-serialisation. Empty fields are omitted, never written as null.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from minibuild.errors import InputError
from minibuild.oci.layer import Layer
from minibuild.oci.spec import (
    MEDIA_TYPE_CONFIG,
    MEDIA_TYPE_INDEX,
    MEDIA_TYPE_MANIFEST,
    Descriptor,
    Platform,
    canonical_json,
    descriptor_for,
)

__all__ = [
    "MEDIA_TYPE_CONFIG",
    "MEDIA_TYPE_INDEX",
    "MEDIA_TYPE_MANIFEST",
    "Descriptor",
    "ImageBlobs",
    "ImageConfig",
    "Platform",
    "assemble_image",
    "assemble_index",
    "config_json",
    "created_timestamp",
    "descriptor_for",
    "index_json",
    "manifest_json",
]

_PORT_RE = re.compile(r"(\d{1,5})(?:/(tcp|udp|sctp))?")
_ENV_KEY_RE = re.compile(r"[^=\0]+")


def created_timestamp(epoch: int) -> str:
    """RFC 3339 in UTC with a `Z`, second precision: `1970-01-01T00:00:00Z` for epoch 0."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _strings(name: str, values: Sequence[str]) -> list[str]:
    if isinstance(values, str) or not all(isinstance(v, str) for v in values):
        raise InputError(f"`{name}` must be a list of strings, got {values!r}")
    return list(values)


def _env_key(item: str) -> str:
    return item.split("=", 1)[0]


@dataclass(frozen=True)
class ImageConfig:
    """The runtime config the user gives: becomes the `config` object of the image config document."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ()  # "KEY=value", in order
    workdir: str = ""
    user: str = ""
    labels: tuple[tuple[str, str], ...] = ()
    exposed_ports: tuple[str, ...] = ()  # "80", "80/tcp", "53/udp"; a bare port means tcp
    stop_signal: str = ""
    volumes: tuple[str, ...] = ()  # directories a container gets a volume on (`docker run` makes one if not given)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.user:
            out["User"] = self.user
        if self.exposed_ports:
            out["ExposedPorts"] = {_normalise_port(p): {} for p in self.exposed_ports}
        if self.env:
            env = _strings("env", self.env)
            seen: dict[str, str] = {}
            for item in env:
                if "=" not in item or not _ENV_KEY_RE.fullmatch(_env_key(item)):
                    raise InputError(f"environment entry `{item}` must have the form `KEY=value`")
                key = _env_key(item)
                if key in seen and seen[key] != item:
                    raise InputError(f"environment variable `{key}` is set twice: `{seen[key]}` and `{item}`")
                seen[key] = item
            out["Env"] = list(seen.values())
        if self.entrypoint:
            out["Entrypoint"] = _strings("entrypoint", self.entrypoint)
        if self.cmd:
            out["Cmd"] = _strings("cmd", self.cmd)
        if self.workdir:
            out["WorkingDir"] = self.workdir
        if self.labels:
            labels: dict[str, str] = {}
            for key, value in self.labels:
                if key in labels and labels[key] != value:
                    raise InputError(f"label `{key}` is set twice: `{labels[key]}` and `{value}`")
                labels[key] = value
            out["Labels"] = labels
        if self.stop_signal:
            out["StopSignal"] = self.stop_signal
        if self.volumes:
            out["Volumes"] = {v: {} for v in self.volumes}
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any] | None) -> ImageConfig:
        """Read the `config` object of an existing image (a base image); unknown fields are dropped."""
        obj = obj or {}
        return cls(
            entrypoint=tuple(obj.get("Entrypoint") or ()),
            cmd=tuple(obj.get("Cmd") or ()),
            env=tuple(obj.get("Env") or ()),
            workdir=obj.get("WorkingDir") or "",
            user=obj.get("User") or "",
            labels=tuple(sorted((obj.get("Labels") or {}).items())),
            exposed_ports=tuple(sorted(obj.get("ExposedPorts") or {})),
            stop_signal=obj.get("StopSignal") or "",
            volumes=tuple(sorted(obj.get("Volumes") or {})),
        )

    def inherit(self, base: ImageConfig) -> ImageConfig:
        """This config on top of a base image's, as a Dockerfile `FROM` would have it.

        Fields set here win; env and labels merge by key (ours win); exposed ports and volumes add up. Setting an
        entrypoint drops the base's cmd, because a base cmd is an argument list for the base entrypoint.
        """
        env = {_env_key(e): e for e in base.env}
        env.update({_env_key(e): e for e in self.env})
        labels = dict(base.labels)
        labels.update(self.labels)
        ports = {_normalise_port(p): None for p in (*base.exposed_ports, *self.exposed_ports)}
        if self.entrypoint:
            cmd = self.cmd
        else:
            cmd = self.cmd or base.cmd
        return ImageConfig(
            entrypoint=self.entrypoint or base.entrypoint,
            cmd=cmd,
            env=tuple(env.values()),
            workdir=self.workdir or base.workdir,
            user=self.user or base.user,
            labels=tuple(labels.items()),
            exposed_ports=tuple(ports),
            stop_signal=self.stop_signal or base.stop_signal,
            volumes=tuple(dict.fromkeys((*base.volumes, *self.volumes))),
        )


def _normalise_port(port: str) -> str:
    match = _PORT_RE.fullmatch(str(port))
    if not match or not 1 <= int(match.group(1)) <= 65535:
        raise InputError(f"exposed port `{port}` must look like `80`, `80/tcp`, `53/udp` or `9/sctp`")
    return f"{int(match.group(1))}/{match.group(2) or 'tcp'}"


HistoryItem = str | Mapping[str, Any]


def config_json(
    platform: Platform,
    config: ImageConfig,
    layers: Sequence[Layer],
    history: Sequence[HistoryItem],
    epoch: int = 0,
) -> bytes:
    """The image config document (media type `application/vnd.oci.image.config.v1+json`).

    history: one item per layer, in layer order. A string is the `created_by` text of a layer this build
    made (its `created` is the epoch); a mapping is a history entry kept verbatim from a base image, where
    entries with `empty_layer: true` match no layer.
    """
    created = created_timestamp(epoch)
    entries: list[dict[str, Any]] = []
    for item in history:
        if isinstance(item, str):
            entry: dict[str, Any] = {"created": created}
            if item:
                entry["created_by"] = item
            entries.append(entry)
        else:
            entries.append(dict(item))
    with_layer = sum(1 for e in entries if not e.get("empty_layer"))
    if with_layer != len(layers):
        raise ValueError(f"history has {with_layer} entries for layers but there are {len(layers)} layers")
    doc: dict[str, Any] = {
        "created": created,
        **platform.to_json(),
        "config": config.to_json(),
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
    }
    if entries:
        doc["history"] = entries
    return canonical_json(doc)


def _check_annotations(annotations: Mapping[str, str]) -> None:
    for key, value in annotations.items():
        if not isinstance(key, str) or not key or not isinstance(value, str):
            raise InputError(f"annotation {key!r}: {value!r} must map a non-empty string to a string")


def manifest_json(
    config: Descriptor,
    layers: Sequence[Layer],
    annotations: Mapping[str, str] | None = None,
) -> bytes:
    """The image manifest document (`application/vnd.oci.image.manifest.v1+json`).

    annotations: e.g. `org.opencontainers.image.source`, `...version`, `...created` (the caller picks them;
    use created_timestamp(epoch) for `created` so it stays reproducible).
    """
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_MANIFEST,
        "config": config.to_json(),
        "layers": [layer.descriptor.to_json() for layer in layers],
    }
    if annotations:
        _check_annotations(annotations)
        doc["annotations"] = dict(annotations)
    return canonical_json(doc)


def index_json(manifests: Sequence[Descriptor], annotations: Mapping[str, str] | None = None) -> bytes:
    """An image index document (`application/vnd.oci.image.index.v1+json`): also the form of index.json."""
    platforms = [str(m.platform) for m in manifests if m.platform is not None]
    duplicates = sorted({p for p in platforms if platforms.count(p) > 1})
    if duplicates:
        raise InputError(f"an image index has more than one image for platform `{duplicates[0]}`")
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_INDEX,
        "manifests": [m.to_json() for m in manifests],
    }
    if annotations:
        _check_annotations(annotations)
        doc["annotations"] = dict(annotations)
    return canonical_json(doc)


@dataclass(frozen=True)
class ImageBlobs:
    """Every document and blob of one single-platform image, ready for write_layout or an archive."""

    platform: Platform
    config: Descriptor
    config_bytes: bytes
    manifest: Descriptor  # carries `platform`, for use in an index
    manifest_bytes: bytes
    layers: tuple[tuple[Layer, str], ...] = field(default=())  # each layer with the host path of its blob

    def blobs(self) -> dict[str, str | bytes]:
        out: dict[str, str | bytes] = {layer.descriptor.digest: path for layer, path in self.layers}
        out[self.config.digest] = self.config_bytes
        out[self.manifest.digest] = self.manifest_bytes
        return out


def assemble_image(
    platform: Platform,
    config: ImageConfig,
    layers: Sequence[tuple[Layer, str]],
    history: Sequence[HistoryItem],
    *,
    epoch: int = 0,
    annotations: Mapping[str, str] | None = None,
) -> ImageBlobs:
    """Config and manifest of an image made of `layers` (bottom first; base image layers included)."""
    only_layers = [layer for layer, _ in layers]
    config_bytes = config_json(platform, config, only_layers, history, epoch)
    config_desc = descriptor_for(config_bytes, MEDIA_TYPE_CONFIG)
    manifest_bytes = manifest_json(config_desc, only_layers, annotations)
    return ImageBlobs(
        platform=platform,
        config=config_desc,
        config_bytes=config_bytes,
        manifest=descriptor_for(manifest_bytes, MEDIA_TYPE_MANIFEST, platform=platform),
        manifest_bytes=manifest_bytes,
        layers=tuple(layers),
    )


def assemble_index(
    images: Sequence[ImageBlobs], annotations: Mapping[str, str] | None = None
) -> tuple[Descriptor, bytes, dict[str, str | bytes]]:
    """A multi-platform image: the index's descriptor, its bytes, and all blobs (the index's included)."""
    data = index_json([image.manifest for image in images], annotations)
    desc = descriptor_for(data, MEDIA_TYPE_INDEX)
    blobs: dict[str, str | bytes] = {}
    for image in images:
        blobs.update(image.blobs())
    blobs[desc.digest] = data
    return desc, data, blobs
