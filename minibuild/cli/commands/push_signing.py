"""`push --sign`: what to sign with and attach (the options, else `[signing]` in workspace.toml), and signing and
attesting a pushed image: its root and, for a multi-platform image, each platform's manifest (docs/signing.md).
cryptography is imported only here, when an image is signed: a build never loads it."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from typing import Any

from minibuild.errors import InputError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sign", metavar="KEY",
                   help="sign the pushed image with this private key (`minibuild keygen`) in cosign's format, and "
                        "attach its SLSA provenance and SBOM (`--attach`); default: `[signing] key`; password "
                        "from MINIBUILD_SIGNING_PASSWORD")
    p.add_argument("--attach", metavar="WHAT",
                   help="what signing attaches, comma-separated: signature, provenance, sbom (default: "
                        "`[signing] attach`, else all three)")
    p.add_argument("--no-sign", action="store_true", help="do not sign, even when `[signing] key` is set")


@dataclass(frozen=True)
class SigningPlan:
    key: Any  # the private key (cryptography's EllipticCurvePrivateKey)
    key_path: str
    attach: tuple[str, ...]
    builder_id: str | None
    workspace_name: str


def _attach_list(text: str) -> tuple[str, ...]:
    from minibuild.workspace_config import ATTACHMENTS  # lazy: pydantic, which `push --help` does not need

    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    bad = [n for n in names if n not in ATTACHMENTS]
    if bad or not names:
        raise InputError(f"`--attach {text}`: " + (f"`{bad[0]}` is not" if bad else "name at least") + " one of "
                         + ", ".join(f"`{a}`" for a in ATTACHMENTS))
    return names


def signing_plan(args: argparse.Namespace) -> SigningPlan | None:
    """The key (loaded now, so a wrong key or password stops before the build) and what to attach; None when
    the push does not sign."""
    from minibuild.workspace import Workspace

    attach = _attach_list(args.attach) if args.attach else None
    if args.no_sign:
        if args.sign or args.attach:  # --attach says what signing attaches: a push that does not sign has none
            option = "--sign" if args.sign else "--attach"
            raise InputError(f"`{option}` and `--no-sign` contradict each other",
                             hint=f"drop `--no-sign` to sign, or `{option}` to push unsigned")
        return None
    workspace = Workspace.find()
    if not args.sign and not args.attach and workspace.unvalidated_table("signing") is None:
        return None  # nothing asks to sign: workspace.toml is not validated for it (pydantic, ~60 ms)
    config = workspace.config.signing
    key_path = args.sign or (os.path.join(str(workspace.root), config.key) if config.key else None)
    if key_path is None:
        if args.attach:
            raise InputError("`--attach` needs a key to sign with", hint="pass `--sign KEY` or set `[signing] key`")
        return None
    from minibuild.cli.commands.keygen import signing_password
    from minibuild.oci.signing import load_private_key

    try:
        key = load_private_key(key_path, lambda: signing_password(confirm=False))
    except InputError as exc:
        if args.sign or exc.origin is not None:
            raise
        # The key came from workspace.toml: say where it is named.
        raise InputError(exc.message, origin=workspace.config_origin(("signing", "key")), causes=exc.causes,
                         hint=exc.hint or "a path relative to the workspace root; `minibuild keygen` makes a "
                                          "key pair") from None
    return SigningPlan(key, key_path, attach or config.attach, config.builder_id, workspace.config.workspace.name)


@dataclass(frozen=True)
class Target:
    """One manifest to sign: the root (an image, or an index) or a platform's manifest of an index."""

    subject: Any  # Descriptor
    platforms: list[dict[str, Any]]  # the summary's platform entries it covers
    platform: str | None  # set for a platform's manifest of an index
    more_subjects: tuple[str, ...] = ()


def _targets(layout_dir: str, summary: dict[str, Any]) -> list[Target]:
    from minibuild.oci.layout import INDEX_TYPES, read_layout
    from minibuild.oci.spec import Descriptor

    layout = read_layout(layout_dir)
    root = layout.manifests[0]
    platforms = summary["platforms"]
    if root.media_type not in INDEX_TYPES:
        return [Target(root, platforms[:1], None)]
    with open(layout.blob_path(root.digest), "rb") as f:
        children = [Descriptor.from_json(d) for d in json.load(f).get("manifests") or []]
    by_digest = {p["manifest"]: p for p in platforms}
    out = [Target(root, platforms, None, tuple(c.digest for c in children))]
    out += [Target(c, [by_digest[c.digest]], by_digest[c.digest]["platform"]) for c in children
            if c.digest in by_digest]
    return out


def sign_pushed(plan: SigningPlan, client: Any, ref: Any, workspace: Any, image: Any) -> dict[str, Any]:
    """Sign and attest the pushed image; what was stored, for `push --json`."""
    from minibuild.cli import ui
    from minibuild.cli.commands.sbom import describe
    from minibuild.oci.attestation import SLSA_PROVENANCE_V1, SPDX_DOCUMENT
    from minibuild.oci.attesting import Predicate, attest_image
    from minibuild.oci.signing import sign_image
    from minibuild.reports import provenance

    root_dir, summary, label = str(workspace.root), image.summary, str(image.label)
    targets = _targets(os.path.join(root_dir, summary["oci"]), summary)
    referrers = client.get_referrers(ref.repository, targets[0].subject.digest) is not None
    where = f"{ref.registry}/{ref.repository}"
    out: dict[str, Any] = {"referrers_api": referrers, "manifests": []}
    for t in targets:
        done: dict[str, Any] = {"digest": t.subject.digest, **({"platform": t.platform} if t.platform else {})}
        what = f"  {t.platform or 'image'} {t.subject.digest[:19]}:"
        if "signature" in plan.attach:
            signed = sign_image(client, ref, t.subject, plan.key, referrers=referrers)
            done["signature"] = f"{where}:{signed.tag}"
            done["referrers"] = [signed.referrer] if signed.referrer else []
            ui.info(f"{what} signed ({signed.layers} signature{'' if signed.layers == 1 else 's'} in {signed.tag})")
        predicates = []
        if "provenance" in plan.attach:
            predicates.append(Predicate(SLSA_PROVENANCE_V1, provenance.predicate(
                root_dir, label, summary, t.platforms, builder_id=plan.builder_id,
                workspace_name=plan.workspace_name), t.more_subjects))
        if "sbom" in plan.attach and len(t.platforms) == 1:  # an index's SBOMs are its platforms'
            predicates.append(Predicate(SPDX_DOCUMENT, describe(workspace, label, summary, t.platforms[0]).doc))
        if predicates:
            attested = attest_image(client, ref, t.subject, plan.key, predicates, referrers=referrers)
            done["attestations"] = f"{where}:{attested.tag}"
            done["referrers"] = done.get("referrers", []) + ([attested.referrer] if attested.referrer else [])
            kinds = " and ".join("provenance" if p.predicate_type == SLSA_PROVENANCE_V1 else "SBOM"
                                 for p in predicates)
            ui.info(f"{what} {kinds} attested in {attested.tag}")
        out["manifests"].append(done)
    if not referrers:
        ui.info(f"  `{ref.registry}` has no referrers API: signatures and attestations are under tags only")
    return out
