"""WebSocket connections: the life of a connection over one UMS socket at a time.

The rules -- request ids, the in-flight table per socket generation, what becomes of each request
when its socket is lost, the queue, reconciliation of published messages -- live in
:class:`lpm.protocol.session.ClientSession` and are unit-tested there with frames.  The I/O
around them is split by job: :mod:`~lpm.client.transport.ums_socket` (one socket),
:mod:`~lpm.client.transport.request_pipeline` (requests: futures, deadlines, the queue writer),
:mod:`~lpm.client.transport.ums_actions` (the object model's actions as requests) and
:mod:`~lpm.client.subscriptions.keeper` (subscriptions across sockets).  This module is the
connection's life: open, connect attempts and their verification, the restore of the session on
every new socket, the loss of a socket, keep-alive and close.  It stays one piece (a little over
600 lines) because those steps share one state -- the current socket, whether a session is being
restored, whether the connection is closing -- and splitting them would spread it over classes
that each need all of it.

One :class:`WebsocketConnection` owns at most one live socket at a time.  Every socket gets a
*generation* number; the reader, the keep-alive and every request carry the generation they were
started for, and nothing of an abandoned socket (a late frame, its close, a timer) can act on the
new one (node-agent-sdk's worst bug, peer study §5.2).

Maintenance (``maintain_connection=True``, the default) is done by one owned task at a time, the
*maintainer*: it runs connect attempts on the reconnect back-off (:mod:`lpm.client.retry`) until
the session is restored.

* An unexpected close moves the connection to DISCONNECTED and starts the maintainer after
  ``wait_to_reconnect`` seconds (4401/4407 first invalidate the token, see the subclasses).
* Requests issued while disconnected, while reconnecting, *or while the new session is being
  restored* are queued, each with its own deadline (``request_queue_timeout``), and written in
  order once the session is restored (subscriptions recreated, agent state and consumer
  messaging subscriptions re-issued).  Requests queued then, and those made while the queue is
  still being written, keep their order: nothing overtakes the queue.
* Requests that were *in flight* when the socket was lost are settled by the session's replay
  policy (:func:`lpm.protocol.session.replay_policy`): repeated, reconciled against the dialog's
  history once the session is restored (a published message is delivered exactly once and its
  caller gets its sequence either way), or failed with :class:`~lpm.errors.ConnectionClosedError`.
* Messaging events that arrive while a session is being restored are held and applied once it
  is restored, after the history the restore fetched, so ``message`` events stay in sequence order.

Notifications are decoded and routed by :mod:`lpm.client.dispatch`, the same router the webhooks
intake uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from typing import TYPE_CHECKING, Any, cast

import aiohttp

from lpm.client import connection as cs
from lpm.client.connection import ConnectionTrigger as _T
from lpm.client.dispatch import (
    MAX_RETIRED,
    ORPHAN_GRACE,
    RAW_EVENT_NAMES,
    SocketDispatcher,
    SubscriptionRouter,
)
from lpm.client.options import ConnectionOptions
from lpm.client.retry import Backoff, Fatal, retry
from lpm.client.subscriptions.conversations import ConversationSubscription, SubscriptionHost
from lpm.client.subscriptions.keeper import WAIT_FOR_READY_DURATION, SubscriptionKeeper
from lpm.client.transport.base import HttpConnection
from lpm.client.transport.request_pipeline import RequestPipeline
from lpm.client.transport.ums_actions import UmsActions
from lpm.client.transport.ums_socket import UmsSocket, UpgradeRefusedError, cancel_and_wait, open_ums_socket
from lpm.enums import ConnectionEvent
from lpm.errors import (
    ConfigurationError,
    ConnectFailedError,
    ConnectionClosedError,
    InvalidStateError,
    LpmError,
    NotConnectedError,
    ProtocolError,
    RequestTimeoutError,
    TokenExpiredError,
)
from lpm.protocol import frames
from lpm.protocol.notifications import AgentStateInfo, NotificationError
from lpm.protocol.session import (
    SOCKET_SCOPED_REQUESTS,
    Answered,
    ClientSession,
    InvalidFrame,
    LateResponse,
    Refused,
    UnexpectedRequest,
    UnreadableRefusal,
)
from lpm.protocol.types import Dialect, Notif, Req, request_wire_name

if TYPE_CHECKING:
    from lpm.protocol.notifications import MessagingEventInfo

__all__ = [
    "AUTH_CLOSE_CODES",
    "MAX_RETIRED",
    "ORPHAN_GRACE",
    "RESTORE_BACKOFF",
    "WAIT_FOR_READY_DURATION",
    "WebsocketConnection",
]

log = logging.getLogger("lpm.client.transport.websocket")

#: Close codes meaning "the token is no good" (protocol 3.5).
AUTH_CLOSE_CODES = frozenset({4401, 4407})
#: A timer that fires this many seconds late means the event loop itself was stalled.
LOOP_STALL = 1.0
#: Retry delays (seconds) of the session-restore step after a reconnect.
RESTORE_BACKOFF = Backoff((0.2, 0.4, 0.8, 1.6, 3.2))
#: Sort key of held events without a sequence (chat states): after their dialog's others.
_NO_SEQUENCE = 1 << 62
#: Set (to the socket generation) while a connect attempt verifies and restores the session:
#: requests made in that context go straight to the new socket instead of the queue.
#: The raw ``*Notification`` events (see _on_notification).
_RAW_CONVERSATION, _RAW_MESSAGE, _RAW_ROUTING = (
    RAW_EVENT_NAMES[Notif.EX_CONVERSATION_CHANGE],
    RAW_EVENT_NAMES[Notif.MESSAGING_EVENT],
    RAW_EVENT_NAMES[Notif.ROUTING_TASK],
)
assert len(RAW_EVENT_NAMES) == 3  # every raw event is looked at in _on_notification
_NOTIFICATION = ConnectionEvent.NOTIFICATION  # (looked up once: used for every notification)
_restoring: contextvars.ContextVar[int | None] = contextvars.ContextVar("lpm_restoring", default=None)


def _call_later(delay: float, callback: Any, *args: Any) -> asyncio.TimerHandle:
    return asyncio.get_running_loop().call_later(delay, callback, *args)


class WebsocketConnection(UmsActions, HttpConnection):
    """A connection over one UMS WebSocket (subclassed per dialect)."""

    dialect: Dialect = Dialect.CONSUMER_V3

    def __init__(self, options: ConnectionOptions) -> None:
        super().__init__(options)
        #: The sans-I/O bookkeeping of this connection's requests (ids, in flight, queue, loss).
        self.session = ClientSession()
        #: Live subscriptions by id, orphans and retired ids.
        self.router = SubscriptionRouter(call_later=_call_later, report_error=self.report_error)
        #: Writes requests, queues them while no session is ready, settles every outcome.
        self.requests = RequestPipeline(
            self.session,
            options,
            self.conversations,
            emit=self.emit,
            has_listeners=self.has_listeners,
            on_write_failed=self._on_write_failed,
        )
        self._dispatcher = SocketDispatcher(
            self.router,
            brand=self.is_brand,
            on_messaging_events=self._hold_events,
            on_agent_state=self._on_agent_state,
            emit_raw=self._emit_raw,
            on_invalid_event=self._report_invalid_event,
        )
        self._socket: UmsSocket | None = None
        self._open_called = False
        self._disconnected_at: float | None = None
        #: The one task that (re)connects; owned, cancelled by close().
        self._maintainer: asyncio.Task[None] | None = None
        #: True while a connect attempt runs (it handles the loss of its own socket).
        self._attempting = False
        #: The generation whose session a connect attempt is verifying and restoring.
        self._restoring_generation: int | None = None
        #: Set when the token was refused and nothing can replace it: maintenance stops.
        self._auth_failed_for_good = False
        self._connected_once = False
        self._connect_event = asyncio.Event()
        self._closing = False
        self._released = False
        self._close_done: asyncio.Future[None] | None = None
        self._close_emitted = False
        #: The default subscription and the recreation of every subscription after a reconnect.
        self.subscriptions = SubscriptionKeeper(
            cast("SubscriptionHost", self),  # the dialect subclasses complete ConnectionActions
            options,
            self.router,
            emit=self.emit,
            report_error=self.report_error,
        )
        #: Tasks closing lost sockets (owned; awaited by close()).
        self._closers: set[asyncio.Task[None]] = set()
        #: Messaging events received while a session is restored (None: apply at once).
        self._held_events: list[MessagingEventInfo] | None = None
        #: Each request's type in this connection's dialect (made once per request kind).
        self._wire_names: dict[Req, str] = {}

    # ---------------------------------------------------------------- identity hooks (subclasses)

    @property
    def is_brand(self) -> bool:
        return self.dialect is Dialect.BRAND_V2

    async def _prepare_identity(self) -> None:
        """Obtain or refresh the token before a connect attempt."""

    async def _socket_target(self) -> tuple[str, dict[str, str]]:
        """URL and upgrade headers of the next socket."""
        raise NotImplementedError

    async def _verify(self) -> None:
        """First request on a new socket (brand: GetUserProfile; consumer: InitConnection)."""

    async def _restore(self, first: bool) -> None:
        """Recreate what the server forgot with the old socket (subscriptions, agent state...)."""

    def _on_agent_state(self, state: AgentStateInfo) -> None:
        """An ``AgentStateNotification`` entry: emitted as ``agent-state`` (brand: see the subclass)."""
        self.emit(ConnectionEvent.AGENT_STATE, state)

    async def _on_upgrade_unauthorized(self) -> None:
        """HTTP 401 at the upgrade: the token is bad."""

    async def _on_auth_close(self, code: int) -> bool:
        """The server closed with 4401/4407; return False to stop reconnecting."""
        return True

    async def _continue_after_auth_failure(self) -> bool:
        """A connect attempt failed with TokenExpiredError; return False to stop reconnecting."""
        return True

    async def _shutdown_extras(self) -> None:
        """Subclass hook: stop token maintainers and the like."""

    # ---------------------------------------------------------------- HTTP session

    async def http_session(self) -> aiohttp.ClientSession:
        """The HTTP client session of this connection (sockets and file transfers)."""
        return await self.http.client_session()

    # ---------------------------------------------------------------- open / close

    async def open(self) -> None:
        """Connect: returns once the session is ready.

        Permanent failures (refused credentials, an unknown account) raise at once; transient
        ones are retried on the reconnect back-off for up to ``open_timeout`` seconds, then
        :class:`~lpm.errors.ConnectFailedError` is raised (see :mod:`lpm.client.opening`).
        """
        if self._open_called:
            raise InvalidStateError(f"connection is in an invalid state for opening: {self.state}")
        self._open_called = True
        self._move(_T.OPEN)
        # A task of its own, as every later reconnect: close() cancels it wherever it waits.
        task = self._maintainer = asyncio.create_task(
            self._first_connect(), name=f"lpm-connect-{self.connection_id}"
        )
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            # The caller gave up on open() (a timeout around it, say): stop connecting and release
            # every task and session instead of retrying in the background.
            await asyncio.shield(self.close())
            raise
        if self._maintainer is task:
            self._maintainer = None
        if task.cancelled() or self.state == cs.CLOSED:
            raise NotConnectedError("connection was closed before it could connect")
        error = task.exception()
        if error is not None:
            if self.state == cs.CONNECTING:
                self._move(_T.CONNECT_FAILED)
            # Nothing is left running (a token maintainer, an HTTP session): the connection ends
            # CLOSED, without a ``close`` event (it never was open).
            self._close_emitted = True
            await self.close()
            raise error

    async def _first_connect(self) -> None:
        async def attempt() -> None:
            if self._closing:
                raise Fatal from NotConnectedError("connection was closed before it could connect")
            await self._attempt_judged()

        def announce_wait(error: BaseException, _attempt: int, seconds: float) -> None:
            self.report_error(error)  # a permanent failure is raised by open(), not reported
            self.emit(ConnectionEvent.RECONNECT_WAIT, {"seconds": seconds})

        await self._first_open(attempt, announce_wait)

    async def close(self) -> None:
        """Close the socket, stop maintenance and release every task and timer of the connection;
        pending and queued requests fail.  Closing a closed connection does nothing."""
        if self._released:
            return
        if self._close_done is not None:  # another caller is closing: wait for it to finish
            await asyncio.shield(self._close_done)
            return
        self._close_done = asyncio.get_running_loop().create_future()
        try:
            await self._close()
        finally:
            self._close_done.set_result(None)

    async def _close(self) -> None:
        if self.state == cs.INITIAL:
            self._move(_T.CLOSE)
            self._released = True
            await self.http.close()
            return
        self._closing = True
        maintainer, self._maintainer = self._maintainer, None
        if maintainer is not None and maintainer is not asyncio.current_task():
            maintainer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await maintainer
        if self.state == cs.CONNECTED:
            self._move(_T.CLOSE)
        self.requests.fail_waiting(NotConnectedError("connection closed"))
        await self.requests.close()
        self.router.close()
        sock = self._socket
        if sock is not None:
            await self._drop_socket(sock, code=1000, reason="closed by the application")
        await self.subscriptions.close()
        for closer in list(self._closers):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await closer
        if self.state != cs.CLOSED:
            self._move(_T.CLOSED if self.state == cs.CLOSING else _T.CLOSE)
        self._connect_event.set()
        await self._release()
        if not self._close_emitted:
            self._close_emitted = True
            self.emit(ConnectionEvent.CLOSE, {"code": 1000, "reason": "closed by the application"})
        await self.close_events()

    async def _release(self) -> None:
        """Stop everything the connection started: subscriptions' tasks, the handler tasks of the
        objects it created, the token maintainer, cache timers and the HTTP session."""
        self._released = True
        subscriptions = {
            id(s): s for s in [*self.router.conversation_subscriptions(), self.default_subscription]
        }
        for sub in subscriptions.values():
            close = getattr(sub, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()
        for routing in cast("list[Any]", self.router.routing_subscriptions()):
            for ring in list(routing.rings.values()):
                await ring.close_events()
            await routing.close_events()
        for conversation in self.conversations.all():
            for dialog in conversation.dialogs:
                for message in dialog.messages:
                    await message.close_events()
                for participant in dialog.participants + dialog.removed_participants:
                    await participant.close_events()
                await dialog.close_events()
            await conversation.close_events()
        await self._shutdown_extras()
        await self._release_conversations()
        await self.http.close()

    # ---------------------------------------------------------------- connecting

    async def _maintain(self, *, delay: float = 0.0, auth_code: int | None = None) -> None:
        """Connect attempts on the back-off until the session is restored or the connection closes.

        ``auth_code``: the socket was closed with 4401/4407, so the token is invalidated first.
        Only a failure that cannot fix itself (a refused token nothing can replace) ends it;
        anything else -- whatever its type -- is reported and retried.
        """
        if auth_code is not None and not await self._auth_close_allows_retry(auth_code):
            await self._give_up()
            return
        if delay > 0:
            await asyncio.sleep(delay)

        async def attempt() -> None:
            if self._closing:
                return
            try:
                await self._attempt_judged()
            except Exception as exc:
                self.report_error(exc.__cause__ if isinstance(exc, Fatal) and exc.__cause__ else exc)
                raise

        def announce_wait(_error: BaseException, _attempt: int, seconds: float) -> None:
            self.emit(ConnectionEvent.RECONNECT_WAIT, {"seconds": seconds})

        try:
            await retry(
                attempt,
                backoff=Backoff(self.options.schedule()),
                is_retryable=lambda _error: True,
                on_retry=announce_wait,
            )
        except Exception:  # only a Fatal's cause gets here: reported already
            await self._give_up()

    async def _attempt_judged(self) -> None:
        """One connect attempt from FAILED_TO_CONNECT / DISCONNECTED; a failure nothing can fix (a
        refused token that cannot be replaced) is raised as :class:`~lpm.client.retry.Fatal`."""
        if self.state != cs.CONNECTING:
            self._move(_T.RETRY)
        try:
            await self._attempt()
        except Exception as exc:
            if self.state == cs.CONNECTING:
                self._move(_T.CONNECT_FAILED)
            if self._auth_failed_for_good or (
                isinstance(exc, TokenExpiredError) and not await self._continue_after_auth_failure()
            ):
                raise Fatal from exc
            raise

    async def _auth_close_allows_retry(self, code: int) -> bool:
        """:meth:`_on_auth_close`, which never ends maintenance by raising: an unexpected error
        (a malformed login answer during the re-login, say) is reported and the attempts go on."""
        try:
            return await self._on_auth_close(code)
        except Exception as exc:
            self.report_error(exc)
            return True

    async def _give_up(self) -> None:
        """Stop for good (e.g. a caller-supplied token was refused); ``close()`` still releases
        what the connection holds."""
        self._closing = True
        if self._maintainer is asyncio.current_task():
            self._maintainer = None
        self.requests.fail_waiting(NotConnectedError("connection stopped: authentication failed"))
        if self.state != cs.CLOSED:
            self._move(_T.GIVE_UP)
        self._connect_event.set()
        self._close_emitted = True
        self.emit(ConnectionEvent.CLOSE, {"code": 4401, "reason": "authentication failed"})

    async def _attempt(self) -> None:
        """One connect: identity, socket, verification, restoration, then the queue."""
        self._attempting = True
        try:
            start = time.time()
            self.emit(ConnectionEvent.CONNECT_REQUEST, {"start": start})
            await self._prepare_identity()
            url, headers = await self._socket_target()
            sock = await self._open_socket(url, headers)
            self._restoring_generation = sock.generation
            token = _restoring.set(sock.generation)
            try:
                await self._verify_and_restore(sock, start)
                if self.session.in_doubt() and sock is self._socket:
                    # Every frame the server sent before this answer has been read: the
                    # replayed messages that reconciliation looks for are in (held).
                    await self.request(Req.GET_CLOCK, {})
            except BaseException as exc:
                if sock is self._socket:
                    await self._drop_socket(sock, code=1000, reason="connect attempt failed")
                if isinstance(exc, ConnectionClosedError):
                    raise ConnectFailedError(
                        "the connection was lost while the session was being restored", close_code=exc.code
                    ) from exc
                raise
            finally:
                _restoring.reset(token)
                self._restoring_generation = None
            if sock is not self._socket:
                raise ConnectFailedError(
                    "the connection was lost while the session was being restored", close_code=sock.close_code
                )
            # From here to the end nothing awaits: the session becomes ready atomically.
            self._release_held_events()
            self.conversations.session_restored()
            self._disconnected_at = None
            first = not self._connected_once
            self._connected_once = True
            self.requests.resume(sock)
            self._connect_event.set()
            self.emit(ConnectionEvent.CONNECT if first else "reconnect")
        finally:
            self._attempting = False

    async def _verify_and_restore(self, sock: UmsSocket, start: float) -> None:
        try:
            await self._verify()
        except Exception as exc:
            await self._drop_socket(sock, code=1000, reason="verification failed")
            if isinstance(exc, ConnectionClosedError) and exc.code in AUTH_CLOSE_CODES:
                if not await self._on_auth_close(exc.code):
                    self._auth_failed_for_good = True
                raise TokenExpiredError(
                    f"authentication failure: the server closed the socket with code {exc.code}"
                ) from exc
            if isinstance(exc, ConnectionClosedError):
                raise ConnectFailedError(
                    f"the WebSocket was established, but closed (code {exc.code}) during verification",
                    close_code=exc.code,
                ) from exc
            if isinstance(exc, LpmError):
                raise
            raise ConnectFailedError(f"error while validating the connection: {exc}") from exc
        if sock is not self._socket:
            return
        self._move(_T.VERIFIED)
        self.emit(ConnectionEvent.CONNECT_RESPONSE, {"start": start, "end": time.time()})
        await self._restore_with_retry(not self._connected_once, sock)

    async def _restore_with_retry(self, first: bool, sock: UmsSocket) -> None:
        """Run :meth:`_restore` until it succeeds; give up at once when the socket is lost (the
        attempt then fails and the maintainer tries again)."""

        async def restore_once() -> None:
            if sock is not self._socket:
                return
            # A restore can wait on the server (a snapshot, a replay): the loss of the socket
            # must interrupt it, not leave it waiting for what will never come.
            restore = asyncio.ensure_future(self._restore(first))
            lost = asyncio.ensure_future(sock.lost.wait())
            try:
                await asyncio.wait({restore, lost}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                await cancel_and_wait(lost, *([] if restore.done() else [restore]))
            if restore.cancelled():
                return  # lost: the attempt reports it
            # Retrieved even when the socket is gone (the restore failed because it was lost):
            # otherwise asyncio logs "Task exception was never retrieved".
            error = restore.exception()
            if error is None or sock is not self._socket:
                return  # done, or lost: the attempt reports it
            raise error

        def report(error: BaseException, _attempt: int, _seconds: float) -> None:
            self.report_error(error)

        await retry(restore_once, backoff=RESTORE_BACKOFF, is_retryable=lambda _error: True, on_retry=report)

    async def _open_socket(self, url: str, headers: dict[str, str]) -> UmsSocket:
        try:
            sock = await open_ums_socket(
                await self.http_session(),
                url,
                headers,
                generation=self.session.socket_opened,
                ssl=self.http.ssl,
                timeout=self.options.connect_timeout,
                max_frame_size=self.options.max_frame_size,
                compression=self.options.compression,
            )
        except UpgradeRefusedError as exc:
            if exc.status != 401:
                raise
            await self._on_upgrade_unauthorized()
            if not await self._continue_after_auth_failure():
                self._auth_failed_for_good = True  # e.g. a caller's token: nothing can replace it
            raise ConnectFailedError(
                "the server refused the token at the WebSocket upgrade (401)", status=401
            ) from None
        self._socket = sock
        # Messaging events wait until the session is restored (and its history caught up).
        self._held_events = []
        sock.tasks.append(asyncio.create_task(self._read(sock), name=f"lpm-reader-{sock.generation}"))
        self._start_watchdog(sock)
        return sock

    # ---------------------------------------------------------------- reading

    async def _read(self, sock: UmsSocket) -> None:
        code = await sock.read(self._on_text, self.report_error, lambda: sock is self._socket)
        self._lose_socket(sock, code, "")

    def _on_text(self, data: str) -> None:
        event = self.session.receive_text(data)
        if type(event) is frames.InboundNotification:  # the hot path first
            try:
                self._on_notification(event)
            except NotificationError as exc:
                self.report_error(ProtocolError(str(exc), frame=data[:500]))
            except Exception as exc:  # a bug in a handler must not kill the reader
                self.report_error(exc)
        elif type(event) is Answered or type(event) is Refused:  # (the next most frequent)
            self.requests.answered(event)
        elif isinstance(event, LateResponse):
            self.requests.late(event)
            self._retire_late_subscription(event)
        elif isinstance(event, UnreadableRefusal):
            body = event.response.body
            self.report_error(
                ProtocolError(f"UMS refused an unreadable request: {body}", frame=event.response)
            )
        elif isinstance(event, InvalidFrame):
            self.report_error(
                ProtocolError(f"received invalid frame from UMS: {event.error}", frame=data[:500])
            )
        elif isinstance(event, UnexpectedRequest):
            self.report_error(ProtocolError("received a request frame from UMS", frame=data[:500]))

    def _retire_late_subscription(self, event: LateResponse) -> None:
        """A subscribe request answered after its caller gave up (a timeout): the server made a
        subscription nobody here knows.  Its notifications are expected, not errors (retired);
        the subscription itself ends with the socket, and a retry subscribes again."""
        body = event.response.body if event.response is not None else None
        if isinstance(body, dict) and isinstance(body.get("subscriptionId"), str):
            subscription_id = body["subscriptionId"]
            log.debug("late subscription %s retired", subscription_id)
            self.router.retire(subscription_id)

    def _on_notification(self, frame: frames.InboundNotification) -> None:
        # The raw events carry the body as Python objects: built only for listeners (the typed
        # decoders read the JSON itself).
        handlers = self._handlers
        if handlers.get(_NOTIFICATION):
            self.emit(_NOTIFICATION, frame.type, frame.body)
        self._dispatcher.dispatch(
            frame,
            bool(handlers.get(_RAW_CONVERSATION) or handlers.get(_RAW_MESSAGE) or handlers.get(_RAW_ROUTING)),
        )

    def _report_invalid_event(self, error: NotificationError) -> None:
        self.report_error(ProtocolError(f"{error} (the event was dropped)"))

    def _emit_raw(self, kind: Notif, frame: frames.InboundNotification) -> None:
        name = RAW_EVENT_NAMES.get(kind)
        if name is not None and self._handlers.get(name):
            self.emit(name, frame.body)

    def _hold_events(self, events: list[MessagingEventInfo]) -> None:
        """Messaging events, live or fetched by a restore (history): while a session is being
        restored they are held and applied with the others once it is -- outside the restore, so
        that requests the application makes from its ``message`` handlers queue behind the
        requests that waited for the connection."""
        if self._held_events is not None:
            self._held_events.extend(events)
        else:
            self.conversations.handle_messaging_events(events)

    def _release_held_events(self) -> None:
        """Apply the held messaging events, each dialog's in sequence order (live events and
        fetched history overlap: the dialogs drop what they have already seen)."""
        events, self._held_events = self._held_events, None
        if events:
            events.sort(key=lambda e: (e.dialog_id, e.sequence if e.sequence is not None else _NO_SEQUENCE))
            self.conversations.handle_messaging_events(events)

    # ---------------------------------------------------------------- losing a socket

    async def reconnect(self) -> None:
        """Drop the current socket and connect again; returns once the session is restored.

        Used after a step-up (the socket must speak for the new identity); requests made
        meanwhile are queued as during any reconnect."""
        sock = self._socket
        if sock is None or not self.requests.ready or self.state != cs.CONNECTED:
            raise InvalidStateError(f"cannot reconnect a connection that is {self.state}")
        self._connect_event.clear()
        await self._drop_socket(sock, code=1000, reason="reconnect requested", wait=0.0)
        await self._connect_event.wait()
        if self.state != cs.CONNECTED:
            raise NotConnectedError(f"reconnect ended with the connection {self.state}")

    def _lose_socket(
        self, sock: UmsSocket, code: int | None, reason: str, *, wait: float | None = None
    ) -> None:
        """Bookkeeping of a lost (or dropped) socket, then maintenance.

        Synchronous on purpose: it runs in the socket's reader, which must not be left behind
        doing work (a token regeneration, a wait) once its socket is gone.
        """
        if sock is not self._socket:
            return  # an abandoned socket: nothing it reports may act on the current one
        sock.close_code = code
        sock.lost.set()
        self._socket = None
        was_ready = self.requests.ready
        self.requests.pause()
        self._held_events = None  # fetched again by the next restore (replay / catch-up)
        self.conversations.session_lost()  # what the catch-up brings must find its conversation
        # Closing releases its HTTP connection and stops its reader and keep-alive; owned, so
        # close() can wait for it.
        sock.closer = asyncio.create_task(sock.shut(), name=f"lpm-close-{sock.generation}")
        self._closers.add(sock.closer)
        sock.closer.add_done_callback(self._closers.discard)
        self.requests.socket_lost(sock.generation, code, recover=self._recovers())
        if self._closing or self.state in (cs.CLOSING, cs.CLOSED):
            return
        if self.state == cs.CONNECTED:
            self._move(_T.SOCKET_LOST)
        if self._disconnected_at is None:
            self._disconnected_at = time.monotonic()
        for sub in self.router.conversation_subscriptions():
            cast(Any, sub).mark_disconnected()
        for routing in self.router.routing_subscriptions():
            cast(Any, routing).mark_disconnected()
        if not was_ready:
            return  # lost during a connect attempt: the attempt fails and reports it
        if not self.options.maintain_connection:
            self.requests.fail_waiting(NotConnectedError("connection lost"))
            self._close_emitted = True
            self.emit(ConnectionEvent.CLOSE, {"code": code, "reason": reason})
            return
        self.emit(ConnectionEvent.DISCONNECT, {"code": code, "reason": reason})
        if self._attempting or (self._maintainer is not None and not self._maintainer.done()):
            return
        self._maintainer = asyncio.create_task(
            self._maintain(
                delay=self.options.wait_to_reconnect if wait is None else wait,
                auth_code=code if code in AUTH_CLOSE_CODES else None,
            ),
            name=f"lpm-reconnect-{self.connection_id}",
        )

    async def _drop_socket(
        self, sock: UmsSocket, *, code: int, reason: str = "", wait: float | None = None
    ) -> None:
        """Abandon ``sock`` (as if lost) and wait until it is closed."""
        self._lose_socket(sock, code, reason, wait=wait)
        if sock.closer is not None and sock.closer is not asyncio.current_task():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.shield(sock.closer)

    def _recovers(self) -> bool:
        """Whether requests in flight on a lost socket may be completed by a next session."""
        return self.options.maintain_connection and not self._closing and self._open_called

    def _on_write_failed(self, sock: UmsSocket) -> None:
        if sock is self._socket:
            self._lose_socket(sock, 1006, "write failed")
        else:
            self.requests.socket_lost(sock.generation, 1006, recover=self._recovers())

    # ---------------------------------------------------------------- keep-alive

    def _start_watchdog(self, sock: UmsSocket) -> None:
        sock.tasks.append(asyncio.create_task(self._watch(sock), name=f"lpm-keepalive-{sock.generation}"))

    async def _watch(self, sock: UmsSocket) -> None:
        """Keep-alive and dead-connection detection for ``sock``, from its opening to its loss.

        A ``GetClock`` goes out every ``keep_alive_interval`` seconds (as the Node SDK does), and
        a socket from which no frame arrived for ``dead_connection_timeout`` seconds is declared
        dead and replaced: TCP says nothing when a NAT or a load balancer drops the connection or
        the server freezes, and the reader would wait forever.  A keep-alive that timed out counts
        as a dead socket too.  It runs from the opening (a restore can be stuck on a dead socket
        as well) and the first keep-alive goes out after the verification request.
        """
        loop = asyncio.get_running_loop()
        opts = self.options
        probe_at = loop.time() + opts.keep_alive_interval
        probes: set[asyncio.Task[None]] = set()
        # Silence is counted only while this event loop runs: when the loop itself was stalled
        # (a long GC pause, a blocking call in the application), frames the server sent meanwhile
        # are still unread in the socket, and the stall must not pass for the server's silence.
        sock.counted_from = loop.time()
        try:
            while sock is self._socket:
                now = loop.time()
                silent_since = max(sock.last_received, sock.counted_from)
                if now - silent_since >= opts.dead_connection_timeout:
                    self._declare_dead(sock, f"no frame from UMS for {opts.dead_connection_timeout:g} s")
                    return
                if now >= probe_at:
                    probe_at = now + opts.keep_alive_interval
                    probe = asyncio.create_task(self._probe(sock), name=f"lpm-probe-{sock.generation}")
                    probes.add(probe)
                    probe.add_done_callback(probes.discard)
                wake = min(probe_at, silent_since + opts.dead_connection_timeout)
                await asyncio.sleep(max(wake - now, 0.0))
                if loop.time() - max(wake, now) > LOOP_STALL:
                    sock.counted_from = loop.time()  # woken late: the loop was stalled
        finally:
            await cancel_and_wait(*probes)

    async def _probe(self, sock: UmsSocket) -> None:
        """One keep-alive request; a timeout means the socket is dead."""
        type_ = request_wire_name(Req.GET_CLOCK, self.dialect)
        try:
            await self.requests.submit_bound(self.requests.new_call(type_, {}), sock)
        except RequestTimeoutError:
            # Unanswered, and nothing else arrived meanwhile either (a timer that fired late
            # after a stall of the event loop is no evidence: the watchdog restarted its count).
            silent = asyncio.get_running_loop().time() - max(sock.last_received, sock.counted_from)
            if silent >= self.options.keep_alive_interval:
                self._declare_dead(sock, "a keep-alive request was not answered")
        except LpmError:
            pass  # refused (the server is alive) or the socket is already lost

    def _declare_dead(self, sock: UmsSocket, reason: str) -> None:
        if sock is not self._socket:
            return
        log.warning(
            "connection %s: socket %s is dead (%s); reconnecting", self.connection_id, sock.generation, reason
        )
        self._lose_socket(sock, 1006, reason)

    # ---------------------------------------------------------------- requests

    async def send(self, type: str, body: Any = None, headers: Any = None, metadata: Any = None) -> Any:
        """Send any UMS request (``type`` exactly as given) and return the response body.

        Raises :class:`~lpm.errors.RequestError` for ``code`` > 399,
        :class:`~lpm.errors.RequestTimeoutError`, :class:`~lpm.errors.ConnectionClosedError`,
        :class:`~lpm.errors.NotConnectedError` or :class:`~lpm.errors.QueueTimeoutError`.
        """
        if not isinstance(type, str) or not type:
            raise ConfigurationError("type must be a non-empty request type string")
        return await self._submit(type, body, headers, metadata)

    async def request(
        self,
        req: Req,
        body: Any = None,
        *,
        metadata: Any = None,
        headers: Any = None,
        raw_answer: bool = False,
    ) -> Any:
        """Send ``req`` in this connection's dialect.  ``raw_answer``: the answer's body is returned
        as received, JSON (:class:`msgspec.Raw`), for the caller to decode into its own structs.

        A subscription (:data:`~lpm.protocol.session.SOCKET_SCOPED_REQUESTS`) whose answer is taken
        after the socket that answered it was lost raises
        :class:`~lpm.errors.ConnectionClosedError`: the server forgot it with the socket."""
        type_ = self._wire_names.get(req)
        if type_ is None:
            type_ = self._wire_names[req] = request_wire_name(req, self.dialect)
        return await self._submit(
            type_,
            body,
            headers,
            metadata,
            raw_answer,
            socket_scoped=req in SOCKET_SCOPED_REQUESTS,
        )

    async def _submit(
        self,
        type_: str,
        body: Any,
        headers: Any,
        metadata: Any,
        raw_answer: bool = False,
        *,
        socket_scoped: bool = False,
    ) -> Any:
        call = self.requests.new_call(type_, body, headers, metadata, raw_answer=raw_answer)
        restoring = _restoring.get()
        if restoring is not None and restoring == self._restoring_generation:
            # A request of the connect attempt itself: on its socket or nowhere.
            sock = self._socket
            if sock is None or sock.generation != restoring:
                raise ConnectionClosedError(
                    f"unable to send {type_}: the connection was lost while restoring"
                )
            result = await self.requests.submit_bound(call, sock)
        else:
            # (Whether it may queue is worked out only when it cannot be written at once.)
            result = await self.requests.submit(call, can_queue=self._can_queue, state=self._state_name)
        if socket_scoped:
            current = self._socket
            if current is None or current.generation != call.generation:
                # The answer came, then the loss of its socket was read before this coroutine
                # resumed: taken as made, the subscription would count as live, escape the loss
                # (only registered subscriptions are marked disconnected) and never be renewed.
                # A consumer's feed so taken missed every change of its next conversation.
                sub_id = result.get("subscriptionId") if isinstance(result, dict) else None
                if isinstance(sub_id, str):
                    self.router.retire(sub_id)  # its snapshot, read before the loss: dropped quietly
                raise ConnectionClosedError(f"{type_} was answered by a socket that has been lost since")
        return result

    def _state_name(self) -> str:
        return self.state

    def _can_queue(self) -> bool:
        if not self._open_called or self._closing or not self.options.maintain_connection:
            return False
        if self.state in (cs.CLOSED, cs.CLOSING):
            return False
        if self._disconnected_at is not None:
            return time.monotonic() - self._disconnected_at <= self.options.max_request_queue_time
        return True

    # ---------------------------------------------------------------- subscriptions

    @property
    def default_subscription(self) -> ConversationSubscription | None:
        """The default conversation subscription (``create_default_subscription``), once created."""
        return self.subscriptions.default

    async def create_conversation_subscription(
        self, query: dict[str, Any] | None = None, *, wait_for_first_notification: bool = False
    ) -> ConversationSubscription:
        """Subscribe to conversations matching ``query`` (Python names: ``state``, ``stage``,
        ``agent_ids``, ``consumer_id``, ``conversation_id``, ``last_update_after``,
        ``last_update_before``); the subscription is recreated after every reconnect."""
        return await self.subscriptions.create(query, wait_for_first_notification=wait_for_first_notification)

    async def _restore_subscriptions(self, first: bool) -> None:
        """Create the default subscription once; recreate every subscription the server forgot."""
        await self.subscriptions.restore(first, brand=self.is_brand)
