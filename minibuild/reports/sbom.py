"""SBOMs of an image: SPDX 2.3 JSON (every file with SHA1 and SHA256, the Debian packages that own them,
their versions and licenses, CONTAINS relationships) and CycloneDX 1.5 JSON.

Written as plain JSON: the SPDX and CycloneDX libraries on PyPI (spdx-tools, cyclonedx-python-lib) pull
in 5 to 10 further packages (rdflib, ply, beartype, ...) for what is a few hundred lines of documents.
File contents are hashed from the image's own layers (the OCI layout), not from the sysroot.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

from minibuild import __version__
from minibuild.packages.installed import DebPackage, DpkgDatabase, PackageSysroot
from minibuild.reports.diff import files_from_layout
from minibuild.reports.dpkg import load_licenses
from minibuild.reports.public_url import without_credentials

NOASSERTION = "NOASSERTION"

# Debian short license names (copyright-format 1.0) -> SPDX identifiers; anything else is a LicenseRef.
_SPDX_NAMES = {
    "gpl-1": "GPL-1.0-only", "gpl-1+": "GPL-1.0-or-later", "gpl-2": "GPL-2.0-only", "gpl-2+": "GPL-2.0-or-later",
    "gpl-3": "GPL-3.0-only", "gpl-3+": "GPL-3.0-or-later", "lgpl-2": "LGPL-2.0-only", "lgpl-2+": "LGPL-2.0-or-later",
    "lgpl-2.1": "LGPL-2.1-only", "lgpl-2.1+": "LGPL-2.1-or-later", "lgpl-3": "LGPL-3.0-only",
    "lgpl-3+": "LGPL-3.0-or-later", "agpl-3": "AGPL-3.0-only", "agpl-3+": "AGPL-3.0-or-later",
    "gfdl-1.2+": "GFDL-1.2-or-later", "gfdl-1.3": "GFDL-1.3-only", "gfdl-1.3+": "GFDL-1.3-or-later",
    "bsd-2-clause": "BSD-2-Clause", "bsd-3-clause": "BSD-3-Clause", "bsd-4-clause": "BSD-4-Clause",
    "bsd-4-clause-uc": "BSD-4-Clause-UC", "expat": "MIT", "mit": "MIT", "x11": "X11", "isc": "ISC",
    "zlib": "Zlib", "apache-2.0": "Apache-2.0", "apache-2": "Apache-2.0", "mpl-2.0": "MPL-2.0",
    "artistic": "Artistic-1.0-Perl", "artistic-2.0": "Artistic-2.0", "curl": "curl", "openssl": "OpenSSL",
    "cc0-1.0": "CC0-1.0", "unicode": "Unicode-DFS-2016", "fsfullr": "FSFULLR", "fsfap": "FSFAP",
    "fsful": "FSFUL", "oldap-2.8": "OLDAP-2.8", "bzip": "bzip2-1.0.6", "psf-2": "PSF-2.0", "python": "Python-2.0",
    "bsl-1.0": "BSL-1.0", "sleepycat": "Sleepycat", "ncurses": "X11", "latex2e": "Latex2e",
}


def _license_ref(name: str) -> str:
    return "LicenseRef-" + (re.sub(r"[^A-Za-z0-9.-]+", "-", name.replace("+", "-plus")).strip("-") or "unknown")


def spdx_expression(debian: str) -> str:
    """A Debian `License:` value (`GPL-2+ or Artistic`, `GPL-2+ with Libtool exception`) as an SPDX expression."""
    def atom(text: str) -> str:
        text = text.strip().strip(",")
        return _SPDX_NAMES.get(text.lower()) or _license_ref(text)

    terms = []
    for conj in re.split(r",?\s+and\s+|,\s+", debian.strip(), flags=re.I):
        alternatives = [atom(a) for a in re.split(r"\s+or\s+", conj, flags=re.I) if a.strip()]
        if alternatives:
            joined = " OR ".join(dict.fromkeys(alternatives))
            terms.append(f"({joined})" if len(alternatives) > 1 else joined)
    return " AND ".join(dict.fromkeys(terms)) or NOASSERTION


def declared_license(pkg: DebPackage) -> str:
    if not pkg.licenses:
        return NOASSERTION
    exprs = list(dict.fromkeys(spdx_expression(name) for name in pkg.licenses))
    if len(exprs) == 1:
        return exprs[0]
    return " AND ".join(e if " " not in e or e.startswith("(") and e.endswith(")") and e.count("(") == 1
                        else f"({e})" for e in exprs)


@dataclass(frozen=True)
class Subject:
    """What else a document says of the image: which platform of a multi-platform image it describes, and the
    mirror a package sysroot's `.deb` files are downloaded from (their download location)."""

    platform: str | None = None
    manifest: str | None = None  # that platform's manifest digest
    mirror: str | None = None


