"""Attach signed in-toto attestations to pushed images and verify them, as cosign does (docs/signing.md; the
formats are in `attestation`, keys and the registry's `.sig`/`.att` manifests in `signing`)."""

from __future__ import annotations

import io
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec

from minibuild.oci.attestation import (
    DSSE_MEDIA_TYPE,
    IN_TOTO_PAYLOAD_TYPE,
    PREDICATE_TYPE_ANNOTATION,
    Statement,
    attestation_tag,
    envelope,
    pae,
    parse_envelope,
    parse_statement,
    statement,
)
from minibuild.oci.cosign import SIGNATURE_ANNOTATION
from minibuild.oci.registry import Reference, RegistryClient
from minibuild.oci.signing import (
    MANIFEST_ACCEPT,
    Attached,
    NewLayer,
    VerificationError,
    attach,
    docker_reference,
    layers_of,
    sign_payload,
    signature_holds,
)
from minibuild.oci.spec import Descriptor, descriptor_for, sha256_digest


@dataclass(frozen=True)
class Predicate:
    predicate_type: str  # https://slsa.dev/provenance/v1, https://spdx.dev/Document
    predicate: object
    subjects: tuple[str, ...] = ()  # more digests the statement names (an index's platform manifests)


def attest_image(client: RegistryClient, ref: Reference, subject: Descriptor, key: ec.EllipticCurvePrivateKey,
                 predicates: list[Predicate], *, referrers: bool = False) -> Attached:
    """Sign each predicate as an in-toto statement about `subject` in a DSSE envelope and store them under the
    `.att` tag. An earlier attestation of the same predicate type by this key is replaced; others are kept."""
    name = docker_reference(ref)
    new = []
    for p in predicates:
        body = statement([(name, subject.digest), *((name, d) for d in p.subjects)], p.predicate_type, p.predicate)
        data = envelope(body, sign_payload(key, pae(IN_TOTO_PAYLOAD_TYPE, body)))
        layer = descriptor_for(data, DSSE_MEDIA_TYPE, annotations={SIGNATURE_ANNOTATION: "",
                                                                   PREDICATE_TYPE_ANNOTATION: p.predicate_type})
        new.append(NewLayer(layer, data))
    types = {p.predicate_type for p in predicates}
    public = key.public_key()

    def replaces(layer: Descriptor) -> bool:
        if layer.media_type != DSSE_MEDIA_TYPE or dict(layer.annotations).get(PREDICATE_TYPE_ANNOTATION) not in types:
            return False
        found = _check(client, ref.repository, layer, subject.digest, public)
        return isinstance(found, Statement)

    return attach(client, ref, subject, attestation_tag(subject.digest), new, replaces=replaces,
                  artifact_type=DSSE_MEDIA_TYPE, referrers=referrers)


def _check(client: RegistryClient, repo: str, layer: Descriptor, digest: str,
           key: ec.EllipticCurvePublicKey) -> Statement | str:
    """The statement of one `.att` layer, when its envelope is signed by `key` and names `digest`; else what is
    wrong with it."""
    out = io.BytesIO()
    if not client.download_blob(repo, layer.digest, out):
        return "the envelope blob is missing from the registry"
    data = out.getvalue()
    if sha256_digest(data) != layer.digest:
        return "the envelope blob does not match its digest (changed in the registry)"
    try:
        env = parse_envelope(data)
    except ValueError as exc:
        return str(exc)
    if env.payload_type != IN_TOTO_PAYLOAD_TYPE:
        return f"the envelope's payload type is `{env.payload_type}`, not `{IN_TOTO_PAYLOAD_TYPE}`"
    if not any(signature_holds(key, env.signed_bytes, s) for s in env.signatures):
        return "the envelope's signature does not verify with the key (another key, or a changed statement)"
    try:
        found = parse_statement(env.payload)
    except ValueError as exc:
        return str(exc)
    if digest not in (d for _, d in found.subjects):
        named = ", ".join(f"`{d}`" for _, d in found.subjects) or "nothing"
        return f"the statement is about another image: it names {named}"
    annotated = dict(layer.annotations).get(PREDICATE_TYPE_ANNOTATION)
    if annotated is not None and annotated != found.predicate_type:
        return f"the layer says predicate `{annotated}` but the statement holds `{found.predicate_type}`"
    return found


@dataclass(frozen=True)
class Attestations:
    tag: str
    statements: tuple[Statement, ...]  # one per predicate type, each verified
    layers: int  # DSSE layers of the `.att` manifest


def verify_attestations(client: RegistryClient, ref: Reference, digest: str, key: ec.EllipticCurvePublicKey,
                        *, required: tuple[str, ...] = ()) -> Attestations:
    """Check the `.att` manifest of `digest`: for each predicate type found there (and each of `required`), at
    least one statement signed by `key` naming `digest`, as cosign verify-attestation asks; else
    VerificationError saying what each attestation got wrong."""
    repo, tag = ref.repository, attestation_tag(digest)
    where = f"{ref.registry}/{repo}@{digest}"
    found = client.get_manifest(repo, tag, MANIFEST_ACCEPT)
    layers = [] if found is None else [d for d in layers_of(found[0], ref, tag) if d.media_type == DSSE_MEDIA_TYPE]
    if found is None and required:
        raise VerificationError(f"no attestations: `{where}` has no `{tag}` manifest",
                                hint="push it with `--sign KEY` and provenance or sbom attached")
    good: dict[str, Statement] = {}
    bad: dict[str, list[str]] = {}
    for layer in layers:
        kind = dict(layer.annotations).get(PREDICATE_TYPE_ANNOTATION, "(no predicateType annotation)")
        result = _check(client, repo, layer, digest, key)
        if isinstance(result, Statement):
            good.setdefault(result.predicate_type, result)
        else:
            bad.setdefault(kind, []).append(f"`{kind}` {layer.digest[:19]}: {result}")
    failed = [k for k in bad if k not in good] + [k for k in required if k not in good and k not in bad]
    if failed:
        causes = [c for k in failed for c in bad.get(k, [f"`{k}`: no such attestation in `{tag}`"])]
        raise VerificationError(f"the attestations of `{where}` do not hold: " + ", ".join(f"`{k}`" for k in failed),
                                causes=tuple(causes),
                                hint="the image was not attested with this key, or an attestation was tampered with")
    return Attestations(tag, tuple(good.values()), len(layers))
