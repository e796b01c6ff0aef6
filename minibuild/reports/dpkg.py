"""Licenses of Debian packages, from their machine-readable copyright files:

  usr/share/doc/<pkg>/copyright     DEP-5 copyright files carry `License:` fields

Which package owns a path, and what its dpkg database or lock says of it, is `minibuild.packages.installed`.
"""

from __future__ import annotations

import re

from minibuild.packages.control import field, paragraphs
from minibuild.packages.installed import DebPackage, in_sysroot


def dep5_licenses(text: str) -> list[str]:
    """The distinct `License:` names of a DEP-5 copyright file, in order; [] if the file is not DEP-5."""
    if not re.match(r"(?i)format:\s*\S*copyright-format", text.lstrip()):
        return []
    names: list[str] = []
    for para in paragraphs(text):
        value = (field(para, "License") or "").split("\n")[0].strip()
        if value and value not in names and (field(para, "Files") is not None or field(para, "Format") is not None):
            names.append(value)
    return names


def load_licenses(pkg: DebPackage, root: str) -> None:
    """The licenses of `pkg` from its copyright file in the tree `root` (a sysroot, or a package sysroot's tree)."""
    try:
        with open(in_sysroot(root, f"/usr/share/doc/{pkg.name}/copyright"), encoding="utf-8",
                  errors="replace") as f:
            text = f.read()
    except OSError:
        return
    pkg.licenses = dep5_licenses(text)
