"""One entry of a file tree (a file, a directory or a symlink at an absolute path): the one value the loader
model's copy plan, the runtime files, an image's tree and the OCI layer writer all speak."""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from typing import Literal

Kind = Literal["file", "dir", "symlink"]
KINDS: tuple[Kind, ...] = ("file", "dir", "symlink")
DEFAULT_MODES: dict[str, int] = {"file": 0o644, "dir": 0o755, "symlink": 0o777}
DEFAULT_MODE = -1  # `mode` left out: the kind's default above


@dataclass(frozen=True)
class TreeEntry:
    """`path` is absolute in the tree. A file's content is `source` (a host path) or `data`; a symlink has
    `target` (verbatim). `mode` holds the permission bits (setuid/setgid/sticky included)."""

    path: str
    kind: Kind
    mode: int = DEFAULT_MODE
    reason: str = ""  # why it is there, for humans ("needed by /bin/bash")
    _: KW_ONLY
    origin: str = ""  # who asked for it (a target's attribute, "ELF closure"), for error messages
    source: str | None = None
    data: bytes | None = None
    digest: str | None = None  # of the content, when known
    size: int = 0
    target: str | None = None
    via: str | None = None  # the in-tree path of the object or script whose lookup brought it in
    xattrs: tuple[tuple[str, bytes], ...] = ()  # extended attributes to keep (`security.capability`)
    uid: int = 0  # the owner in the image (`dirs`, `files` with `owner`); root otherwise
    gid: int = 0

    def __post_init__(self) -> None:
        if self.mode == DEFAULT_MODE:
            object.__setattr__(self, "mode", DEFAULT_MODES.get(self.kind, 0o644))

    def same_content(self, other: TreeEntry) -> bool:
        if (self.kind, self.mode, self.uid, self.gid) != (other.kind, other.mode, other.uid, other.gid):
            return False
        if self.kind == "symlink":
            return self.target == other.target
        if self.kind == "file":
            return self.digest is not None and self.digest == other.digest
        return True

    def describe(self) -> str:
        if self.kind == "symlink":
            return f"a symlink to `{self.target}`"
        if self.kind == "dir":
            return f"a directory (mode {self.mode:04o}{self._owner()})"
        content = f"`{self.source}`" if self.source is not None else f"{len(self.data or b'')} bytes of data"
        return f"a file (mode {self.mode:04o}{self._owner()}) with the content of {content}"

    def _owner(self) -> str:
        return f", owner {self.uid}:{self.gid}" if self.uid or self.gid else ""
