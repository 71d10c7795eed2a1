"""The UMS client session, with no I/O: request ids, the in-flight table, replay and loss rules.

A WebSocket driver (:mod:`lpm.client.transport.websocket`) owns the socket, the clock's timers
and the callers' futures; everything it must *decide* lives here, in plain Python that unit tests
drive with frames (``tests/unit/protocol/test_session.py``):

* **Ids and the in-flight table.**  :meth:`ClientSession.prepare` gives a request its id, encodes
  its frame and registers it under the current socket *generation* (every socket gets a new one,
  so nothing of an abandoned socket can act on the next).  :meth:`ClientSession.receive_text`
  decodes one text frame and matches a response to its request.
* **The replay policy** (:func:`replay_policy`): what becomes of a request whose socket was lost
  after it was written.  Requests that are harmless to repeat (reads, subscriptions, agent state,
  chat states, read receipts) are written again once a session is restored (``REPLAY``); a
  published message (``RECONCILE``) is looked for in its dialog after the restore and written
  again only if it is not there, so it lands exactly once; anything else (closing, transfers,
  joins...) fails (``FAIL``): UMS has no idempotency keys, repeating it is not safe.
* **Loss** (:meth:`ClientSession.connection_lost`): each request in flight on the lost socket
  gets a :class:`LossVerdict`; the ones in doubt wait in the session until
  :meth:`ClientSession.restored` settles the landed publishes and puts the rest at the front of
  the queue (they were made before anything queued since).
* **The queue**: requests made while no session is ready, written in order once one is.
* **Claims**: the sequences returned to this connection's own publishes, so reconciliation never
  hands one message to two requests (bounded: only recent publishes can be in doubt).
* **Keep-alive bookkeeping**: when the last frame arrived (:attr:`ClientSession.last_received`).

Times are plain floats handed in by the driver (``now``); nothing here reads a clock.
"""

from __future__ import annotations

import contextlib
import enum
import itertools
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec

from lpm.protocol import frames
from lpm.protocol.requests import PublishEventRequest
from lpm.protocol.types import Req, canonical_request

__all__ = [
    "MAX_CLAIMS",
    "SOCKET_SCOPED_REQUESTS",
    "Answered",
    "ClientSession",
    "InvalidFrame",
    "LateResponse",
    "LossVerdict",
    "OutboundRequest",
    "PublishedMessage",
    "Refused",
    "ReplayPolicy",
    "UnexpectedRequest",
    "UnreadableRefusal",
    "WaitVerdict",
    "body_field",
    "landed_sequence",
    "publish_policy",
    "publish_target",
    "replay_policy",
]

#: How many sequences of this connection's own publishes are remembered (see :meth:`ClientSession.claim`).
MAX_CLAIMS = 4096


class ReplayPolicy(enum.Enum):
    """What becomes of a request whose socket was lost after it was written."""

    #: Harmless to repeat: written again once the session is restored.
    REPLAY = "replay"
    #: A published message: looked for in its dialog after the restore, written again if absent.
    RECONCILE = "reconcile"
    #: Not safe to repeat and its outcome is unknown: fails.
    FAIL = "fail"


#: Requests that change nothing when repeated (or whose repetition the server absorbs).
REPLAYABLE_REQUESTS = frozenset(
    {
        Req.GET_CLOCK,
        Req.KEEP_ALIVE,
        Req.GET_USER_PROFILE,
        Req.GET_BRAND_PROFILE,
        Req.SET_USER_PROFILE,
        Req.SET_AGENT_STATE,
        Req.SUBSCRIBE_EX_CONVERSATIONS,
        Req.SUBSCRIBE_ROUTING_TASKS,
        Req.SUBSCRIBE_AGENTS_STATE,
        Req.SUBSCRIBE_MESSAGING_EVENTS,
        Req.QUERY_MESSAGES,
        Req.GENERATE_UPLOAD_URL,
        Req.GENERATE_DOWNLOAD_URL,
        Req.GENERATE_DOWNLOAD_TOKEN,
    }
)
#: Requests whose effect lasts only as long as the socket that answered them: UMS forgets a
#: subscription with its socket.  An answer taken after that socket was lost is worthless (see
#: :meth:`lpm.client.transport.websocket.WebsocketConnection.request`).
SOCKET_SCOPED_REQUESTS = frozenset(
    {
        Req.SUBSCRIBE_EX_CONVERSATIONS,
        Req.SUBSCRIBE_ROUTING_TASKS,
        Req.SUBSCRIBE_AGENTS_STATE,
        Req.SUBSCRIBE_MESSAGING_EVENTS,
    }
)
#: Published events that take a sequence and show up in the dialog (reconciled, never repeated).
CONTENT_EVENTS = frozenset({"ContentEvent", "RichContentEvent"})
#: Published events whose repetition is harmless (a typing state; a receipt the model de-duplicates).
REPEATABLE_EVENTS = frozenset({"ChatStateEvent", "AcceptStatusEvent"})


