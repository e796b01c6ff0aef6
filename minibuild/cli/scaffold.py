"""Writing workspace files: a new workspace (`minibuild init`), an image target added or edited (`minibuild add`).

BUILD.toml files are edited with tomlkit so that comments and formatting survive.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from minibuild.errors import InputError, Origin
from minibuild.label import Label

WORKSPACE_TEMPLATE = '''\
# The root of a minibuild workspace. Every directory below holding a BUILD.toml is a package;
# `//images:bash` is the target `bash` of the package `images`.
[workspace]
name = "{name}"
# Where binaries and libraries come from: "/" is this machine; a path relative to this file
# (e.g. an unpacked Debian root) works too.
sysroot = "/"

# One sysroot per platform, for multi-platform images (`platforms = [...]` on an image):
# [platforms]
# "linux/arm64" = {{ sysroot = "sysroots/arm64" }}

# Rule kinds of your own, written like minibuild's rules/:
# [rules]
# load = ["tools/rules/my_rule.py"]
'''

BUILD_TEMPLATE = '''\
# A package: each [[rule]] table is a target. Build with `minibuild build //images:bash`,
# run with `docker run --rm -it images/bash`. Add more with `minibuild add //images:NAME /usr/bin/PROGRAM`.
[[image]]
name = "bash"
binaries = ["/bin/bash"]        # absolute paths in the sysroot; their ELF closure comes along
entrypoint = ["/bin/bash"]
env = { PATH = "/bin:/usr/bin" }
# files = [{ src = "bashrc", dest = "/etc/bash.bashrc", mode = "0644" }]
'''


def init_workspace(directory: str, name: str | None = None) -> list[str]:
    """Write workspace.toml and images/BUILD.toml into `directory`; InputError if it already is a workspace."""
    root = Path(directory).resolve()
    if (root / "workspace.toml").exists():
        raise InputError(f"`{directory}` already holds a `workspace.toml`",
                         hint="add images to it with `minibuild add //images:NAME /usr/bin/PROGRAM`")
    if (root / "images" / "BUILD.toml").exists():
        raise InputError(f"`{os.path.join(directory, 'images', 'BUILD.toml')}` already exists")
    ws_name = name or root.name or "workspace"
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "workspace.toml").write_text(WORKSPACE_TEMPLATE.format(name=ws_name.replace('"', "")), encoding="utf-8")
    (root / "images" / "BUILD.toml").write_text(BUILD_TEMPLATE, encoding="utf-8")
    return [os.path.join(directory, "workspace.toml"), os.path.join(directory, "images", "BUILD.toml")]


def add_image(workspace: Any, label: Label, binaries: list[str], *, entrypoint: str | None = None,
              cmd: list[str] | None = None) -> tuple[str, bool]:
    """Add `[[image]] name = label.name` with these binaries, or update the existing one in place.

    Returns (the BUILD.toml path relative to the workspace, whether the target is new).
    """
    import tomlkit
    from tomlkit.exceptions import TOMLKitError

    for b in binaries:
        if not b.startswith("/"):
            raise InputError(f"binary `{b}` must be an absolute path in the sysroot", hint=f"e.g. `/usr/bin/{b}`")
    rel = os.path.join(label.package, "BUILD.toml") if label.package else "BUILD.toml"
    path = Path(workspace.root) / rel
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    try:
        doc = tomlkit.parse(text)
    except TOMLKitError as exc:
        raise InputError(f"cannot edit `{rel}`: {exc}", origin=Origin(file=rel)) from None
    for kind, tables in doc.items():
        if kind != "image" and isinstance(tables, list) and any(
                isinstance(t, dict) and t.get("name") == label.name for t in tables):
            raise InputError(f"`{label}` already exists as a `{kind}` target", origin=Origin(file=rel),
                             hint="choose another name")
    images = doc.get("image")
    existing = next((t for t in images if t.get("name") == label.name), None) if images is not None else None
    entry = [entrypoint or binaries[0]]
    if existing is not None:
        existing["binaries"] = binaries
        if entrypoint or "entrypoint" in existing:
            existing["entrypoint"] = entry
        if cmd is not None:
            existing["cmd"] = cmd
    else:
        table = tomlkit.table()
        table.add("name", label.name)
        table.add("binaries", binaries)
        table.add("entrypoint", entry)
        if cmd is not None:
            table.add("cmd", cmd)
        if images is None:
            if text and not text.endswith("\n\n"):
                doc.add(tomlkit.nl())
            doc.append("image", tomlkit.aot())
            images = doc["image"]
        elif len(images) and not tomlkit.dumps({"t": images[-1]}).endswith("\n\n"):
            images[-1].add(tomlkit.nl())  # a blank line between the tables, as people write them
        images.append(table)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = tomlkit.dumps(doc)
    path.write_text(out, encoding="utf-8")
    return rel, existing is None
