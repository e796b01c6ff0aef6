"""`minibuild sbom LABEL`: an SPDX 2.3 (or CycloneDX 1.5) JSON document of an image, on stdout or in a file."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from typing import Any

from minibuild.build import open_cache
from minibuild.cli.commands import common
from minibuild.cli.commands.common import build_records
from minibuild.errors import InputError, MinibuildError
from minibuild.image.documents import image_files, read_json
from minibuild.image.platform import host_architecture
from minibuild.packages import sources, tree
from minibuild.packages.installed import DebPackage, DpkgDatabase, PackageSysroot
from minibuild.reports import sbom


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("label", help="an image target")
    p.add_argument("--format", choices=("spdx", "cyclonedx"), default="spdx",
                   help="SPDX 2.3 JSON (default) or CycloneDX 1.5 JSON")
    p.add_argument("--platform", help="which image of a multi-platform image (default: the host's, else the first)")
    p.add_argument("-o", "--output", metavar="FILE", help="write the document here instead of stdout")
    common.add_build_arguments(p)


def _platform(label: str, summary: dict[str, Any], wanted: str | None) -> dict[str, Any]:
    """The summary's entry of the platform the document describes."""
    platforms = summary["platforms"]
    if wanted:
        found = next((p for p in platforms if p["platform"] == wanted), None)
        if found is None:
            raise InputError(f"`{label}` has no image for platform `{wanted}`",
                             hint="its platforms: " + ", ".join(f"`{p['platform']}`" for p in platforms))
        return found
    return next((p for p in platforms if p["platform"] == f"linux/{host_architecture()}"), platforms[0])


def _installed(workspace: Any, entry: dict[str, Any]) -> tuple[DpkgDatabase | PackageSysroot, str | None, str | None]:
    """Where the platform's files came from: the packages (a package sysroot's, as its sysroot.json records them,
    else the host sysroot's dpkg database), the tree holding their copyright files, and the mirror of the .debs."""
    root = str(workspace.root)
    if "sysroot_document" in entry:
        installed = PackageSysroot.read(os.path.join(root, entry["sysroot_document"]))
        unpacked = tree.tree_path(open_cache(workspace)[0], installed.tree)
        try:
            mirror: str | None = installed.url or sources.mirror_for(installed.suite)
        except MinibuildError:
            mirror = None  # no download location, the rest stands
        return installed, unpacked if os.path.isdir(unpacked) else None, mirror
    sysroot = entry.get("sysroot") or workspace.sysroot(entry["platform"])
    sysroot = os.path.join(root, sysroot)  # as the workspace names it: relative to its root, or absolute
    return DpkgDatabase(sysroot), sysroot, None


@dataclass(frozen=True)
class Described:
    doc: dict[str, Any]  # the SPDX or CycloneDX document
    files: list[sbom.ImageFile]
    packages: list[DebPackage]
    where: str  # where packages were looked up, for messages


def describe(workspace: Any, label: str, summary: dict[str, Any], entry: dict[str, Any],
             doc_format: str = "spdx") -> Described:
    """The SBOM of one platform (`entry` of the summary's platforms) of a built image; `push --sign` attaches it."""
    layout = os.path.join(str(workspace.root), summary["oci"])
    installed, license_root, mirror = _installed(workspace, entry)
    reasons = {f["path"]: f.get("reason", "") for f in
               image_files(read_json(os.path.join(str(workspace.root), entry["layers"])))}
    files, packages = sbom.collect(layout, installed, platform=entry["platform"], reasons=reasons,
                                   license_root=license_root)
    where = f"package sysroot `{installed.name}`" if isinstance(installed, PackageSysroot) else \
        f"the dpkg database of sysroot `{installed.sysroot}`"
    multi = len(summary["platforms"]) > 1
    subject = sbom.Subject(entry["platform"] if multi else None, entry["manifest"] if multi else None, mirror)
    make = sbom.spdx if doc_format == "spdx" else sbom.cyclonedx
    return Described(make(label, summary, files, packages, subject), files, packages, where)


def run(args: argparse.Namespace) -> int:
    # lazy: rich, loaded only when something is drawn
    from minibuild.cli import render, ui

    workspace, records = build_records([args.label], args)
    if len(records) != 1:
        raise InputError(f"`{args.label}` names {len(records)} images; `minibuild sbom` describes one",
                         hint="name a single image target, e.g. `//images:bash`")
    [record] = records
    summary = record.summary
    entry = _platform(record.label, summary, args.platform)
    document = describe(workspace, record.label, summary, entry, args.format)
    files, packages = document.files, document.packages
    if not packages:
        ui.warn(f"no package of {document.where} owns a file of `{record.label}`: the SBOM lists files only")
    multi = len(summary["platforms"]) > 1
    text = json.dumps(document.doc, indent=2) + "\n"
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    rows = [{"name": p.name, "version": p.version,
             "license": "; ".join(p.licenses[:3]) + ("; ..." if len(p.licenses) > 3 else ""),
             "files": sum(1 for f in files if f.package == p.name)} for p in packages]
    doc_format = "SPDX 2.3" if args.format == "spdx" else "CycloneDX 1.5"
    render.sbom_summary(record.label + (f" ({entry['platform']})" if multi else ""), doc_format, rows, len(files),
                        sum(1 for f in files if f.package is None))
    return 0
