"""Sign pushed images and verify them, in cosign's key-based format (docs/signing.md; formats in `cosign`).

Keys are ECDSA P-256: the private key a PKCS#8 PEM encrypted with a password (PBES2: PBKDF2-SHA256 as
OpenSSL does it, AES-256-CBC), the public key a SubjectPublicKeyInfo PEM, which `cosign verify --key` reads.
Passwords come from MINIBUILD_SIGNING_PASSWORD, else COSIGN_PASSWORD (what cosign users already set); they
never appear in a message.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from minibuild.errors import InputError, MinibuildError
from minibuild.oci.cosign import (
    SIGNATURE_ANNOTATION,
    SIGNATURE_ARTIFACT_TYPE,
    SIMPLE_SIGNING_MEDIA_TYPE,
    Payload,
    config_descriptor,
    parse_payload,
    signature_config,
    signature_layers,
    signature_manifest,
    signature_tag,
    simple_signing_payload,
)
from minibuild.oci.registry import DOCKER_HUB, Reference, RegistryClient
from minibuild.oci.spec import MEDIA_TYPE_MANIFEST, Descriptor, descriptor_for, sha256_digest

PASSWORD_VARIABLES = ("MINIBUILD_SIGNING_PASSWORD", "COSIGN_PASSWORD")
_COSIGN_PEM_TYPES = (b"ENCRYPTED SIGSTORE PRIVATE KEY", b"ENCRYPTED COSIGN PRIVATE KEY")
MANIFEST_ACCEPT = [MEDIA_TYPE_MANIFEST, "application/vnd.docker.distribution.manifest.v2+json"]


class VerificationError(MinibuildError):
    """An image whose signature is missing or does not hold: a failed check, like a failed test."""

    exit_code = 1


def password_from_environment(env: Mapping[str, str] | None = None) -> bytes | None:
    env = os.environ if env is None else env
    for name in PASSWORD_VARIABLES:
        if env.get(name):
            return env[name].encode("utf-8")
    return None


@dataclass(frozen=True)
class KeyPair:
    private_pem: bytes
    public_pem: bytes


def generate_key_pair(password: bytes) -> KeyPair:
    if not password:
        raise InputError("the private key needs a password", hint=f"set {PASSWORD_VARIABLES[0]}")
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.BestAvailableEncryption(password))
    return KeyPair(private, public_pem(key.public_key()))


def public_pem(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise InputError(f"cannot read the {what} `{path}`: {exc.strerror}") from None


def load_private_key(path: str, password: Callable[[], bytes]) -> ec.EllipticCurvePrivateKey:
    """The P-256 signing key in `path`: a PEM, encrypted PKCS#8 as keygen writes (then `password()` is asked
    for it) or unencrypted PKCS#8 / SEC1."""
    data = _read(path, "private key")
    if any(t in data for t in _COSIGN_PEM_TYPES):
        raise InputError(f"`{path}` is in cosign's own encrypted format (scrypt + secretbox), which minibuild "
                         "does not read yet", hint="make a key pair with `minibuild keygen`; cosign verifies "
                         "with its `.pub` file")
    encrypted = b"ENCRYPTED" in data  # `ENCRYPTED PRIVATE KEY`, or SEC1's `Proc-Type: 4,ENCRYPTED`
    try:
        key = serialization.load_pem_private_key(data, password() if encrypted else None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        what = "cannot be decrypted with the password set" if encrypted else "is not a PEM private key"
        raise InputError(f"the private key `{path}` {what}",
                         hint=f"check {PASSWORD_VARIABLES[0]}" if encrypted else "use `minibuild keygen`") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise InputError(f"the private key `{path}` is not an ECDSA P-256 key", hint="use `minibuild keygen`")
    return key


def load_public_key(path: str) -> ec.EllipticCurvePublicKey:
    data = _read(path, "public key")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise InputError(f"`{path}` is not a PEM public key", hint="pass the `.pub` file `minibuild keygen` "
                         "wrote") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise InputError(f"the public key `{path}` is not an ECDSA P-256 key")
    return key


def sign_payload(key: ec.EllipticCurvePrivateKey, payload: bytes) -> str:
    """The annotation value: base64 of the DER ECDSA signature over the SHA-256 of the payload's bytes.

    Deterministic (RFC 6979) where cryptography offers it (44 and later): the same key signing the same bytes
    gives the same signature, so pushing again writes the same layers and referrer manifests, not new ones.
    Verifiers cannot tell the difference: any valid ECDSA signature verifies."""
    try:
        algorithm = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
        signature = key.sign(payload, algorithm)
    except (TypeError, UnsupportedAlgorithm):
        signature = key.sign(payload, ec.ECDSA(hashes.SHA256()))
    return base64.b64encode(signature).decode("ascii")


def signature_holds(key: ec.EllipticCurvePublicKey, payload: bytes, signature_b64: str) -> bool:
    try:
        key.verify(base64.b64decode(signature_b64, validate=True), payload, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


@dataclass(frozen=True)
class Attached:
    """What `attach` left in the registry: the tag's manifest and, on a registry with the referrers API, the
    referrer manifest of this signing's own layers."""

    tag: str  # sha256-<hex>.sig or .att
    manifest_digest: str
    layers: int  # of the tag's manifest, these included
    referrer: str | None  # the referrer manifest's digest; None: the registry has no referrers API


@dataclass(frozen=True)
class NewLayer:
    descriptor: Descriptor
    data: bytes


def attach(client: RegistryClient, ref: Reference, subject: Descriptor, tag: str, new: list[NewLayer], *,
           replaces: Callable[[Descriptor], bool], artifact_type: str, referrers: bool) -> Attached:
    """Add `new` layers to the manifest under `tag` (cosign's scheme), keeping the layers there except those
    `replaces` says these supersede; with `referrers`, also put a manifest of the new layers whose `subject` is
    the image (OCI 1.1), by digest."""
    repo = ref.repository
    found = client.get_manifest(repo, tag, MANIFEST_ACCEPT)
    kept = [] if found is None else [d for d in layers_of(found[0], ref, tag) if not replaces(d)]
    own = [n.descriptor for n in new]
    layers = kept + own
    config = signature_config(layers)
    blobs = [n.data for n in new] + [config]
    referrer_doc = None
    if referrers:
        referrer_config = signature_config(own)
        blobs.append(referrer_config)
        referrer_doc = signature_manifest(config_descriptor(referrer_config), own, subject=subject,
                                          artifact_type=artifact_type)
    _upload(client, repo, blobs)
    manifest = signature_manifest(config_descriptor(config), layers)
    client.put_manifest(repo, tag, manifest, MEDIA_TYPE_MANIFEST)
    referrer = None
    if referrer_doc is not None:
        referrer = client.put_manifest(repo, sha256_digest(referrer_doc), referrer_doc, MEDIA_TYPE_MANIFEST)
    return Attached(tag, sha256_digest(manifest), len(layers), referrer)


def _upload(client: RegistryClient, repo: str, blobs: list[bytes]) -> None:
    with tempfile.TemporaryDirectory(prefix="minibuild-sign-") as tmp:
        for i, data in enumerate(blobs):
            digest = sha256_digest(data)
            if not client.blob_exists(repo, digest):
                path = os.path.join(tmp, str(i))
                with open(path, "wb") as f:
                    f.write(data)
                client.upload_blob(repo, digest, path, len(data))


def sign_image(client: RegistryClient, ref: Reference, subject: Descriptor, key: ec.EllipticCurvePrivateKey, *,
               referrers: bool = False) -> Attached:
    """Sign the manifest `subject` pushed to `ref`'s repository and store the signature under its `.sig` tag.

    Signatures already there are kept (an image may be signed by several keys), except an earlier one by
    this key over the same payload, which this one replaces: re-signing does not grow the manifest.
    """
    payload = simple_signing_payload(docker_reference(ref), subject.digest)
    layer = descriptor_for(payload, SIMPLE_SIGNING_MEDIA_TYPE,
                           annotations={SIGNATURE_ANNOTATION: sign_payload(key, payload)})
    public = key.public_key()
    return attach(client, ref, subject, signature_tag(subject.digest), [NewLayer(layer, payload)],
                  replaces=lambda d: _same_signer(d, layer.digest, public, payload),
                  artifact_type=SIGNATURE_ARTIFACT_TYPE, referrers=referrers)


def docker_reference(ref: Reference) -> str:
    """The repository as cosign names it in a payload: Docker Hub's as `index.docker.io/library/x`."""
    return f"{'index.docker.io' if ref.registry == DOCKER_HUB else ref.registry}/{ref.repository}"


def layers_of(manifest: bytes, ref: Reference, tag: str) -> list[Descriptor]:
    try:
        return signature_layers(manifest)
    except ValueError as exc:
        raise VerificationError(f"`{ref.registry}/{ref.repository}:{tag}` is not a signature manifest: {exc}") \
            from None


def _same_signer(layer: Descriptor, payload_digest: str, key: ec.EllipticCurvePublicKey, payload: bytes) -> bool:
    signature = dict(layer.annotations).get(SIGNATURE_ANNOTATION)
    return layer.digest == payload_digest and signature is not None and signature_holds(key, payload, signature)


@dataclass(frozen=True)
class Verified:
    digest: str
    tag: str
    payload: Payload
    signatures: int  # layers of the signature manifest
    valid: int  # of them, those that verify with the key and name the digest


def verify_image(client: RegistryClient, ref: Reference, digest: str, key: ec.EllipticCurvePublicKey) -> Verified:
    """Check the `.sig` manifest of `digest`: a payload naming `digest`, signed by `key`; else VerificationError
    saying what each signature got wrong."""
    repo, tag = ref.repository, signature_tag(digest)
    where = f"{ref.registry}/{repo}:{tag}"
    found = client.get_manifest(repo, tag, MANIFEST_ACCEPT)
    if found is None:
        raise VerificationError(f"no signature: `{ref.registry}/{repo}@{digest}` has no `{tag}` manifest",
                                hint="sign it with `minibuild push LABEL --to REF --sign KEY`")
    layers = [d for d in layers_of(found[0], ref, tag) if d.media_type == SIMPLE_SIGNING_MEDIA_TYPE]
    problems: list[str] = []
    valid: list[Payload] = []
    for layer in layers:
        problem, payload = _check_layer(client, repo, layer, digest, key)
        if payload is not None:
            valid.append(payload)
        else:
            problems.append(f"payload {layer.digest[:19]}: {problem}")
    if not valid:
        if not layers:
            problems.append(f"`{where}` holds no `{SIMPLE_SIGNING_MEDIA_TYPE}` layer")
        raise VerificationError(f"the signature of `{ref.registry}/{repo}@{digest}` does not hold",
                                causes=tuple(problems),
                                hint="the image was not signed with this key, or its signature was tampered with")
    return Verified(digest, tag, valid[0], len(layers), len(valid))


def _check_layer(client: RegistryClient, repo: str, layer: Descriptor, digest: str,
                 key: ec.EllipticCurvePublicKey) -> tuple[str, Payload | None]:
    signature = dict(layer.annotations).get(SIGNATURE_ANNOTATION)
    if not signature:
        return f"no `{SIGNATURE_ANNOTATION}` annotation", None
    out = io.BytesIO()
    if not client.download_blob(repo, layer.digest, out):
        return "the payload blob is missing from the registry", None
    data = out.getvalue()
    if sha256_digest(data) != layer.digest:
        return "the payload blob does not match its digest", None
    if not signature_holds(key, data, signature):
        return "the signature does not verify with the key (another key, or a changed payload)", None
    try:
        payload = parse_payload(data)
    except ValueError as exc:
        return str(exc), None
    if payload.digest != digest:
        return f"the payload is for another image: it names `{payload.digest}`", None
    return "", payload