def deb_url(p: DebPackage, mirror: str | None) -> str | None:
    """Where the package's .deb was downloaded from, as an SBOM or a provenance may publish it: a private mirror's
    `user:token@` (the sysroot's url, an apt source) left out."""
    if not mirror or p.deb is None:
        return None
    return f"{without_credentials(mirror).rstrip('/')}/{p.deb.path}"


@dataclass(frozen=True)
class ImageFile:
    path: str
    size: int
    sha1: str
    sha256: str
    md5: str
    reason: str
    package: str | None  # the Debian package that installed it
    dpkg_verified: bool | None  # the md5 dpkg recorded matches (None: dpkg recorded none)


def collect(layout_dir: str, installed: DpkgDatabase | PackageSysroot, *, platform: str | None = None,
            reasons: dict[str, str] | None = None,
            license_root: str | None = None) -> tuple[list[ImageFile], list[DebPackage]]:
    """The image's regular files (hashed from its layers; of `platform` in a multi-platform layout) and the Debian
    packages they belong to: a host sysroot's installed ones, or a package sysroot's locked ones. Licenses come from
    the copyright files under `license_root` (the sysroot, or the package sysroot's unpacked tree)."""
    files, _, _ = files_from_layout(layout_dir, platform, extra_hashes=("sha1", "md5"))
    used: dict[str, DebPackage] = {}
    out = []
    for path in sorted(files):
        f = files[path]
        if f["kind"] != "file":
            continue
        pkg = installed.owner(path)
        verified = None
        if pkg is not None:
            if pkg.name not in used:
                if license_root is not None:
                    load_licenses(pkg, license_root)
                used[pkg.name] = pkg
            recorded = pkg.md5(path)
            verified = None if recorded is None else recorded == f["md5"]
        out.append(ImageFile(path, f["size"], f["sha1"], f["digest"].split(":")[1], f["md5"],
                             (reasons or {}).get(path, ""), pkg.name if pkg else None, verified))
    return out, sorted(used.values(), key=lambda p: p.name)


def _created() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    seconds = int(epoch) if epoch and epoch.isdigit() else int(time.time())
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _spdx_id(prefix: str, text: str) -> str:
    return f"SPDXRef-{prefix}-" + re.sub(r"[^A-Za-z0-9.-]+", "-", text).strip("-")


def _verification_code(files: list[ImageFile]) -> str:
    """SPDX 2.3 section 7.9: SHA1 over the sorted SHA1s of the package's files, concatenated."""
    return hashlib.sha1("".join(sorted(f.sha1 for f in files)).encode()).hexdigest()


def _file_type(f: ImageFile) -> list[str]:
    if f.path.startswith("/etc/") or f.path.endswith((".txt", ".conf")):
        return ["TEXT"]
    return ["BINARY"] if ("/bin/" in f.path or ".so" in f.path) else ["OTHER"]