def body_field(body: Any, name: str) -> Any:
    """The ``name`` field of a request body: a dict (``conn.send``) or a protocol struct
    (:mod:`lpm.protocol.requests`); None when it has none."""
    if isinstance(body, dict):
        return body.get(name)
    return getattr(body, name, None)


# The two below run for every published message: the SDK's own struct is tried first (an exact
# isinstance is the cheapest test), then the dict of ``conn.send``.


def publish_target(body: Any) -> tuple[Any, Any]:
    """``(conversationId, dialogId)`` of a ``PublishEvent`` body (a struct or a dict)."""
    if isinstance(body, PublishEventRequest):
        return body.conversationId, body.dialogId
    if isinstance(body, dict):
        return body.get("conversationId"), body.get("dialogId")
    return None, None


def published_event(body: Any) -> dict[str, Any] | None:
    """The ``event`` object of a ``PublishEvent`` body (a dict, or a struct's event as a dict), or None."""
    if isinstance(body, PublishEventRequest):
        event = body.event
    elif isinstance(body, dict):
        event = body.get("event")
    else:
        return None
    if isinstance(event, dict):
        return event
    if isinstance(event, msgspec.Struct):
        as_dict: dict[str, Any] = msgspec.to_builtins(event)
        return as_dict
    return None


def replay_policy(type_: str, body: Any) -> ReplayPolicy:
    """The :class:`ReplayPolicy` of a request (``type_`` in either dialect)."""
    req = canonical_request(type_)
    if req is Req.PUBLISH_EVENT:
        return publish_policy(body)
    return ReplayPolicy.REPLAY if req in REPLAYABLE_REQUESTS else ReplayPolicy.FAIL


def publish_policy(body: Any) -> ReplayPolicy:
    """The :class:`ReplayPolicy` of a ``PublishEvent`` with this body: it depends on its event."""
    event = published_event(body)
    event_type = event.get("type") if event is not None else None
    if event_type in CONTENT_EVENTS:
        return ReplayPolicy.RECONCILE
    return ReplayPolicy.REPLAY if event_type in REPEATABLE_EVENTS else ReplayPolicy.FAIL


@dataclass(slots=True, eq=False)
class OutboundRequest:
    """One request from the moment it is made until it is settled.

    It may be queued, written, lost with its socket, reconciled and written again; the driver
    subclasses it to attach the caller's future and the current deadline, and sets
    :attr:`settled` once it has completed the caller's wait.
    """

    type: str
    body: Any = None
    headers: Any = None
    metadata: Any = None
    policy: ReplayPolicy = ReplayPolicy.FAIL
    #: Made by a connect attempt (verification, restore) or the keep-alive: tied to one socket,
    #: never queued and never written again.
    bound: bool = False
    #: RECONCILE: where the message goes, and the highest sequence its dialog had seen when the
    #: request was made (the message, if it landed, has a higher one).
    conversation_id: str | None = None
    dialog_id: str | None = None
    floor: int = -1
    #: The frame never left: whatever the policy, it was not processed.
    unwritten: bool = False
    #: The caller's wait is over (answered, failed or given up); nothing more may happen to it.
    settled: bool = False
    req_id: str = ""
    generation: int = 0
    #: Epoch seconds at which it was written (for the ``#request`` / ``#response`` events).
    start: float = 0.0
    #: A success answer's body is handed over as received, JSON (:class:`msgspec.Raw`), for the
    #: caller to decode straight into its own structs (``ms.QueryMessages``: a page of history).
    raw_answer: bool = False


