"""Push an OCI layout to a registry by speaking the OCI distribution API over HTTP(S), without a daemon.

The client checks each blob with HEAD and skips what the registry has, mounts blobs across repositories
of the same registry when it knows (or is told) where they were pushed before, uploads the rest
monolithically or in chunks streamed from the file, then puts the manifests (children of an index first,
by digest) and the root under its tag.

Credentials come from the docker CLI's `config.json` (`auths` only). Authentication is basic or bearer
token (a token per scope, fetched from the realm of the registry's challenge). Transient failures (5xx,
429, broken connections) are retried with bounded exponential backoff; 4xx never is. Every failure is an
EngineError naming the registry, the status and the registry's own error message.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, TypeVar
from urllib.parse import urljoin

import requests

from minibuild.errors import EngineError, InputError
from minibuild.oci._io import atomic_file, read_error
from minibuild.oci.layout import INDEX_TYPES, MANIFEST_TYPES, Layout, read_layout
from minibuild.oci.spec import Descriptor, sha256_digest

__all__ = [
    "Credentials",
    "PushRecord",
    "PushResult",
    "Reference",
    "RegistryClient",
    "RetryPolicy",
    "load_credentials",
    "parse_reference",
    "push_layout",
]

_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_DOMAIN = rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9a-fA-F:]+\])"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REFERENCE_RE = re.compile(
    rf"(?:(?P<domain>{_DOMAIN}(?::[0-9]+)?)/)?(?P<path>{_COMPONENT}(?:/{_COMPONENT})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>[a-z0-9]+:[0-9a-fA-F]+))?"
)
DOCKER_HUB = "docker.io"
_DOCKER_HUB_API = "registry-1.docker.io"
_DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"
DEFAULT_CHUNK_SIZE = 64 << 20
_READ_CHUNK = 1 << 20


# --- references ----------------------------------------------------------------------------------------


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
        return _DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry


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


# --- credentials ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def basic(self) -> str:
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode("ascii")
        return f"Basic {token}"


def docker_config_path() -> str:
    directory = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return os.path.join(directory, "config.json")


def _auth_key_host(key: str) -> str:
    key = re.sub(r"^[a-z]+://", "", key)
    return key.split("/", 1)[0]


def load_credentials(registry: str) -> tuple[Credentials | None, list[str]]:
    """The credentials `docker login` stored for `registry` in config.json, and warnings to show.

    Only `auths` entries are read (base64 `auth`, or `username` and `password`); credential helpers
    and stores are not run, which is warned about when they might have held the credentials.
    """
    path = docker_config_path()
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return None, []
    except OSError as exc:
        raise EngineError(f"cannot read the docker config `{path}`: {exc.strerror or exc}") from None
    try:
        config = json.loads(raw)
        if not isinstance(config, dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        raise EngineError(f"the docker config `{path}` is not valid JSON: {exc}",
                          hint="fix or remove it, then `docker login` again") from None
    wanted = {registry, _DOCKER_HUB_API} | ({"index.docker.io"} if registry == DOCKER_HUB else set())
    warnings: list[str] = []
    for key, entry in (config.get("auths") or {}).items():
        if _auth_key_host(key) not in wanted or not isinstance(entry, dict):
            continue
        if entry.get("auth"):
            try:
                user, sep, password = base64.b64decode(entry["auth"], validate=True).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                raise EngineError(f"the `auth` of `{key}` in `{path}` is not base64 of `user:password`",
                                  hint=f"`docker login {registry}` again") from None
            if sep:
                return Credentials(user, password), warnings
        if entry.get("username") and entry.get("password"):
            return Credentials(entry["username"], entry["password"]), warnings
        if entry.get("identitytoken"):
            warnings.append(f"the identity token for `{key}` in `{path}` is not supported; pushing without it")
    helper = (config.get("credHelpers") or {}).get(registry)
    if helper:
        warnings.append(f"credential helper `{helper}` for `{registry}` (in `{path}`) is not supported; "
                        "pushing without credentials")
    elif config.get("credsStore"):
        warnings.append(f"credential store `{config['credsStore']}` (in `{path}`) is not supported; "
                        f"pushing to `{registry}` without credentials")
    return None, warnings


# --- the HTTP client -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff: `tries` attempts, sleeping base, 2*base, ... at most `max_delay`."""

    tries: int = 5
    base_delay: float = 0.25
    max_delay: float = 4.0

    def delay(self, attempt: int) -> float:
        return float(min(self.max_delay, self.base_delay * 2**attempt))


