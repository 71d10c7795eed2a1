"""Requests over a UMS socket: the asyncio side of :class:`lpm.protocol.session.ClientSession`.

The session decides (ids, in-flight table, replay policy, loss verdicts, queue order, claims);
the :class:`RequestPipeline` carries its decisions out with asyncio: each request's future (what
its caller awaits), the deadline of its current stage (``response_timeout`` once written,
``request_queue_timeout`` while it waits for a session), writing frames, and the one task that
writes the queue once a session is ready.  The connection tells the pipeline when a session is
ready (:meth:`RequestPipeline.resume`) and when its socket is lost (:meth:`RequestPipeline.pause`,
:meth:`RequestPipeline.socket_lost`); it never touches a request itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import TYPE_CHECKING, Any, cast

import aiohttp
import msgspec

from lpm.client.connection import not_connected
from lpm.client.options import ConnectionOptions
from lpm.client.transport.ums_socket import UmsSocket, cancel_and_wait
from lpm.enums import ConnectionEvent
from lpm.errors import (
    ConnectionClosedError,
    LpmError,
    QueueTimeoutError,
    RequestError,
    RequestTimeoutError,
)
from lpm.protocol.frames import json_value
from lpm.protocol.session import (
    Answered,
    ClientSession,
    LateResponse,
    LossVerdict,
    OutboundRequest,
    Refused,
    ReplayPolicy,
    WaitVerdict,
    landed_sequence,
    publish_policy,
    publish_target,
    replay_policy,
)
from lpm.protocol.types import Req, canonical_request, request_display_name

if TYPE_CHECKING:
    from lpm.client.model.cache import ConversationCache
    from lpm.client.model.dialog import Dialog

__all__ = ["Call", "RequestPipeline"]

log = logging.getLogger(__name__)


#: How many request types the per-type tables hold at most.
_MAX_TYPES = 256
#: A ``_policies`` entry: the policy depends on the request's event (a publish).
_BY_EVENT = object()


def _call_later(delay: float, callback: Any, *args: Any) -> asyncio.TimerHandle:
    return asyncio.get_running_loop().call_later(delay, callback, *args)


def _public_request(call: Call) -> dict[str, Any]:
    """The ``request`` of a ``#request`` / ``#response`` event: its body as a dict, whether it was
    sent as one (``conn.send``) or as a protocol struct."""
    body = call.body
    if isinstance(body, msgspec.Struct):
        body = msgspec.to_builtins(body)
    return {"id": call.req_id, "type": call.type, "body": body}


@dataclass(slots=True, eq=False)
class Call(OutboundRequest):
    """A request with its caller: the future it awaits and the deadline of the current stage."""

    future: asyncio.Future[Any] | None = None
    #: The deadline of a queued or in-doubt request (its own timer).
    timer: asyncio.TimerHandle | None = None
    #: The response deadline of a written request: its entry in the pipeline's table of
    #: deadlines (:class:`_Deadlines`), which one timer serves for every written request.
    deadlines: _Deadlines | None = None

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        deadlines = self.deadlines
        if deadlines is not None:
            self.deadlines = None
            deadlines.discard(self)

    def settle(self, error: BaseException | None = None, result: Any = None) -> None:
        """Complete the caller's future (once) and drop the deadline."""
        self.cancel_timer()
        self.settled = True
        future = self.future
        if future is None or future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


