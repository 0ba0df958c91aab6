"""The one HTTP client every source uses: a shared requests.Session, timeouts on every call, the retry
policy (backoff with jitter, rate limits, auth failures, malformed pages) and pagination.

Credentials never travel in plain text: a request carrying them (`auth`, or an Authorization / API-key
header) to an `http://` URL whose host is not this machine is refused with InsecureTransport, unless
the connection sets `extra.allow_insecure_http: true` (e.g. a vendor stand-in on a private network).
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import urlsplit

import msgspec
import requests
from requests.adapters import HTTPAdapter

from crm_warehouse.http.errors import (
    AuthError,
    HttpSourceError,
    InsecureTransport,
    MalformedResponse,
    RateLimitDeferred,
    RetriesExhausted,
)
from crm_warehouse.http.paginators import Paginator, Request, json_path
from crm_warehouse.http.policy import RetryPolicy

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = (10.0, 60.0)  # connect, read (seconds)
USER_AGENT = "crm-warehouse/0.1 (+extract)"
# A URL the client cannot request at all (a vendor's pagination link, or the connection's host).
BAD_URL_ERRORS = (
    requests.exceptions.InvalidURL,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    requests.exceptions.InvalidHeader,
    requests.exceptions.URLRequired,
)
NETWORK_ERRORS = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)

SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-token", "x-api-key",
                            "api-key", "x-auth-token"})
INSECURE_SETTING = "allow_insecure_http"

_session: requests.Session | None = None
_session_lock = threading.Lock()


def shared_session() -> requests.Session:
    """The process-wide requests.Session (connection pooling; retries are ours, not urllib3's)."""
    global _session
    with _session_lock:
        if _session is None:
            session = requests.Session()
            adapter = HTTPAdapter(pool_connections=16, pool_maxsize=16, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers["User-Agent"] = USER_AGENT
            _session = session
        return _session


AUTH_HINT = {
    401: "the credentials were refused: check the login/password (token) of Airflow connection {conn!r}",
    403: "access is forbidden: check that the token of Airflow connection {conn!r} has the scopes/permissions "
    "the API needs and the ids in its extra (account, page, organization, form, survey) are right",
}


@dataclass
class Page:
    """One page of a paginated listing."""

    records: list
    data: Any
    url: str
    number: int
    next_position: dict | None  # where to resume after this page (None: this was the last page)


class HttpClient:
    """A client for one source connection. Credentials are sent per request, never set on the shared
    session, and never logged."""

    def __init__(
        self,
        base_url: str,
        *,
        conn_id: str,
        auth: Any = None,
        headers: Mapping[str, str] | None = None,
        policy: RetryPolicy | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        rate_limit_fallback: Callable[[float], float | None] | None = None,
        allow_insecure_http: bool = False,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.conn_id = conn_id
        self.auth = auth
        self.headers = dict(headers or {})
        self.policy = policy or RetryPolicy()
        self.timeout = timeout
        self.session = session or shared_session()
        self.sleep = sleep
        self.clock = clock
        self.rate_limit_fallback = rate_limit_fallback  # seconds to wait on a 429 without headers
        self.allow_insecure_http = allow_insecure_http
        self.requests_made = 0
        self.retries = 0
        self.waited = 0.0

    @property
    def sends_credentials(self) -> bool:
        return self.auth is not None or any(k.lower() in SECRET_HEADERS for k in self.headers)

    def check_transport(self, url: str) -> None:
        """Refuse to send credentials in plain text to another machine (see the module docstring)."""
        try:
            parts = urlsplit(url)
            host = parts.hostname
        except ValueError as exc:
            raise self._bad_url(url, exc) from exc
        if self.allow_insecure_http or not self.sends_credentials:
            return
        if parts.scheme.lower() == "https" or is_local_host(host):
            return
        raise InsecureTransport(
            f"Refusing to send the credentials of Airflow connection {self.conn_id!r} in plain text to "
            f"{parts.scheme}://{parts.netloc}: use https:// in the connection's host, or, only on a trusted "
            f"private network, set extra.{INSECURE_SETTING}: true on the connection",
            conn_id=self.conn_id, url=_redact(url),
        )

    def _bad_url(self, url: str, exc: BaseException) -> HttpSourceError:
        return HttpSourceError(
            f"{_redact(url)[:300]!r} cannot be requested ({type(exc).__name__}: {exc}): the host of Airflow "
            f"connection {self.conn_id!r}, or a pagination link its vendor returned, is not a valid http(s) URL. "
            "Check the connection's host; if it is right, the vendor's answer is malformed",
            conn_id=self.conn_id, url=_redact(url)[:300],
        )

    def url(self, path_or_url: str) -> str:
        if path_or_url.startswith(("http://", "https://")):
            return path_or_url
        return f"{self.base_url}/{path_or_url.lstrip('/')}"

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        parse_json: bool = True,
        stream_to: IO[bytes] | None = None,
    ) -> tuple[Any, requests.Response]:
        """Send one request under the retry policy. Returns (decoded JSON or None, response).

        With `stream_to`, the body is streamed into that file (constant memory) instead of decoded."""
        url = self.url(path_or_url)
        self.check_transport(url)
        attempt = 0
        rate_limit_waits = 0
        while True:
            attempt += 1
            self.requests_made += 1
            error: BaseException | None = None
            response: requests.Response | None = None
            body: bytes | None = None
            data: Any = None
            malformed = False
            try:
                response = self.session.request(
                    method, url, params=params, json=json, headers=self.headers, auth=self.auth,
                    timeout=self.timeout, stream=stream_to is not None,
                )
                if stream_to is not None and response.ok:
                    stream_to.seek(0)
                    stream_to.truncate()
                    for chunk in response.iter_content(chunk_size=1 << 16):
                        stream_to.write(chunk)
                    stream_to.flush()
                else:
                    body = response.content
                    if response.ok and parse_json:
                        try:
                            data = msgspec.json.decode(body)
                        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):  # bad UTF-8, too deep
                            malformed = True
            except NETWORK_ERRORS as exc:
                error = exc
            except BAD_URL_ERRORS as exc:
                raise self._bad_url(url, exc) from exc
            now = self.clock()
            decision = self.policy.decide(
                attempt,
                status=response.status_code if response is not None and error is None else None,
                headers=response.headers if response is not None else None,
                body=body,
                error=error,
                malformed=malformed,
                rate_limit_waits=rate_limit_waits,
                now=now,
                fallback_wait=self.rate_limit_fallback(now) if self.rate_limit_fallback else None,
            )
            where = f"{method} {_redact(url)}"
            if decision.action == "use":
                assert response is not None
                return data, response
            if decision.action == "retry":
                self.retries += 1
                if decision.kind == "rate_limit":
                    rate_limit_waits += 1
                log.warning("%s (connection %r): %s; retry in %.1fs", where, self.conn_id, decision.reason,
                            decision.wait)
                self.waited += decision.wait
                self.sleep(decision.wait)
                continue
            if decision.action == "defer":
                raise RateLimitDeferred(
                    f"{where}: {decision.reason} by the vendor of connection {self.conn_id!r}; the stream's "
                    "position is saved and the next try resumes from it",
                    conn_id=self.conn_id, wait_seconds=decision.wait, now=self.clock(),
                )
            status = response.status_code if response is not None and error is None else None
            excerpt = _excerpt(body)
            if decision.kind == "auth":
                hint = AUTH_HINT.get(status, AUTH_HINT[401]).format(conn=self.conn_id)
                raise AuthError(f"{where}: HTTP {status}: {hint}. Vendor said: {excerpt}",
                                conn_id=self.conn_id, url=url, status=status)
            if decision.kind == "malformed":
                raise MalformedResponse(
                    f"{where}: the vendor of connection {self.conn_id!r} returned a body that is not valid "
                    f"JSON {attempt} times in a row (starts with: {excerpt}). Check the connection's base URL "
                    "points at the API (not a login page or proxy) and the vendor's status page.",
                    conn_id=self.conn_id, url=url, status=status,
                )
            if decision.kind in ("server", "network", "rate_limit"):
                said = f" Vendor said: {excerpt}." if body else ""
                raise RetriesExhausted(
                    f"{where}: {decision.reason}; the vendor of connection {self.conn_id!r} is unavailable.{said} "
                    "The task can be retried later; nothing of this page was loaded.",
                    conn_id=self.conn_id, url=url, status=status,
                )
            raise HttpSourceError(
                f"{where}: HTTP {status} from the vendor of connection {self.conn_id!r}: {excerpt}. The request "
                "was refused as invalid: check the ids and options in the connection's extra.",
                conn_id=self.conn_id, url=url, status=status,
            )

    def get_json(self, path_or_url: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.request("GET", path_or_url, params=params)[0]

    def paginate(
        self,
        path_or_url: str,
        *,
        params: Mapping[str, Any] | None = None,
        paginator: Paginator,
        records_path: str | None,
        resume: dict | None = None,
    ) -> Iterator[Page]:
        """Yield the pages of a listing. `resume` is a `Page.next_position` saved by an earlier try."""
        request = Request(self.url(path_or_url), dict(params or {}))
        init = getattr(paginator, "init_request", None)
        if init is not None:
            init(request)
        number = 0
        seen: set[str] = set()  # requests already sent: a page linking back to one would loop forever
        if resume:
            paginator.restore(resume.get("paginator", {}))
            number = int(resume.get("page", 0))
            if not paginator.has_next:
                return
            paginator.update_request(request)
        while True:
            data, response = self.request("GET", request.url, params=request.params)
            records = json_path(data, records_path) if records_path else data
            if records is None:
                records = []
            if not isinstance(records, list):
                raise MalformedResponse(
                    f"GET {_redact(response.url)}: expected a list at {records_path!r} in the answer of the "
                    f"vendor of connection {self.conn_id!r}, got {type(records).__name__}",
                    conn_id=self.conn_id, url=response.url,
                )
            number += 1
            paginator.update_state(data, records)
            position = {"page": number, "paginator": paginator.state()} if paginator.has_next else None
            yield Page(records, data, _redact(response.url), number, position)
            if not paginator.has_next:
                return
            seen.add(_request_key(request))
            try:
                paginator.update_request(request)
            except ValueError as exc:  # e.g. urljoin of a link that is not a URL
                raise MalformedResponse(
                    f"GET {_redact(response.url)}: page {number} from the vendor of connection {self.conn_id!r} "
                    f"links to a next page that is not a URL ({exc}); nothing more is read. Check the vendor's "
                    "status; re-run the task later.", conn_id=self.conn_id, url=response.url,
                ) from exc
            if _request_key(request) in seen:
                raise MalformedResponse(
                    f"GET {_redact(response.url)}: page {number} from the vendor of connection {self.conn_id!r} "
                    "points back to a page already read (the pagination would never end); nothing more is "
                    "read. Check the vendor's status; re-run the task later.",
                    conn_id=self.conn_id, url=response.url,
                )


def _request_key(request: Request) -> str:
    return request.url + "?" + repr(sorted((str(k), str(v)) for k, v in request.params.items()))


def is_local_host(host: str | None) -> bool:
    """localhost, a loopback address (127.0.0.0/8, ::1) or the unspecified address: traffic to it never
    leaves this machine."""
    if not host:
        return False
    host = host.strip("[]").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def allows_insecure_http(extra: Mapping[str, Any] | None) -> bool:
    """The connection's `extra.allow_insecure_http` (true / "true" / 1)."""
    value = (extra or {}).get(INSECURE_SETTING, False)
    return value is True or str(value).strip().lower() in ("true", "1", "yes")


def _excerpt(body: bytes | None, limit: int = 300) -> str:
    if not body:
        return "(empty body)"
    text = body[:limit].decode("utf-8", "replace").replace("\n", " ")
    return text + ("..." if len(body) > limit else "")


def _redact(url: str) -> str:
    """URLs never carry our secrets (they travel in headers), but strip any access_token a vendor echoes."""
    if "access_token=" not in url:
        return url
    import re

    return re.sub(r"access_token=[^&]+", "access_token=***", url)
