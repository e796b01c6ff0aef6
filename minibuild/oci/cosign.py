"""cosign's key-based signature format, as the registry stores it (docs/signing.md).

A signature of the image `repo@sha256:<hex>` is an OCI manifest tagged `sha256-<hex>.sig` in the same
repository. Each of its layers is a simple-signing payload (JSON naming the repository and the manifest
digest) whose annotation `dev.cosignproject.cosign/signature` holds the base64 of an ECDSA P-256 / SHA-256
signature (ASN.1 DER) over the payload's bytes. Several signatures of one image are several layers.
Only the formats live here; keys and the registry calls are in `signing`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from minibuild.oci.spec import (
    MEDIA_TYPE_CONFIG,
    MEDIA_TYPE_MANIFEST,
    Descriptor,
    canonical_json,
    descriptor_for,
    digest_hex,
)

SIMPLE_SIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
PAYLOAD_TYPE = "cosign container image signature"
# The artifactType of referrers (OCI 1.1) as cosign's `--registry-referrers-mode=oci-1-1` writes them.
SIGNATURE_ARTIFACT_TYPE = "application/vnd.dev.cosign.artifact.sig.v1+json"


def signature_tag(digest: str) -> str:
    """`sha256-<hex>.sig`: the tag cosign stores the signatures of the manifest `digest` under."""
    return f"sha256-{digest_hex(digest)}.sig"


@dataclass(frozen=True)
class Payload:
    """What a simple-signing payload claims: which image (repository) and which manifest digest."""

    docker_reference: str
    digest: str


def simple_signing_payload(docker_reference: str, digest: str) -> bytes:
    """The payload cosign signs, byte for byte as cosign writes it (Go's field order, no whitespace)."""
    doc = {"critical": {"identity": {"docker-reference": docker_reference},
                        "image": {"docker-manifest-digest": digest},
                        "type": PAYLOAD_TYPE},
           "optional": None}
    return json.dumps(doc, separators=(",", ":")).encode("utf-8")


def parse_payload(data: bytes) -> Payload:
    """The claims of a payload; ValueError when it is not a cosign container image signature."""
    try:
        critical = json.loads(data)["critical"]
        kind = critical["type"]
        payload = Payload(str(critical["identity"]["docker-reference"]),
                          str(critical["image"]["docker-manifest-digest"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"not a simple-signing payload ({type(exc).__name__}: {exc})") from None
    if kind != PAYLOAD_TYPE:
        raise ValueError(f"payload type is `{kind}`, not `{PAYLOAD_TYPE}`")
    return payload


def signature_config(layers: list[Descriptor]) -> bytes:
    """The config blob of a signature manifest: an empty image whose diff_ids are the payloads, as cosign's."""
    return canonical_json({"architecture": "", "os": "", "config": {},
                           "rootfs": {"type": "layers", "diff_ids": [d.digest for d in layers]}})


def signature_manifest(config: Descriptor, layers: list[Descriptor], *, subject: Descriptor | None = None,
                       artifact_type: str | None = None) -> bytes:
    """A `.sig` or `.att` manifest; with `subject` (and its `artifactType`), the same as an OCI 1.1 referrer."""
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": MEDIA_TYPE_MANIFEST, "config": config.to_json(),
                           "layers": [d.to_json() for d in layers]}
    if artifact_type:
        doc["artifactType"] = artifact_type
    if subject is not None:
        doc["subject"] = Descriptor(subject.media_type, subject.digest, subject.size).to_json()
    return canonical_json(doc)


def signature_layers(manifest: bytes) -> list[Descriptor]:
    """The layers of a signature manifest (payloads and any other layer); ValueError when it is malformed."""
    try:
        doc: Any = json.loads(manifest)
        return [Descriptor.from_json(d) for d in doc.get("layers") or []]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"malformed signature manifest ({type(exc).__name__}: {exc})") from None


def config_descriptor(config: bytes) -> Descriptor:
    return descriptor_for(config, MEDIA_TYPE_CONFIG)
