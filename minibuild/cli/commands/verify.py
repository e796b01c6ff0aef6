"""`minibuild verify`: check an image's cosign-format signature and its attestations (SLSA provenance, SBOM) in
its registry with a public key; for a multi-platform image, the index's and each platform's (docs/signing.md)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from minibuild.errors import InputError

# cosign verify-attestation's `--type` names, and ours
_TYPES = {"provenance": "https://slsa.dev/provenance/v1", "slsaprovenance1": "https://slsa.dev/provenance/v1",
          "sbom": "https://spdx.dev/Document", "spdxjson": "https://spdx.dev/Document"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("reference", metavar="REFERENCE",
                   help="the image: `registry[:port]/name[:tag]` or `registry[:port]/name@sha256:<hex>`")
    p.add_argument("--key", required=True, metavar="PUB", help="the public key (PEM), e.g. minibuild.pub")
    p.add_argument("--type", action="append", default=[], choices=sorted(_TYPES), dest="types",
                   help="require this attestation (repeatable); the attestations found are checked in any case")
    p.add_argument("--insecure", action="store_true",
                   help="allow plain HTTP and unverified TLS for this registry (loopback hosts always use HTTP)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")


_ACCEPT = ["application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json",
           "application/vnd.docker.distribution.manifest.v2+json",
           "application/vnd.docker.distribution.manifest.list.v2+json"]
_INDEXES = ("application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json")


def _check(client: Any, ref: Any, digest: str, key: Any, required: tuple[str, ...],
           platform: str | None) -> dict[str, Any]:
    """Verify one manifest's signature and attestations; what they say."""
    from minibuild.oci.attestation import SLSA_PROVENANCE_V1, SPDX_DOCUMENT
    from minibuild.oci.attesting import verify_attestations
    from minibuild.oci.signing import verify_image
    from minibuild.reports.provenance import summary_of

    signed = verify_image(client, ref, digest, key)
    attested = verify_attestations(client, ref, digest, key, required=required)
    out: dict[str, Any] = {"digest": digest, **({"platform": platform} if platform else {}),
                           "signature": f"{ref.registry}/{ref.repository}:{signed.tag}",
                           "docker-reference": signed.payload.docker_reference,
                           "signatures": signed.signatures, "valid": signed.valid, "attestations": {}}
    for s in attested.statements:
        if s.predicate_type == SLSA_PROVENANCE_V1:
            out["attestations"]["provenance"] = summary_of(s.predicate)
        elif s.predicate_type == SPDX_DOCUMENT:
            doc = s.predicate if isinstance(s.predicate, dict) else {}
            packages = [p.get("name") for p in doc.get("packages") or [] if p.get("SPDXID") != "SPDXRef-Image"]
            out["attestations"]["sbom"] = {"packages": len(packages), "files": len(doc.get("files") or []),
                                           "names": packages}
        else:
            out["attestations"][s.predicate_type] = {}
    return out


def _children(data: bytes) -> list[tuple[str, str | None]]:
    doc = json.loads(data)
    out = []
    for m in doc.get("manifests") or []:
        p = m.get("platform") or {}
        name = "/".join(x for x in (p.get("os"), p.get("architecture"), p.get("variant")) if x) or None
        out.append((str(m["digest"]), name))
    return out


def _print(image: str, results: list[dict[str, Any]]) -> None:
    lines = [f"Verified OK: {image}"]
    for r in results:
        if r.get("platform"):
            lines.append(f"{r['platform']}: {r['digest']}")
        lines += [f"  signature: {r['valid']} of {r['signatures']} verify ({r['signature']})",
                  f"  docker-reference: {r['docker-reference']}"]
        prov, sbom = r["attestations"].get("provenance"), r["attestations"].get("sbom")
        if prov:
            lines.append(f"  provenance: builder {prov['builder']}, target {prov['target']}, "
                         f"{prov['inputs']} inputs ({prov['debs']} .deb)"
                         + (f", commit {prov['commit']}" if prov.get("commit") else ""))
        if sbom:
            names = ", ".join(sbom["names"][:8]) + (", ..." if len(sbom["names"]) > 8 else "")
            lines.append(f"  sbom: {sbom['packages']} packages, {sbom['files']} files" + (f" ({names})" if names
                                                                                          else ""))
        if not r["attestations"]:
            lines.append("  attestations: none")
    sys.stdout.write("\n".join(lines) + "\n")


def run(args: argparse.Namespace) -> int:
    from minibuild.cli import ui
    from minibuild.oci import registry
    from minibuild.oci.signing import VerificationError, load_public_key
    from minibuild.oci.spec import is_digest, sha256_digest

    name, _, digest = args.reference.partition("@")
    if digest and not is_digest(digest):
        raise InputError(f"`{digest}` in `{args.reference}` is not a `sha256:<64 hex>` digest")
    try:
        ref = registry.parse_reference(name)
    except InputError as exc:  # its hint is push's (`--to`)
        raise InputError(exc.message, hint="write it as `registry[:port]/name[:tag]` or "
                                           "`registry[:port]/name@sha256:<hex>`, e.g. `127.0.0.1:5000/demo/bash:1`") \
            from None
    key = load_public_key(args.key)
    required = tuple(dict.fromkeys(_TYPES[t] for t in args.types))
    credentials, warnings = registry.load_credentials(ref.registry)
    for w in warnings:
        ui.warn(w)
    client = registry.RegistryClient(ref.registry, api_host=ref.api_host, insecure=args.insecure,
                                     credentials=credentials)
    found = client.get_manifest(ref.repository, digest or ref.tag, _ACCEPT)
    if found is None:
        raise VerificationError(f"no image `{args.reference}` in the registry")
    if not digest:
        digest = sha256_digest(found[0])  # what the tag names now
    elif sha256_digest(found[0]) != digest:
        raise VerificationError(f"the registry answered `{args.reference}` with other bytes "
                                f"(`{sha256_digest(found[0])}`)")
    index = found[1] in _INDEXES
    sbom = _TYPES["sbom"]  # an index's SBOMs are its platforms'
    results = [_check(client, ref, digest, key, tuple(r for r in required if not (index and r == sbom)), None)]
    if index:
        # The index names each platform's manifest by digest, so its signature covers them; a platform's own
        # signature, when there, must hold too, and its SBOM is checked there.
        from minibuild.oci.signing import signature_tag

        for child, platform in _children(found[0]):
            if client.get_manifest(ref.repository, signature_tag(child), _ACCEPT) is None and sbom not in required:
                ui.info(f"{platform or child}: not signed on its own (the index's signature covers it)")
                continue
            results.append(_check(client, ref, child, key, tuple(r for r in required if r == sbom), platform))
    image = f"{ref.registry}/{ref.repository}@{digest}"
    if args.json:
        json.dump({"image": image, **results[0], "platforms": results[1:]}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print(image, results)
    return 0