@dataclass(slots=True, eq=False, repr=False)
class RequestPipeline:
    """Writes requests, queues them while no session is ready, and settles every outcome.

    ``emit`` is the connection's (``<type>#request``, ``<type>#response``, ``timeout``);
    ``has_listeners(name)`` tells whether an event has listeners, so the payloads of
    ``#request`` / ``#response`` are built only for someone;
    ``on_write_failed(sock)`` is called when a frame could not be written (the socket is dead
    even if its reader has not noticed yet).
    """

    session: ClientSession
    options: ConnectionOptions
    conversations: ConversationCache
    _: KW_ONLY
    emit: Callable[..., bool]
    has_listeners: Callable[[str], bool]
    on_write_failed: Callable[[UmsSocket], None]
    #: The socket of the ready session (None: requests queue).
    _socket: UmsSocket | None = field(default=None, init=False)
    #: The task writing the queue (requests made meanwhile queue behind it).
    _flusher: asyncio.Task[None] | None = field(default=None, init=False)
    #: The response deadlines of written requests (one timer for all of them).
    _deadlines: _Deadlines = field(init=False)
    #: ``<type>#request`` / ``<type>#response`` per request type (made once, not per request).
    _event_names: dict[str, tuple[str, str]] = field(default_factory=dict, init=False)
    #: The replay policy per request type (``_BY_EVENT``: a publish's depends on its event).
    _policies: dict[str, object] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self._deadlines = _Deadlines(self._on_response_timeout)

    # ---------------------------------------------------------------- session readiness

    @property
    def ready(self) -> bool:
        """True while a restored session takes requests directly."""
        return self._socket is not None

    def resume(self, sock: UmsSocket) -> None:
        """The session on ``sock`` is restored: settle what was in doubt (lost publishes that
        landed complete; the rest go first in the queue) and start writing the queue.  Nothing
        here awaits, so the session becomes ready atomically."""
        landed, requeued = self.session.restored(self._landed_sequence)
        for request, sequence in landed:
            cast(Call, request).settle(result={"sequence": sequence})
        for request in requeued:
            call = cast(Call, request)
            call.cancel_timer()  # the in-doubt deadline: it waits again as a queued request
            self._start_queue_deadline(call)
        self._socket = sock
        self.kick()

    def pause(self) -> None:
        """No ready session (the socket was lost, or the connection is closing)."""
        self._socket = None

    # ---------------------------------------------------------------- making requests

    def new_call(
        self, type_: str, body: Any, headers: Any = None, metadata: Any = None, *, raw_answer: bool = False
    ) -> Call:
        """A request of wire type ``type_`` with its future and replay policy; a publish records
        the highest sequence its dialog has seen (see :func:`~lpm.protocol.session.landed_sequence`).
        ``raw_answer``: its success answer's body comes as JSON (see ``OutboundRequest.raw_answer``)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        # The policy of a type is looked up once, except a publish's, which depends on its event.
        known = self._policies.get(type_)
        if type(known) is ReplayPolicy:
            policy = known
        elif known is _BY_EVENT:
            policy = publish_policy(body)
        else:
            policy = replay_policy(type_, body)
            if known is None:
                if len(self._policies) >= _MAX_TYPES:
                    self._policies.clear()  # any type goes through conn.send(): bounded
                self._policies[type_] = _BY_EVENT if canonical_request(type_) is Req.PUBLISH_EVENT else policy
        call = Call(type_, body, headers, metadata, policy, future=future)
        call.raw_answer = raw_answer
        if call.policy is ReplayPolicy.RECONCILE:
            call.conversation_id, call.dialog_id = publish_target(body)
            dialog = self._dialog_of(call.conversation_id, call.dialog_id)
            call.floor = dialog.max_seen_sequence if dialog is not None else -1
        return call

    async def submit(self, call: Call, *, can_queue: Callable[[], bool], state: Callable[[], str]) -> Any:
        """Write ``call`` now if a session is ready and nothing waits before it, else queue it
        (``can_queue()``) or raise :class:`~lpm.errors.NotConnectedError` (naming ``state()``);
        returns the response body."""
        sock = self._socket
        if sock is not None and not self.session.queued and self._flusher is None:
            await self.write(call, sock)
        elif can_queue():
            self.session.enqueue(call)
            self._start_queue_deadline(call)
            self.kick()
        else:
            raise not_connected(request_display_name(call.type), state())
        return await self.wait(call)

    async def submit_bound(self, call: Call, sock: UmsSocket) -> Any:
        """Write a request tied to ``sock`` (a connect attempt's own, the keep-alive): never
        queued, never written again."""
        call.bound = True
        await self.write(call, sock)
        return await self.wait(call)

    async def wait(self, call: Call) -> Any:
        """Await the outcome of ``call``; a caller that gives up forgets it wherever it is."""
        try:
            return await cast("asyncio.Future[Any]", call.future)
        except asyncio.CancelledError:
            self.abandon(call)
            raise

    def abandon(self, call: Call) -> None:
        """The caller stopped waiting: forget the request wherever it is."""
        call.cancel_timer()
        call.settled = True
        self.session.forget(call)

    async def write(self, call: Call, sock: UmsSocket) -> None:
        """Register ``call`` in flight on ``sock`` and write its frame.  The outcome arrives in
        its future: the response, a timeout, or what the loss of the socket decides."""
        data = self.session.prepare(call, sock.generation, time.time())
        self._deadlines.add(call, self.options.response_timeout)
        name = self._names(call.type)[0]
        if self.has_listeners(name):
            self.emit(name, {"start": call.start, "request": _public_request(call)})
        if sock.can_batch:
            # Written with the other frames of this turn of the event loop (see send_soon).
            sock.send_soon(data, lambda: _mark_unwritten(call), self.on_write_failed)
            return
        try:
            await sock.send(data)
        except (ConnectionError, RuntimeError, aiohttp.ClientError) as exc:
            # The socket is unusable (the reader may not have noticed yet): treat it as lost, so
            # nothing else is written to it and this request is settled like any in flight.
            log.debug("writing %s failed: %s", call.type, type(exc).__name__)
            call.unwritten = True
            self.on_write_failed(sock)

    # ---------------------------------------------------------------- outcomes

    def answered(self, event: Answered | Refused) -> None:
        """A response matched to its request by the session."""
        call = cast(Call, event.request)
        response = event.response
        if isinstance(event, Refused):
            call.settle(
                RequestError(
                    response.code, request_display_name(call.type), response.body, response_type=response.type
                )
            )
            return
        call.cancel_timer()
        name = self._names(call.type)[1]
        if self.has_listeners(name):
            self.emit(
                name,
                {
                    "start": call.start,
                    "end": time.time(),
                    "request": _public_request(call),
                    # (A raw_answer call's body is still JSON: the event shows it as objects.)
                    "response": json_value(response.body),
                },
            )
        call.settle(result=response.body)

    def _names(self, type_: str) -> tuple[str, str]:
        names = self._event_names.get(type_)
        if names is None:
            if len(self._event_names) >= _MAX_TYPES:
                self._event_names.clear()  # any type goes through conn.send(): bounded
            names = self._event_names[type_] = (f"{type_}#request", f"{type_}#response")
        return names

    @staticmethod
    def late(event: LateResponse) -> None:
        log.debug("late response to request %s dropped", event.req_id)

    def _on_response_timeout(self, call: Call) -> None:
        if not self.session.expire(call):
            return
        error = RequestTimeoutError(request_display_name(call.type), self.options.response_timeout)
        self.emit(ConnectionEvent.TIMEOUT, error)
        call.settle(error)

    def socket_lost(self, generation: int, code: int | None, *, recover: bool) -> None:
        """Carry out the session's verdict on the requests written on a lost socket."""
        for request, verdict in self.session.connection_lost(generation, recover=recover):
            call = cast(Call, request)
            call.cancel_timer()
            if verdict is LossVerdict.FAIL:
                call.settle(ConnectionClosedError("connection closed while waiting for response", code=code))
            else:  # in doubt until the next session: it waits as long as a queued request
                self._start_queue_deadline(call)

    def fail_waiting(self, error: LpmError) -> None:
        """Fail every queued and in-doubt request (the connection will not come back)."""
        for request, verdict in self.session.drain_waiting():
            if verdict is WaitVerdict.NOT_CONNECTED:
                cast(Call, request).settle(error)
            else:
                cast(Call, request).settle(
                    ConnectionClosedError("the connection was lost before the response arrived")
                )

    async def close(self) -> None:
        """The connection is closing: fail what is in flight and stop writing the queue."""
        self._socket = None
        for request in self.session.drain_in_flight():
            cast(Call, request).settle(ConnectionClosedError("connection closed by the application"))
        self._deadlines.close()
        flusher, self._flusher = self._flusher, None
        await cancel_and_wait(flusher)

    # ---------------------------------------------------------------- the queue

    def _start_queue_deadline(self, call: Call) -> None:
        call.timer = _call_later(self.options.request_queue_timeout, self._on_queue_timeout, call)

    def _on_queue_timeout(self, call: Call) -> None:
        call.timer = None
        in_doubt = self.session.is_in_doubt(call)
        self.session.forget(call)
        waited = f"{self.options.request_queue_timeout:g} s"
        if in_doubt and call.policy is ReplayPolicy.RECONCILE:
            call.settle(
                ConnectionClosedError(
                    f"{request_display_name(call.type)} was in flight when the connection was lost, and "
                    f"the connection did not come back within {waited} to tell whether it was processed"
                )
            )
        else:
            call.settle(
                QueueTimeoutError(f"{request_display_name(call.type)} waited {waited} for the connection")
            )

    def kick(self) -> None:
        """Start writing the queue if a session is ready (one writer at a time keeps the order)."""
        sock = self._socket
        if self.session.queued and sock is not None and self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_queue(sock), name="lpm-queue")

    async def _flush_queue(self, sock: UmsSocket) -> None:
        """Write the queued requests in order; their callers await their own futures."""
        try:
            while self._socket is sock:
                request = self.session.dequeue()
                if request is None:
                    break
                call = cast(Call, request)
                call.cancel_timer()
                try:
                    await self.write(call, sock)
                except Exception as exc:  # e.g. a body that cannot be encoded: its caller hears it
                    call.settle(exc)
        finally:
            if self._flusher is asyncio.current_task():
                self._flusher = None
        # Requests queued while the last one was being written (the socket may have been lost
        # meanwhile: then they wait for the next session).
        self.kick()

    # ---------------------------------------------------------------- reconciliation

    def _dialog_of(self, conversation_id: str | None, dialog_id: str | None) -> Dialog | None:
        conversations = self.conversations
        conversation = conversations.get(conversation_id) if conversation_id else None
        if conversation is None and dialog_id:
            conversation = conversations.find_by_dialog(dialog_id)
        if conversation is None:
            return None
        return conversation._dialog_by_id(dialog_id)

    def _landed_sequence(self, request: OutboundRequest) -> int | None:
        """The sequence of the message a lost publish produced, if its dialog holds it."""
        dialog = self._dialog_of(request.conversation_id, request.dialog_id)
        if dialog is None:
            return None
        return landed_sequence(request, dialog.messages, self.session.claimed(dialog.dialog_id))


