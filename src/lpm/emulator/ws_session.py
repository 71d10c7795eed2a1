"""One WebSocket session of either dialect: frame loop, dispatch, idle and token watch.

A session reads frames one at a time and answers each request before reading the next, so a
client sees responses in request order.  Notifications caused by a session's own request are
held back until that request's response is queued (a publisher gets ``{sequence}`` before the
echo of its own event; a subscriber gets ``{subscriptionId}`` before the snapshot).  Nothing a
client sends can crash the loop: malformed JSON, JSON nested too deeply, unknown types and
invalid bodies get a 4xx response with a string body and the socket stays usable.  The writer
sends nothing before the writes it may reveal are committed (``store.durable()``: see
:mod:`lpm.emulator.persistence`, group commit).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from lpm.emulator.entities import Actor
from lpm.emulator.http_common import check_depth
from lpm.emulator.world_errors import WorldError
from lpm.protocol import frames
from lpm.protocol.requests import BodyError
from lpm.protocol.types import (
    ACCEPTED_202,
    STRING_RESPONSE,
    Dialect,
    Notif,
    Req,
    canonical_request,
    notification_type,
    response_type,
)

if TYPE_CHECKING:
    from lpm.emulator.context import Context
    from lpm.emulator.hub import AgentStateSubscription, ConversationSubscription, RoutingSubscription

log = logging.getLogger(__name__)

#: Close codes (protocol 3.5).
CLOSE_AUTH = 4401
CLOSE_UNAUTH_IDENTITY = 4407
CLOSE_IDLE = 1000

Handler = Callable[["Session", frames.Request], Any]

_ids = itertools.count(1)


class Session:
    """State of one socket: identity, subscriptions and the outbound queue."""

    def __init__(
        self,
        ctx: Context,
        ws: web.WebSocketResponse,
        dialect: Dialect,
        account_id: str,
        handlers: dict[Req, Handler],
        allowed: frozenset[Req],
    ) -> None:
        self.id = next(_ids)
        self.ctx = ctx
        self.ws = ws
        self.dialect = dialect
        self.brand = dialect is Dialect.BRAND_V2
        self.account_id = account_id
        self.handlers = handlers
        self.allowed = allowed
        self.actor: Actor | None = None
        #: "agent", or the consumer's kind ("anonymous", "unauthenticated", "authenticated", ...).
        self.identity_kind = ""
        #: Epoch seconds when the identity expires (None: never), re-read on every wake-up.
        self.expires_at: Callable[[], float | None] = lambda: None
        self.features: list[str] = []
        self.conv_subs: dict[str, ConversationSubscription] = {}
        self.dialog_subs: set[str] = set()
        self.routing_subs: dict[str, RoutingSubscription] = {}
        self.agent_state_subs: dict[str, AgentStateSubscription] = {}
        self._out: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._held: list[bytes] | None = None
        self._close_code: int | None = None
        self._close_reason = ""
        self._deferred_close: tuple[int, str] | None = None
        #: Set when the TCP connection is dropped under the session (fault injection): a request
        #: held by an injected delay is handled at once (see :meth:`handle_text`).
        self._lost = asyncio.Event()
        #: The web UI's frame capture (lpm.emulator.ui.capture); None unless the UI runs.
        self.tap = ctx.hub.tap

    def __repr__(self) -> str:
        return f"<Session {self.id} {self.dialect.value} {self.account_id}>"

    # ---------------------------------------------------------------- outbound

    def _push(self, data: bytes) -> None:
        if self._held is not None:
            self._held.append(data)
        else:
            self._out.put_nowait(data)

    def notify(self, notif: Notif, body: Any) -> None:
        """Queue a notification in this session's dialect."""
        self._push(frames.encode(frames.Notification(type=notification_type(notif, self.dialect), body=body)))

    def respond(self, req_id: str | None, code: int, type_: str, body: Any) -> None:
        self._out.put_nowait(frames.encode(frames.Response(reqId=req_id, code=code, type=type_, body=body)))

    def respond_error(self, req_id: str | None, code: int, message: str) -> None:
        self.respond(req_id, code, STRING_RESPONSE[self.dialect], message[:128])

    def close_with(self, code: int, reason: str = "") -> None:
        """Close the socket with ``code`` once what is queued has been written (while a request
        is being handled: after its response)."""
        if self._held is not None:
            self._deferred_close = (code, reason)
            return
        if self._close_code is None:
            self._close_code = code
            self._close_reason = reason
            self._out.put_nowait(None)

    def abort(self) -> None:
        """Drop the TCP connection without a close frame (fault injection)."""
        transport = self.ws._req.transport if self.ws._req is not None else None
        if transport is not None:
            transport.abort()
        self._lost.set()

    async def _writer(self) -> None:
        send_frame = getattr(self.ws, "send_frame", None)
        tap = self.tap
        # Frames still queued that a finished durable() already covers (they were queued before
        # it was called): one wait per burst, not one per frame.
        covered = 0
        while True:
            data = await self._out.get()
            if data is None:
                break
            if covered:
                covered -= 1
            elif self.ctx.world.store.pending:
                # Nothing leaves before the writes it may reveal (an acknowledged sequence, an
                # event fanned out) are committed: see lpm.emulator.persistence, group commit.
                covered = self._out.qsize()
                try:
                    await self.ctx.world.store.durable()
                except Exception as exc:  # the store closed with these writes unwritten
                    log.warning(
                        "session %s closed without sending what was not stored: %s", self.id, str(exc)
                    )
                    break
            if self.ctx.settings.log_frames:
                log.debug("out %s %s", self.id, _redact(data))
            if tap is not None:
                tap.outbound(self, data)
            try:
                if send_frame is not None:
                    await send_frame(data, WSMsgType.TEXT)
                else:
                    await self.ws.send_str(data.decode())
            except (ConnectionError, RuntimeError):
                break
        with contextlib.suppress(Exception):
            await self.ws.close(code=self._close_code or 1000, message=self._close_reason.encode())

    # ---------------------------------------------------------------- inbound

    async def run(self) -> None:
        """Serve the socket until it closes."""
        writer = asyncio.create_task(self._writer(), name=f"ws-writer-{self.id}")
        settings = self.ctx.settings
        loop = asyncio.get_running_loop()
        last_frame = loop.time()
        try:
            while self._close_code is None:
                now = loop.time()
                wait = settings.idle_timeout - (now - last_frame)
                expires = self.expires_at()
                if expires is not None:
                    wait = min(wait, max(0.0, expires - self.ctx.world.clock()))
                if wait <= 0:
                    if not self._check_deadlines(loop.time() - last_frame):
                        break
                    continue
                try:
                    msg = await self.ws.receive(timeout=wait)
                except TimeoutError:
                    if not self._check_deadlines(loop.time() - last_frame):
                        break
                    continue
                if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                    break
                last_frame = loop.time()
                if msg.type is WSMsgType.PING:
                    await self.ws.pong(msg.data)
                    continue
                if msg.type is WSMsgType.PONG:
                    continue
                if msg.type is WSMsgType.BINARY:
                    self.respond_error(None, 400, "binary frames are not supported; send JSON text")
                    continue
                if msg.type is WSMsgType.TEXT:
                    await self.handle_text(msg.data)
        finally:
            if self._close_code is None:
                self._close_code = 1000
                self._out.put_nowait(None)
            self.ctx.hub.detach(self)
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(writer, timeout=5)
            if not writer.done():
                writer.cancel()

    def _check_deadlines(self, idle_for: float) -> bool:
        """Close for idleness or an expired identity; False when the socket was closed."""
        expires = self.expires_at()
        if expires is not None and expires <= self.ctx.world.clock():
            self.close_with(self.auth_close_code(), "token expired")
            return False
        if idle_for >= self.ctx.settings.idle_timeout:
            self.close_with(CLOSE_IDLE, "idle timeout")
            return False
        return True

    def auth_close_code(self) -> int:
        """4401 for brand and authenticated consumers, 4407 for unauthenticated identities."""
        if self.identity_kind in ("anonymous", "unauthenticated"):
            return CLOSE_UNAUTH_IDENTITY
        return CLOSE_AUTH

    async def handle_text(self, data: str) -> None:
        if self.tap is not None:
            self.tap.inbound(self, data)
        if self.ctx.settings.log_frames:
            log.debug("in %s %s", self.id, _redact(data.encode()))
        try:
            frame = _decode_frame(data)
        except frames.FrameError as exc:
            self.respond_error(exc.req_id, 400, str(exc))
            return
        if not isinstance(frame, frames.Request):
            kind = "resp" if isinstance(frame, frames.Response) else "notification"
            self.respond_error(None, 400, f"clients send requests, not {kind} frames")
            return
        fault = self.ctx.faults.next_ws_request() if self.ctx.faults.enabled else None
        if fault is not None:
            if fault.action == "drop":
                return
            if fault.action == "refuse":
                self.respond_error(frame.id, fault.status, "refused by fault injection")
                return
            # The delay ends early when the connection is dropped: the request reached the
            # server, so its fate is settled when its socket is lost -- handled now, before
            # the client can reconnect and look for it.  Handled after a reconnection, a
            # publish the client did not find and wrote again would be stored twice; how long
            # a client waits before reconnecting must not decide that (a stalled event loop
            # once made it, in a long chaos run).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), fault.delay)
            if self._close_code is not None:
                # The server closed this session meanwhile (4401/4407 expiry, shutdown, fault):
                # it no longer acts for its identity, so the held request is never processed.
                return
        tap = self.tap
        if tap is None:
            self.dispatch(frame)
            return
        # The UI's transcript names the request behind each change it sees during dispatch.
        tap.cause = (self.id, frame.id)
        try:
            self.dispatch(frame)
        finally:
            tap.cause = None

    def dispatch(self, req: frames.Request) -> None:
        canonical = canonical_request(req.type)
        if canonical is None:
            self.respond_error(req.id, 400, f"unknown request type {req.type}")
            return
        if canonical not in self.allowed:
            self.respond_error(req.id, 400, f"{req.type} is not supported on the {self.dialect.value} API")
            return
        if self.actor is None and canonical not in (Req.INIT_CONNECTION, Req.GET_CLOCK, Req.KEEP_ALIVE):
            self.respond_error(req.id, 401, "connection is not authenticated: send InitConnection first")
            return
        handler = self.handlers.get(canonical)
        if handler is None:
            self.respond_error(req.id, 400, f"{req.type} is not implemented by the emulator")
            return
        self._held = []
        try:
            body = handler(self, req)
        except WorldError as exc:
            self.respond_error(req.id, exc.status, exc.message)
        except BodyError as exc:
            self.respond_error(req.id, 400, f"invalid {req.type} body: {exc}")
        except Exception:
            log.exception("internal error handling %s", req.type)
            self.respond_error(req.id, 500, "internal emulator error")
        else:
            code = 202 if canonical in ACCEPTED_202 else 200
            self.respond(req.id, code, response_type(canonical, self.dialect), body)
            # Notifications caused by this request follow its response.
            for data in self._held:
                self._out.put_nowait(data)
        finally:
            self._held = None
            if self._deferred_close is not None:
                code_, reason = self._deferred_close
                self._deferred_close = None
                self.close_with(code_, reason)


