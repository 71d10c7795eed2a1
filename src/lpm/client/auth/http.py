"""HTTP plumbing shared by the auth side calls (CSDS, agentVep, IdP, sentinel).

:class:`HttpSettings` turns the user's ``csds_domain`` / ``ssl`` / ``session`` options into
URLs and one request helper.  ``csds_domain`` is ``host[:port]`` (HTTPS and WSS everywhere, as
on LivePerson), ``https://host[:port]`` (the same, spelled out) or ``http://host[:port]`` (plain
HTTP and WS everywhere, for a plain emulator); every other host comes from CSDS and inherits the
scheme.  Without ``csds_domain`` LivePerson's own CSDS is used (``adminlogin.liveperson.net``, or
``hc1n.dev.lprnd.net`` for the QA accounts whose id starts with ``le``).

:meth:`HttpSettings.request` maps every failure to :mod:`lpm.errors`: transport problems,
timeouts, unexpected statuses and undecodable bodies become :class:`~lpm.errors.HttpError`
(statuses listed in ``auth_statuses`` become :class:`~lpm.errors.AuthenticationError`), never an
aiohttp exception -- nor one chained to it (as cause or context): aiohttp's text quotes URLs, so
our message names its type and its redacted text instead.  Messages name the method and the URL
*without* its query string, plus the server's own error text, with secrets redacted.

Whatever a server answers, the work is bounded: a body larger than ``max_body_size`` is refused
before it is read whole (:class:`~lpm.errors.LimitExceededError`), and a success body that is not
JSON the SDK can read (malformed, or nested deeper than the decoder goes) is a
:class:`~lpm.errors.ProtocolError`.

Retry policy (LivePerson's recommendation): a 429 is retried after at least one second, honouring
``Retry-After``, and a login after at least five; the retries run through
:func:`lpm.client.retry.retry`, bounded by :class:`RetryPolicy` (which tests shrink).  Nothing
else is retried here: the calls are POSTs that are not idempotent, and the token maintainer has its own (long)
schedule for logins.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import re
import ssl as ssllib
import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeAlias

import aiohttp
import msgspec
from yarl import URL

from lpm.client.retry import Backoff, retry
from lpm.errors import (
    AuthenticationError,
    ConfigurationError,
    HttpError,
    LimitExceededError,
    LpmError,
    ProtocolError,
)

log = logging.getLogger("lpm.client.auth.http")

#: LivePerson's production CSDS host.
DEFAULT_CSDS_DOMAIN = "adminlogin.liveperson.net"
#: LivePerson's QA CSDS host, used for account ids beginning with ``le``.
QA_CSDS_DOMAIN = "hc1n.dev.lprnd.net"
#: Default timeout of one HTTP side call, in seconds.
DEFAULT_TIMEOUT = 30.0
#: Default largest HTTP answer body read (bytes).  The SDK's side calls (CSDS, login, IdP, REST,
#: Send API) answer in kilobytes; a larger body is refused before it is read whole.
DEFAULT_MAX_BODY_SIZE = 16 * 1024 * 1024

#: What ``ssl`` may be: a context, a CA file to trust, True/None (default verification) or False.
SslOption: TypeAlias = ssllib.SSLContext | str | Path | bool | None

_MAX_DETAIL = 200
# An error answer that is not JSON is kept (redacted) on the error up to this many characters.
_MAX_ERROR_BODY = 4096
# How deep an error body is kept on the error (a hostile one can nest thousands of levels).
_MAX_BODY_DEPTH = 32
# host[:port], the host a name, an IPv4 address or a bracketed IPv6 address.
_HOST_PORT_RE = re.compile(r"(?:[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?")
_REDACTED = "***"
# JWTs (three base64url parts, the first a JSON header so it starts with "eyJ") and bearer values.
_JWT_RE = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")
_BEARER_RE = re.compile(r"(?i)\b(bearer|jwt)\s+[A-Za-z0-9._~+/=-]+")
_SECRET_FIELD_RE = re.compile(
    r"(?i)([\"']?(?:password|secret|client_secret|accessToken|access_token|accessTokenSecret|"
    r"access_token_secret|appKey|app_key|token|bearer|jwt|id_token|lp_jwt|csrf|assertion)[\"']?\s*[:=]\s*)"
    r"(\"[^\"]*\"|'[^']*'|[^\s,;&}]+)"
)


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` without the given secret values, JWTs, bearer values and ``secret=...`` fields."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        # Short values (a one-letter password) would shred the message; they are still caught
        # by the field patterns below when they appear as ``password=...``.
        if len(secret) >= 3:
            text = text.replace(secret, _REDACTED)
    text = _JWT_RE.sub(_REDACTED, text)
    text = _BEARER_RE.sub(lambda m: f"{m.group(1)} {_REDACTED}", text)
    return _SECRET_FIELD_RE.sub(lambda m: f"{m.group(1)}{_REDACTED}", text)


def safe_url(url: str | URL) -> str:
    """The URL without query string, fragment or credentials, fit for messages and logs."""
    u = URL(url) if isinstance(url, str) else url
    return str(u.with_query(None).with_fragment(None).with_user(None))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded retries of HTTP 429 (times in seconds).

    A 429 is retried at most ``max_retries`` times, each after ``max(Retry-After, min_wait)``
    (``login_min_wait`` for agent logins), capped at ``max_wait`` so a hostile ``Retry-After``
    cannot stall a caller for hours.  Tests shrink every value.
    """

    max_retries: int = 2
    min_wait: float = 1.0
    login_min_wait: float = 5.0
    max_wait: float = 60.0

    def wait(self, retry_after: float | None, *, login: bool) -> float:
        """Seconds to wait before retrying a 429 that announced ``retry_after`` (or None)."""
        floor = self.backoff(login=login).delay(0)
        return min(max(retry_after or 0.0, floor), self.max_wait)

    def backoff(self, *, login: bool) -> Backoff:
        """The least wait before a 429 is retried (``Retry-After`` may ask for more)."""
        return Backoff((self.login_min_wait if login else self.min_wait,))


