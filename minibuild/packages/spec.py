"""A package sysroot as `workspace.toml` declares it (`[sysroots.NAME]`), and the OCI platform of each Debian
architecture."""

from __future__ import annotations

import platform as host_platform
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Debian architecture -> the OCI platform of its images.
PLATFORMS = {
    "amd64": "linux/amd64", "arm64": "linux/arm64", "armhf": "linux/arm/v7", "armel": "linux/arm/v5",
    "i386": "linux/386", "ppc64el": "linux/ppc64le", "s390x": "linux/s390x", "riscv64": "linux/riscv64",
    "mips64el": "linux/mips64le",
}
_MACHINES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "armhf", "i686": "i386", "ppc64le": "ppc64el",
             "s390x": "s390x", "riscv64": "riscv64", "mips64": "mips64el"}


def debian_arch(platform: str) -> str | None:
    """The Debian architecture of an OCI platform (`linux/arm64/v8` -> `arm64`), or None."""
    if platform in ("linux/arm64/v8",):
        return "arm64"
    return next((arch for arch, p in PLATFORMS.items() if p == platform), None)


def host_arch() -> str:
    return _MACHINES.get(host_platform.machine(), host_platform.machine())


@dataclass(frozen=True)
class Request:
    """What the lock must answer: it is stale when this changed in workspace.toml."""

    suite: str
    components: tuple[str, ...]
    architectures: tuple[str, ...]
    packages: tuple[str, ...]
    essential: bool = False

    def as_json(self) -> dict[str, Any]:
        return {"suite": self.suite, "components": list(self.components), "architectures": list(self.architectures),
                "packages": list(self.packages), "essential": self.essential}

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> Request:
        return Request(str(data["suite"]), tuple(data["components"]), tuple(data["architectures"]),
                       tuple(data["packages"]), bool(data.get("essential", False)))


@dataclass(frozen=True)
class SysrootSpec:
    """`[sysroots.NAME]`: where the packages come from and which are wanted."""

    name: str
    request: Request
    url: str | None = None  # None: the mirror of the host's apt sources
    keyrings: tuple[str, ...] = ()  # empty: Debian's archive keyring

    @staticmethod
    def from_table(name: str, table: Mapping[str, Any]) -> SysrootSpec:
        """From the validated table (workspace_config's SysrootConfig as a dict)."""
        debian = table["debian"]
        keyring = table.get("keyring")
        return SysrootSpec(
            name=name,
            request=Request(debian["suite"], tuple(debian["components"]), tuple(sorted(set(debian["architectures"]))),
                            tuple(sorted(set(table["packages"]))), bool(table.get("essential", False))),
            url=table.get("url"),
            keyrings=tuple(keyring) if isinstance(keyring, list | tuple) else (keyring,) if keyring else (),
        )

    def arch_for(self, platform: str | None) -> str:
        """The architecture an image of `platform` takes from this sysroot (no platform: the only one, else the
        host's if locked, else the first)."""
        archs = self.request.architectures
        if platform is not None:
            return debian_arch(platform) or platform
        if len(archs) == 1 or host_arch() not in archs:
            return archs[0]
        return host_arch()