def _mark_unwritten(call: Call) -> None:
    log.debug("writing %s failed", call.type)
    call.unwritten = True


#: How early the event loop runs a timer (see asyncio's ``BaseEventLoop._clock_resolution``).
_CLOCK_RESOLUTION = time.get_clock_info("monotonic").resolution


class _Deadlines:
    """The response deadlines of written requests, served by one timer.

    A timer per request (``loop.call_later``, then its cancellation when the answer comes) was a
    heap entry and a handle for every request.  Here a request's deadline is an entry of a dict
    (removed in O(1) when it is settled: :meth:`Call.cancel_timer`), and one timer is armed for
    the earliest deadline: when it fires, the requests whose deadline has passed time out, in the
    order they were written (as their own timers fired), and it is armed again for the earliest
    of the rest.  A request times out exactly when its own timer would have fired.
    """

    __slots__ = ("_entries", "_on_expired", "_timer", "_when")

    def __init__(self, on_expired: Callable[[Call], None]) -> None:
        self._on_expired = on_expired
        #: Call -> its deadline (``loop.time()``), in the order written.
        self._entries: dict[Call, float] = {}
        self._timer: asyncio.TimerHandle | None = None
        #: When the timer fires (meaningful while it is armed).
        self._when = 0.0

    def add(self, call: Call, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        when = loop.time() + timeout
        self._entries[call] = when
        call.deadlines = self
        if self._timer is None or when < self._when:
            self._arm(loop, when)

    def discard(self, call: Call) -> None:
        self._entries.pop(call, None)

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._when = when
        self._timer = loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        # The event loop runs a timer once its time is within one clock resolution (as it ran
        # each request's own timer).
        now = loop.time() + _CLOCK_RESOLUTION
        expired = [call for call, when in self._entries.items() if when <= now]
        for call in expired:
            del self._entries[call]
            call.deadlines = None
        if self._entries:
            self._arm(loop, min(self._entries.values()))
        for call in expired:
            try:
                self._on_expired(call)
            except Exception as exc:  # as a timer of its own would: reported, the others still run
                loop.call_exception_handler({"message": "request timeout failed", "exception": exc})

    def close(self) -> None:
        """Drop every deadline and the timer (the pipeline is closing)."""
        for call in self._entries:
            call.deadlines = None
        self._entries.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
