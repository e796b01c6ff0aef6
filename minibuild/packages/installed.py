"""The Debian packages a sysroot holds and which of them owns a path: what an image's SBOM and its dpkg status
(`dpkg_status`) say of its files. Two sources, one interface (`packages`, `owner`, `DebPackage`):

- a host sysroot's dpkg database, read without dpkg:
    var/lib/dpkg/status                     one paragraph per package (Package, Status, Version, Architecture, ...)
    var/lib/dpkg/info/<pkg>[:arch].list     the paths a package installed, one a line
    var/lib/dpkg/info/<pkg>[:arch].md5sums  `<md5>  <path without the leading slash>`
- a package sysroot's `sysroot.json` (the Sysroot action's, materialize.py): the lock's entry of each package with
  its `control` and `md5sums` files and the paths it shipped, recorded when the tree was unpacked, so neither a
  dpkg database nor a `.deb` is read.

Merged /usr: a `.list` (or a `.deb`) names `/bin/bash` or `/lib/x86_64-linux-gnu/libc.so.6` while the image holds
`/usr/bin/bash` and `/usr/lib/...`, so every path is looked up in both forms.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from minibuild.errors import InputError
from minibuild.packages.control import field as control_field
from minibuild.packages.control import paragraphs
from minibuild.packages.lockfile import LockedPackage

_MERGED = ("/bin/", "/sbin/", "/lib/", "/lib32/", "/lib64/", "/libx32/")
_BLANK = re.compile(r"\n[ \t]*\n")
STATUS_INSTALLED = "install ok installed"


@dataclass
class DebPackage:
    name: str
    version: str
    architecture: str
    source: str | None = None
    maintainer: str | None = None
    homepage: str | None = None
    status: str = ""  # its paragraph as /var/lib/dpkg/status has it (with `Status:`), ending in a newline
    deb: LockedPackage | None = None  # a package sysroot's: the locked .deb (archive path, size, sha256)
    licenses: list[str] = field(default_factory=list)  # Debian short names, as the copyright file spells them
    md5sums: dict[str, str] = field(default_factory=dict)  # absolute path (both /usr forms) -> md5 hex

    @property
    def purl(self) -> str:
        version = self.version.replace(":", "%3A").replace("+", "%2B")
        return f"pkg:deb/debian/{self.name}@{version}?arch={self.architecture}"

    def md5(self, path: str) -> str | None:
        """The md5 the package recorded for `path` (in either /usr form), if it did."""
        return next((self.md5sums[f] for f in path_forms(path) if f in self.md5sums), None)


def path_forms(path: str) -> tuple[str, ...]:
    """`path` and its other spelling under merged /usr (`/bin/x` <-> `/usr/bin/x`)."""
    if path.startswith("/usr/") and path[4:].startswith(_MERGED):
        return path, path[4:]
    if path.startswith(_MERGED):
        return path, "/usr" + path
    return (path,)


def parse_md5sums(text: str) -> dict[str, str]:
    """An md5sums file (`<md5>  <relative path>` lines) as {absolute path, in both /usr forms: md5}."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        md5, _, rel = line.partition("  ")
        if rel.strip():
            for form in path_forms("/" + rel.strip().lstrip("./")):
                out.setdefault(form, md5.strip())
    return out


def with_status(control: str) -> str:
    """A `control` file as a dpkg status paragraph: `Status: install ok installed` after `Package:`."""
    lines = control.strip("\n").split("\n")
    at = next((i + 1 for i, line in enumerate(lines) if line.lower().startswith("package:")), 0)
    return "\n".join([*lines[:at], f"Status: {STATUS_INSTALLED}", *lines[at:]]) + "\n"


def _without_field(paragraph: str, name: str) -> str:
    """`paragraph` without the field `name` and its continuation lines."""
    out, skipping = [], False
    for line in paragraph.strip("\n").split("\n"):
        if line[:1] in (" ", "\t") and skipping:
            continue
        skipping = line.lower().startswith(name.lower() + ":")
        if not skipping:
            out.append(line)
    return "\n".join(out) + "\n"


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


class DpkgDatabase:
    """The installed packages of a host sysroot and which of them owns a path. `read` lists the files of the
    database read so far (an action depending on them discovers them)."""

    def __init__(self, sysroot: str) -> None:
        self.sysroot = sysroot
        self.packages: dict[str, DebPackage] = {}
        self._owners: dict[str, str] = {}
        self._md5sums: dict[str, str] = {}  # package -> host path of its .md5sums, until it is read
        info = in_sysroot(sysroot, "/var/lib/dpkg/info")
        status_path = in_sysroot(sysroot, "/var/lib/dpkg/status")
        self.read = [status_path]
        for block in _BLANK.split((_read(status_path) or "").replace("\r\n", "\n")):
            para = next(paragraphs(block), None)
            if para is None or not control_field(para, "Package") \
                    or not (control_field(para, "Status") or "").endswith(" installed"):
                continue
            pkg = DebPackage(control_field(para, "Package") or "", control_field(para, "Version") or "",
                             control_field(para, "Architecture") or "",
                             source=(control_field(para, "Source") or "").split(" ")[0] or None,
                             maintainer=control_field(para, "Maintainer"), homepage=control_field(para, "Homepage"),
                             # Conffiles name files (and digests) the image may not have
                             status=_without_field(block, "Conffiles"))
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
        """The package that installed `path`, its md5sums read."""
        for form in path_forms(path):
            name = self._owners.get(form)
            if name:
                pkg = self.packages[name]
                md5sums = self._md5sums.pop(name, None)
                if md5sums is not None:
                    self.read.append(md5sums)
                    pkg.md5sums = parse_md5sums(_read(md5sums) or "")
                return pkg
        return None