class _Throttled(Exception):
    """A 429 answer, raised inside :meth:`HttpSettings.request` to have it retried."""

    def __init__(self, response: HttpResponse) -> None:
        super().__init__("HTTP 429")
        self.response = response


def _throttled(exc: BaseException) -> bool:
    return isinstance(exc, _Throttled)


@dataclass(slots=True)
class HttpResponse:
    """A decoded response: ``body`` is the parsed JSON (None when empty, text when not JSON)."""

    status: int
    headers: Mapping[str, str]
    cookies: dict[str, str] = field(repr=False)
    body: Any = field(repr=False)


def _ssl_param(option: SslOption) -> ssllib.SSLContext | bool:
    """The value aiohttp's ``ssl=`` takes for the user's ``ssl`` option."""
    if isinstance(option, ssllib.SSLContext):
        return option
    if option is None or option is True:
        return True
    if option is False:
        # The user asked for no verification (a proxy with a self-signed certificate, say).
        return False
    if isinstance(option, str | Path):
        path = Path(option)
        if not path.is_file():
            raise ConfigurationError(f"ssl: CA file {path} does not exist")
        try:
            return ssllib.create_default_context(cafile=str(path))
        except (ssllib.SSLError, OSError) as exc:
            raise ConfigurationError(f"ssl: cannot load CA file {path}: {exc}") from exc
    raise ConfigurationError(
        f"ssl must be an SSLContext, a CA file path or a bool, not {type(option).__name__}"
    )


def _parse_csds_domain(csds_domain: str) -> tuple[bool, str]:
    """(tls, host[:port]) of a ``csds_domain`` option."""
    value = csds_domain.strip()
    tls = True
    if "://" in value:
        scheme, _, value = value.partition("://")
        if scheme.lower() not in ("http", "https"):
            raise ConfigurationError(f"csds_domain scheme must be http or https, not {scheme!r}")
        tls = scheme.lower() == "https"
    value = value.rstrip("/")
    if not _HOST_PORT_RE.fullmatch(value):
        raise ConfigurationError(
            f"csds_domain must be host[:port] or http(s)://host[:port], not {csds_domain!r}"
        )
    return tls, value


