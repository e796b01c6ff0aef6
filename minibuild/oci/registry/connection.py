"""The HTTP side of one registry: scheme discovery, authentication (basic or bearer tokens) and retries.

Authentication is basic or bearer token (a token per scope, fetched from the realm of the registry's
challenge). Credentials go only to the registry's own origin (scheme, host and port) and, for a token, to the
realm its challenge named: a request to another host (an upload `Location`, a redirect) goes without them,
and without the headers configured on the session, and that host's 401 is not answered.

Transient failures (5xx, 429, broken connections) are retried with bounded exponential backoff; 4xx never is;
a request that got no answer within its time limit is tried once more (deadlines.py: limits a trickling
server cannot stretch, the Deadline of a whole push). Every failure is an EngineError naming the registry,
the status and the registry's own error message.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, TypeVar
from urllib.parse import urljoin, urlsplit

import requests

from minibuild.errors import EngineError
from minibuild.oci.registry.credentials import Credentials, docker_config_path
from minibuild.oci.registry.deadlines import Deadline, Watch, watch_session, watching
from minibuild.oci.registry.reference import is_local_host


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff: `tries` attempts, sleeping base, 2*base, ... at most `max_delay`."""

    tries: int = 5
    base_delay: float = 0.25
    max_delay: float = 4.0
    timeout_tries: int = 2  # a request that got no answer in time: tried this often, not `tries` times

    def delay(self, attempt: int) -> float:
        return float(min(self.max_delay, self.base_delay * 2**attempt))


class _Transient(Exception):
    """A failure worth trying again: 5xx, 429, a broken or refused connection."""

    def __init__(self, message: str, retry_after: float | None = None, *, status: int | None = None,
                 reason: str = "", timed_out: bool = False, cut_short: bool = False, label: str = "") -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status, self.reason, self.timed_out, self.cut_short = status, reason or message, timed_out, cut_short
        self.label = label  # `PUT /v2/...` for a timeout


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


def _origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port filled in: what credentials are bound to."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or {"http": 80, "https": 443}.get(scheme)
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port


_GENERIC_HEADERS = frozenset({"user-agent", "accept", "accept-encoding", "connection"})


