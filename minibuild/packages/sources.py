"""The Debian mirror this machine's apt uses, read from its sources (`sources.list.d/*.sources` in the deb822
format, and the one-line `sources.list`), so that no mirror's host name needs writing into a workspace."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass

from minibuild.errors import InputError
from minibuild.packages import control

APT_DIR = "/etc/apt"


@dataclass(frozen=True)
class Source:
    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]
    where: str


def read_sources(apt_dir: str = APT_DIR) -> list[Source]:
    """Every enabled `deb` (binary) source, in the order apt reads them: sources.list, then sources.list.d/."""
    found: list[Source] = []
    main = os.path.join(apt_dir, "sources.list")
    files = ([main] if os.path.isfile(main) else []) + sorted(glob.glob(os.path.join(apt_dir, "sources.list.d", "*")))
    for path in files:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError:
            continue
        if path.endswith(".sources"):
            found += _deb822(text, path)
        elif path.endswith(".list"):
            found += _one_line(text, path)
    return found


def _deb822(text: str, path: str) -> list[Source]:
    found = []
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    for p in control.paragraphs(body):
        types = (control.field(p, "Types") or "").split()
        if "deb" not in types or (control.field(p, "Enabled") or "yes").lower() == "no":
            continue
        suites = tuple((control.field(p, "Suites") or "").split())
        components = tuple((control.field(p, "Components") or "").split())
        for uri in (control.field(p, "URIs") or "").split():
            found.append(Source(uri.rstrip("/"), suites, components, path))
    return found


def _one_line(text: str, path: str) -> list[Source]:
    found = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        parts = line.split()
        if not parts or parts[0] != "deb":
            continue
        parts = parts[1:]
        if parts and parts[0].startswith("["):  # options: `[arch=amd64 signed-by=...]`
            while parts and not parts[0].endswith("]"):
                parts.pop(0)
            parts = parts[1:]
        if len(parts) >= 2:
            found.append(Source(parts[0].rstrip("/"), (parts[1],), tuple(parts[2:]), path))
    return found


def mirror_for(suite: str, apt_dir: str = APT_DIR) -> str:
    """The URI of the host's Debian source serving `suite`; failing that, of its first source that is not a
    security or updates archive (the same mirror serves every suite of Debian). InputError when there is none."""
    sources = [s for s in read_sources(apt_dir) if s.uri.startswith(("http://", "https://"))]
    exact = [s for s in sources if suite in s.suites]
    plain = [s for s in sources if not any(x.endswith(("-security", "-updates", "-backports")) for x in s.suites)
             and "security" not in s.uri]
    candidates = exact or plain
    if not candidates:
        raise InputError(f"no Debian mirror for suite `{suite}` in this machine's apt sources "
                         f"(`{apt_dir}/sources.list`, `{apt_dir}/sources.list.d/`)",
                         hint='set the sysroot\'s `url = "http://..."` in workspace.toml')
    return candidates[0].uri
