"""`minibuild push`: build an image target and push its OCI layout to a registry, without a daemon."""

from __future__ import annotations

import argparse
import json
import os
import sys

from minibuild.cli.commands import push_signing
from minibuild.cli.commands.common import add_build_arguments, build_images
from minibuild.errors import InputError
from minibuild.oci.spec import Descriptor


def _size(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    text = text.strip().lower().removesuffix("ib").removesuffix("b")
    factor = units.get(text[-1:], 1)
    try:
        value = int(text[:-1] if text[-1:] in units else text) * factor
    except ValueError:
        raise argparse.ArgumentTypeError(f"`{text}` is not a size such as `64M`") from None
    if value < 1:
        raise argparse.ArgumentTypeError("the chunk size must be positive")
    return value


DEFAULT_TIMEOUT = 600.0


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"`{text}` is not a number of seconds such as `600`") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError("the timeout must be a positive number of seconds")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("label", metavar="LABEL", help="the image target to push")
    p.add_argument("--to", required=True, metavar="REFERENCE",
                   help="where to push: `registry[:port]/name[:tag]` (tag default `latest`)")
    p.add_argument("--from-repo", action="append", default=[], metavar="REPOSITORY",
                   help="a repository of the same registry to mount missing blobs from (repeatable)")
    p.add_argument("--insecure", action="store_true",
                   help="allow plain HTTP and unverified TLS for this registry (loopback hosts always use HTTP)")
    p.add_argument("--chunk-size", type=_size, default=None, metavar="SIZE",
                   help="upload blobs larger than this in chunks of this size (default 64M)")
    p.add_argument("--timeout", type=_seconds, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                   help="stop the push (exit 1) when it has not ended after this long, counted once the image is "
                        "built (default 600); each request also gets at most 60 s for its answer")
    push_signing.add_arguments(p)
    add_build_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def run(args: argparse.Namespace) -> int:
    # lazy: rich, loaded only when something is drawn
    from minibuild.cli import ui
    from minibuild.oci import registry
    from minibuild.oci.registry import DEFAULT_CHUNK_SIZE, PushRecord, RegistryClient, push_record_path

    ref = registry.parse_reference(args.to)  # bad input fails before any build
    credentials, warnings = registry.load_credentials(ref.registry)
    for w in warnings:
        ui.warn(w)
    signing = push_signing.signing_plan(args)  # a wrong key or password fails before any build
    workspace, images = build_images([args.label], args, quiet=args.json)
    if len(images) != 1:
        raise InputError(f"`{args.label}` names {len(images)} images; `push` needs exactly one",
                         hint="name one image target, e.g. `//images:bash`")
    [image] = images
    deadline = registry.Deadline(f"push to `{ref.registry}`", args.timeout)  # from here: the build is done
    client = RegistryClient(ref.registry, api_host=ref.api_host, insecure=args.insecure, credentials=credentials,
                            deadline=deadline, on_wait=ui.info)
    record = PushRecord(push_record_path(workspace.cache_dir))

    def on_blob(kind: str, desc: Descriptor, outcome: str) -> None:
        ui.info(f"  {kind} {desc.digest[:19]}  {ui.human(desc.size):>10}  {outcome}")

    ui.info(f"pushing {image.label} to {ref}")
    result = registry.push_layout(os.path.join(workspace.root, image.summary["oci"]), ref, client,
                                  from_repositories=args.from_repo, record=record,
                                  chunk_size=args.chunk_size or DEFAULT_CHUNK_SIZE, on_blob=on_blob)
    signed = None if signing is None else push_signing.sign_pushed(signing, client, ref, workspace, image)
    if client.retries:
        ui.info(f"  {client.retries} transient failures retried")
    if args.json:
        out = {"reference": result.reference, "digest": result.digest,
               "blobs": {"uploaded": result.uploaded, "skipped": result.skipped, "mounted": result.mounted}}
        if signed is not None:
            out["signing"] = signed
            root = signed["manifests"][0]
            for key in ("signature", "attestations"):
                if key in root:
                    out[key] = root[key]
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        ui.info(f"  blobs: {result.uploaded} uploaded, {result.skipped} already there, {result.mounted} mounted")
        sys.stdout.write(result.reference + "\n")
    return 0