class _Transient(Exception):
    """A failure worth trying again: 5xx, 429, a broken or refused connection."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


_T = TypeVar("_T")
Body = Callable[[], bytes | BinaryIO | None]


def _error_text(response: requests.Response) -> str:
    """`401 Unauthorized: authentication required` from the status and the registry's error JSON."""
    status = f"{response.status_code} {response.reason or ''}".strip()
    try:
        doc = response.json()
        errors = doc.get("errors") or []
        messages = []
        for e in errors:
            text = e.get("message") or e.get("code") or ""
            if e.get("code") and e.get("message"):
                text = f"{e['code']}: {e['message']}"
            detail = e.get("detail")
            if detail and isinstance(detail, str | int | float):
                text += f" ({detail})"
            messages.append(text)
        if messages:
            return f"{status}: " + "; ".join(messages)
    except (ValueError, AttributeError, TypeError):
        pass
    return status


def _parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="...",service="...",scope="..."` -> ("bearer", {realm, service, scope})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {k.lower(): v for k, v in re.findall(r'([A-Za-z]+)="([^"]*)"', rest)}
    return scheme.lower(), params


class RegistryClient:
    """One registry: scheme discovery, authentication and retries around the distribution API calls."""

    def __init__(
        self,
        registry: str,
        *,
        api_host: str | None = None,
        insecure: bool = False,
        credentials: Credentials | None = None,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 - frozen, so sharing the default is safe
        timeout: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.registry = registry
        self.api_host = api_host or registry
        self.insecure = insecure
        self.credentials = credentials
        self.retry = retry
        self.timeout = timeout
        self.sleep = sleep
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "minibuild"
        self.base = ""
        self.verify = True
        self._auth: str | None = None  # None until the registry asks; then "basic" or "bearer"
        self._challenge: dict[str, str] = {}
        self._tokens: dict[tuple[str, ...], tuple[str, float]] = {}
        self.retries = 0  # transient failures seen (and retried)

    # --- plumbing

    def _fail(self, what: str, response: requests.Response) -> EngineError:
        text = _error_text(response)
        hint = None
        if response.status_code in (401, 403):
            hint = f"check the credentials for `{self.registry}` (`docker login {self.registry}`)"
        elif response.status_code == 404:
            hint = "check the repository name"
        return EngineError(f"registry `{self.registry}` refused {what}: {text}", hint=hint)

    def _retrying(self, what: str, op: Callable[[], _T]) -> _T:
        for attempt in range(self.retry.tries):
            try:
                return op()
            except _Transient as exc:
                if attempt + 1 >= self.retry.tries:
                    raise EngineError(
                        f"{what} at registry `{self.registry}` failed after {self.retry.tries} tries: {exc}",
                        hint="the registry may be down or overloaded; try again later",
                    ) from None
                self.retries += 1
                delay = self.retry.delay(attempt)
                if exc.retry_after is not None:
                    delay = min(self.retry.max_delay, max(delay, exc.retry_after))
                self.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _raw(self, method: str, url: str, *, headers: Mapping[str, str] | None = None, body: Body | None = None,
             params: Mapping[str, Any] | None = None, auth: str | None = None) -> requests.Response:
        """One HTTP request; connection failures become _Transient, TLS failures an EngineError."""
        send_headers = dict(headers or {})
        if auth:
            send_headers["Authorization"] = auth
        data = body() if body is not None else None
        try:
            return self.session.request(method, url, headers=send_headers, data=data, params=params,
                                        timeout=(10.0, self.timeout), verify=self.verify, allow_redirects=True)
        except requests.exceptions.SSLError as exc:
            raise EngineError(f"TLS with registry `{self.registry}` failed: {_short(exc)}",
                              hint="for a registry without a valid certificate, pass `--insecure`") from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise _Transient(f"connection failed ({_short(exc)})") from None
        finally:
            if data is not None and hasattr(data, "close"):
                data.close()

    def _authorization(self, scopes: Sequence[str]) -> str | None:
        if self._auth == "basic" and self.credentials:
            return self.credentials.basic()
        if self._auth == "bearer":
            return "Bearer " + self._token(scopes)
        return None

    def _token(self, scopes: Sequence[str], *, fresh: bool = False) -> str:
        key = tuple(sorted(set(scopes)))
        cached = self._tokens.get(key)
        if cached and not fresh and cached[1] > time.monotonic():
            return cached[0]
        realm = self._challenge.get("realm", "")
        if not realm.startswith(("http://", "https://")):
            raise EngineError(f"registry `{self.registry}` asked for a bearer token without a usable realm "
                              f"(`{realm}`)")
        params: dict[str, Any] = {"scope": list(key)} if key else {}
        if self._challenge.get("service"):
            params["service"] = self._challenge["service"]
        auth = self.credentials.basic() if self.credentials else None
        response = self._raw("GET", realm, params=params, auth=auth)
        self._check_transient(response)
        if response.status_code in (401, 403):
            who = "the credentials were rejected" if self.credentials else "no credentials were found"
            raise EngineError(
                f"authentication with registry `{self.registry}` failed: {who} by the token service "
                f"({_error_text(response)})",
                hint=f"`docker login {self.registry}`, or set DOCKER_CONFIG to a directory with a config.json",
            )
        if not response.ok:
            raise self._fail("a token", response)
        try:
            doc = response.json()
            token = doc.get("token") or doc.get("access_token")
            expires = float(doc.get("expires_in") or 60)
        except (ValueError, AttributeError, TypeError):
            token, expires = None, 0.0
        if not isinstance(token, str) or not token:
            raise EngineError(f"the token service of registry `{self.registry}` returned no token")
        self._tokens[key] = (token, time.monotonic() + max(1.0, expires - 10))
        return token

    @staticmethod
    def _check_transient(response: requests.Response) -> None:
        if response.status_code >= 500 or response.status_code == 429:
            retry_after = response.headers.get("Retry-After", "")
            raise _Transient(_error_text(response), float(retry_after) if retry_after.isdigit() else None)

    def request(self, method: str, path_or_url: str, *, scopes: Sequence[str], headers: Mapping[str, str] | None = None,
                body: Body | None = None, params: Mapping[str, Any] | None = None) -> requests.Response:
        """One API call with authentication (answering one 401 challenge); not retried here.

        Returns any response below 500 other than 429, including 4xx, for the caller to judge; raises
        _Transient for 5xx, 429 and connection failures, EngineError when authentication fails.
        """
        if not self.base:
            self.ping()
        url = urljoin(self.base, path_or_url)
        response = self._raw(method, url, headers=headers, body=body, params=params,
                             auth=self._authorization(scopes))
        if response.status_code == 401:
            self._answer_challenge(response, scopes)
            response = self._raw(method, url, headers=headers, body=body, params=params,
                                 auth=self._authorization(scopes))
            if response.status_code == 401:
                raise self._auth_error(response)
        self._check_transient(response)
        return response

    def _learn_challenge(self, response: requests.Response) -> None:
        """Remember how /v2/ asks to authenticate, so requests with a body go out authorised the first time."""
        if response.status_code != 401:
            return
        scheme, params = _parse_challenge(response.headers.get("WWW-Authenticate", ""))
        if scheme == "bearer" and params.get("realm"):
            self._auth, self._challenge = "bearer", params
        elif scheme == "basic" and self.credentials is not None:
            self._auth = "basic"

    def _answer_challenge(self, response: requests.Response, scopes: Sequence[str]) -> None:
        header = response.headers.get("WWW-Authenticate", "")
        scheme, params = _parse_challenge(header)
        if scheme == "bearer":
            self._auth, self._challenge = "bearer", params
            wanted = list(scopes) + ([params["scope"]] if params.get("scope") else [])
            self._token(wanted, fresh=True)
            return
        if scheme == "basic":
            if self.credentials is None or self._auth == "basic":
                raise self._auth_error(response)
            self._auth = "basic"
            return
        raise EngineError(f"registry `{self.registry}` asks for authentication this client does not speak "
                          f"(`{header or 'no WWW-Authenticate header'}`)")

    def _auth_error(self, response: requests.Response) -> EngineError:
        if self.credentials is None:
            return EngineError(
                f"registry `{self.registry}` requires authentication and no credentials were found "
                f"for it in `{docker_config_path()}`",
                hint=f"`docker login {self.registry}`, or set DOCKER_CONFIG to a directory whose config.json "
                     "has them",
            )
        return EngineError(
            f"authentication with registry `{self.registry}` failed: the credentials for user "
            f"`{self.credentials.username}` were rejected ({_error_text(response)})",
            hint=f"`docker login {self.registry}` again",
        )

    def ping(self) -> None:
        """GET /v2/ to choose the scheme (HTTP for loopback hosts; HTTPS, or with --insecure either)."""
        if is_local_host(self.api_host):
            candidates = [("http", True)]
        elif self.insecure:
            candidates = [("https", False), ("http", True)]
        else:
            candidates = [("https", True)]
        if any(not verify for _, verify in candidates):
            import urllib3

            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        last: Exception | None = None
        for scheme, verify in candidates:
            self.base, self.verify = f"{scheme}://{self.api_host}/", verify

            def get() -> requests.Response:
                response = self._raw("GET", urljoin(self.base, "/v2/"))
                self._check_transient(response)
                return response

            try:
                response = self._retrying("reaching the API", get) if len(candidates) == 1 else get()
            except (_Transient, EngineError) as exc:
                last = exc
                continue
            if response.status_code in (200, 401):
                self._learn_challenge(response)
                return
            last = EngineError(f"`{self.base}v2/` answered {_error_text(response)}; is `{self.registry}` "
                               "an OCI registry?")
        self.base = ""
        if isinstance(last, EngineError):
            raise last
        raise EngineError(f"cannot reach registry `{self.registry}`: {last}",
                          hint="check the address; for a registry over plain HTTP, pass `--insecure`")

    # --- the distribution API

    def blob_exists(self, repository: str, digest: str) -> bool:
        def op() -> bool:
            r = self.request("HEAD", f"/v2/{repository}/blobs/{digest}", scopes=[_scope(repository)])
            if r.status_code == 404:
                return False
            if r.ok:
                return True
            raise self._fail(f"checking blob `{digest}` in `{repository}`", r)

        return self._retrying(f"checking blob `{digest}`", op)

    def mount_blob(self, repository: str, digest: str, from_repository: str) -> str | None:
        """Mount a blob from another repository: None if mounted, else the upload URL the registry opened."""
        def op() -> str | None:
            r = self.request("POST", f"/v2/{repository}/blobs/uploads/",
                             params={"mount": digest, "from": from_repository},
                             scopes=[_scope(repository), _scope(from_repository, "pull")],
                             headers={"Content-Length": "0"})
            if r.status_code == 201:
                return None
            if r.status_code == 202 and r.headers.get("Location"):
                return urljoin(r.url, r.headers["Location"])
            raise self._fail(f"mounting blob `{digest}` from `{from_repository}` into `{repository}`", r)

        return self._retrying(f"mounting blob `{digest}`", op)

    def _start_upload(self, repository: str) -> str:
        r = self.request("POST", f"/v2/{repository}/blobs/uploads/", scopes=[_scope(repository)],
                         headers={"Content-Length": "0"})
        if r.status_code != 202 or not r.headers.get("Location"):
            raise self._fail(f"starting an upload to `{repository}`", r)
        return urljoin(r.url, r.headers["Location"])

    def upload_blob(self, repository: str, digest: str, path: str, size: int, *, chunk_size: int = DEFAULT_CHUNK_SIZE,
                    location: str | None = None) -> None:
        """Upload the blob at `path` (streamed from the file); chunked when larger than chunk_size.

        A retry restarts the whole upload with a new session: a broken session cannot be trusted.
        """
        opened = [location]

        def op() -> None:
            url = opened[0] or self._start_upload(repository)
            opened[0] = None
            if size > chunk_size:
                url = self._patch_chunks(repository, digest, url, path, size, chunk_size)
                body: Body | None = None
                headers = {"Content-Length": "0"}
            else:
                body = _opener(path)
                headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
            r = self.request("PUT", url, params={"digest": digest}, headers=headers, body=body,
                             scopes=[_scope(repository)])
            if not r.ok:
                raise self._fail(f"the upload of blob `{digest}` to `{repository}`", r)

        self._retrying(f"uploading blob `{digest}`", op)

    def _patch_chunks(self, repository: str, digest: str, url: str, path: str, size: int, chunk_size: int) -> str:
        offset = 0
        try:
            f = open(path, "rb")  # closed below; open errors must name the blob
        except OSError as exc:
            raise read_error(exc, path, f"blob {digest}") from exc
        with f:
            while offset < size:
                chunk = _read_exactly(f, min(chunk_size, size - offset), path)
                headers = {"Content-Type": "application/octet-stream", "Content-Length": str(len(chunk)),
                           "Content-Range": f"{offset}-{offset + len(chunk) - 1}"}
                r = self.request("PATCH", url, headers=headers, body=lambda c=chunk: c,  # type: ignore[misc]
                                 scopes=[_scope(repository)])
                if r.status_code != 202 or not r.headers.get("Location"):
                    raise self._fail(f"a chunk of blob `{digest}` for `{repository}`", r)
                url = urljoin(r.url, r.headers["Location"])
                offset += len(chunk)
        return url

    def put_manifest(self, repository: str, reference: str, data: bytes, media_type: str) -> str:
        """PUT a manifest or index under a tag or digest; the digest the registry reports (or ours)."""
        def op() -> str:
            r = self.request("PUT", f"/v2/{repository}/manifests/{reference}", body=lambda: data,
                             headers={"Content-Type": media_type}, scopes=[_scope(repository)])
            if not r.ok:
                raise self._fail(f"the manifest `{reference}` of `{repository}`", r)
            return r.headers.get("Docker-Content-Digest") or sha256_digest(data)

        return self._retrying(f"putting manifest `{reference}`", op)


def _scope(repository: str, actions: str = "pull,push") -> str:
    return f"repository:{repository}:{actions}"


def _short(exc: BaseException) -> str:
    text = str(exc)
    for needle, meaning in (("Connection refused", "connection refused"), ("timed out", "timed out"),
                            ("Name or service not known", "unknown host"), ("RemoteDisconnected", "connection closed"),
                            ("Connection reset", "connection reset"), ("Connection aborted", "connection aborted"),
                            ("Broken pipe", "broken pipe"), ("CERTIFICATE_VERIFY_FAILED", "certificate not trusted"),
                            ("WRONG_VERSION_NUMBER", "the server does not speak TLS")):
        if needle in text:
            return meaning
    return text.splitlines()[0][:160] if text else type(exc).__name__


def _opener(path: str) -> Body:
    def open_blob() -> BinaryIO:
        try:
            return open(path, "rb")  # requests streams it; _raw closes it
        except OSError as exc:
            raise read_error(exc, path, "blob") from exc

    return open_blob


def _read_exactly(f: BinaryIO, n: int, path: str) -> bytes:
    parts, left = [], n
    while left:
        try:
            data = f.read(min(left, _READ_CHUNK))
        except OSError as exc:
            raise read_error(exc, path, "blob") from exc
        if not data:
            raise EngineError(f"blob `{path}` shrank while it was being pushed")
        parts.append(data)
        left -= len(data)
    return b"".join(parts)


# --- where blobs were pushed before ----------------------------------------------------------------------


class PushRecord:
    """A small JSON file mapping registry -> digest -> repositories the blob was pushed to, most recent last.

    Only a hint for choosing `from` in cross-repository mounts: a stale entry costs one mount that the
    registry declines, so losing an update to a concurrent push is harmless.
    """

    MAX_REPOS = 8
    MAX_DIGESTS = 4096

    def __init__(self, path: str) -> None:
        self.path = path
        self.data: dict[str, dict[str, list[str]]] = {}
        try:
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
            if isinstance(doc, dict) and isinstance(doc.get("registries"), dict):
                self.data = doc["registries"]
        except (OSError, ValueError):
            pass  # absent or damaged: start afresh

    def sources(self, registry: str, digest: str, exclude: str) -> list[str]:
        repos = self.data.get(registry, {}).get(digest, [])
        return [r for r in reversed(repos) if isinstance(r, str) and r != exclude]

    def add(self, registry: str, repository: str, digests: Iterable[str]) -> None:
        blobs = self.data.setdefault(registry, {})
        for digest in digests:
            repos = [r for r in blobs.pop(digest, []) if r != repository] + [repository]
            blobs[digest] = repos[-self.MAX_REPOS:]
        for stale in list(blobs)[: max(0, len(blobs) - self.MAX_DIGESTS)]:
            del blobs[stale]

    def save(self) -> None:
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            with atomic_file(self.path) as f:
                f.write(json.dumps({"version": 1, "registries": self.data}, sort_keys=True).encode("utf-8"))
        except Exception:  # noqa: BLE001 - a hint file must never fail a push that succeeded
            pass


# --- pushing a layout ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PushResult:
    reference: str  # registry/repository:tag@digest
    digest: str
    uploaded: int
    skipped: int
    mounted: int


BlobEvent = Callable[[str, Descriptor, str], None]  # (kind, descriptor, "uploaded" | "skipped" | "mounted")


def push_layout(
    layout_dir: str,
    ref: Reference,
    client: RegistryClient,
    *,
    from_repositories: Sequence[str] = (),
    record: PushRecord | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    on_blob: BlobEvent | None = None,
) -> PushResult:
    """Push the one image (or image index) of an OCI layout to `ref`; blobs first, manifests last.

    from_repositories: repositories of the same registry to try mounting missing blobs from, before the
    ones `record` remembers. The record is updated with every blob the repository now has.
    """
    layout = read_layout(layout_dir)
    if len(layout.manifests) != 1:
        raise InputError(f"the OCI layout `{layout.path}` lists {len(layout.manifests)} entries in index.json; "
                         "a push needs exactly one (an image or an image index)")
    pusher = _Pusher(layout, ref, client, list(from_repositories), record, chunk_size, on_blob)
    root = layout.manifests[0]
    pusher.manifest_tree(root, ref.tag, depth=0)
    if record is not None:
        record.add(ref.registry, ref.repository, pusher.done)
        record.save()
    return PushResult(reference=f"{ref}@{root.digest}", digest=root.digest, uploaded=pusher.counts["uploaded"],
                      skipped=pusher.counts["skipped"], mounted=pusher.counts["mounted"])


class _Pusher:
    def __init__(self, layout: Layout, ref: Reference, client: RegistryClient, from_repositories: list[str],
                 record: PushRecord | None, chunk_size: int, on_blob: BlobEvent | None) -> None:
        self.layout, self.ref, self.client = layout, ref, client
        self.from_repositories = [r for r in from_repositories if r != ref.repository]
        self.record, self.chunk_size, self.on_blob = record, chunk_size, on_blob
        self.counts = {"uploaded": 0, "skipped": 0, "mounted": 0}
        self.done: list[str] = []

    def document(self, desc: Descriptor) -> bytes:
        path = self.layout.blob_path(desc.digest)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise read_error(exc, path, desc.media_type) from exc
        if sha256_digest(data) != desc.digest or len(data) != desc.size:
            raise InputError(f"`{path}` does not match its descriptor (digest or size)",
                             hint="build the image again")
        return data

    def manifest_tree(self, desc: Descriptor, reference: str, depth: int) -> None:
        if depth > 8:
            raise InputError(f"image indexes in `{self.layout.path}` nest too deep")
        data = self.document(desc)
        try:
            doc = json.loads(data)
            if desc.media_type in INDEX_TYPES:
                children = [Descriptor.from_json(d) for d in doc.get("manifests") or []]
                for child in children:
                    self.manifest_tree(child, child.digest, depth + 1)
            elif desc.media_type in MANIFEST_TYPES:
                blobs = [Descriptor.from_json(doc["config"])]
                blobs += [Descriptor.from_json(d) for d in doc.get("layers") or []]
                for kind, blob in zip(["config"] + ["layer"] * (len(blobs) - 1), blobs, strict=True):
                    self.blob(kind, blob)
            else:
                raise InputError(f"`{desc.digest}` in `{self.layout.path}` has media type `{desc.media_type}`, "
                                 "which is neither an image manifest nor an image index")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InputError(f"the document `{desc.digest}` in `{self.layout.path}` is malformed ({exc})") from None
        pushed = self.client.put_manifest(self.ref.repository, reference, data, desc.media_type)
        if pushed != desc.digest:
            raise EngineError(f"registry `{self.ref.registry}` stored manifest `{reference}` as `{pushed}`, "
                              f"not as the pushed `{desc.digest}`",
                              hint="the registry rewrote the manifest; it does not keep OCI manifests byte for byte")

    def blob(self, kind: str, desc: Descriptor) -> None:
        if desc.digest in self.done:
            return
        repo = self.ref.repository
        path = self.layout.blob_path(desc.digest)
        try:
            size = os.stat(path).st_size
        except OSError as exc:
            raise read_error(exc, path, f"{kind} blob {desc.digest}") from exc
        if size != desc.size:
            raise InputError(f"blob `{path}` has {size} bytes but its descriptor says {desc.size}",
                             hint="build the image again")
        outcome = "uploaded"
        location: str | None = None
        if self.client.blob_exists(repo, desc.digest):
            outcome = "skipped"
        else:
            sources = list(self.from_repositories)
            if self.record is not None:
                sources += [r for r in self.record.sources(self.ref.registry, desc.digest, repo) if r not in sources]
            for source in sources[:2]:
                location = self.client.mount_blob(repo, desc.digest, source)
                if location is None:
                    outcome = "mounted"
                    break
            if outcome == "uploaded":
                self.client.upload_blob(repo, desc.digest, path, size, chunk_size=self.chunk_size,
                                        location=location)
        self.counts[outcome] += 1
        self.done.append(desc.digest)
        if self.on_blob is not None:
            self.on_blob(kind, desc, outcome)
