"""`minibuild sbom LABEL`: an SPDX 2.3 (or CycloneDX 1.5) JSON document of an image, on stdout or in a file."""

from __future__ import annotations

import argparse
import json
import os
import sys

from minibuild.cli.commands import common
from minibuild.cli.commands.common import build_records
from minibuild.errors import InputError
from minibuild.image.platform import host_architecture
from minibuild.reports import sbom


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("label", help="an image target")
    p.add_argument("--format", choices=("spdx", "cyclonedx"), default="spdx",
                   help="SPDX 2.3 JSON (default) or CycloneDX 1.5 JSON")
    p.add_argument("-o", "--output", metavar="FILE", help="write the document here instead of stdout")
    common.add_build_arguments(p)


def run(args: argparse.Namespace) -> int:
    # lazy: rich, loaded only when something is drawn
    from minibuild.cli import render, ui

    workspace, records = build_records([args.label], args)
    if len(records) != 1:
        raise InputError(f"`{args.label}` names {len(records)} images; `minibuild sbom` describes one",
                         hint="name a single image target, e.g. `//images:bash`")
    [record] = records
    layout = os.path.join(str(workspace.root), record.summary["oci"])

    sysroot = workspace.sysroot(f"linux/{host_architecture()}")
    files, packages = sbom.collect(record.summary, layout, sysroot)
    if not packages:
        ui.warn(f"no dpkg database in sysroot `{sysroot}` owns a file of `{record.label}`: "
                "the SBOM lists files only")
    make = sbom.spdx if args.format == "spdx" else sbom.cyclonedx
    doc = make(record.label, record.summary, files, packages)
    text = json.dumps(doc, indent=2) + "\n"
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    rows = [{"name": p.name, "version": p.version,
             "license": "; ".join(p.licenses[:3]) + ("; ..." if len(p.licenses) > 3 else ""),
             "files": sum(1 for f in files if f.package == p.name)} for p in packages]
    render.sbom_summary(record.label, "SPDX 2.3" if args.format == "spdx" else "CycloneDX 1.5", rows, len(files),
                        sum(1 for f in files if f.package is None))
    return 0
