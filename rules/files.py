"""`files`: a group of workspace files with their destinations and modes, for images to include.

    [[files]]
    name = "nginx_conf"
    files = [{ src = "nginx.conf", dest = "/etc/nginx/nginx.conf", mode = "0644" }]
"""

from __future__ import annotations

from pydantic import field_validator

from minibuild.rule import Attrs, RuleContext, rule
from minibuild_rules.common import Mode, image_path
from minibuild_rules.providers import DefaultInfo, FileEntry, FilesInfo


class GroupFile(Attrs):
    src: str
    """A file of the package, relative to its BUILD.toml."""
    dest: str
    """Its absolute path in the image (an image using the group with a `dest` directory puts it below that)."""
    mode: Mode = 0o644
    """Permission bits, `"0644"`."""

    @field_validator("dest")
    @classmethod
    def _dest(cls, v: str) -> str:
        return image_path(v, "destination")


class FilesAttrs(Attrs):
    files: list[GroupFile]
    """The files: `{ src, dest, mode }`."""


def _files_impl(ctx: RuleContext[FilesAttrs]) -> list[object]:
    a = ctx.attrs
    entries = []
    seen: dict[str, int] = {}
    for i, f in enumerate(a.files):
        if f.dest in seen:
            raise ctx.fail(f"two files for `{f.dest}`: `files[{seen[f.dest]}]` and `files[{i}]`", f"files[{i}].dest")
        seen[f.dest] = i
        entries.append(FileEntry(f.dest, f.mode, ctx.source(f.src, f"files[{i}].src"), f"{ctx.label} files[{i}]"))
    return [FilesInfo(tuple(entries)), DefaultInfo(tuple(e.artifact for e in entries))]


files = rule(implementation=_files_impl, attrs=FilesAttrs,
             doc="A group of workspace files with destinations in the image and modes.")
