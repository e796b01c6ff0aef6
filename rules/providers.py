"""What targets hand to the targets that depend on them."""

from __future__ import annotations

from dataclasses import dataclass

from minibuild.actions import Artifact


@dataclass(frozen=True)
class FileEntry:
    """One file to place in an image: where, with which mode, and the artifact holding its bytes."""

    dest: str
    mode: int
    artifact: Artifact
    origin: str


@dataclass(frozen=True)
class FilesInfo:
    """A group of files with their destinations (from `files` targets)."""

    entries: tuple[FileEntry, ...]


@dataclass(frozen=True)
class DefaultInfo:
    """The plain outputs of a target (a genrule's `outs`), in declaration order."""

    files: tuple[Artifact, ...]


@dataclass(frozen=True)
class ImageInfo:
    """A built image: its layer list (layers.json), its config and manifest, and the tag it gets."""

    layers: Artifact
    config: Artifact
    manifest: Artifact
    tarball: Artifact
    closure: Artifact
    tag: str
