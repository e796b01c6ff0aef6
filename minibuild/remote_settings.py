"""Which remote cache a build uses: the command line over the environment over `[cache]` of workspace.toml.

    --remote-cache URL / MINIBUILD_REMOTE_CACHE / [cache] remote      http(s)://, grpc(s)://, oci(+https)://
    --remote-cache-read-only / MINIBUILD_REMOTE_CACHE_READ_ONLY=1 / [cache] write = false
    --no-remote-cache / MINIBUILD_REMOTE_CACHE=off
    MINIBUILD_REMOTE_CACHE_INSTANCE / [cache] instance               the REAPI instance name
    MINIBUILD_REMOTE_CACHE_HEADERS / [cache] headers_file            `Name: value` lines (credentials)
    MINIBUILD_REMOTE_CACHE_CA / [cache] ca_file                       a private CA (PEM)

Credentials (`user:password@` in the URL, header values) are kept in `RemoteSettings.headers` only: the URL
minibuild shows has them taken out.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

from minibuild.errors import InputError
from minibuild.remote_cache import RemoteSettings
from minibuild.workspace import Workspace

SCHEMES = ("http", "https", "grpc", "grpcs", "oci", "oci+https", "oci+http")
ENV_URL = "MINIBUILD_REMOTE_CACHE"
ENV_READ_ONLY = "MINIBUILD_REMOTE_CACHE_READ_ONLY"
ENV_INSTANCE = "MINIBUILD_REMOTE_CACHE_INSTANCE"
ENV_HEADERS = "MINIBUILD_REMOTE_CACHE_HEADERS"
ENV_CA = "MINIBUILD_REMOTE_CACHE_CA"
_OFF = ("", "0", "off", "no", "none", "false")


@dataclass(frozen=True)
class RemoteChoice:
    """What the command line says about the remote cache."""

    url: str | None = None
    read_only: bool = False
    disabled: bool = False


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() not in _OFF


_LOCAL_ONLY = {"max_size"}  # `[cache]` keys that say nothing of a remote cache (docs/cache.md)


def _has_cache_table(workspace: Workspace) -> bool:
    """Whether workspace.toml's `[cache]` table says anything of a remote cache (a no-op build of a workspace with
    no remote cache, or only `max_size`, does not load pydantic)."""
    table = workspace.unvalidated_table("cache")
    return table is not None and (not isinstance(table, dict) or bool(set(table) - _LOCAL_ONLY))


def split_credentials(url: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The URL without `user:password@`, and the basic-auth header that stood for them."""
    parts = urlsplit(url)
    if parts.username is None:
        return url, ()
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    token = base64.b64encode(f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()).decode()
    return urlunsplit(parts._replace(netloc=netloc)), (("Authorization", f"Basic {token}"),)


def parse_headers(text: str, where: str) -> tuple[tuple[str, str], ...]:
    """`Name: value` lines (blank lines and `#` comments skipped). The error names the line, never its value."""
    headers = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip() or " " in name.strip():
            raise InputError(f"line {n} of {where} is not a `Name: value` header")
        headers.append((name.strip(), value.strip()))
    return tuple(headers)


def remote_settings(workspace: Workspace, choice: RemoteChoice,
                    environ: Mapping[str, str] | None = None) -> RemoteSettings | None:
    """The remote cache this build uses, or None. InputError for a URL or headers file that cannot be used."""
    env = os.environ if environ is None else environ
    if choice.disabled:
        return None
    url = choice.url
    if url is None and ENV_URL in env:
        if not _truthy(env[ENV_URL]):
            return None
        url = env[ENV_URL].strip()
    cache = workspace.config.cache if _has_cache_table(workspace) else None
    if url is None:
        url = cache.remote if cache else None
    if not url:
        return None
    scheme = urlsplit(url).scheme
    if scheme not in SCHEMES:
        shown, _ = split_credentials(url) if "@" in url else (url, ())
        raise InputError(f"remote cache `{shown}`: the scheme must be one of {', '.join(SCHEMES)}",
                         hint="e.g. `http://127.0.0.1:8080/cache` (Bazel HTTP cache), `grpc://127.0.0.1:50051` "
                              "(REAPI) or `oci://127.0.0.1:5000/team/cache` (an OCI registry)")
    url, headers = split_credentials(url)
    headers += _headers(workspace, env, cache.headers_file if cache else None)
    write = (cache.write if cache else True) and not choice.read_only and not _truthy(env.get(ENV_READ_ONLY))
    ca_file = _ca_file(workspace, env, cache.ca_file if cache else None)
    return RemoteSettings(
        url=url.rstrip("/"),
        instance=env.get(ENV_INSTANCE, cache.instance if cache else ""),
        read=cache.read if cache else True,
        write=write,
        headers=headers,
        ca_file=ca_file,
        timeout=cache.timeout if cache else 10.0,
        connections=cache.connections if cache else 8,
    )


def _ca_file(workspace: Workspace, env: Mapping[str, str], configured: str | None) -> str | None:
    """The private CA's file, absolute; InputError when it holds no PEM certificate (a TLS client would fail on
    every request, or fail the build, for a mistake in the configuration)."""
    name, where = (env[ENV_CA], f"${ENV_CA}") if env.get(ENV_CA) else (configured, "`[cache] ca_file`")
    if not name:
        return None
    path = workspace.root / os.path.expanduser(name)
    try:
        pem = "-----BEGIN CERTIFICATE-----" in path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InputError(f"cannot read the remote cache's CA file `{name}` ({where}): {exc.strerror}",
                         hint="`ca_file` is the PEM file of the CA that signed the server's certificate; relative "
                              "to the workspace root (or starting with `~`)") from None
    if not pem:
        raise InputError(f"the remote cache's CA file `{name}` ({where}) holds no PEM certificate",
                         hint="a `-----BEGIN CERTIFICATE-----` block, as `openssl x509 -outform PEM` writes it")
    return str(path)


def _headers(workspace: Workspace, env: Mapping[str, str], headers_file: str | None) -> tuple[tuple[str, str], ...]:
    found = parse_headers(env.get(ENV_HEADERS, ""), f"${ENV_HEADERS}")
    if headers_file:
        path = workspace.root / os.path.expanduser(headers_file)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot read the remote cache's headers file `{headers_file}`: {exc.strerror}",
                             hint="`[cache] headers_file` is relative to the workspace root (or starts with `~`)",
                             ) from None
        found += parse_headers(text, f"`{headers_file}`")
    return found
