"""What targets hand to the targets that depend on them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from minibuild.actions import Artifact
from minibuild.hooks import BuiltTarget


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
class PlatformImage:
    """One platform's image: its ELF closure, layer list (layers.json), config and manifest."""

    platform: str  # "linux/arm64", or "" when the image is single-platform and takes the binaries' own
    closure: Artifact
    layers: Artifact
    config: Artifact
    manifest: Artifact
    # Where its files came from (what `minibuild sbom` reads): a host sysroot as the workspace names it, or a
    # package sysroot ("bookworm (amd64)") and its sysroot.json.
    sysroot: str = ""
    sysroot_document: Artifact | None = None


@dataclass(frozen=True)
class ImageInfo:
    """A built image: one PlatformImage per platform, the index of a multi-platform image, the tarball."""

    platforms: tuple[PlatformImage, ...]
    index: Artifact | None
    tarball: Artifact
    tag: str

    @property
    def primary(self) -> PlatformImage:
        return self.platforms[0]

    def after_build(self, target: BuiltTarget) -> dict[str, Any]:
        """Once built: the OCI layout and summary.json beside the outputs; the summary for the CLI."""
        from minibuild.image.summary import write_summary  # the OCI writer, only when an image was built

        return write_summary(self, target)

    def for_platform(self, platform: str | None) -> PlatformImage | None:
        if len(self.platforms) == 1 and (not platform or not self.platforms[0].platform):
            return self.platforms[0]
        return next((p for p in self.platforms if p.platform == platform), None)