class PackageSysroot:
    """A package sysroot for one architecture, as its sysroot.json records it: no dpkg database, no `.deb` read."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.name: str = doc["name"]
        self.architecture: str = doc["architecture"]
        self.suite: str = doc["suite"]
        self.url: str | None = doc.get("url")
        self.tree: str = doc["tree"]  # the key of the unpacked tree in the cache
        self.packages: dict[str, DebPackage] = {}
        self._owners: dict[str, str] = {}
        for entry in doc["packages"]:
            control = next(paragraphs(entry.get("control", "")), {})
            pkg = DebPackage(entry["name"], entry["version"], entry["architecture"], source=entry.get("source"),
                             maintainer=control_field(control, "Maintainer"),
                             homepage=control_field(control, "Homepage"),
                             status=with_status(entry["control"]) if entry.get("control") else "",
                             deb=LockedPackage.from_json(entry), md5sums=parse_md5sums(entry.get("md5sums", "")))
            self.packages[pkg.name] = pkg
            for path in entry.get("files", ()):
                for form in path_forms(path):
                    self._owners[form] = pkg.name

    @staticmethod
    def read(document_path: str) -> PackageSysroot:
        with open(document_path, encoding="utf-8") as f:
            return PackageSysroot(json.load(f))

    def owner(self, path: str) -> DebPackage | None:
        """The package whose `.deb` put `path` into the tree (the last one unpacked there, as with dpkg)."""
        name = next((self._owners[f] for f in path_forms(path) if f in self._owners), None)
        return self.packages[name] if name else None


def _close_names(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=4, cutoff=0.6)
    return "close names: " + ", ".join(f"`{n}`" for n in close) + "; " if close else ""


def dpkg_package_paths(sysroot: str, names: Sequence[str],
                       sysroot_name: str) -> tuple[dict[str, tuple[str, ...]], list[str]]:
    """The paths each package of `names` (`NAME` or `NAME:ARCH`) installed in a host sysroot, as dpkg lists them
    (`var/lib/dpkg/info/<name>[:arch].list`: files, links and directories), and the database files read.
    InputError for a package the database does not have installed, naming `sysroot_name` and its database."""
    status_path = in_sysroot(sysroot, "/var/lib/dpkg/status")
    read = [status_path]
    text = _read(status_path)
    if text is None:
        raise InputError(f"`packages`: sysroot `{sysroot_name}` has no dpkg database (`/var/lib/dpkg/status`)",
                         hint="take the packages from a package sysroot (docs/packages.md), or copy their "
                              "directories with `trees`")
    installed: dict[str, list[str]] = {}  # name -> its installed architectures
    for block in _BLANK.split(text.replace("\r\n", "\n")):
        para = next(paragraphs(block), None)
        if para is not None and (control_field(para, "Status") or "").endswith(" installed"):
            installed.setdefault(control_field(para, "Package") or "", []).append(
                control_field(para, "Architecture") or "")
    info = in_sysroot(sysroot, "/var/lib/dpkg/info")
    out: dict[str, tuple[str, ...]] = {}
    for wanted in names:
        name, _, arch = wanted.partition(":")
        arches = installed.get(name, [])
        if not arches or (arch and arch not in arches):
            raise InputError(
                f"`packages` names `{wanted}`, which is not installed in sysroot `{sysroot_name}` (its dpkg "
                "database `/var/lib/dpkg/status`)",
                hint=f"{_close_names(name, sorted(installed))}install it there (`apt-get install {name}`), or take "
                     "it from a package sysroot (docs/packages.md)")
        stems = [f"{name}:{a}" for a in ([arch] if arch else arches)] + ([] if arch else [name])
        stem = next((s for s in stems if os.path.exists(os.path.join(info, s + ".list"))), stems[-1])
        listing = os.path.join(info, stem + ".list")
        read.append(listing)
        out[wanted] = tuple(line for line in (_read(listing) or "").splitlines() if line.startswith("/")
                            and line != "/.")
    return out, read


def sysroot_package_paths(document_path: str, names: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """The paths each package of `names` unpacked into a package sysroot, as its sysroot.json records them (files,
    links and the directories its `.deb` ships, empty ones too), with their parent directories. InputError for a
    package the lock does not hold."""
    with open(document_path, encoding="utf-8") as f:
        doc = json.load(f)
    shipped = {entry["name"]: entry.get("files", []) for entry in doc["packages"]}
    dirs_of = {entry["name"]: entry.get("dirs", []) for entry in doc["packages"]}
    out: dict[str, tuple[str, ...]] = {}
    for wanted in names:
        name, _, arch = wanted.partition(":")
        if name not in shipped or (arch and arch not in (doc["architecture"], "all")):
            sysroot = f"{doc['name']}` ({doc['architecture']}"
            raise InputError(
                f"`packages` names `{wanted}`, which is not in package sysroot `{sysroot}): `minibuild.lock` has no "
                "such package for it",
                hint=f"{_close_names(name, sorted(shipped))}add `{name}` to `packages` of `[sysroots.{doc['name']}]` "
                     "in workspace.toml, then run `minibuild lock`")
        dirs = set(dirs_of[name]) | {d for path in shipped[name] for d in _parents(path)}
        out[wanted] = tuple(sorted(dirs)) + tuple(shipped[name])
    return out


def _parents(path: str) -> list[str]:
    parts = path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[:i]) for i in range(1, len(parts) + 1)]
