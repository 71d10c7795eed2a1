"""The base of every transport: what a connection cannot do is said once.

:class:`TransportConnection` is a :class:`~lpm.client.actions.ConnectionActions` (the object
model's interface), whose every action raises :class:`~lpm.errors.UnsupportedActionError` (an
:class:`~lpm.errors.InvalidStateError`) before any I/O, naming the action and the connection
(:attr:`~TransportConnection.transport_name`) and saying what to use instead
(:attr:`~TransportConnection.unsupported_hint`).  The two actions that take many arguments hand
them, packed into one value (:class:`Publish`, :class:`MessagesQuery`, re-exported here for the
transports), to the hooks ``_publish`` and ``_query_messages``.  Each transport overrides only
what it supports:

============================  ===================================================================
``NullConnection``            nothing (its conversations are fed by webhooks)
``BrandRestConnection``       publish, conversation fields, query messages, messaging subscription
                              (nothing to do), file URLs and files
``ConsumerSendApiConnection`` publish, conversation fields, messaging subscription (nothing to do),
                              user profiles, file URLs and files
``WebsocketConnection``       everything but routing tasks, rings and history (dialects add them:
                              brand routing tasks, rings and history; consumer messaging
                              subscriptions)
============================  ===================================================================

:class:`HttpConnection` adds what every connection talking HTTP to the account's services shares
(CSDS lookups, the ``swift`` file storage); :class:`RequestConnection` the ``open()`` /
``close()`` life cycle of the transports without a socket (REST, Send API), where every action is
one HTTP request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

from lpm.client import connection as cs
from lpm.client.actions import ConnectionActions, MessagesQuery, Publish
from lpm.client.auth.csds import CSDS, ServiceName
from lpm.client.auth.http import HttpResponse, HttpSettings
from lpm.client.connection import Connection, not_connected
from lpm.client.connection import ConnectionTrigger as _T
from lpm.client.options import ConnectionOptions
from lpm.client.retry import Fatal
from lpm.client.transport import file_storage
from lpm.enums import ConnectionEvent
from lpm.errors import HttpError, InvalidStateError, NotConnectedError, RequestError

__all__ = [
    "ANY_STATUS",
    "HttpConnection",
    "MessagesQuery",
    "Publish",
    "RequestConnection",
    "TransportConnection",
    "call_any_status",
    "sequence_of",
]

#: Every status is handed back to the caller except 429, which :class:`HttpSettings` retries.
ANY_STATUS = frozenset(range(100, 600)) - {429}


class TransportConnection(Connection, ConnectionActions):
    """A connection that implements :class:`~lpm.client.actions.ConnectionActions`: every action
    raises :class:`~lpm.errors.UnsupportedActionError` unless the transport overrides it
    (``publish_event`` and ``query_messages`` through :meth:`_publish` and
    :meth:`_query_messages`, which receive their arguments as one value)."""

    #: How error messages name this kind of connection.
    transport_name: ClassVar[str] = "this connection"
    #: Why an action it lacks is missing and what to use instead (ends the error message).
    unsupported_hint: ClassVar[str] = ""

    # ---------------------------------------------------------------- identity

    @property
    def is_brand(self) -> bool:
        """True for brand (agent/bot/manager) connections, False for consumers."""
        return self.options.user_type == "brand"

    @property
    def agent_id(self) -> str | None:
        """Brand: the agent's old-style id ``{account}.{userId}`` (None when unknown)."""
        return None

    @property
    def user_id(self) -> str | None:
        """Brand: the agent's PID; consumer: the consumer id (None when unknown)."""
        return None


class HttpConnection(TransportConnection):
    """A connection with an HTTP client for the account's services: CSDS lookups and the
    ``swift`` file storage."""

    def __init__(self, options: ConnectionOptions) -> None:
        super().__init__(options)
        #: Where and how this connection makes its HTTP calls (one session, closed by close()).
        self.http = HttpSettings(options.csds_domain, ssl=options.ssl, max_body_size=options.max_body_size)

    async def lookup_service(self, service: str) -> str:
        """``host[:port]`` of a CSDS service for this account (shared cache, ``domains`` applied)."""
        return await CSDS.lookup(self.account_id, service, http=self.http, domains=self.options.domains)

    async def put_file(self, relative_path: str, query: dict[str, str], data: bytes) -> None:
        """Upload bytes to the ``swift`` storage with the temp-URL query of the upload path."""
        host = await self.lookup_service(ServiceName.SWIFT)
        await file_storage.upload(self.http, host, relative_path, query, data)

    async def get_file(self, relative_path: str, query: dict[str, str]) -> bytes:
        """Download bytes from the ``swift`` storage with the temp-URL query of the download path."""
        host = await self.lookup_service(ServiceName.SWIFT)
        return await file_storage.download(self.http, host, relative_path, query)


