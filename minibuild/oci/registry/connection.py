"""The HTTP side of one registry: scheme discovery, authentication (basic or bearer tokens) and retries.

Authentication is basic or bearer token (a token per scope, fetched from the realm of the registry's
challenge). Transient failures (5xx, 429, broken connections) are retried with bounded exponential
backoff; 4xx never is. Every failure is an EngineError naming the registry, the status and the
registry's own error message.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, TypeVar
from urllib.parse import urljoin

import requests

from minibuild.errors import EngineError
from minibuild.oci.registry.credentials import Credentials, docker_config_path
from minibuild.oci.registry.reference import is_local_host


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

    def __init__(self, message: str, retry_after: float | None = None, *, status: int | None = None,
                 reason: str = "", timed_out: bool = False, cut_short: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status, self.reason, self.timed_out, self.cut_short = status, reason or message, timed_out, cut_short


class RegistryError(EngineError):
    """A registry call that failed for good (after its retries), described for a caller that must tell the
    kinds apart without reading messages (the remote cache: an unreachable server is not asked again).

    `status` is the HTTP status the registry answered, or None when no answer came: then the connection
    failed (`timed_out` when it was a timeout) or the answer was `cut_short`. `reason` is a few words that are
    the same for every call failing the same way (`connection refused`, `500 Internal Server Error`). `tls`
    says the TLS handshake failed (`reason`: `certificate verify failed: ...`).
    """

    def __init__(self, message: str, *, hint: str | None = None, status: int | None = None, reason: str = "",
                 timed_out: bool = False, cut_short: bool = False, tls: bool = False) -> None:
        super().__init__(message, hint=hint)
        self.status, self.reason, self.timed_out, self.cut_short = status, reason, timed_out, cut_short
        self.tls = tls


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


class RegistryConnection:
    """One registry: scheme discovery, authentication and retries around HTTP requests to its API."""

    def __init__(
        self,
        registry: str,
        *,
        api_host: str | None = None,
        insecure: bool = False,
        credentials: Credentials | None = None,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 - frozen, so sharing the default is safe
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        ca_file: str | None = None,
        scheme: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.registry = registry
        self.api_host = api_host or registry
        self.insecure = insecure
        self.credentials = credentials
        self.retry = retry
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.ca_file = ca_file  # a private CA's certificates (PEM) for verified HTTPS; None: the system's
        self.scheme = scheme  # "https" or "http" whatever the host; None: ping's rule
        self.sleep = sleep
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "minibuild"
        self.base = ""
        self.verify: bool | str = True
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
        return RegistryError(f"registry `{self.registry}` refused {what}: {text}", hint=hint,
                             status=response.status_code, reason=text)

    def _retrying(self, what: str, op: Callable[[], _T]) -> _T:
        for attempt in range(self.retry.tries):
            try:
                return op()
            except _Transient as exc:
                if attempt + 1 >= self.retry.tries:
                    raise RegistryError(
                        f"{what} at registry `{self.registry}` failed after {self.retry.tries} tries: {exc}",
                        hint="the registry may be down or overloaded; try again later",
                        status=exc.status, reason=exc.reason, timed_out=exc.timed_out, cut_short=exc.cut_short,
                    ) from None
                self.retries += 1
                delay = self.retry.delay(attempt)
                if exc.retry_after is not None:
                    delay = min(self.retry.max_delay, max(delay, exc.retry_after))
                self.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _raw(self, method: str, url: str, *, headers: Mapping[str, str] | None = None, body: Body | None = None,
             params: Mapping[str, Any] | None = None, auth: str | None = None,
             stream: bool = False) -> requests.Response:
        """One HTTP request; connection failures become _Transient, TLS failures a RegistryError (`tls`)."""
        send_headers = dict(headers or {})
        if auth:
            send_headers["Authorization"] = auth
        data = body() if body is not None else None
        try:
            return self.session.request(method, url, headers=send_headers, data=data, params=params,
                                        timeout=(self.connect_timeout, self.timeout), verify=self.verify,
                                        allow_redirects=True, stream=stream)
        except requests.exceptions.SSLError as exc:
            short = _short(exc)
            raise RegistryError(f"TLS with registry `{self.registry}` failed: {short}", reason=short, tls=True,
                                hint="for a registry without a valid certificate, pass `--insecure`") from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            short = _short(exc)
            raise _Transient(f"connection failed ({short})", reason=short,
                             timed_out=isinstance(exc, requests.Timeout)) from None
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
            text = _error_text(response)
            raise _Transient(text, float(retry_after) if retry_after.isdigit() else None,
                             status=response.status_code, reason=text)

    def request(self, method: str, path_or_url: str, *, scopes: Sequence[str], headers: Mapping[str, str] | None = None,
                body: Body | None = None, params: Mapping[str, Any] | None = None,
                stream: bool = False) -> requests.Response:
        """One API call with authentication (answering one 401 challenge); not retried here.

        Returns any response below 500 other than 429, including 4xx, for the caller to judge; raises
        _Transient for 5xx, 429 and connection failures, EngineError when authentication fails. With
        `stream`, the body is read by the caller, who closes the response.
        """
        if not self.base:
            self.ping()
        url = urljoin(self.base, path_or_url)
        response = self._raw(method, url, headers=headers, body=body, params=params,
                             auth=self._authorization(scopes), stream=stream)
        if response.status_code == 401:
            response.close()
            self._answer_challenge(response, scopes)
            response = self._raw(method, url, headers=headers, body=body, params=params,
                                 auth=self._authorization(scopes), stream=stream)
            if response.status_code == 401:
                raise self._auth_error(response)
        if response.status_code >= 500 or response.status_code == 429:
            response.close()
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
        """GET /v2/ to choose the scheme (the one `scheme` names; else HTTP for loopback hosts, HTTPS, or with
        --insecure either)."""
        if self.scheme:
            candidates = [(self.scheme, True)]
        elif is_local_host(self.api_host):
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
            self.base, self.verify = f"{scheme}://{self.api_host}/", (self.ca_file or True) if verify else False

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


def _short(exc: BaseException) -> str:
    text = str(exc)
    verify = re.search(r"certificate verify failed: ([^(\n]+?)\.? \(_ssl", text)  # OpenSSL's reason
    if verify:
        return f"certificate verify failed: {verify.group(1)}"
    for needle, meaning in (("Connection refused", "connection refused"), ("timed out", "timed out"),
                            ("Name or service not known", "unknown host"), ("RemoteDisconnected", "connection closed"),
                            ("Connection reset", "connection reset"), ("Connection aborted", "connection aborted"),
                            ("Broken pipe", "broken pipe"), ("CERTIFICATE_VERIFY_FAILED", "certificate not trusted"),
                            ("WRONG_VERSION_NUMBER", "the server does not speak TLS")):
        if needle in text:
            return meaning
    return text.splitlines()[0][:160] if text else type(exc).__name__