def _spdx_package(p: DebPackage, spdx_id: str, refs: set[str], mirror: str | None) -> dict[str, Any]:
    """One Debian package of the image; the LicenseRefs its license uses are added to `refs`. A package sysroot's
    carries its `.deb`: file name, SHA256 and URL in the archive."""
    declared = declared_license(p)
    refs.update(re.findall(r"LicenseRef-[A-Za-z0-9.-]+", declared))
    entry: dict[str, Any] = {
        "SPDXID": spdx_id,
        "name": p.name,
        "versionInfo": p.version,
        "supplier": f"Organization: {p.maintainer}" if p.maintainer else NOASSERTION,
        "downloadLocation": NOASSERTION,
        "filesAnalyzed": False,
        "licenseConcluded": NOASSERTION,
        "licenseDeclared": declared,
        "copyrightText": NOASSERTION,
        "primaryPackagePurpose": "LIBRARY" if p.name.startswith("lib") else "APPLICATION",
        "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                          "referenceLocator": p.purl}],
    }
    if p.licenses:
        entry["licenseComments"] = "Debian copyright file: " + "; ".join(p.licenses)
    if p.source and p.source != p.name:
        entry["sourceInfo"] = f"built from Debian source package {p.source}"
    if p.homepage:
        entry["homepage"] = p.homepage
    if p.deb is not None:
        entry["packageFileName"] = posixpath.basename(p.deb.path)
        entry["checksums"] = [{"algorithm": "SHA256", "checksumValue": p.deb.sha256}]
        entry["downloadLocation"] = deb_url(p, mirror) or NOASSERTION
        entry["comment"] = f"pinned in minibuild.lock: {p.deb.path} ({p.deb.size} bytes)"
    return entry


def _spdx_file(f: ImageFile, spdx_id: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "SPDXID": spdx_id,
        "fileName": "." + f.path,
        "checksums": [{"algorithm": "SHA1", "checksumValue": f.sha1},
                      {"algorithm": "SHA256", "checksumValue": f.sha256},
                      {"algorithm": "MD5", "checksumValue": f.md5}],
        "fileTypes": _file_type(f),
        "licenseConcluded": NOASSERTION,
        "copyrightText": NOASSERTION,
    }
    notes = [f.reason] if f.reason else []
    if f.dpkg_verified is False:
        notes.append("differs from the md5sum dpkg recorded for it")
    if notes:
        entry["comment"] = "; ".join(notes)
    return entry


