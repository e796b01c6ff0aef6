"""A sysroot's dpkg database, read without dpkg: packages, versions, the files each owns, licenses.

  var/lib/dpkg/status               one paragraph per package (Package, Status, Version, Architecture, ...)
  var/lib/dpkg/info/<pkg>[:arch].list     the paths a package installed, one a line
  var/lib/dpkg/info/<pkg>[:arch].md5sums  `<md5>  <path without the leading slash>`
  usr/share/doc/<pkg>/copyright     machine-readable (DEP-5) copyright files carry `License:` fields

Merged /usr: a `.list` names `/bin/bash` or `/lib/x86_64-linux-gnu/libc.so.6` while the image holds
`/usr/bin/bash` and `/usr/lib/...`, so every path is indexed in both forms.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

_MERGED = ("/bin/", "/sbin/", "/lib/", "/lib32/", "/lib64/", "/libx32/")


@dataclass
class DebPackage:
    name: str
    version: str
    architecture: str
    source: str | None = None
    maintainer: str | None = None
    homepage: str | None = None
    licenses: list[str] = field(default_factory=list)  # Debian short names, as the copyright file spells them
    md5sums: dict[str, str] = field(default_factory=dict)  # absolute path -> md5 hex

    @property
    def purl(self) -> str:
        version = self.version.replace(":", "%3A").replace("+", "%2B")
        return f"pkg:deb/debian/{self.name}@{version}?arch={self.architecture}"


def path_forms(path: str) -> tuple[str, ...]:
    """`path` and its other spelling under merged /usr (`/bin/x` <-> `/usr/bin/x`)."""
    if path.startswith("/usr/") and path[4:].startswith(_MERGED):
        return path, path[4:]
    if path.startswith(_MERGED):
        return path, "/usr" + path
    return (path,)


def _paragraphs(text: str) -> list[dict[str, str]]:
    """RFC 822-style paragraphs: `Field: value` with indented continuation lines."""
    out: list[dict[str, str]] = []
    current: dict[str, str] = {}
    key = None
    for line in text.splitlines():
        if not line.strip():
            if current:
                out.append(current)
            current, key = {}, None
        elif line[0] in " \t" and key:
            current[key] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            key = key.strip().lower()
            current[key] = value.strip()
    if current:
        out.append(current)
    return out


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def in_sysroot(sysroot: str, path: str, depth: int = 0) -> str:
    """The host path of `path` inside `sysroot`, following absolute symlinks within the sysroot."""
    root = sysroot.rstrip("/")
    parts = [p for p in path.split("/") if p]
    inside = ""  # the part of `path` resolved so far, absolute within the sysroot
    for i, part in enumerate(parts):
        candidate = f"{root}{inside}/{part}"
        if depth < 16 and os.path.islink(candidate):
            target = os.readlink(candidate)
            rest = "/".join(parts[i + 1:])
            resolved = os.path.normpath(target if target.startswith("/") else f"{inside or '/'}/{target}")
            return in_sysroot(sysroot, resolved + ("/" + rest if rest else ""), depth + 1)
        inside += "/" + part
    return f"{root}{inside}" or "/"


def dep5_licenses(text: str) -> list[str]:
    """The distinct `License:` names of a DEP-5 copyright file, in order; [] if the file is not DEP-5."""
    if not re.match(r"(?i)format:\s*\S*copyright-format", text.lstrip()):
        return []
    names: list[str] = []
    for para in _paragraphs(text):
        value = para.get("license", "").split("\n")[0].strip()
        if value and value not in names and ("files" in para or "format" in para):
            names.append(value)
    return names


class DpkgDatabase:
    """The installed packages of a sysroot and which of them owns a path."""

    def __init__(self, sysroot: str) -> None:
        self.sysroot = sysroot
        self.packages: dict[str, DebPackage] = {}
        self._owners: dict[str, str] = {}
        self._md5sums: dict[str, str] = {}  # package -> host path of its .md5sums
        info = in_sysroot(sysroot, "/var/lib/dpkg/info")
        status = _read(in_sysroot(sysroot, "/var/lib/dpkg/status")) or ""
        for para in _paragraphs(status):
            if "package" not in para or not para.get("status", "").endswith(" installed"):
                continue
            pkg = DebPackage(para["package"], para.get("version", ""), para.get("architecture", ""),
                             source=para.get("source", "").split(" ")[0] or None,
                             maintainer=para.get("maintainer"), homepage=para.get("homepage"))
            self.packages[pkg.name] = pkg
            stem = next((s for s in (f"{pkg.name}:{pkg.architecture}", pkg.name)
                         if os.path.exists(os.path.join(info, s + ".list"))), None)
            if stem is None:
                continue
            for line in (_read(os.path.join(info, stem + ".list")) or "").splitlines():
                if line.startswith("/") and line != "/.":
                    for form in path_forms(line):
                        self._owners.setdefault(form, pkg.name)
            self._md5sums[pkg.name] = os.path.join(info, stem + ".md5sums")

    @property
    def found(self) -> bool:
        return bool(self.packages)

    def owner(self, path: str) -> DebPackage | None:
        for form in path_forms(path):
            name = self._owners.get(form)
            if name:
                return self.packages[name]
        return None

    def load_details(self, pkg: DebPackage) -> None:
        """md5sums and licenses of one package (read only for the packages an image uses)."""
        for line in (_read(self._md5sums.get(pkg.name, "")) or "").splitlines():
            md5, _, rel = line.partition("  ")
            for form in path_forms("/" + rel.strip()):
                pkg.md5sums.setdefault(form, md5)
        text = _read(in_sysroot(self.sysroot, f"/usr/share/doc/{pkg.name}/copyright"))
        pkg.licenses = dep5_licenses(text) if text else []
