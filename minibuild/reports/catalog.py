"""Build a pattern (no load) and hand back what reports need of each image; record each in the history."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ImageRecord:
    """One built image target: its label, its summary (build.py's summary.json) and its output directory."""

    label: str
    summary: dict[str, Any]
    out_dir: str  # absolute path of .minibuild/out/<pkg>/<name>/

    def layers_json(self) -> dict[str, Any]:
        """layers.json: every layer with its files (path, kind, size, mode, reason, digest, target)."""
        with open(os.path.join(self.out_dir, "layers.json"), encoding="utf-8") as f:
            data: dict[str, Any] = json.load(f)
        return data

    def closure_json(self) -> dict[str, Any]:
        with open(os.path.join(self.out_dir, "closure.json"), encoding="utf-8") as f:
            data: dict[str, Any] = json.load(f)
        return data


def build_records(patterns: Sequence[str], args: argparse.Namespace) -> tuple[Any, list[ImageRecord]]:
    """Build `patterns` without loading; (Workspace, one ImageRecord per image target, sorted by label).

    Each image is also recorded in `.minibuild/history/` so that `minibuild diff` can compare with it later.
    """
    from minibuild.build import out_dir
    from minibuild.commands import common
    from minibuild.reports import history

    workspace, images = common.build_images(patterns, args, quiet=True)
    records = []
    for t in sorted(images, key=lambda t: str(t.label)):
        record = ImageRecord(str(t.label), t.image, out_dir(workspace, t.label))
        history.record(workspace, t.label, record.summary)
        records.append(record)
    return workspace, records