def _decode_frame(data: str) -> frames.Frame:
    """A client's frame; :class:`~lpm.protocol.frames.FrameError` for anything hostile, nesting
    too deep included (the limits of :func:`lpm.emulator.http_common.decode_body`)."""
    try:
        frame = frames.decode_frame(data)
    except RecursionError:
        raise frames.FrameError("malformed JSON: nested too deeply") from None
    if isinstance(frame, frames.Request):
        try:
            # The list stands for the frame itself: its fields are one level down, as on the wire.
            check_depth(data, [frame.body, frame.headers, frame.metadata, frame.encodedMetadata])
        except frames.FrameError as exc:
            raise frames.FrameError(str(exc), frame.id) from None
        return frame
    check_depth(data, [frame.body])
    return frame


#: JSON keys whose string values are credentials: file-URL signatures (``temp_url_sig``), the
#: one-time download token, JWTs and bearers under any of their names.
_SECRET_KEYS = ("temp_url_sig", "readOtk", "jwt", "token", "id_token", "access_token", "bearer", "lp_jwt")
_SECRET_VALUE = re.compile(r'"(' + "|".join(_SECRET_KEYS) + r')"(\s*:\s*)"[^"]*"')
#: The same signature in a URL's query (``...?temp_url_sig=<hex>&temp_url_expires=...``).
_SECRET_QUERY = re.compile(r"(temp_url_sig=)[^&\s\"]*")
_JWT = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]*")


def _redact(data: bytes) -> str:
    """Frame text for ``--log-frames`` with every secret cut out: JWTs wherever they are, the
    values of credential keys (:data:`_SECRET_KEYS`) and file-URL signatures in query strings.

    The expiry (``temp_url_expires``) stays: it is not a secret and helps reading the logs.
    """
    text = data.decode(errors="replace")
    text = _JWT.sub("<redacted-jwt>", text)
    text = _SECRET_VALUE.sub(r'"\1"\2"<redacted>"', text)
    text = _SECRET_QUERY.sub(r"\1<redacted>", text)
    return text[:2000]