class LossVerdict(enum.Enum):
    """What :meth:`ClientSession.connection_lost` decided for one request in flight."""

    #: Its outcome is unknown and repeating it is not safe (or nothing will come back): it fails.
    FAIL = "fail"
    #: Kept until the next session is restored: then reconciled or written again.
    IN_DOUBT = "in_doubt"


class WaitVerdict(enum.Enum):
    """Why a waiting request fails when the connection will not come back
    (:meth:`ClientSession.drain_waiting`)."""

    #: It was never processed (queued, or harmless to repeat): the connection is just gone.
    NOT_CONNECTED = "not_connected"
    #: It was in flight and may have been processed: nobody can tell.
    OUTCOME_UNKNOWN = "outcome_unknown"


# ------------------------------------------------------------------------- receive events


@dataclass(slots=True)
class Answered:
    """A success response (``code`` < 400) to a request of this session."""

    request: OutboundRequest
    response: frames.Response


@dataclass(slots=True)
class Refused:
    """An error response (``code`` > 399) to a request of this session."""

    request: OutboundRequest
    response: frames.Response


@dataclass(slots=True)
class LateResponse:
    """A response to a request nobody waits for any more (timed out, abandoned, or unknown)."""

    req_id: str
    #: The response itself (a late subscription's id is in it); None only when built by hand.
    response: frames.Response | None = field(default=None, compare=False)


@dataclass(slots=True)
class UnreadableRefusal:
    """A response with ``reqId: null``: the server could not read one of our requests."""

    response: frames.Response


@dataclass(slots=True)
class InvalidFrame:
    """A text frame that is not a valid envelope."""

    error: str
    data: str


@dataclass(slots=True)
class UnexpectedRequest:
    """A request frame from the server (UMS never sends one to a client)."""

    data: str


#: What :meth:`ClientSession.receive_text` returns; a notification comes as its frame (its body
#: still JSON: :class:`lpm.protocol.frames.InboundNotification`).
ReceiveEvent = (
    Answered
    | Refused
    | LateResponse
    | UnreadableRefusal
    | InvalidFrame
    | UnexpectedRequest
    | frames.InboundNotification
)


# ------------------------------------------------------------------------- reconciliation


class PublishedMessage(Protocol):
    """What reconciliation reads of a dialog's message (the object model's ``Message``)."""

    sequence: int | None
    audience: Any
    content_type: Any
    body: Any

    def sent_by_current_user(self) -> bool: ...


def _same_content(message: PublishedMessage, event: dict[str, Any], audience: str) -> bool:
    """Whether a dialog message is the content ``event`` published with ``audience``."""
    if str(message.audience) != audience:
        return False
    if event.get("type") == "RichContentEvent":
        return bool(message.content_type == "RichContentEvent" and message.body == event.get("content"))
    content_type = str(event.get("contentType") or "text/plain")
    return bool(message.content_type == content_type and message.body == event.get("message"))


def landed_sequence(
    request: OutboundRequest, messages: Iterable[PublishedMessage], claimed: set[int] | frozenset[int]
) -> int | None:
    """The sequence of the message a lost publish produced, if ``messages`` hold it: sent by this
    user, newer than anything seen when it was made, the same content, not another request's."""
    event = published_event(request.body)
    if event is None:
        return None
    audience = str(body_field(request.body, "messageAudience") or "ALL")
    for message in messages:
        sequence = message.sequence
        if sequence is None or sequence <= request.floor or sequence in claimed:
            continue
        if message.sent_by_current_user() and _same_content(message, event, audience):
            return int(sequence)
    return None


def _default_request_ids() -> Callable[[], str]:
    counter = itertools.count(1)
    # A random tail, drawn once per session: ids stay unique across connections of one process
    # and across restarts (the tail), and within the session (the counter).  Drawn per request,
    # it cost a uuid4 (os.urandom, a system call) for every request.
    tail = f"-{uuid.uuid4().hex[:12]}"
    return lambda: f"{next(counter)}{tail}"


# ------------------------------------------------------------------------- the session


