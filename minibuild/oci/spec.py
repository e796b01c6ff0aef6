"""Vocabulary of the OCI image spec shared by the other modules: media types, descriptors, platforms.

Every JSON document minibuild writes goes through `canonical_json` exactly once; the bytes it returns
are what gets hashed and what gets written, so a digest always names the bytes on disk.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from minibuild import digest

MEDIA_TYPE_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_TYPE_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_TYPE_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_TYPE_LAYER = "application/vnd.oci.image.layer.v1.tar"
MEDIA_TYPE_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_TYPE_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"

LAYER_MEDIA_TYPES = {"none": MEDIA_TYPE_LAYER, "gzip": MEDIA_TYPE_LAYER_GZIP, "zstd": MEDIA_TYPE_LAYER_ZSTD}

ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"

_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the one serialisation of every document we hash."""
    return digest.canonical_json(value).encode("utf-8")


sha256_digest = digest.sha256_bytes


def is_digest(value: str) -> bool:
    return _DIGEST_RE.fullmatch(value) is not None


def digest_hex(digest: str) -> str:
    """The hex part of a `sha256:` digest, which is also the blob's file name in a layout."""
    if not is_digest(digest):
        raise ValueError(f"not a sha256 digest: {digest!r}")
    return digest.split(":", 1)[1]


@dataclass(frozen=True)
class Platform:
    os: str = "linux"
    architecture: str = "amd64"
    variant: str | None = None

    def to_json(self) -> dict[str, str]:
        out = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Platform:
        return cls(os=obj["os"], architecture=obj["architecture"], variant=obj.get("variant") or None)

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor: what a manifest or index says about a blob it points to."""

    media_type: str
    digest: str
    size: int
    annotations: tuple[tuple[str, str], ...] = ()
    platform: Platform | None = None

    def __post_init__(self) -> None:
        if not is_digest(self.digest):
            raise ValueError(f"descriptor digest must be `sha256:<64 hex>`, got {self.digest!r}")
        if self.size < 0:
            raise ValueError(f"descriptor size must not be negative, got {self.size}")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform is not None:
            out["platform"] = self.platform.to_json()
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Descriptor:
        platform = obj.get("platform")
        return cls(
            media_type=obj["mediaType"],
            digest=obj["digest"],
            size=int(obj["size"]),
            annotations=tuple(sorted((obj.get("annotations") or {}).items())),
            platform=Platform.from_json(platform) if platform else None,
        )

    @property
    def hex(self) -> str:
        return digest_hex(self.digest)


def descriptor_for(
    data: bytes,
    media_type: str,
    *,
    annotations: dict[str, str] | None = None,
    platform: Platform | None = None,
) -> Descriptor:
    """The descriptor of `data` exactly as given: hash the bytes you will write, never a re-serialisation."""
    return Descriptor(
        media_type=media_type,
        digest=sha256_digest(data),
        size=len(data),
        annotations=tuple(sorted((annotations or {}).items())),
        platform=platform,
    )
