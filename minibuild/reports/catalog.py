"""What reports need of a built image: its label, summary and output directory."""

from __future__ import annotations

import json
import os
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
