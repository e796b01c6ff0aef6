"""URLs as a published document may show them: without the `user:token@` a private mirror or remote carries."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def without_credentials(url: str) -> str:
    """`https://user:token@host/x` -> `https://host/x`; a URL without credentials is returned as it is."""
    parts = urlsplit(url)
    if parts.scheme and "@" in parts.netloc:
        return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
    return url
