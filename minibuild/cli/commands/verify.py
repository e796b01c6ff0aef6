"""`minibuild verify`: check an image's cosign-format signature in its registry with a public key."""

from __future__ import annotations

import argparse
import json
import sys

from minibuild.errors import InputError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("reference", metavar="REFERENCE",
                   help="the image: `registry[:port]/name[:tag]` or `registry[:port]/name@sha256:<hex>`")
    p.add_argument("--key", required=True, metavar="PUB", help="the public key (PEM), e.g. minibuild.pub")
    p.add_argument("--insecure", action="store_true",
                   help="allow plain HTTP and unverified TLS for this registry (loopback hosts always use HTTP)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")


_ACCEPT = ["application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json",
           "application/vnd.docker.distribution.manifest.v2+json",
           "application/vnd.docker.distribution.manifest.list.v2+json"]


def run(args: argparse.Namespace) -> int:
    from minibuild.cli import ui
    from minibuild.oci import registry
    from minibuild.oci.signing import VerificationError, load_public_key, verify_image
    from minibuild.oci.spec import is_digest, sha256_digest

    name, _, digest = args.reference.partition("@")
    if digest and not is_digest(digest):
        raise InputError(f"`{digest}` in `{args.reference}` is not a `sha256:<64 hex>` digest")
    ref = registry.parse_reference(name)
    key = load_public_key(args.key)
    credentials, warnings = registry.load_credentials(ref.registry)
    for w in warnings:
        ui.warn(w)
    client = registry.RegistryClient(ref.registry, api_host=ref.api_host, insecure=args.insecure,
                                     credentials=credentials)
    if not digest:
        found = client.get_manifest(ref.repository, ref.tag, _ACCEPT)
        if found is None:
            raise VerificationError(f"no image `{ref}` in the registry")
        digest = sha256_digest(found[0])  # what the tag names now
    verified = verify_image(client, ref, digest, key)
    image = f"{ref.registry}/{ref.repository}@{digest}"
    if args.json:
        json.dump({"image": image, "signature": f"{ref.registry}/{ref.repository}:{verified.tag}",
                   "docker-reference": verified.payload.docker_reference, "digest": verified.payload.digest,
                   "signatures": verified.signatures, "valid": verified.valid}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        ui.info(f"signature {ref.registry}/{ref.repository}:{verified.tag}: {verified.valid} of "
                f"{verified.signatures} verify with {args.key}")
        sys.stdout.write(f"Verified OK: {image}\n  docker-reference: {verified.payload.docker_reference}\n"
                         f"  docker-manifest-digest: {verified.payload.digest}\n")
    return 0