class ClientSession:
    """The bookkeeping of one connection's requests across its sockets (see the module doc)."""

    def __init__(self, *, request_ids: Callable[[], str] | None = None, max_claims: int = MAX_CLAIMS) -> None:
        self._new_id = request_ids or _default_request_ids()
        self._max_claims = max_claims
        #: The generation of the newest socket (0: none yet).
        self.generation = 0
        #: Written requests awaiting their response, by request id (in write order).
        self._in_flight: dict[str, OutboundRequest] = {}
        #: Requests waiting for a restored session, in the order they were made.
        self._queue: deque[OutboundRequest] = deque()
        #: Requests in flight when their socket was lost, settled once the next session is restored.
        self._in_doubt: list[OutboundRequest] = []
        #: Sequences returned to this connection's publishes, per dialog.
        self._claims: dict[str, set[int]] = {}
        self._claim_order: deque[tuple[str, int]] = deque()
        #: When the last frame arrived (the driver's clock; None: none yet on this socket).
        self.last_received: float | None = None

    # ------------------------------------------------------------------ sockets

    def socket_opened(self) -> int:
        """A new socket: returns its generation."""
        self.generation += 1
        self.last_received = None
        return self.generation

    # ------------------------------------------------------------------ writing and reading

    def prepare(self, request: OutboundRequest, generation: int, start: float) -> bytes:
        """Give ``request`` an id, register it in flight on ``generation`` and return its frame.

        A body that cannot be encoded raises (``msgspec.EncodeError`` / ``TypeError``) before
        anything is registered.
        """
        req_id = self._new_id()
        data = frames.encode(
            frames.Request(
                id=req_id,
                type=request.type,
                body=request.body,
                headers=request.headers,
                metadata=request.metadata,
            )
        )
        request.req_id = req_id
        request.generation = generation
        request.start = start
        request.unwritten = False
        self._in_flight[req_id] = request
        return data

    def receive_text(self, data: str | bytes, now: float | None = None) -> ReceiveEvent:
        """Decode one text frame; a response is matched to (and removed from) the in-flight table."""
        if now is not None:
            self.last_received = now
        try:
            frame = frames.decode_inbound(data, raw_response_body=True)
        except frames.FrameError as exc:
            return InvalidFrame(str(exc), data if isinstance(data, str) else data.decode(errors="replace"))
        if type(frame) is frames.InboundNotification:
            return frame
        if isinstance(frame, frames.Response):
            req_id = frame.reqId
            if req_id is None:
                return UnreadableRefusal(frames.materialize_body(frame))
            request = self._in_flight.pop(req_id, None)
            if request is None or request.settled:
                # Requests are registered before they are written, so this answers one that
                # timed out or whose caller gave up.
                return LateResponse(req_id, frames.materialize_body(frame))
            if frame.code > 399:
                return Refused(request, frames.materialize_body(frame))
            if not request.raw_answer:
                frames.materialize_body(frame)
            if request.policy is ReplayPolicy.RECONCILE:
                self.claim(request, frame.body)
            return Answered(request, frame)
        return UnexpectedRequest(data if isinstance(data, str) else data.decode(errors="replace"))

    def expire(self, request: OutboundRequest) -> bool:
        """The response deadline passed: True if ``request`` was still waiting for its response."""
        if self._in_flight.get(request.req_id) is request:
            del self._in_flight[request.req_id]
            return True
        return False

    def in_flight(self) -> list[OutboundRequest]:
        """Written requests awaiting a response, in write order."""
        return list(self._in_flight.values())

    # ------------------------------------------------------------------ loss

    def connection_lost(self, generation: int, *, recover: bool) -> list[tuple[OutboundRequest, LossVerdict]]:
        """The socket of ``generation`` is gone: decide the fate of each request in flight on it.

        ``recover``: a new session will be attempted (maintenance on, not closing).  A request
        is kept IN_DOUBT when it may be completed by the next session: it is harmless to
        repeat, a publish to reconcile, or never left (``unwritten``); bound requests (tied to
        the lost socket) and unsafe ones fail.
        """
        verdicts: list[tuple[OutboundRequest, LossVerdict]] = []
        for request in [r for r in self._in_flight.values() if r.generation == generation]:
            del self._in_flight[request.req_id]
            if request.settled:
                continue
            if (
                request.bound
                or not recover
                or (request.policy is ReplayPolicy.FAIL and not request.unwritten)
            ):
                verdicts.append((request, LossVerdict.FAIL))
                continue
            self._in_doubt.append(request)
            verdicts.append((request, LossVerdict.IN_DOUBT))
        return verdicts

    def restored(
        self, find_landed: Callable[[OutboundRequest], int | None]
    ) -> tuple[list[tuple[OutboundRequest, int]], list[OutboundRequest]]:
        """A new session is restored: settle what was in doubt.

        Returns ``(landed, requeued)``: the lost publishes that landed, with their sequence (the
        driver completes them), and the requests put back at the front of the queue, in the
        order they were made (before anything queued since).  ``find_landed`` looks a RECONCILE
        request up in its dialog (see :func:`landed_sequence`).
        """
        landed: list[tuple[OutboundRequest, int]] = []
        again: list[OutboundRequest] = []
        for request in self._in_doubt:
            if request.settled:
                continue
            if request.policy is ReplayPolicy.RECONCILE:
                sequence = find_landed(request)
                if sequence is not None:
                    self.claim(request, {"sequence": sequence})
                    landed.append((request, sequence))
                    continue
            again.append(request)
        self._in_doubt = []
        self._queue.extendleft(reversed(again))
        return landed, again

    def in_doubt(self) -> list[OutboundRequest]:
        """Requests lost with their socket, waiting for the next session."""
        return list(self._in_doubt)

    # ------------------------------------------------------------------ the queue

    def enqueue(self, request: OutboundRequest) -> None:
        """Queue a request until a session is ready (behind every request queued before)."""
        self._queue.append(request)

    def dequeue(self) -> OutboundRequest | None:
        """The next queued request that is still awaited (settled ones are skipped), or None."""
        while self._queue:
            request = self._queue.popleft()
            if not request.settled:
                return request
        return None

    @property
    def queued(self) -> int:
        """How many requests are queued."""
        return len(self._queue)

    def is_queued(self, request: OutboundRequest) -> bool:
        return request in self._queue

    def is_in_doubt(self, request: OutboundRequest) -> bool:
        return request in self._in_doubt

    def forget(self, request: OutboundRequest) -> None:
        """Forget ``request`` wherever it is (its caller stopped waiting, or its deadline passed)."""
        if request.req_id and self._in_flight.get(request.req_id) is request:
            del self._in_flight[request.req_id]
        with contextlib.suppress(ValueError):
            self._queue.remove(request)
        with contextlib.suppress(ValueError):
            self._in_doubt.remove(request)

    def drain_waiting(self) -> list[tuple[OutboundRequest, WaitVerdict]]:
        """Everything queued or in doubt, emptied, with why each fails (the connection will not
        come back)."""
        drained = [(r, WaitVerdict.NOT_CONNECTED) for r in self._queue if not r.settled]
        self._queue.clear()
        for request in self._in_doubt:
            if request.settled:
                continue
            verdict = (
                WaitVerdict.NOT_CONNECTED
                if request.policy is ReplayPolicy.REPLAY
                else WaitVerdict.OUTCOME_UNKNOWN
            )
            drained.append((request, verdict))
        self._in_doubt = []
        return drained

    def drain_in_flight(self) -> list[OutboundRequest]:
        """Every request in flight on any socket, emptied (the connection is closing)."""
        drained = [r for r in self._in_flight.values() if not r.settled]
        self._in_flight.clear()
        return drained

    # ------------------------------------------------------------------ claims

    def claim(self, request: OutboundRequest, body: Any) -> None:
        """Remember that a sequence is ``request``'s, so reconciliation never hands the same
        message to two requests (bounded: only recent publishes can be in doubt)."""
        sequence = body.get("sequence") if isinstance(body, dict) else None
        if request.dialog_id is None or not isinstance(sequence, int):
            return
        claims = self._claims.get(request.dialog_id)
        if claims is None:
            claims = self._claims[request.dialog_id] = set()
        claims.add(sequence)
        self._claim_order.append((request.dialog_id, sequence))
        while len(self._claim_order) > self._max_claims:
            old_dialog, old_sequence = self._claim_order.popleft()
            claims = self._claims.get(old_dialog)
            if claims is not None:
                claims.discard(old_sequence)
                if not claims:
                    del self._claims[old_dialog]

    def claimed(self, dialog_id: str) -> frozenset[int]:
        """Sequences of ``dialog_id`` already handed to this connection's publishes."""
        return frozenset(self._claims.get(dialog_id, ()))
