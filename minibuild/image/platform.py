"""Platforms as OCI names them (`linux/arm64/v8`), and the build machine's own."""

from __future__ import annotations

import platform as host


def parse_platform(text: str | None) -> tuple[str, str | None]:
    """"linux/arm64/v8" -> ("arm64", "v8")."""
    parts = (text or "").split("/")
    return (parts[1] if len(parts) > 1 else ""), (parts[2] if len(parts) > 2 else None)


def host_architecture() -> str:
    machine = host.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(machine, machine)
