"""In-toto attestations in DSSE envelopes, as cosign stores them beside an image (docs/signing.md).

An attestation of the image `repo@sha256:<hex>` is a layer of the OCI manifest tagged `sha256-<hex>.att`: its
blob a DSSE envelope (`application/vnd.dsse.envelope.v1+json`) whose payload is an in-toto Statement v1 naming
the image's digest as its subject, its annotations `predicateType` (what the statement says: SLSA provenance,
an SPDX document) and `dev.cosignproject.cosign/signature`, empty (the signature is inside the envelope). The
envelope's signature is ECDSA P-256 / SHA-256 over the DSSE pre-authentication encoding (PAE) of the payload.
Only the formats live here; keys and the registry calls are in `signing` and `attesting`.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from minibuild.oci.spec import digest_hex

DSSE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
STATEMENT_TYPES = (STATEMENT_TYPE, "https://in-toto.io/Statement/v0.1")  # cosign's own attest writes v0.1
SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
SPDX_DOCUMENT = "https://spdx.dev/Document"
PREDICATE_TYPE_ANNOTATION = "predicateType"  # on the layer, as `cosign attest` writes it


def attestation_tag(digest: str) -> str:
    """`sha256-<hex>.att`: the tag cosign stores the attestations of the manifest `digest` under."""
    return f"sha256-{digest_hex(digest)}.att"


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSE v1's pre-authentication encoding, the bytes a signature covers:
    `DSSEv1 SP LEN(type) SP type SP LEN(body) SP body`, lengths in ASCII decimal."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(body), body)


def statement(subjects: list[tuple[str, str]], predicate_type: str, predicate: Any) -> bytes:
    """An in-toto Statement v1 about `subjects` ((name, sha256:<hex>) each), as compact JSON."""
    doc = {"_type": STATEMENT_TYPE,
           "subject": [{"name": name, "digest": {"sha256": digest_hex(digest)}} for name, digest in subjects],
           "predicateType": predicate_type, "predicate": predicate}
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode("utf-8")


def envelope(payload: bytes, signature_b64: str, payload_type: str = IN_TOTO_PAYLOAD_TYPE) -> bytes:
    """A DSSE envelope holding `payload` and one signature (base64 of the DER ECDSA signature over its PAE)."""
    doc = {"payloadType": payload_type, "payload": base64.b64encode(payload).decode("ascii"),
           "signatures": [{"keyid": "", "sig": signature_b64}]}
    return json.dumps(doc, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class Envelope:
    payload_type: str
    payload: bytes
    signatures: tuple[str, ...]  # base64, as stored

    @property
    def signed_bytes(self) -> bytes:
        return pae(self.payload_type, self.payload)


def parse_envelope(data: bytes) -> Envelope:
    """A DSSE envelope's parts; ValueError when it is not one."""
    try:
        doc = json.loads(data)
        payload = base64.b64decode(doc["payload"], validate=True)
        signatures = tuple(str(s["sig"]) for s in doc.get("signatures") or [])
        return Envelope(str(doc["payloadType"]), payload, signatures)
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise ValueError(f"not a DSSE envelope ({type(exc).__name__}: {exc})") from None


@dataclass(frozen=True)
class Statement:
    subjects: tuple[tuple[str, str], ...]  # (name, sha256:<hex>)
    predicate_type: str
    predicate: Any


def parse_statement(payload: bytes) -> Statement:
    """An in-toto statement's subjects and predicate; ValueError when it is not one."""
    try:
        doc = json.loads(payload)
        kind = doc["_type"]
        subjects = tuple((str(s.get("name", "")), "sha256:" + str(s["digest"]["sha256"])) for s in doc["subject"])
        parsed = Statement(subjects, str(doc["predicateType"]), doc.get("predicate"))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not an in-toto statement ({type(exc).__name__}: {exc})") from None
    if kind not in STATEMENT_TYPES:
        raise ValueError(f"statement type is `{kind}`, not `{STATEMENT_TYPE}`")
    return parsed