class _Session(requests.Session):
    """A session whose redirects keep credentials and configured headers only for hosts that may have them.

    requests drops `Authorization` when a redirect changes the host; this also drops it (and the headers set
    on the session, such as the remote cache's) on any other origin than the trusted ones.
    """

    def __init__(self, trusted: Callable[[str], bool]) -> None:
        super().__init__()
        self.trusted = trusted

    def private_headers(self) -> list[str]:
        return [name for name in self.headers if name.lower() not in _GENERIC_HEADERS] + ["Authorization"]

    def rebuild_auth(self, prepared_request: requests.PreparedRequest, response: requests.Response) -> None:
        super().rebuild_auth(prepared_request, response)
        if not self.trusted(prepared_request.url or ""):
            for name in self.private_headers():
                prepared_request.headers.pop(name, None)


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
        deadline: Deadline | None = None,
        on_wait: Callable[[str], None] | None = None,
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
        self.deadline = deadline  # the time the whole operation (a push) may take; None: no limit
        self.on_wait = on_wait  # shown a line when a request has waited a few seconds
        self.session: requests.Session = _Session(self._may_have_credentials)
        self.session.headers["User-Agent"] = "minibuild"
        self.base = ""
        self.verify: bool | str = True
        self._auth: str | None = None  # None until the registry asks; then "basic" or "bearer"
        self._challenge: dict[str, str] = {}
        self._tokens: dict[tuple[str, ...], tuple[str, float]] = {}
        self._token_lock = threading.Lock()
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

    def _is_registry(self, url: str) -> bool:
        return bool(self.base) and _origin(url) == _origin(self.base)

    def _may_have_credentials(self, url: str) -> bool:
        """The registry's own origin, and the token realm its challenge named (which gets the basic ones)."""
        realm = self._challenge.get("realm", "")
        return self._is_registry(url) or (bool(realm) and _origin(url) == _origin(realm))

    def _label(self, method: str, url: str) -> str:
        """`PUT /v2/...` for a request to the registry, `PUT http://other:5000/v2/...` for one elsewhere."""
        parts = urlsplit(url)
        where = parts.path if self._is_registry(url) else f"{parts.scheme}://{parts.netloc}{parts.path}"
        return f"{method} {where}"

    def _out_of_time(self, label: str) -> RegistryError:
        assert self.deadline is not None
        d = self.deadline
        return RegistryError(f"{d.what} stopped: no answer within {d.seconds:g} s ({label})",
                             hint=f"a registry this slow is stuck or overloaded: try again later, or allow more "
                                  f"time with `{d.setting} SECONDS`",
                             reason="timed out", timed_out=True)

    def _retrying(self, what: str, op: Callable[[], _T]) -> _T:
        timeouts = 0
        for attempt in range(self.retry.tries):
            try:
                return op()
            except _Transient as exc:
                timeouts += exc.timed_out
                last = attempt + 1 >= self.retry.tries or timeouts >= self.retry.timeout_tries
                if last and exc.timed_out and self.deadline is not None:
                    raise RegistryError(f"{self.deadline.what} stopped: {exc} ({exc.label}), {attempt + 1} tries",
                                        hint="the registry is stuck or overloaded; try again later",
                                        reason=exc.reason, timed_out=True) from None
                if last:
                    raise RegistryError(
                        f"{what} at registry `{self.registry}` failed after {attempt + 1} tries: {exc}",
                        hint="the registry may be down or overloaded; try again later",
                        status=exc.status, reason=exc.reason, timed_out=exc.timed_out, cut_short=exc.cut_short,
                    ) from None
                self.retries += 1
                delay = self.retry.delay(attempt)
                if exc.retry_after is not None:
                    delay = min(self.retry.max_delay, max(delay, exc.retry_after))
                if self.deadline is not None and self.deadline.left() < delay:
                    d = self.deadline
                    raise RegistryError(f"{d.what} stopped: not done within {d.seconds:g} s ({what}: {exc})",
                                        hint=f"try again later, or allow more time with `{d.setting} SECONDS`",
                                        status=exc.status, reason=exc.reason, timed_out=exc.timed_out,
                                        cut_short=exc.cut_short) from None
                self.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def watching(self, method: str, url: str) -> contextlib.AbstractContextManager[Watch]:
        """The time limits of one request (or of reading a streamed body: `arm` it at every chunk)."""
        return watching(self._label(method, url), self.timeout, self.deadline, self.on_wait)

    def _expired(self, watch: Watch, exc: BaseException, read_timeout: float) -> Exception:
        """The error for a request that timed out: its read (after `read_timeout`), or its watcher shut it down."""
        by_deadline = read_timeout < self.timeout and isinstance(exc, requests.exceptions.ReadTimeout)
        if self.deadline is not None and (watch.expired == "deadline" or by_deadline or self.deadline.left() <= 0):
            return self._out_of_time(watch.label)
        if watch.expired or isinstance(exc, requests.exceptions.ReadTimeout):
            limit = watch.answer_limit if watch.expired else read_timeout
            return _Transient(f"no answer within {limit:g} s", reason="timed out", timed_out=True, label=watch.label)
        return _Transient(f"connection failed ({_short(exc)})", reason=_short(exc), timed_out=True,
                          label=watch.label)

    def _read_timeout(self) -> float:
        return self.timeout if self.deadline is None else max(0.01, min(self.timeout, self.deadline.left()))

    def _raw(self, method: str, url: str, *, headers: Mapping[str, str] | None = None, body: Body | None = None,
             params: Mapping[str, Any] | None = None, auth: str | None = None,
             stream: bool = False) -> requests.Response:
        """One HTTP request; connection failures become _Transient, TLS failures a RegistryError (`tls`).

        `auth` goes only where credentials may (`_may_have_credentials`); elsewhere the session's own headers
        are left out too.
        """
        send_headers: dict[str, str | None] = dict(headers or {})
        if not self._may_have_credentials(url) and isinstance(self.session, _Session):
            send_headers.update({name: None for name in self.session.private_headers()})
        elif auth:
            send_headers["Authorization"] = auth
        if self.deadline is not None and self.deadline.left() <= 0:
            raise self._out_of_time(self._label(method, url))
        watch_session(self.session)
        read_timeout = self._read_timeout()  # per recv; the watch bounds the whole answer
        data = body() if body is not None else None
        with self.watching(method, url) as watch:
            try:
                response = self.session.request(
                    method, url, headers=send_headers,  # type: ignore[arg-type]  # None drops a session header
                    data=data, params=params, verify=self.verify,
                    timeout=(min(self.connect_timeout, read_timeout), read_timeout),
                    allow_redirects=True, stream=stream)
            except requests.exceptions.SSLError as exc:
                short = _short(exc)
                raise RegistryError(f"TLS with registry `{self.registry}` failed: {short}", reason=short, tls=True,
                                    hint="for a registry without a valid certificate, pass `--insecure`") from None
            except requests.RequestException as exc:
                short = _short(exc)
                if watch.expired or isinstance(exc, requests.Timeout):
                    raise self._expired(watch, exc, read_timeout) from None
                if isinstance(exc, requests.ConnectionError | requests.exceptions.ChunkedEncodingError):
                    raise _Transient(f"connection failed ({short})", reason=short,
                                     cut_short=not isinstance(exc, requests.ConnectionError)) from None
                raise RegistryError(f"{watch.label} at registry `{self.registry}` failed: {short}",
                                    reason=short) from None
            finally:
                if data is not None and hasattr(data, "close"):
                    data.close()
            if watch.expired:  # shut down mid-answer, http.client may take what came as all of it
                response.close()
                raise self._expired(watch, requests.Timeout(), read_timeout)
        return response

    def _authorization(self, scopes: Sequence[str]) -> str | None:
        if self._auth == "basic" and self.credentials:
            return self.credentials.basic()
        if self._auth == "bearer":
            return "Bearer " + self._token(scopes)
        return None

    def _token(self, scopes: Sequence[str], *, rejected: str | None = None) -> str:
        """The bearer token for `scopes`: the one held, unless it expired or is `rejected` (the Authorization a
        401 answered); else a new one. One thread fetches it while the others (a push's blobs) wait for it."""
        key = tuple(sorted(set(scopes)))
        with self._token_lock:
            cached = self._tokens.get(key)
            if cached and cached[1] > time.monotonic() and "Bearer " + cached[0] != rejected:
                return cached[0]
            return self._new_token(key)

    def _new_token(self, key: tuple[str, ...]) -> str:
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
        own = self._is_registry(url)  # else a host the registry named (an upload Location): no credentials
        sent = self._authorization(scopes) if own else None
        response = self._raw(method, url, headers=headers, body=body, params=params, auth=sent, stream=stream)
        if response.status_code == 401 and not self._is_registry(response.url or url):  # also after a redirect
            response.close()
            raise self._elsewhere_error(method, response.url or url)
        if response.status_code == 401:
            response.close()
            self._answer_challenge(response, scopes, sent)
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
        if response.status_code != 401 or not self._is_registry(response.url or self.base):
            return
        scheme, params = _parse_challenge(response.headers.get("WWW-Authenticate", ""))
        if scheme == "bearer" and params.get("realm"):
            self._auth, self._challenge = "bearer", params
        elif scheme == "basic" and self.credentials is not None:
            self._auth = "basic"

    def _answer_challenge(self, response: requests.Response, scopes: Sequence[str], sent: str | None) -> None:
        header = response.headers.get("WWW-Authenticate", "")
        scheme, params = _parse_challenge(header)
        if scheme == "bearer":
            self._auth, self._challenge = "bearer", params
            wanted = list(scopes) + ([params["scope"]] if params.get("scope") else [])
            self._token(wanted, rejected=sent or "")
            return
        if scheme == "basic":
            if self.credentials is None or self._auth == "basic":
                raise self._auth_error(response)
            self._auth = "basic"
            return
        raise EngineError(f"registry `{self.registry}` asks for authentication this client does not speak "
                          f"(`{header or 'no WWW-Authenticate header'}`)")

    def _elsewhere_error(self, method: str, url: str) -> EngineError:
        host = urlsplit(url).netloc
        return RegistryError(
            f"`{host}`, where registry `{self.registry}` sent {method} {urlsplit(url).path}, asks for "
            f"authentication: the credentials for `{self.registry}` are sent to `{self.registry}` only",
            hint=f"the registry's upload location names another host; if `{host}` belongs to it, configure the "
                 f"registry to give locations on `{self.registry}` itself",
            status=401, reason="401 Unauthorized")

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