class RequestConnection(HttpConnection):
    """A connection without a socket, whose every action is one HTTP request (REST, Send API).

    ``open()`` obtains the credentials (:meth:`_establish`): CONNECTING → CONNECTED, or
    FAILED_TO_CONNECT and the error (``open()`` may then be called again).  ``close()`` releases
    the webhook feed, the cache, the credentials (:meth:`_shutdown`) and the HTTP session:
    → CLOSED, and a closed connection stays closed.
    """

    async def _establish(self) -> Callable[[], None]:
        """The I/O of ``open()``; returns what to apply once it has succeeded and the connection
        was not closed meanwhile."""
        raise NotImplementedError

    async def _shutdown(self) -> None:
        """Release the credentials (``close()``, after the conversations, before the session)."""

    def _require_connected(self, request_type: str) -> None:
        if self.state != cs.CONNECTED:
            raise not_connected(request_type, self.state)

    async def open(self) -> None:
        """Obtain the credentials: CONNECTING → CONNECTED (FAILED_TO_CONNECT and the error on
        failure, e.g. :class:`~lpm.errors.AuthenticationError` for refused credentials).

        Transient failures are retried for up to ``open_timeout`` seconds, then raise
        :class:`~lpm.errors.ConnectFailedError` (see :mod:`lpm.client.opening`)."""
        if self.state not in (cs.INITIAL, cs.FAILED_TO_CONNECT):
            raise InvalidStateError(f"connection is in an invalid state for opening: {self.state}")
        self._move(_T.OPEN)
        commits: list[Callable[[], None]] = []

        async def attempt() -> None:
            if self.state != cs.CONNECTING:
                raise Fatal from NotConnectedError("connection was closed before it could connect")
            commits.append(await self._establish())

        def report(error: BaseException, _attempt: int, _seconds: float) -> None:
            self.report_error(error)

        try:
            await self._first_open(attempt, report)
            commit = commits[-1]
        except Exception as exc:
            if self.state == cs.CLOSED:
                raise NotConnectedError("connection was closed before it could connect") from exc
            self._move(_T.CONNECT_FAILED)
            raise
        except BaseException:  # cancelled: FAILED_TO_CONNECT, so open() may be called again
            if self.state == cs.CONNECTING:
                self._move(_T.CONNECT_FAILED)
            raise
        if self.state == cs.CONNECTING:  # not closed meanwhile
            commit()
            self._move(_T.VERIFIED)
            self.emit(ConnectionEvent.CONNECT)

    async def close(self) -> None:
        """Release the webhook feed, the cache, the credentials and the HTTP session (a closed
        connection stays closed)."""
        if self.state == cs.CLOSED:
            return
        # The state moves first: an open() still waiting for its credentials sees it was closed.
        self._move(_T.CLOSE)
        await self._release_conversations()
        await self._shutdown()
        await self.http.close()
        if self.state == cs.CLOSING:
            self._move(_T.CLOSED)
        self.emit(ConnectionEvent.CLOSE, {"code": 1000, "reason": "closed by the application"})
        await self.close_events()


# ---------------------------------------------------------------- HTTP helpers (also lpm.publish)


async def call_any_status(
    http: HttpSettings,
    method: str,
    url: str,
    *,
    request_type: str,
    headers: Mapping[str, str],
    json: Any = None,
    params: Mapping[str, str] | None = None,
    secrets: Iterable[str | None] = (),
) -> HttpResponse:
    """One HTTP request whose status the caller judges (a 429 is retried by
    :class:`HttpSettings`; one still refused after the retries raises :class:`RequestError`).

    Transport failures raise :class:`~lpm.errors.HttpError`; ``secrets`` never appear in messages.
    """
    try:
        return await http.request(
            method,
            url,
            json=json,
            params=params,
            headers=headers,
            expected=ANY_STATUS,
            what=request_type,
            secrets=secrets,
        )
    except HttpError as exc:
        if exc.status is not None:  # 429 after the bounded retries: a refusal like any other
            raise RequestError(exc.status, request_type, exc.body) from exc
        raise


def sequence_of(body: Any) -> int | None:
    """The ``sequence`` of a publish answer (None when it carries none)."""
    value = body.get("sequence") if isinstance(body, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None
