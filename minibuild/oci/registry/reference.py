"""Image references as Docker reads them: `[registry[:port]/]name[:tag]`, and which hosts are local."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from minibuild.errors import InputError

_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_DOMAIN = rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9a-fA-F:]+\])"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REFERENCE_RE = re.compile(
    rf"(?:(?P<domain>{_DOMAIN}(?::[0-9]+)?)/)?(?P<path>{_COMPONENT}(?:/{_COMPONENT})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>[a-z0-9]+:[0-9a-fA-F]+))?"
)
DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"


@dataclass(frozen=True)
class Reference:
    """Where to push: `registry/repository:tag`, the registry as written (host[:port])."""

    registry: str
    repository: str
    tag: str

    def __str__(self) -> str:
        return f"{self.registry}/{self.repository}:{self.tag}"

    @property
    def api_host(self) -> str:
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry


def parse_reference(text: str) -> Reference:
    """`[registry/]name[:tag]`, as Docker reads it: no registry means Docker Hub, no tag means `latest`."""
    hint = "write `--to` as `registry[:port]/name[:tag]`, e.g. `127.0.0.1:5000/demo/bash:1`"
    match = _REFERENCE_RE.fullmatch(text)
    if not match or len(text) > 255:
        raise InputError(f"`{text}` is not a valid image reference", hint=hint)
    if match.group("digest"):
        raise InputError(f"`{text}` names a digest; a push chooses the digest from the image",
                         hint="give a tag instead, e.g. `127.0.0.1:5000/demo/bash:1`")
    domain, path = match.group("domain"), match.group("path")
    # As in Docker: the first component is a registry only if it looks like a host name.
    if domain and not ("." in domain or ":" in domain or domain == "localhost" or domain.startswith("[")):
        domain, path = None, f"{domain}/{path}" if domain else path
    if domain is None:
        if not re.fullmatch(rf"{_COMPONENT}(?:/{_COMPONENT})*", path):
            raise InputError(f"`{text}` is not a valid image reference", hint=hint)
        domain = DOCKER_HUB
        if "/" not in path:
            path = f"library/{path}"
    return Reference(domain, path, match.group("tag") or "latest")


def is_repository_name(path: str) -> bool:
    """`team/cache`: lowercase components joined by `/`, as the distribution spec names repositories."""
    return len(path) <= 255 and re.fullmatch(rf"{_COMPONENT}(?:/{_COMPONENT})*", path) is not None


def is_local_host(registry: str) -> bool:
    """localhost, 127.0.0.0/8 and ::1 (with or without a port) speak plain HTTP without `--insecure`."""
    host = registry
    if host.startswith("["):
        host = host[1:].split("]", 1)[0]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