def spdx(label: str, summary: dict[str, Any], files: list[ImageFile], packages: list[DebPackage],
         subject: Subject = Subject()) -> dict[str, Any]:
    """An SPDX 2.3 JSON document describing the image (one platform of it) as a package that contains Debian
    packages and files."""
    digest = summary["digest"]
    name = label.lstrip("/").replace(":", "/") + (f"/{subject.platform}" if subject.platform else "")
    on = f" for {subject.platform} (manifest {subject.manifest})" if subject.platform else ""
    image_id = "SPDXRef-Image"
    file_ids = {f.path: _spdx_id("File", f.path) for f in files}
    pkg_ids = {p.name: _spdx_id("Package-deb", p.name) for p in packages}
    repo, _, tag = summary.get("tag", name).rpartition(":")
    doc_packages: list[dict[str, Any]] = [{
        "SPDXID": image_id,
        "name": label,
        "versionInfo": digest,
        "downloadLocation": NOASSERTION,
        "primaryPackagePurpose": "CONTAINER",
        "filesAnalyzed": True,
        "packageVerificationCode": {"packageVerificationCodeValue": _verification_code(files)},
        "hasFiles": [file_ids[f.path] for f in files],
        "licenseConcluded": NOASSERTION,
        "licenseDeclared": NOASSERTION,
        "copyrightText": NOASSERTION,
        "checksums": [{"algorithm": "SHA256", "checksumValue": digest.split(":")[1]}],
        "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                          "referenceLocator": f"pkg:oci/{(repo or name).rsplit('/', 1)[-1]}@"
                                              f"{digest.replace(':', '%3A')}?tag={tag or 'latest'}"}],
        "comment": f"OCI image {summary.get('tag', '')} built by minibuild from {label}{on}",
    }]
    refs: set[str] = set()
    doc_packages += [_spdx_package(p, pkg_ids[p.name], refs, subject.mirror) for p in packages]
    doc_files = [_spdx_file(f, file_ids[f.path]) for f in files]
    relationships = [{"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
                      "relatedSpdxElement": image_id}]
    relationships += [{"spdxElementId": image_id, "relationshipType": "CONTAINS", "relatedSpdxElement": pkg_ids[p.name]}
                      for p in packages]
    relationships += [{"spdxElementId": pkg_ids[f.package] if f.package else image_id,
                       "relationshipType": "CONTAINS", "relatedSpdxElement": file_ids[f.path]} for f in files]
    doc: dict[str, Any] = {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"{label}@{digest}" + (f" {subject.platform}" if subject.platform else ""),
        "documentNamespace": f"https://minibuild.invalid/spdx/{name}/{digest.split(':')[1]}",
        "creationInfo": {"created": _created(), "creators": [f"Tool: minibuild-{__version__}"]},
        "documentDescribes": [image_id],
        "packages": doc_packages,
        "files": doc_files,
        "relationships": relationships,
    }
    if refs:
        doc["hasExtractedLicensingInfos"] = [
            {"licenseId": ref, "name": ref.removeprefix("LicenseRef-"),
             "extractedText": "A license named in a Debian copyright file (usr/share/doc/<package>/copyright) "
                              "of the sysroot; its text is there."}
            for ref in sorted(refs)]
    return doc


def cyclonedx(label: str, summary: dict[str, Any], files: list[ImageFile], packages: list[DebPackage],
              subject: Subject = Subject()) -> dict[str, Any]:
    """A CycloneDX 1.5 JSON BOM: the image (one platform of it) as the subject, Debian packages with their files
    nested (a package sysroot's with its `.deb`'s SHA-256 and URL), and the files no package owns."""
    digest = summary["digest"]
    image: dict[str, Any] = {"type": "container", "bom-ref": "image", "name": label, "version": digest}
    if subject.platform:
        image["properties"] = [{"name": "minibuild:platform", "value": subject.platform},
                               {"name": "minibuild:manifest", "value": subject.manifest or ""}]

    def file_component(f: ImageFile) -> dict[str, Any]:
        return {"type": "file", "bom-ref": f"file:{f.path}", "name": f.path,
                "hashes": [{"alg": "SHA-1", "content": f.sha1}, {"alg": "SHA-256", "content": f.sha256},
                           {"alg": "MD5", "content": f.md5}]}

    components = []
    for p in packages:
        declared = declared_license(p)
        comp: dict[str, Any] = {
            "type": "library" if p.name.startswith("lib") else "application",
            "bom-ref": p.purl, "name": p.name, "version": p.version, "purl": p.purl,
            "components": [file_component(f) for f in files if f.package == p.name],
        }
        if declared != NOASSERTION:
            comp["licenses"] = [{"expression": declared}]
        if p.maintainer:
            comp["supplier"] = {"name": p.maintainer}
        if p.deb is not None:
            comp["hashes"] = [{"alg": "SHA-256", "content": p.deb.sha256}]
            url = deb_url(p, subject.mirror)
            if url:
                comp["externalReferences"] = [{"type": "distribution", "url": url}]
        components.append(comp)
    components += [file_component(f) for f in files if f.package is None]
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, 'minibuild:' + digest + (subject.platform or ''))}",
        "version": 1,
        "metadata": {
            "timestamp": _created(),
            "tools": {"components": [{"type": "application", "name": "minibuild", "version": __version__}]},
            "component": image,
        },
        "components": components,
        "dependencies": [{"ref": "image", "dependsOn": [p.purl for p in packages]}],
    }
