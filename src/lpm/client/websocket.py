"""WebSocket connections: request/response correlation, keep-alive and connection maintenance.

One :class:`WebsocketConnection` owns at most one live socket at a time.  Every socket gets a
*generation* number; the reader, the keep-alive and every callback carry the generation they were
started for and do nothing once it is no longer current, so events of an abandoned socket can
never act on the new one (node-agent-sdk's worst bug, peer study §5.2).

Maintenance (``maintain_connection=True``, the default):

* an unexpected close moves the connection to DISCONNECTED, fails the requests that were in
  flight on that socket with :class:`~lpm.errors.ConnectionClosedError` (they may or may not have
  been processed: re-sending could duplicate a message, so the SDK never does it silently), and
  reconnects after ``wait_to_reconnect`` seconds, then on the reconnect schedule;
* requests issued while disconnected, while reconnecting, *or while the new session is being
  restored* are queued, each with its own deadline (``request_queue_timeout``), and sent in
  order once the session is restored (subscriptions recreated, agent state and consumer
  messaging subscriptions re-issued);
* 4401/4407 closes and HTTP 401 at the upgrade invalidate the token (see the subclasses).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import itertools
import logging
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, cast

import aiohttp

from lpm.client import connection as cs
from lpm.client.auth.csds import CSDS
from lpm.client.auth.http import HttpSettings
from lpm.client.connection import Connection
from lpm.client.options import ConnectionOptions
from lpm.errors import (
    ConfigurationError,
    ConnectFailedError,
    ConnectionClosedError,
    HttpError,
    InvalidStateError,
    LpmError,
    NotConnectedError,
    ProtocolError,
    QueueTimeoutError,
    RequestError,
    RequestTimeoutError,
    TokenExpiredError,
)
from lpm.protocol import frames
from lpm.protocol.notifications import (
    NotificationError,
    decode_agent_states,
    decode_conversation_changes,
    decode_messaging_events,
    decode_routing_tasks,
)
from lpm.protocol.types import (
    Dialect,
    Notif,
    Req,
    canonical_notification,
    request_wire_name,
)

log = logging.getLogger("lpm.client.websocket")

#: Close codes meaning "the token is no good" (protocol 3.5).
AUTH_CLOSE_CODES = frozenset({4401, 4407})
#: Seconds the ``ready`` event waits at most for the default subscription to load.
WAIT_FOR_READY_DURATION = 600.0
#: Seconds a notification for a not-yet-registered subscription is held.
ORPHAN_GRACE = 5.0
#: Retry delays (seconds) of the session-restore step after a reconnect.
RESTORE_RETRY = (0.2, 0.4, 0.8, 1.6, 3.2)

_request_ids = itertools.count(1)

#: Set (to the socket generation) while a connect attempt verifies and restores the session:
#: requests made in that context go straight to the new socket instead of the queue.
_restoring: contextvars.ContextVar[int | None] = contextvars.ContextVar("lpm_restoring", default=None)


def _new_request_id() -> str:
    return f"{next(_request_ids)}-{uuid.uuid4().hex[:12]}"


@dataclass(slots=True)
class _Pending:
    request_type: str
    future: asyncio.Future[Any]
    generation: int
    start: float
    request: dict[str, Any]
    timer: asyncio.TimerHandle | None = None


@dataclass(slots=True)
class _Queued:
    request_type: str
    body: Any
    headers: Any
    metadata: Any
    future: asyncio.Future[Any]
    timer: asyncio.TimerHandle | None = None


@dataclass(slots=True)
class _Socket:
    generation: int
    ws: aiohttp.ClientWebSocketResponse
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)


class WebsocketConnection(Connection):
    """A connection over one UMS WebSocket (subclassed per dialect)."""

    dialect: Dialect = Dialect.CONSUMER_V3

    def __init__(self, options: ConnectionOptions) -> None:
        super().__init__(options)
        self._generation = 0
        self._socket: _Socket | None = None
        self._pending: dict[str, _Pending] = {}
        self._early_responses: dict[str, frames.Response] = {}
        self._queue: deque[_Queued] = deque()
        self._ready = False  # session restored: requests go straight to the socket
        self._open_called = False
        self._disconnected_at: float | None = None
        self._maintainer: asyncio.Task[None] | None = None
        self._connected_once = False
        self._connect_event = asyncio.Event()
        self._closing = False
        self.http = HttpSettings(options.csds_domain, ssl=options.ssl)
        self._conversation_subs: dict[str, Any] = {}
        self._routing_subs: dict[str, Any] = {}
        self.default_subscription: Any = None
        #: Subscriptions replaced or unsubscribed: their late notifications are expected, not errors.
        self._retired_subscriptions: set[str] = set()
        #: Notifications that arrived before their subscription was registered (see _hold_orphan).
        self._orphans: dict[str, list[Any]] = {}
        self._orphan_timers: dict[str, asyncio.TimerHandle] = {}
        self._ready_task: asyncio.Task[None] | None = None
        #: Tasks replaying queued requests (owned; cancelled on close).
        self._replays: set[asyncio.Task[Any]] = set()

    # ---------------------------------------------------------------- identity hooks (subclasses)

    @property
    def is_brand(self) -> bool:
        return self.dialect is Dialect.BRAND_V2

    @property
    def agent_id(self) -> str | None:
        return None

    @property
    def user_id(self) -> str | None:
        return None

    async def _prepare_identity(self) -> None:
        """Obtain or refresh the token before a connect attempt."""

    async def _socket_target(self) -> tuple[str, dict[str, str]]:
        """URL and upgrade headers of the next socket."""
        raise NotImplementedError

    async def _verify(self) -> None:
        """First request on a new socket (brand: GetUserProfile; consumer: InitConnection)."""

    async def _restore(self, first: bool) -> None:
        """Recreate what the server forgot with the old socket (subscriptions, agent state...)."""

    async def _on_upgrade_unauthorized(self) -> None:
        """HTTP 401 at the upgrade: the token is bad."""

    async def _on_auth_close(self, code: int) -> bool:
        """The server closed with 4401/4407; return False to stop reconnecting."""
        return True

    # ---------------------------------------------------------------- HTTP session

    async def http_session(self) -> aiohttp.ClientSession:
        """The HTTP client session of this connection (sockets and file transfers)."""
        return await self.http.client_session()

    # ---------------------------------------------------------------- open / close

    async def open(self) -> None:
        """Connect; with ``maintain_connection`` keep trying until connected (or closed)."""
        if self._open_called:
            raise InvalidStateError(f"connection is in an invalid state for opening: {self.state}")
        self._open_called = True
        self._set_state(cs.CONNECTING)
        if not self.options.maintain_connection:
            try:
                await self._attempt()
            except Exception:
                if self.state == cs.CONNECTING:
                    self._set_state(cs.FAILED_TO_CONNECT)
                raise
            return
        self._maintainer = asyncio.create_task(
            self._maintain(first=True), name=f"lpm-connect-{self.connection_id}"
        )
        await self._connect_event.wait()
        if self.state == cs.CLOSED:
            raise NotConnectedError("connection was closed before it could connect")

    async def close(self) -> None:
        """Close the socket and stop maintenance; pending and queued requests fail."""
        if self.state == cs.CLOSED:
            return
        if self.state == cs.INITIAL:
            self._set_state(cs.CLOSED)
            return
        self._closing = True
        maintainer, self._maintainer = self._maintainer, None
        if maintainer is not None and maintainer is not asyncio.current_task():
            maintainer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await maintainer
        self._ready = False
        sock = self._socket
        if self.state == cs.CONNECTED:
            self._set_state(cs.CLOSING)
        self._fail_queue(NotConnectedError("connection closed"))
        self._fail_pending(None, ConnectionClosedError("connection closed by the application"))
        for task in [*self._replays, *([self._ready_task] if self._ready_task else [])]:
            task.cancel()
        for timer in self._orphan_timers.values():
            timer.cancel()
        self._orphan_timers.clear()
        self._orphans.clear()
        if sock is not None:
            await self._drop_socket(sock, code=1000)
        if self.state != cs.CLOSED:
            self._set_state(cs.CLOSED)
        self._connect_event.set()
        await self._shutdown_extras()
        self.conversations.close()
        await self.http.close()
        self.emit("close", {"code": 1000, "reason": "closed by the application"})
        await self.close_events()

    async def _shutdown_extras(self) -> None:
        """Subclass hook: stop token maintainers and the like."""

    # ---------------------------------------------------------------- connecting

    async def _maintain(self, first: bool) -> None:
        """Connect attempts on the schedule until connected or closed."""
        schedule = self.options.schedule()
        for attempt in itertools.count():
            if self._closing:
                return
            try:
                await self._attempt()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.report_error(exc)
                if self.state == cs.CONNECTING:
                    self._set_state(cs.FAILED_TO_CONNECT)
                if isinstance(exc, TokenExpiredError) and not await self._continue_after_auth_failure():
                    await self._give_up()
                    return
            wait = schedule[min(attempt, len(schedule) - 1)]
            self.emit("reconnect-wait", {"seconds": wait})
            await asyncio.sleep(wait)
            if self._closing:
                return
            self._set_state(cs.CONNECTING)

    async def _continue_after_auth_failure(self) -> bool:
        return True

    async def _give_up(self) -> None:
        """Stop for good (e.g. a caller-supplied token was refused)."""
        self._closing = True
        self._maintainer = None
        self._fail_queue(NotConnectedError("connection stopped: authentication failed"))
        if self.state != cs.CLOSED:
            self._set_state(cs.CLOSED)
        self._connect_event.set()
        self.emit("close", {"code": 4401, "reason": "authentication failed"})

    async def _attempt(self) -> None:
        """One connect: identity, socket, verification, restoration."""
        start = time.time()
        self.emit("connect#request", {"start": start})
        await self._prepare_identity()
        url, headers = await self._socket_target()
        sock = await self._open_socket(url, headers)
        token = _restoring.set(sock.generation)
        try:
            await self._verify_and_restore(sock, start)
        finally:
            _restoring.reset(token)
        if sock is not self._socket:
            return  # lost again while restoring; the close handler took over
        self._ready = True
        first = not self._connected_once
        self._connected_once = True
        self._start_keep_alive(sock)
        self._flush_queue()
        self._connect_event.set()
        self.emit("connect" if first else "reconnect")

    async def _verify_and_restore(self, sock: _Socket, start: float) -> None:
        try:
            await self._verify()
        except Exception as exc:
            await self._drop_socket(sock, code=1000)
            if isinstance(exc, ConnectionClosedError) and exc.code in AUTH_CLOSE_CODES:
                raise TokenExpiredError(
                    f"authentication failure: the server closed the socket with code {exc.code}"
                ) from exc
            if isinstance(exc, LpmError):
                raise
            raise ConnectFailedError(f"error while validating the connection: {exc}") from exc
        self._set_state(cs.CONNECTED)
        self._disconnected_at = None
        self.emit("connect#response", {"start": start, "end": time.time()})
        await self._restore_with_retry(not self._connected_once, sock)

    async def _restore_with_retry(self, first: bool, sock: _Socket) -> None:
        for attempt in itertools.count():
            if sock is not self._socket:
                return
            try:
                await self._restore(first)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.report_error(exc)
                if sock is not self._socket:
                    return
                await asyncio.sleep(RESTORE_RETRY[min(attempt, len(RESTORE_RETRY) - 1)])

    async def _open_socket(self, url: str, headers: dict[str, str]) -> _Socket:
        session = await self.http_session()
        try:
            # The handshake is bounded: a server that accepts TCP/TLS but never answers the
            # upgrade must not leave the connection CONNECTING forever (peer study, issue #135).
            async with asyncio.timeout(self.options.connect_timeout):
                ws = await self._ws_connect(session, url, headers)
        except TimeoutError:
            raise ConnectFailedError(
                f"the WebSocket upgrade did not complete within {self.options.connect_timeout:g} s"
            ) from None
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status == 401:
                await self._on_upgrade_unauthorized()
                raise ConnectFailedError(
                    "the server refused the token at the WebSocket upgrade (401)", status=401
                ) from None
            raise ConnectFailedError(
                f"WebSocket upgrade failed with HTTP {exc.status}", status=exc.status
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            # Not str(exc): some aiohttp errors quote the URL, and the brand URL carries the bearer.
            detail = f": {exc.strerror}" if isinstance(exc, OSError) and exc.strerror else ""
            raise ConnectFailedError(
                f"error opening the WebSocket connection: {type(exc).__name__}{detail}"
            ) from None
        self._generation += 1
        sock = _Socket(self._generation, ws)
        self._socket = sock
        sock.tasks.append(asyncio.create_task(self._read(sock), name=f"lpm-reader-{self._generation}"))
        return sock

    async def _ws_connect(
        self, session: aiohttp.ClientSession, url: str, headers: dict[str, str]
    ) -> aiohttp.ClientWebSocketResponse:
        return await session.ws_connect(
            url,
            headers=headers,
            ssl=self.http.ssl,
            timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0),
            autoping=True,
            heartbeat=None,
            max_msg_size=64 * 1024 * 1024,
            compress=0,
        )

    # ---------------------------------------------------------------- reading

    async def _read(self, sock: _Socket) -> None:
        ws = sock.ws
        try:
            async for msg in ws:
                if sock is not self._socket:
                    return  # an abandoned socket: never act on its frames
                if msg.type is aiohttp.WSMsgType.TEXT:
                    self._on_text(msg.data)
                elif msg.type is aiohttp.WSMsgType.BINARY:
                    self.report_error(ProtocolError("binary frame received from UMS", frame=msg.data[:200]))
                elif msg.type is aiohttp.WSMsgType.ERROR:
                    break
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never let the reader die silently
            log.debug("reader of socket %s failed: %s", sock.generation, exc)
        code = ws.close_code
        reason = ""
        if sock is self._socket:
            await self._on_socket_lost(sock, code, reason)

    def _on_text(self, data: str) -> None:
        try:
            frame = frames.decode_frame(data)
        except frames.FrameError as exc:
            self.report_error(ProtocolError(f"received invalid frame from UMS: {exc}", frame=data[:500]))
            return
        if isinstance(frame, frames.Response):
            self._on_response(frame)
        elif isinstance(frame, frames.Notification):
            try:
                self._on_notification(frame)
            except NotificationError as exc:
                self.report_error(ProtocolError(str(exc), frame=data[:500]))
            except Exception as exc:  # a bug in a handler must not kill the reader
                self.report_error(exc)
        else:
            self.report_error(ProtocolError("received a request frame from UMS", frame=data[:500]))

    def _on_response(self, frame: frames.Response) -> None:
        req_id = frame.reqId
        pending = self._pending.pop(req_id, None) if req_id is not None else None
        if pending is None:
            if req_id is not None:
                # A response that raced ahead of its pending entry (see _send_frame).
                self._early_responses[req_id] = frame
            else:
                self.report_error(
                    ProtocolError(f"UMS refused an unreadable request: {frame.body}", frame=frame)
                )
            return
        if pending.timer is not None:
            pending.timer.cancel()
        if pending.future.done():
            return
        if frame.code > 399:
            error = RequestError(frame.code, pending.request_type, frame.body, response_type=frame.type)
            pending.future.set_exception(error)
            return
        self.emit(
            f"{pending.request_type}#response",
            {"start": pending.start, "end": time.time(), "request": pending.request, "response": frame.body},
        )
        pending.future.set_result(frame.body)

    def _on_notification(self, frame: frames.Notification) -> None:
        self.emit("notification", frame.type, frame.body)
        kind = canonical_notification(frame.type)
        brand = self.is_brand
        if kind is Notif.EX_CONVERSATION_CHANGE:
            sub_id, changes = decode_conversation_changes(frame.body, brand=brand)
            self.emit("conversationNotification", frame.body)
            sub = self._conversation_subs.get(sub_id or "")
            if sub is not None:
                sub.handle_notification(changes)
            elif sub_id not in self._retired_subscriptions:
                self._hold_orphan(sub_id or "", changes)
        elif kind is Notif.MESSAGING_EVENT:
            events = decode_messaging_events(frame.body, brand=brand)
            self.emit("messageNotification", frame.body)
            self.conversations.handle_messaging_events(events)
        elif kind is Notif.ROUTING_TASK:
            sub_id, tasks = decode_routing_tasks(frame.body)
            self.emit("routingTaskNotification", frame.body)
            routing = self._routing_subs.get(sub_id or "")
            if routing is not None:
                routing.handle_notification(tasks)
            else:
                self._hold_orphan(sub_id or "", tasks)
        elif kind is Notif.AGENT_STATE:
            _, states = decode_agent_states(frame.body)
            for state in states:
                self.emit("agent-state", state)

    def _hold_orphan(self, sub_id: str, payload: Any) -> None:
        """Keep a notification whose subscription is not registered yet.

        UMS sends a subscription's snapshot right behind the subscribe response; the reader may
        handle it before the subscriber has registered the new id.  Held notifications are
        delivered on registration, or reported as errors after :data:`ORPHAN_GRACE` seconds.
        """
        held = self._orphans.get(sub_id)
        if held is None:
            held = self._orphans[sub_id] = []
            loop = asyncio.get_running_loop()
            self._orphan_timers[sub_id] = loop.call_later(ORPHAN_GRACE, self._drop_orphans, sub_id)
        held.append(payload)

    def _drop_orphans(self, sub_id: str) -> None:
        self._orphan_timers.pop(sub_id, None)
        if self._orphans.pop(sub_id, None) is not None and sub_id not in self._retired_subscriptions:
            self.report_error(ProtocolError(f"notification for unknown subscription {sub_id}"))

    def _deliver_orphans(self, sub_id: str | None, subscription: Any) -> None:
        if sub_id is None:
            return
        timer = self._orphan_timers.pop(sub_id, None)
        if timer is not None:
            timer.cancel()
        for payload in self._orphans.pop(sub_id, []):
            subscription.handle_notification(payload)

    # ---------------------------------------------------------------- losing a socket

    async def reconnect(self) -> None:
        """Drop the current socket and connect again; returns once the session is restored.

        Used after a step-up (the socket must speak for the new identity); requests made
        meanwhile are queued as during any reconnect."""
        sock = self._socket
        if sock is None or self.state != cs.CONNECTED:
            raise InvalidStateError(f"cannot reconnect a connection that is {self.state}")
        self._connect_event.clear()
        await self._drop_socket(sock, code=1000)
        await self._on_socket_lost(sock, 1000, "reconnect requested", delay=0.0)
        await self._connect_event.wait()
        if self.state != cs.CONNECTED:
            raise NotConnectedError(f"reconnect ended with the connection {self.state}")

    async def _on_socket_lost(
        self, sock: _Socket, code: int | None, reason: str, *, delay: float | None = None
    ) -> None:
        if sock is not self._socket and self._socket is not None:
            return
        self._socket = None
        self._ready = False
        for task in sock.tasks:
            if task is not asyncio.current_task():
                task.cancel()
        self._fail_pending(
            sock.generation, ConnectionClosedError("connection closed while waiting for response", code=code)
        )
        if self._closing or self.state in (cs.CLOSING, cs.CLOSED):
            return
        was_connected = self.state == cs.CONNECTED
        if self.state == cs.CONNECTED:
            self._set_state(cs.DISCONNECTED)
        self._disconnected_at = time.monotonic()
        for sub in list(self._conversation_subs.values()):
            sub.mark_disconnected()
        for routing in list(self._routing_subs.values()):
            routing.mark_disconnected()
        self.emit("disconnect", {"code": code, "reason": reason})
        if not was_connected:
            return  # lost during the connect attempt: the attempt reports it
        if not self.options.maintain_connection:
            self.emit("close", {"code": code, "reason": reason})
            self._fail_queue(NotConnectedError("connection lost"))
            return
        keep_going = True
        if code in AUTH_CLOSE_CODES:
            keep_going = await self._on_auth_close(code)
        if not keep_going:
            await self._give_up()
            return
        wait = self.options.wait_to_reconnect if delay is None else delay
        self._maintainer = asyncio.create_task(
            self._reconnect_later(wait), name=f"lpm-reconnect-{self.connection_id}"
        )

    async def _reconnect_later(self, wait: float) -> None:
        await asyncio.sleep(wait)
        if self._closing:
            return
        self._set_state(cs.CONNECTING)
        await self._maintain(first=False)

    async def _drop_socket(self, sock: _Socket, *, code: int) -> None:
        if self._socket is sock:
            self._socket = None
        for task in sock.tasks:
            if task is not asyncio.current_task():
                task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(sock.ws.close(code=code), 5)
        for task in sock.tasks:
            if task is not asyncio.current_task():
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def _fail_pending(self, generation: int | None, error: LpmError) -> None:
        for req_id, pending in list(self._pending.items()):
            if generation is None or pending.generation == generation:
                del self._pending[req_id]
                if pending.timer is not None:
                    pending.timer.cancel()
                if not pending.future.done():
                    pending.future.set_exception(error)

    # ---------------------------------------------------------------- keep-alive

    def _start_keep_alive(self, sock: _Socket) -> None:
        sock.tasks.append(
            asyncio.create_task(self._keep_alive(sock), name=f"lpm-keepalive-{sock.generation}")
        )

    async def _keep_alive(self, sock: _Socket) -> None:
        while sock is self._socket:
            await asyncio.sleep(self.options.keep_alive_interval)
            if sock is not self._socket or not self._ready:
                return
            with contextlib.suppress(LpmError):
                await self._send_now(request_wire_name(Req.GET_CLOCK, self.dialect), {}, None, None)

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

    async def request(self, req: Req, body: Any = None, *, metadata: Any = None, headers: Any = None) -> Any:
        """Send ``req`` in this connection's dialect."""
        return await self._submit(request_wire_name(req, self.dialect), body, headers, metadata)

    async def _submit(self, type_: str, body: Any, headers: Any, metadata: Any) -> Any:
        sock = self._socket
        if sock is not None and (self._ready or _restoring.get() == sock.generation):
            return await self._send_now(type_, body, headers, metadata)
        if self._can_queue():
            return await self._enqueue(type_, body, headers, metadata)
        raise NotConnectedError(f"unable to send {type_}: connection is {self.state}")

    def _can_queue(self) -> bool:
        if not self._open_called or self._closing or not self.options.maintain_connection:
            return False
        if self.state in (cs.CLOSED, cs.CLOSING):
            return False
        if self._disconnected_at is not None:
            return time.monotonic() - self._disconnected_at <= self.options.max_request_queue_time
        return True

    async def _enqueue(self, type_: str, body: Any, headers: Any, metadata: Any) -> Any:
        loop = asyncio.get_running_loop()
        item = _Queued(type_, body, headers, metadata, loop.create_future())

        def expire() -> None:
            with contextlib.suppress(ValueError):
                self._queue.remove(item)
            if not item.future.done():
                item.future.set_exception(
                    QueueTimeoutError(
                        f"{type_} waited {self.options.request_queue_timeout:g} s for the connection"
                    )
                )

        item.timer = loop.call_later(self.options.request_queue_timeout, expire)
        self._queue.append(item)
        return await item.future

    def _flush_queue(self) -> None:
        """Send every queued request in order (pipelined: the socket keeps the order)."""
        while self._queue and self._ready and self._socket is not None:
            item = self._queue.popleft()
            if item.timer is not None:
                item.timer.cancel()
            if item.future.done():
                continue
            task = asyncio.ensure_future(
                self._send_now(item.request_type, item.body, item.headers, item.metadata)
            )
            self._replays.add(task)
            task.add_done_callback(self._replays.discard)
            task.add_done_callback(functools.partial(_transfer, future=item.future))

    def _fail_queue(self, error: LpmError) -> None:
        while self._queue:
            item = self._queue.popleft()
            if item.timer is not None:
                item.timer.cancel()
            if not item.future.done():
                item.future.set_exception(error)

    async def _send_now(self, type_: str, body: Any, headers: Any, metadata: Any) -> Any:
        """Write the frame on the current socket and await its response."""
        sock = self._socket
        if sock is None:
            raise NotConnectedError(f"unable to send {type_}: no open socket")
        req_id = _new_request_id()
        frame = frames.Request(id=req_id, type=type_, body=body, headers=headers, metadata=metadata)
        loop = asyncio.get_running_loop()
        start = time.time()
        request = {"id": req_id, "type": type_, "body": body}
        pending = _Pending(type_, loop.create_future(), sock.generation, start, request)
        self._pending[req_id] = pending
        timeout = self.options.response_timeout

        def on_timeout() -> None:
            if self._pending.pop(req_id, None) is not None and not pending.future.done():
                error = RequestTimeoutError(type_, timeout)
                self.emit("timeout", error)
                pending.future.set_exception(error)

        pending.timer = loop.call_later(timeout, on_timeout)
        self.emit(f"{type_}#request", {"start": start, "request": request})
        try:
            data = frames.encode(frame)
            send_frame = getattr(sock.ws, "send_frame", None)
            if send_frame is not None:
                await send_frame(data, aiohttp.WSMsgType.TEXT)
            else:
                await sock.ws.send_str(data.decode())
        except (ConnectionError, RuntimeError, aiohttp.ClientError) as exc:
            self._pending.pop(req_id, None)
            pending.timer.cancel()
            raise ConnectionClosedError(f"could not write {type_}: {exc}") from None
        early = self._early_responses.pop(req_id, None)
        if early is not None:
            self._pending[req_id] = pending
            self._on_response(early)
        return await pending.future

    # ---------------------------------------------------------------- subscriptions

    def _default_query(self) -> dict[str, Any]:
        if self.options.default_subscription_query is not None:
            return dict(self.options.default_subscription_query)
        return {"stage": ["OPEN"]} if self.is_brand else {"stage": ["OPEN", "CLOSE"]}

    async def create_conversation_subscription(
        self, query: dict[str, Any] | None = None, *, wait_for_first_notification: bool = False
    ) -> Any:
        """Subscribe to conversations matching ``query`` (Python names: ``state``, ``stage``,
        ``agent_ids``, ``consumer_id``, ``conversation_id``, ``last_update_after``,
        ``last_update_before``); the subscription is recreated after every reconnect."""
        from lpm.client.subscriptions import ConversationSubscription, SubscriptionHost

        host = cast("SubscriptionHost", self)  # the dialect subclasses complete ConnectionActions
        subscription = ConversationSubscription(
            host, query or {}, limit_break_enabled=self.options.limit_break_enabled
        )
        await subscription.init(wait_for_first_notification=wait_for_first_notification)
        return subscription

    async def _announce_ready(self, subscription: Any) -> None:
        """Emit ``ready`` once the default subscription has loaded every existing conversation."""
        try:
            await asyncio.wait_for(subscription.wait_loaded(), WAIT_FOR_READY_DURATION)
        except TimeoutError:
            self.report_error(ProtocolError("the default subscription did not load within the ready timeout"))
            return
        self.emit("ready")

    async def _restore_subscriptions(self, first: bool) -> None:
        """Create the default subscription once; recreate every subscription the server forgot."""
        if self.default_subscription is None and self.options.create_default_subscription:
            wait = self.options.wait_for_first_notification or self.options.wait_for_ready
            sub = await self.create_conversation_subscription(
                self._default_query(), wait_for_first_notification=wait
            )
            self.default_subscription = sub
            if wait:
                self.emit("ready")
            else:
                self._ready_task = asyncio.create_task(self._announce_ready(sub), name="lpm-ready")
        for sub in list(self._conversation_subs.values()):
            if (sub is not self.default_subscription or not first) and sub.needs_resubscribe:
                await sub.resubscribe()
        for routing in list(self._routing_subs.values()):
            if routing.needs_resubscribe:
                await routing.resubscribe()

    # ---------------------------------------------------------------- ConnectionActions (shared)

    def register_conversation_subscription(self, subscription: Any, old_id: str | None = None) -> None:
        """Route notifications of ``subscription.subscription_id`` to it (re-keyed on resubscribe)."""
        if old_id is not None:
            self._conversation_subs.pop(old_id, None)
            self._retired_subscriptions.add(old_id)
        self._conversation_subs[subscription.subscription_id] = subscription
        self._deliver_orphans(subscription.subscription_id, subscription)

    def unregister_conversation_subscription(self, subscription_id: str) -> None:
        self._retired_subscriptions.add(subscription_id)
        self._conversation_subs.pop(subscription_id, None)

    def register_routing_subscription(self, subscription: Any, old_id: str | None = None) -> None:
        if old_id is not None:
            self._routing_subs.pop(old_id, None)
            self._retired_subscriptions.add(old_id)
        self._routing_subs[subscription.subscription_id] = subscription
        self._deliver_orphans(subscription.subscription_id, subscription)

    async def publish_event(
        self,
        conversation_id: str,
        dialog_id: str,
        event: dict[str, Any],
        *,
        audience: str = "ALL",
        metadata: list[Any] | None = None,
    ) -> int:
        body: dict[str, Any] = {"dialogId": dialog_id, "conversationId": conversation_id, "event": event}
        if audience != "ALL":
            body["messageAudience"] = audience
        result = await self.request(Req.PUBLISH_EVENT, body, metadata=metadata or None)
        sequence = result.get("sequence") if isinstance(result, dict) else None
        return int(sequence) if isinstance(sequence, int) else 0

    async def update_conversation_field(
        self, conversation_id: str, fields: list[dict[str, Any]], *, metadata: list[Any] | None = None
    ) -> Any:
        return await self.request(
            Req.UPDATE_CONVERSATION_FIELD,
            {"conversationId": conversation_id, "conversationField": fields},
            metadata=metadata or None,
        )

    async def subscribe_conversations(self, query: dict[str, Any]) -> str:
        result = await self.request(Req.SUBSCRIBE_EX_CONVERSATIONS, query)
        sub_id = result.get("subscriptionId") if isinstance(result, dict) else None
        if not isinstance(sub_id, str):
            raise ProtocolError("SubscribeExConversations response has no subscriptionId", frame=result)
        return sub_id

    async def unsubscribe_conversations(self, subscription_id: str) -> None:
        self.unregister_conversation_subscription(subscription_id)
        await self.request(Req.UNSUBSCRIBE_EX_CONVERSATIONS, {"subscriptionId": subscription_id})

    async def get_user_profile(self, user_id: str | None) -> Any:
        return await self.request(Req.GET_USER_PROFILE, {"userId": user_id} if user_id else {})

    async def generate_upload_url(self, file_size: int, file_type: str) -> dict[str, Any]:
        result = await self.request(
            Req.GENERATE_UPLOAD_URL, {"fileSize": str(file_size), "fileType": file_type}
        )
        return dict(result)

    async def generate_download_url(self, relative_path: str) -> dict[str, Any]:
        result = await self.request(Req.GENERATE_DOWNLOAD_URL, {"relativePath": relative_path})
        return dict(result)

    async def get_clock(self) -> int:
        """The server's clock (epoch ms)."""
        result = await self.request(Req.GET_CLOCK, {})
        return int(result["currentTime"])

    async def put_file(self, relative_path: str, query: dict[str, str], data: bytes) -> None:
        url = await self._storage_url(relative_path)
        session = await self.http_session()
        try:
            async with session.put(url, params=query, data=data, ssl=self.http.ssl) as resp:
                if resp.status not in (200, 201):
                    raise HttpError(f"file upload failed with HTTP {resp.status}", status=resp.status)
        except aiohttp.ClientError as exc:
            raise HttpError(f"file upload failed: {exc}") from None

    async def get_file(self, relative_path: str, query: dict[str, str]) -> bytes:
        url = await self._storage_url(relative_path)
        session = await self.http_session()
        try:
            async with session.get(url, params=query, ssl=self.http.ssl) as resp:
                if resp.status != 200:
                    raise HttpError(f"file download failed with HTTP {resp.status}", status=resp.status)
                return await resp.read()
        except aiohttp.ClientError as exc:
            raise HttpError(f"file download failed: {exc}") from None

    async def _storage_url(self, relative_path: str) -> str:
        host = await self.lookup_service("swift")
        return self.http.base_url(host) + relative_path

    async def lookup_service(self, service: str) -> str:
        """``host[:port]`` of a CSDS service for this account (shared cache, ``domains`` applied)."""
        return await CSDS.lookup(self.account_id, service, http=self.http, domains=self.options.domains)


def _transfer(task: asyncio.Future[Any], future: asyncio.Future[Any]) -> None:
    """Copy a finished task's outcome into the future a queued caller awaits."""
    if future.done():
        return
    if task.cancelled():
        future.set_exception(ConnectionClosedError("request cancelled"))
    elif task.exception() is not None:
        exc = task.exception()
        assert exc is not None
        future.set_exception(exc)
    else:
        future.set_result(task.result())