def _retry_after(value: str | None) -> float | None:
    """Seconds of a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def server_message(body: Any) -> str | None:
    """The human text of an error body (agentVep, IdP, OAuth 2 and CSDS shapes)."""
    if isinstance(body, Mapping):
        error = body.get("error")
        if isinstance(error, Mapping):
            message = error.get("message")
            code = error.get("internalErrorCode", error.get("internalCode"))
            if isinstance(message, str):
                return f"{message} (code {code})" if code is not None else message
        if isinstance(error, str):
            description = body.get("error_description")
            return f"{error}: {description}" if isinstance(description, str) else error
        for key in ("message", "error_description"):
            value = body.get(key)
            if isinstance(value, str):
                return value
        return None
    if isinstance(body, str) and body.strip():
        return body.strip()
    return None


class HttpSettings:
    """Where and how the SDK makes its HTTP side calls.

    ``session`` is an optional shared :class:`aiohttp.ClientSession` (never closed here);
    without one a private session is created on first use and closed by :meth:`close`.  The
    private session keeps no cookies: the only cookie that matters (agentVep's ``Session_id``) is
    read from the login response and sent explicitly, which also works when the host is an IP
    address (where aiohttp's default jar drops cookies) and when one shared session serves
    several agents at once.
    """

    def __init__(
        self,
        csds_domain: str | None = None,
        *,
        ssl: SslOption = None,
        session: aiohttp.ClientSession | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        user_agent: str | None = None,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    ) -> None:
        self.tls = True
        self._csds_host: str | None = None
        if csds_domain:
            self.tls, self._csds_host = _parse_csds_domain(csds_domain)
        self.ssl: ssllib.SSLContext | bool = _ssl_param(ssl)
        self._shared_session = session
        self._own_session: aiohttp.ClientSession | None = None
        if timeout <= 0:
            raise ConfigurationError("timeout must be positive")
        self.timeout = timeout
        if isinstance(max_body_size, bool) or not isinstance(max_body_size, int) or max_body_size <= 0:
            raise ConfigurationError("max_body_size must be a positive number of bytes")
        #: Largest answer body read; a larger one raises :class:`~lpm.errors.LimitExceededError`.
        self.max_body_size = max_body_size
        self.retry = retry or RetryPolicy()
        from lpm._version import __version__

        self.user_agent = user_agent or f"lpm-python-sdk/{__version__}"

    # ---------------------------------------------------------------- endpoints

    @property
    def scheme(self) -> str:
        """``https`` or ``http``."""
        return "https" if self.tls else "http"

    @property
    def ws_scheme(self) -> str:
        """``wss`` or ``ws``."""
        return "wss" if self.tls else "ws"

    def csds_host(self, account_id: str) -> str:
        """The CSDS ``host[:port]`` to ask about ``account_id``."""
        if self._csds_host is not None:
            return self._csds_host
        return QA_CSDS_DOMAIN if account_id.lower().startswith("le") else DEFAULT_CSDS_DOMAIN

    def base_url(self, host: str) -> str:
        """``{scheme}://{host}`` for a CSDS host (a bare ``host[:port]``)."""
        return f"{self.scheme}://{host}"

    def ws_url(self, host: str) -> str:
        """``{ws_scheme}://{host}`` for a CSDS host."""
        return f"{self.ws_scheme}://{host}"

    # ---------------------------------------------------------------- session

    async def client_session(self) -> aiohttp.ClientSession:
        """The session to use (the shared one, or a private one created on first use)."""
        if self._shared_session is not None:
            return self._shared_session
        if self._own_session is None or self._own_session.closed:
            self._own_session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        return self._own_session

    async def close(self) -> None:
        """Close the private session, if any (a shared session belongs to its owner)."""
        session, self._own_session = self._own_session, None
        if session is not None and not session.closed:
            await session.close()

    async def __aenter__(self) -> HttpSettings:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # ---------------------------------------------------------------- requests

    async def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        data: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | None = None,
        expected: Collection[int] = (200,),
        auth_statuses: Collection[int] = (),
        timeout: float | None = None,
        what: str | None = None,
        login: bool = False,
        secrets: Iterable[str | None] = (),
    ) -> HttpResponse:
        """Send one request and return the decoded response when its status is ``expected``.

        ``what`` names the call in error messages (default: method and URL).  Statuses in
        ``auth_statuses`` raise :class:`AuthenticationError`, any other unexpected status,
        transport failure or timeout :class:`HttpError`.  ``login`` selects the longer 429 wait.
        ``secrets`` are extra values to redact from messages (the caller's password, say).
        """
        secret_values = [s for s in secrets if s]
        label = what or f"{method} {safe_url(url)}"
        send_headers = {"Accept": "application/json", "User-Agent": self.user_agent}
        if headers:
            send_headers.update(headers)
        session = await self.client_session()

        async def send_once() -> HttpResponse:
            response = await self._send(
                session,
                method,
                url,
                json=json,
                data=data,
                params=params,
                headers=send_headers,
                cookies=cookies,
                timeout=timeout or self.timeout,
                label=label,
                secrets=secret_values,
            )
            if response.status == 429 and 429 not in expected:
                raise _Throttled(response)
            return response

        policy = self.retry
        pause = 0.0

        def throttled(exc: BaseException, attempt: int, floor: float) -> None:
            nonlocal pause
            headers = exc.response.headers if isinstance(exc, _Throttled) else {}
            # At least the back-off's floor; more when ``Retry-After`` asks for it (capped).
            pause = policy.wait(_retry_after(headers.get("Retry-After")), login=login)
            log.info("%s: HTTP 429, retry %d in %.3g s", label, attempt, pause)

        async def wait_out(_floor: float) -> None:
            await asyncio.sleep(pause)

        try:
            response = await retry(
                send_once,
                backoff=policy.backoff(login=login),
                is_retryable=_throttled,
                on_retry=throttled,
                max_attempts=policy.max_retries + 1,
                sleep=wait_out,
            )
        except _Throttled as exc:  # still throttled after the last retry
            response = exc.response
        if response.status in expected:
            return response
        detail = server_message(response.body)
        message = f"{label} failed: HTTP {response.status}"
        if detail:
            message += f": {detail[:_MAX_DETAIL]}"
        message = redact(message, secret_values)
        log.debug("%s", message)
        if response.status in auth_statuses:
            raise AuthenticationError(message, status=response.status)
        raise HttpError(message, status=response.status, body=_redact_body(response.body, secret_values))

    async def request_json(self, method: str, url: str, **options: Any) -> Any:
        """:meth:`request` (the same keywords), returning only the decoded body (None when the
        body is empty)."""
        response = await self.request(method, url, **options)
        return response.body

    async def _send(
        self,
        session: aiohttp.ClientSession,
        method: str,
        url: str,
        *,
        json: Any,
        data: Any,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str],
        cookies: Mapping[str, str] | None,
        timeout: float,
        label: str,
        secrets: list[str],
    ) -> HttpResponse:
        failure: LpmError | None = None
        try:
            async with session.request(
                method,
                url,
                json=json,
                data=data,
                params=params,
                headers=headers,
                # Request-level cookies win over a shared session's jar (an explicit Cookie header
                # would not), so two agents on one session keep their own Session_id.
                cookies=dict(cookies) if cookies else None,
                ssl=self.ssl,
                timeout=aiohttp.ClientTimeout(total=timeout),
                allow_redirects=False,
            ) as resp:
                raw = await read_bounded(resp, self.max_body_size, label)
                status = resp.status
                resp_headers = {k: v for k, v in resp.headers.items()}
                resp_cookies = {name: morsel.value for name, morsel in resp.cookies.items()}
        except LpmError as exc:
            failure = exc
        except TimeoutError:
            failure = HttpError(f"{label} timed out after {timeout:g} s")
        except aiohttp.ClientError as exc:
            failure = HttpError(f"{label} failed: {redact(f'{type(exc).__name__}: {exc}', secrets)}")
        except (OSError, ssllib.SSLError) as exc:  # pragma: no cover - aiohttp wraps these
            failure = HttpError(f"{label} failed: {type(exc).__name__}")
        if failure is not None:
            # Raised outside the ``except`` blocks: aiohttp's error (its text quotes the URL, which
            # may carry a secret) is not even the context of ours.
            raise failure
        body: Any = None
        if raw.strip():
            text = raw.decode("utf-8", errors="replace")
            try:
                body = msgspec.json.decode(text)
            except (msgspec.DecodeError, RecursionError):
                # RecursionError: JSON nested deeper than the decoder goes (a hostile answer).
                if 200 <= status < 300:
                    raise ProtocolError(
                        f"{label}: HTTP {status} with a body that is not JSON the SDK can read"
                    ) from None
                body = text[:_MAX_ERROR_BODY]
        return HttpResponse(status=status, headers=resp_headers, cookies=resp_cookies, body=body)


async def read_bounded(resp: aiohttp.ClientResponse, limit: int, label: str) -> bytes:
    """The whole body, refused with :class:`~lpm.errors.LimitExceededError` as soon as it is
    known to be larger than ``limit`` bytes (from ``Content-Length``, or while reading)."""
    declared = resp.content_length
    if declared is not None and declared > limit:
        raise LimitExceededError(
            f"{label}: the answer body ({declared} bytes) is larger than the limit ({limit} bytes)",
            limit="max_body_size",
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise LimitExceededError(
                f"{label}: the answer body is larger than the limit ({limit} bytes)", limit="max_body_size"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _redact_body(body: Any, secrets: list[str], depth: int = 0) -> Any:
    """An error body fit to keep on an exception (strings redacted, structure kept to a depth)."""
    if isinstance(body, str):
        return redact(body, secrets)
    if depth >= _MAX_BODY_DEPTH and isinstance(body, Mapping | list):
        return "..."
    if isinstance(body, Mapping):
        return {k: _redact_body(v, secrets, depth + 1) for k, v in body.items()}
    if isinstance(body, list):
        return [_redact_body(v, secrets, depth + 1) for v in body]
    return body
