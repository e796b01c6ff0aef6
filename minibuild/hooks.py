"""What the engine tells a rule once a target is built: the one way a rule adds outputs of its own kind
(an image's OCI layout) and a summary for the command line, without the engine knowing the kind.

Kept free of pydantic: providers are read back from the analysis cache on a no-op build.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from minibuild.cache import Blob, Cache
from minibuild.label import Label


@dataclass(frozen=True)
class BuiltTarget:
    """A target whose actions all ran or hit the cache, as an `after_build` hook sees it."""

    label: Label
    state_dir: str  # the workspace's `.minibuild`
    out_dir: str  # `.minibuild/out/<package>/<name>`, where its outputs have been materialised
    rel_dir: str  # the same, relative to the workspace root (for what reports print)
    outputs: Mapping[str, Blob]  # output name -> stored blob
    cache: Cache


@runtime_checkable
class AfterBuild(Protocol):
    """A provider with this method is called once its target is built, its outputs materialised: the way a
    rule adds outputs of its own kind (an image's OCI layout) and a summary (returned, shown by the CLI)."""

    def after_build(self, target: BuiltTarget) -> dict[str, Any] | None: ...
