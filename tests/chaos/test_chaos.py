"""Resilience suite: consumers and a bot exchange numbered messages while the fault API breaks things.

A load of consumers (``unauth_connector_id``, so a 4407 renews the same identity) each run
conversation *cycles*: open a conversation, send numbered messages at random intervals, wait for
the bot's numbered replies, close (half of the time the bot closes), and start again.  The bot
accepts every ring and answers each consumer message in order.  Meanwhile a fault injector, driven
by a seeded RNG, fires: socket drops, 4401/4407 closes, token expiries, delayed / refused /
dropped WebSocket requests, 429 and 5xx on login, refresh and the IdP, stalled upgrades, and
restarts of the emulator on its SQLite file (same port) while everyone is connected.

At the end: every message was delivered exactly once and in order on both sides; every
conversation is in the same final state (stage, MAIN state, participants, messages) for the
consumer, the bot and the emulator's world; nothing the SDK reported on ``error`` is outside
the expected transport / auth / request errors; after closing, no SDK task and no socket is
left.  The long run (``make chaos``: ``LPM_CHAOS=long``) also samples what the SDK holds and
checks it stays flat after warm-up: no conversation outlives the caches, and the SDK's other
objects do not grow (see :func:`check_memory` for what is measured and why not bytes).

Bugs it found (fixed, with deterministic regressions in test_regressions.py): the emulator
processed a request held by a delay fault after it had closed the session (4407), so a message the
client had re-sent was stored twice; a consumer whose conversation closed while it was offline
missed the messages sent before the close; a close the brand socket missed never reached the
bot's view; the bot's ``message`` events came out of order (2, 0, 1) when it joined a
conversation it had announced and a reconnect's catch-up overtook the join's history load.

Short by default (part of ``make test``); the seed is printed and attached to any failure;
``LPM_CHAOS_SEED=<n>`` replays a schedule (timings still vary with the machine).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import json
import os
import random
import time
import tracemalloc
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil

import lpm
from lpm.emulator import entities as em
from lpm.emulator import render
from lpm.emulator.app import Emulator
from lpm.errors import (
    AuthenticationError,
    ConnectFailedError,
    ConnectionClosedError,
    HttpError,
    InvalidStateError,
    NotConnectedError,
    QueueTimeoutError,
    RequestError,
    RequestTimeoutError,
    WaitTimeoutError,
)

ACC = "12345678"
UNAUTH_CONNECTOR = "3001"
BOT_USER_ID = "2001"
LONG = os.environ.get("LPM_CHAOS", "").lower() == "long"
SEED = int(os.environ.get("LPM_CHAOS_SEED") or 20261125)


@dataclass(frozen=True)
class Profile:
    consumers: int
    messages: int
    #: Seconds of fault injection (consumers keep cycling until it ends, then finish their cycle).
    fault_seconds: float
    #: When the emulator restarts, as fractions of ``fault_seconds``.
    restarts: tuple[float, ...]
    #: Pause between two faults (uniform).
    fault_gap: tuple[float, float]
    #: Seconds the end of the run may take (finishing cycles once the faults stop).
    settle_timeout: float
    #: Sample the SDK's memory every this many seconds (0: no sampling).
    memory_interval: float
    cache_duration: float


SHORT = Profile(
    consumers=5,
    messages=6,
    fault_seconds=15.0,
    restarts=(0.47,),
    fault_gap=(0.25, 0.8),
    settle_timeout=50.0,
    memory_interval=0.0,
    cache_duration=600.0,
)
LONG_PROFILE = Profile(
    consumers=50,
    messages=8,
    fault_seconds=300.0,
    restarts=(0.2, 0.43, 0.66, 0.86),
    fault_gap=(0.2, 0.8),
    settle_timeout=300.0,
    memory_interval=10.0,
    # Closed conversations leave the SDK's caches quickly, so SDK memory can be flat.
    cache_duration=5.0,
)
PROFILE = LONG_PROFILE if LONG else SHORT
# Overrides for trying a medium run: LPM_CHAOS_CONSUMERS=20 LPM_CHAOS_SECONDS=60.
PROFILE = dataclasses.replace(
    PROFILE,
    consumers=int(os.environ.get("LPM_CHAOS_CONSUMERS") or PROFILE.consumers),
    fault_seconds=float(os.environ.get("LPM_CHAOS_SECONDS") or PROFILE.fault_seconds),
)

FAST: dict[str, Any] = {
    "reconnect_schedule": (0.05, 0.1, 0.2, 0.4),
    # Longer than the longest an injected delay holds a request on the server (2 x 0.3 s).  A
    # request held on a socket the faults drop is handled at the drop (lpm.emulator.ws_session),
    # so its fate is settled before the client reconnects and reconciles it whatever this is; a
    # socket the client itself closes is not seen by the server until the delay ends, and then
    # this margin is what keeps the order.  (Without idempotency keys no client can do better:
    # a server that stores a request after the client re-sent it makes a duplicate.)
    "wait_to_reconnect": 0.7,
    # Injected delays stay well below this, so a timed-out request was never processed.
    "response_timeout": 5.0,
    "connect_timeout": 1.5,
    "request_queue_timeout": 60.0,
    "max_request_queue_time": 60.0,
    "keep_alive_interval": 5.0,
    "conversations_cache_duration": PROFILE.cache_duration,
}
#: What the SDK may report on "error" while the platform misbehaves; anything else is a bug.
EXPECTED_ERRORS = (
    ConnectFailedError,
    ConnectionClosedError,
    AuthenticationError,  # TokenExpiredError: 4401/4407 closes
    HttpError,  # injected 429/5xx on login, refresh, IdP
    RequestError,  # a restore request refused by an injected 5xx
    RequestTimeoutError,  # a restore request dropped by an injected fault
    QueueTimeoutError,
    NotConnectedError,
)
TRANSIENT = (RequestTimeoutError, QueueTimeoutError, NotConnectedError, ConnectionClosedError)
OP_TIMEOUT = 120.0 if LONG else 30.0


class Failure(AssertionError):
    pass


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, TRANSIENT):
        return True
    return isinstance(exc, RequestError) and (exc.code >= 500 or exc.code == 429)


async def persist(
    call: Callable[[], Awaitable[Any]],
    what: str,
    *,
    landed: Callable[[], bool] | None = None,
    accept: Callable[[RequestError], bool] | None = None,
    connected: Callable[[], bool] | None = None,
) -> Any:
    """Run ``call`` until it succeeds, retrying transient failures as an application would.

    ``landed`` tells whether a request whose answer was lost took effect anyway (looked for
    before sending again); ``accept`` turns a refusal into success (e.g. "already closed").
    """
    deadline = time.monotonic() + OP_TIMEOUT
    while True:
        try:
            return await call()
        except RequestError as exc:
            if accept is not None and accept(exc):
                return None
            if not is_transient(exc):
                raise
            error: BaseException = exc
        except TRANSIENT as exc:
            error = exc
        if time.monotonic() > deadline:
            raise Failure(f"{what} kept failing for {OP_TIMEOUT} s: {error!r}")
        if landed is not None and isinstance(error, RequestTimeoutError | ConnectionClosedError):
            # The answer was lost, not necessarily the request (a timeout; or the SDK could not
            # tell whether a publish in flight on a lost socket landed): its notification may
            # still come.  Sending again without looking would duplicate it.  It comes over a
            # session: while the connection is down (the socket often goes with the answer),
            # wait for it to be back (its restore catches up what was missed), then look.
            if connected is not None:
                with contextlib.suppress(Failure):
                    await until(connected, f"{what}: connected again", timeout=OP_TIMEOUT)
            for _ in range(20):
                if landed():
                    return None
                await asyncio.sleep(0.1)
        await asyncio.sleep(0.1)


async def until(
    condition: Callable[[], bool], what: str | Callable[[], str], timeout: float = OP_TIMEOUT
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise Failure(f"timed out waiting for {what if isinstance(what, str) else what()}")
        await asyncio.sleep(0.05)


def bodies(conversation: lpm.Conversation) -> list[tuple[int, str]]:
    return [(m.sequence, m.body) for m in conversation.main_dialog.messages if isinstance(m.body, str)]


@dataclass(frozen=True)
class Final:
    """One side's view of a finished conversation."""

    stage: str
    state: str
    participants: frozenset[tuple[str, str]]
    messages: tuple[tuple[int, str], ...]


def final_of(conversation: lpm.Conversation) -> Final:
    return Final(
        stage=str(conversation.stage),
        state=str(conversation.state),
        participants=frozenset(
            (p.user_id, str(p.role)) for p in conversation.main_dialog.participants if p.is_active
        ),
        messages=tuple(bodies(conversation)),
    )


def final_in_world(emu: Emulator, conv_id: str) -> Final:
    acc = emu.world.accounts[ACC]
    conv = acc.conversations[conv_id]
    main = conv.main

    def shown(participant: em.Participant) -> str:
        user = acc.users.get(participant.id)
        return user.pid if user is not None and participant.role != "CONSUMER" else participant.id

    # Every MAIN dialog shows the platform's CONTROLLER too (lpm.emulator.render), which the
    # world does not keep as a participant.
    controller = (render.controller_pid(ACC), "CONTROLLER")
    return Final(
        stage=conv.stage,
        state=main.state,
        participants=frozenset((shown(p), p.role) for p in main.participants if p.state == "ACTIVE")
        | {controller},
        messages=tuple(
            (r.sequence, r.event["message"])
            for r in acc.events.get(main.dialog_id, [])
            if r.sequence is not None and r.event.get("type") == "ContentEvent"
        ),
    )


# ---------------------------------------------------------------- the parties


TRACE: deque[tuple[float, str, str]] = deque(maxlen=5000)


def trace(who: str, what: str) -> None:
    """Keep the recent history of the run (printed when a check fails)."""
    TRACE.append((time.monotonic(), who, what))


#: Every step of every consumer message's way, by text, kept for the whole run (TRACE keeps only
#: the last seconds): the harness's attempts, the SDK's writes and answers, and what the
#: emulator's sockets received and answered.  Printed for a message the world holds twice.
PUBLISHES: dict[str, list[tuple[float, str]]] = {}
#: Consumer sessions coming and going on the emulator, for the same report.
SESSIONS: deque[tuple[float, int, str]] = deque(maxlen=50_000)
#: Which consumer sent each message (its emulator identity), to pick its sessions from SESSIONS.
SENDERS: dict[str, str] = {}
#: Connection events of every party (disconnect, reconnect, errors, timeouts), for the same report.
CONNECTION_EVENTS: deque[tuple[float, str, str]] = deque(maxlen=100_000)


def publish_summary() -> str:
    """How consumer sends that failed ended: the harness re-sends a message only when it did not
    see it land after the answer was lost, so those re-sends are where a duplicate could come from."""
    failures: Counter[str] = Counter()
    resent_after_lost_answer: list[str] = []
    for text, steps in PUBLISHES.items():
        failed = [what for _, what in steps if what.startswith("harness attempt") and " failed: " in what]
        for what in failed:
            failures[what.split(" failed: ", 1)[1].split("(", 1)[0]] += 1
        lost = any(("RequestTimeoutError" in w or "ConnectionClosedError" in w) for w in failed)
        if lost and sum(1 for _, w in steps if w.startswith("harness attempt") and "(connection" in w) > 1:
            resent_after_lost_answer.append(text)
    return (
        f"consumer sends that failed, by error: {dict(failures)}; sent again after a lost answer "
        f"without seeing it land: {len(resent_after_lost_answer)}\n"
        + "\n".join(publish_report(text) for text in resent_after_lost_answer[:5])
    )


def _sender_name(text: str) -> str:
    """The Recorder name of who sent a message: ``c12.3.4`` -> consumer12, ``b...`` -> bot."""
    return "bot" if text.startswith("b") else f"consumer{text[1:].split('.', 1)[0]}"


def note_publish(text: str, what: str) -> None:
    PUBLISHES.setdefault(text, []).append((time.monotonic(), what))


def publish_report(text: str) -> str:
    """What happened to one message, with the consumer sessions that ended meanwhile."""
    steps = PUBLISHES.get(text, [])
    if not steps:
        return f"{text}: nothing recorded"
    start, end = steps[0][0] - 1.0, steps[-1][0] + 1.0
    base = TRACE[0][0] if TRACE else steps[0][0]
    events = sorted(
        [(t, what) for t, what in steps]
        + [
            (t, f"emu session {sid} detached")
            for t, sid, actor in SESSIONS
            if start <= t <= end and actor == SENDERS.get(text)
        ]
        + [
            (t, f"{who} {what}")
            for t, who, what in CONNECTION_EVENTS
            if start <= t <= end and who == _sender_name(text)
        ]
    )
    return f"{text}:\n" + "\n".join(f"  {t - base:9.3f} {what}" for t, what in events)


class ConsumerSocketTap:
    """The emulator's side of every consumer socket (a :class:`lpm.emulator.hub.FrameTap`):
    per consumer, the sessions coming and going, the conversation requests they received
    (subscribe, unsubscribe, create) and the conversation notifications they sent, as written.
    Printed when a consumer's conversation never got a state notification: whether the emulator
    sent one, on which session and subscription."""

    TRACKED = (b"SubscribeExConversations", b"UnsubscribeExConversations", b"ConsumerRequestConversation")

    def __init__(self) -> None:
        self._cause: tuple[int, str | None] | None = None
        self.by_consumer: dict[str, deque[tuple[Any, ...]]] = {}
        #: request id -> text of the consumer publishes received and not answered yet
        self.publishes: dict[str, str] = {}

    @property
    def cause(self) -> tuple[int, str | None] | None:
        return self._cause

    @cause.setter
    def cause(self, cause: tuple[int, str | None] | None) -> None:
        # Set by a session right before it handles a request: a publish is being stored.
        self._cause = cause
        if cause is not None and str(cause[1]) in self.publishes:
            note_publish(self.publishes[str(cause[1])], f"emu handles session {cause[0]} req {cause[1]}")

    def _log(self, session: Any, *entry: Any) -> None:
        actor = session.actor
        if session.brand or actor is None:
            return
        self.by_consumer.setdefault(actor.id, deque(maxlen=400)).append(
            (round(time.monotonic(), 2), session.id, *entry)
        )

    def inbound(self, session: Any, data: str) -> None:
        raw = data.encode()
        if b"PublishEvent" in raw and not session.brand:
            with contextlib.suppress(Exception):
                frame = json.loads(data)
                text = _text(frame.get("body"))
                self.publishes[str(frame.get("id"))] = text
                SENDERS[text] = session.actor.id
                note_publish(text, f"emu in session {session.id} req {frame.get('id')}")
        if any(kind in raw for kind in self.TRACKED):
            with contextlib.suppress(Exception):
                frame = json.loads(data)
                self._log(session, "in", frame.get("type"), frame.get("id"), frame.get("body"))

    def outbound(self, session: Any, data: bytes) -> None:
        if self.publishes and b"reqId" in data[:60]:
            with contextlib.suppress(Exception):
                frame = json.loads(data)
                text = self.publishes.pop(str(frame.get("reqId")), None)
                if text is not None:
                    note_publish(
                        text,
                        f"emu answer session {session.id} req {frame.get('reqId')} {frame.get('code')} "
                        f"{frame.get('body')}",
                    )
        notification = b"ExConversationChange" in data and b"reqId" not in data[:40]
        tracked_response = b"reqId" in data and (b"subscriptionId" in data or b"conversationId" in data)
        if not notification and not tracked_response:
            return
        with contextlib.suppress(Exception):
            frame = json.loads(data)
            body = frame.get("body")
            if not notification:
                self._log(session, "resp", frame.get("reqId"), frame.get("code"), body)
                return
            changes = [
                (
                    (c.get("result") or {}).get("convId"),
                    c.get("type"),
                    ((c.get("result") or {}).get("conversationDetails") or {}).get("stage"),
                )
                for c in (body or {}).get("changes") or ()
            ]
            self._log(session, "notif", (body or {}).get("subscriptionId"), changes)

    def attached(self, session: Any) -> None:
        self._log(session, "attached")

    def detached(self, session: Any) -> None:
        self._log(session, "detached")
        if not session.brand and session.actor is not None:
            SESSIONS.append((time.monotonic(), session.id, session.actor.id))

    def history(self, consumer_id: str | None) -> list[tuple[Any, ...]]:
        return list(self.by_consumer.get(consumer_id or "", ()))


class Recorder:
    """Errors and connection events of one connection, traced."""

    def __init__(self, conn: lpm.Connection, who: str) -> None:
        #: (type, repr) of every error reported: not the exceptions themselves, whose tracebacks
        #: hold the frames that raised them -- and with them the conversations those frames
        #: worked on (a long run would keep every conversation the bot was refused history of).
        self.errors: list[tuple[type[BaseException], str]] = []
        self.counts: Counter[str] = Counter()
        self.who = who

        def error(exc: BaseException) -> None:
            self.errors.append((type(exc), repr(exc)))
            trace(who, f"error {exc!r}")
            CONNECTION_EVENTS.append((time.monotonic(), who, f"error {exc!r:.200}"))

        def event(name: str, args: Any) -> None:
            self.counts.update([name])
            trace(who, f"{name} {args}")
            CONNECTION_EVENTS.append((time.monotonic(), who, f"{name} {args}"))

        conn.on("error", error)
        for name in ("disconnect", "reconnect"):
            conn.on(name, lambda *args, name=name: event(name, args))
        for req in ("ms.PublishEvent", ".ams.ms.PublishEvent"):
            conn.on(
                f"{req}#request", lambda info: self._publish(f"publish req {info['request']['id']}", info)
            )
            conn.on(
                f"{req}#response",
                lambda info: self._publish(f"publish resp {info['request']['id']} {info['response']}", info),
            )
        conn.on("timeout", lambda exc: event("timeout", exc))
        conn.on("state", lambda state: event("state", state))

    def _publish(self, what: str, info: dict[str, Any]) -> None:
        text = _text(info["request"]["body"])
        trace(self.who, f"{what} {text}")
        if not self.who.startswith("bot"):
            note_publish(text, f"sdk {what}")


def _text(body: Any) -> str:
    event = body.get("event") if isinstance(body, dict) else None
    return str(event.get("message")) if isinstance(event, dict) else "?"


def dump_trace(*names: str) -> str:
    start = TRACE[0][0] if TRACE else 0.0
    return "\n".join(
        f"{t - start:8.3f} {who:>10} {what}" for t, who, what in TRACE if not names or who in names
    )


def awaiting(task: asyncio.Task[Any] | None) -> list[str] | None:
    """The chain of coroutines a task is suspended in, outermost first (None: no task)."""
    if task is None:
        return None
    chain: list[str] = []
    coro: Any = task.get_coro()
    while coro is not None and len(chain) < 12:
        chain.append(getattr(coro, "__qualname__", type(coro).__name__))
        coro = getattr(coro, "cr_await", None)
    return chain


class Bot:
    """Accepts every ring and answers each consumer message ``c...`` with ``b...``, in order.

    It works from the dialog's contents (messages sent before it accepted arrive as history,
    ``get_all_messages``); every ``message`` event it gets is recorded too, to check that the
    SDK emits each message once and in sequence order.
    """

    def __init__(self, chaos: Chaos) -> None:
        self.chaos = chaos
        self.conn = lpm.create_connection(
            account_id=ACC,
            user_type=lpm.UserType.BRAND,
            auth_data={"username": "bot", "password": "bot-password"},
            csds_domain=chaos.emu.csds_domain,
            token_refresh_interval=2.0,  # refreshes happen (and meet their injected faults)
            get_all_messages=True,
            **FAST,
        )
        assert isinstance(self.conn, lpm.BrandWebsocketConnection)
        self.events = Recorder(self.conn, "bot")
        #: conversation id -> consumer message bodies, in the order the bot answered them
        self.received: dict[str, list[str]] = {}
        #: conversation id -> sequences of the consumer's messages, as ``message`` events came
        self.event_sequences: dict[str, list[int]] = {}
        #: conversation id -> the bot's view (held until the conversation is checked)
        self.views: dict[str, lpm.Conversation] = {}
        self._wakeups: dict[str, asyncio.Event] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self.failures: list[BaseException] = []
        #: Seconds from accept() to the announcement, for those over ring_conversation_timeout.
        self.late_announcements: list[float] = []
        #: Conversations that left the bot's feed through a resubscribe snapshot while its view
        #: still said OPEN (they closed while it was offline; the SDK then looks their close up).
        self.left_feed: set[str] = set()
        self.finished: set[str] = set()
        #: Conversations the run has checked (their worker may stop even if the view is stale).
        self.checked: set[str] = set()

    async def start(self) -> None:
        await self.conn.open()
        await persist(lambda: self.conn.set_agent_state(lpm.AgentState.ONLINE), "set agent state")
        routing = await persist(self.conn.create_routing_task_subscription, "routing subscription")
        routing.on("ring", self._on_ring)
        self.conn.on("conversation", self._on_conversation)
        self.conn.on("conversation:message", self._on_message)
        feed = self.conn.default_subscription
        assert feed is not None
        feed.on("conversation-deleted", self._on_left_feed)

    def _on_left_feed(self, conversation: lpm.Conversation) -> None:
        if conversation.stage != lpm.ConversationState.CLOSE:
            self.left_feed.add(conversation.conversation_id)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self.tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                self.failures.append(t.exception())  # type: ignore[arg-type]

        task.add_done_callback(done)

    def _on_ring(self, ring: Any) -> None:
        if ring.is_waiting:
            # "ring not WAITING" (400): it was accepted by an attempt whose answer was lost, or
            # it expired; "ring not found" (404): the emulator restarted (rings are not kept).
            # Either way the conversation is assigned or rings again.
            self._spawn(persist(lambda: self._accept(ring), "accept", accept=lambda e: e.code in (400, 404)))

    async def _accept(self, ring: Any) -> None:
        disconnects = self.events.counts["disconnect"]
        started = time.monotonic()
        try:
            await ring.accept()
        except WaitTimeoutError:
            # Accepted, but not announced within ring_conversation_timeout (30 s).  The socket
            # may have been down meanwhile (the restored feed announces it later), or the
            # announcement waits in the feed's ordered queue behind the history loads of the
            # conversations announced before it: with get_all_messages each is loaded first, and
            # a load that meets a dropped request waits out a 5 s response timeout, then retries
            # -- on a machine where 50 consumers, the bot and the emulator share one event loop,
            # long runs saw 35-47 s.  Late is recorded (printed at the end); never is a failure.
            stuck = self.announcing(ring.conversation_id)
            trace("bot", f"accept {ring.conversation_id}: not announced in 30 s: {stuck}")
            try:
                await self.conn.wait_for_conversation(ring.conversation_id, timeout=120)
            except WaitTimeoutError:
                if self.events.counts["disconnect"] == disconnects and self.conn.state == "connected":
                    raise Failure(
                        f"accept {ring.conversation_id}: not announced in 150 s on a live socket; "
                        f"at 30 s: {stuck}"
                    ) from None
                return
            self.late_announcements.append(round(time.monotonic() - started, 1))

    def announcing(self, conv_id: str) -> str:
        """The bot feed's ordered steps and preparations (for a late announcement)."""
        feed = self.conn.default_subscription
        if feed is None:
            return "no feed"
        cached = self.conn.get_conversation_by_id(conv_id)
        return (
            f"cached {cached is not None}, announced {cached.announced if cached else None}, in feed "
            f"{feed.get(conv_id) is not None}, feed {feed!r}, steps queued "
            f"{[getattr(step, '__qualname__', repr(step)) for step in feed._steps]}, running "
            f"{awaiting(feed._worker)}, preparations queued {len(feed._prepare_queue)}, preparers "
            f"{[awaiting(task) for task in feed._join_loads]}"
        )

    def _on_conversation(self, conversation: lpm.Conversation) -> None:
        # Announced once its history is loaded (get_all_messages): only then does the bot know
        # every message sent before it accepted, and start answering.
        self._wake(conversation, start=True)

    def _on_message(self, conversation: lpm.Conversation, message: Any) -> None:
        if isinstance(message.body, str) and message.body.startswith("c"):
            self.event_sequences.setdefault(conversation.conversation_id, []).append(message.sequence)
        self._wake(conversation)

    def _wake(self, conversation: lpm.Conversation, *, start: bool = False) -> None:
        conv_id = conversation.conversation_id
        if conv_id in self.finished:
            return  # answered and closed already
        wakeup = self._wakeups.get(conv_id)
        if wakeup is None:
            if not start:
                return  # a live message ahead of the announcement: the announcement starts the worker
            wakeup = self._wakeups[conv_id] = asyncio.Event()
            self.views[conv_id] = conversation
            self.received[conv_id] = []
            self._spawn(self._answer(conversation, wakeup))
        wakeup.set()

    async def _answer(self, conversation: lpm.Conversation, wakeup: asyncio.Event) -> None:
        conv_id = conversation.conversation_id
        answered = -1
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wakeup.wait(), 0.5)
            wakeup.clear()
            todo = [
                m
                for m in conversation.main_dialog.messages
                if isinstance(m.body, str)
                and m.body.startswith("c")
                # in order: nothing is answered while an earlier message is still missing
                and answered < m.sequence <= conversation.main_dialog.last_contiguous_sequence
            ]
            for message in todo:
                answered = message.sequence
                self.received[conv_id].append(message.body)
                await send(conversation, "b" + message.body[1:].removesuffix("#close"), self.conn)
                if message.body.endswith("#close"):
                    await close(conversation)
                    break
            else:
                if conversation.stage != lpm.ConversationState.CLOSE and conv_id not in self.checked:
                    continue
            # closed (by the consumer, or by the bot just now): nothing more to answer
            self.finished.add(conv_id)
            del self._wakeups[conv_id]
            return


async def send(conversation: lpm.Conversation, body: str, conn: lpm.Connection) -> None:
    def landed() -> bool:
        found = any(text == body for _, text in bodies(conversation))
        if found:
            note_publish(body, "harness: landed (seen in the consumer's view)")
        return found

    attempts = 0

    async def attempt() -> Any:
        nonlocal attempts
        attempts += 1
        note_publish(body, f"harness attempt {attempts} (connection {conn.state})")
        try:
            result = await conversation.send_message(body)
        except BaseException as exc:
            note_publish(body, f"harness attempt {attempts} failed: {exc!r:.300}")
            raise
        note_publish(body, f"harness attempt {attempts} answered {result!r:.100}")
        return result

    refused_as_closed = False

    def closed_meanwhile(error: RequestError) -> bool:
        # An earlier attempt landed (its answer was lost) and the other side answered and
        # closed before this retry: the retry is refused, the message is there all the same.
        nonlocal refused_as_closed
        refused_as_closed = error.code == 400 and "is closed" in str(error.body)
        return refused_as_closed

    await persist(
        attempt,
        f"send {body}",
        landed=landed,
        accept=closed_meanwhile,
        connected=lambda: conn.state == lpm.ConnectionState.CONNECTED,
    )
    if refused_as_closed:
        await until(landed, f"{body} (refused as closed on a retry) landed before the close")


async def close(conversation: lpm.Conversation) -> None:
    async def attempt() -> None:
        if conversation.stage == lpm.ConversationState.CLOSE:
            return
        with contextlib.suppress(InvalidStateError):  # CLOSING: another attempt is under way
            await conversation.close()

    # 400: closing a closed conversation (an earlier attempt landed but its answer was lost).
    await persist(attempt, f"close {conversation.conversation_id}", accept=lambda e: e.code == 400)


class Consumer:
    def __init__(self, chaos: Chaos, index: int) -> None:
        self.chaos = chaos
        self.index = index
        self.rng = random.Random(SEED * 1000 + index)
        self.conn = lpm.create_connection(
            account_id=ACC,
            user_type=lpm.UserType.CONSUMER,
            csds_domain=chaos.emu.csds_domain,
            unauth_connector_id=UNAUTH_CONNECTOR,
            # Long run: a feed of open conversations only, so closed ones leave the SDK's cache
            # (the default feed keeps every conversation of the consumer, growing by design).
            default_subscription_query={"stage": ["OPEN"]} if LONG else None,
            **FAST,
        )
        assert isinstance(self.conn, lpm.ConsumerWebsocketConnection)
        self.events = Recorder(self.conn, f"consumer{index}")
        self.cycles = 0
        #: The conversation of the cycle under way (held by the run: not a leak).
        self.current: lpm.Conversation | None = None
        #: The last conversation notifications as received: (seconds, subscription id, the feed's
        #: id then, [(conversation id, change type, stage)]) -- which subscription carried what.
        self.received_changes: deque[tuple[float, Any, Any, list[tuple[Any, Any, Any]]]] = deque(maxlen=300)
        self.conn.on("conversationNotification", self._record_changes)

    def _record_changes(self, body: dict[str, Any]) -> None:
        feed = self.conn.default_subscription
        changes = [
            (
                (change.get("result") or {}).get("convId"),
                change.get("type"),
                ((change.get("result") or {}).get("conversationDetails") or {}).get("stage"),
            )
            for change in body.get("changes") or ()
            if isinstance(change, dict)
        ]
        self.received_changes.append(
            (
                round(time.monotonic(), 2),
                body.get("subscriptionId"),
                feed.subscription_id if feed else None,
                changes,
            )
        )

    async def open_conversation(self) -> lpm.Conversation:
        conn = self.conn
        while True:
            try:
                conversation: lpm.Conversation = await persist(
                    lambda: conn.create_conversation(skill_id="11"), "create conversation"
                )
                return conversation
            except RequestError as exc:
                # An earlier attempt created it but its answer was lost: adopt that one.
                if exc.code != 400 or "open conversation" not in str(exc.body):
                    raise
                found = await self.adopt(str(exc.body).rsplit(" ", 1)[-1])
                if found.stage == lpm.ConversationState.CLOSE:
                    continue
                await persist(found.subscribe_messaging, "subscribe messaging")
                return found

    async def adopt(self, conv_id: str) -> lpm.Conversation:
        conn = self.conn
        await until(lambda: conn.get_conversation_by_id(conv_id) is not None, f"adopt {conv_id}")
        found: lpm.Conversation = conn.get_conversation_by_id(conv_id)
        return found

    def describe(self, conversation: lpm.Conversation) -> str:
        """The consumer's side of a conversation (for failure messages)."""
        feed = self.conn.default_subscription
        conv_id = conversation.conversation_id
        world = self.chaos.emu.world.accounts[ACC].conversations.get(conv_id)
        return (
            f"world stage {world.stage if world else None}, consumer state {self.conn.state}, "
            f"view {final_of(conversation)}, cached {conv_id in self.conn.conversations}, feed {feed!r} "
            f"holds it {feed.get(conv_id) is not None if feed else None}, departed "
            f"{sorted(feed._departed) if feed else None}, reconnects {self.events.counts}, "
            f"errors {[text for _, text in self.events.errors[-5:]]}, errors about it "
            f"{[text for _, text in self.events.errors if conv_id in text]}; "
            f"{self._bookkeeping(conversation)}"
        )

    def _bookkeeping(self, conversation: lpm.Conversation) -> str:
        """How the consumer's conversation took its notifications, and what the emulator's
        sessions of this consumer subscribe to (which subscription should carry the close)."""
        conv_id = conversation.conversation_id
        feed = self.conn.default_subscription
        world = self.chaos.emu.world.accounts[ACC].conversations.get(conv_id)
        hub = self.chaos.emu.ctx.hub
        main = conversation.main_dialog
        named = [r for r in self.received_changes if any(c[0] == conv_id for c in r[3])]
        tapped = self.chaos.tap.history(world.consumer_id if world else None)
        sessions = [
            {
                "subs": {sid: conv_id in sub.known for sid, sub in session.conv_subs.items()},
                "consumer": session.actor.id if session.actor else None,
                "streams main": main.dialog_id in session.dialog_subs,
            }
            for session in hub.sessions
            if world is not None and session.actor is not None and session.actor.id == world.consumer_id
        ]
        dialogs = None
        if world is not None:
            dialogs = [(d.dialog_id[:8], d.state, d.closed_by, d.closed_cause) for d in world.dialogs]
        return (
            f"world dialogs {dialogs}, close reason {world.close_reason if world else None}, "
            f"notifications {conversation.notification_count}, ignored "
            f"{conversation.notification_ignored_count}, out of order "
            f"{conversation.notification_out_of_order_count}, view update_time {conversation.update_time}, "
            f"world last_update_ts {world.last_update_ts if world else None}, feed subscription "
            f"{feed.subscription_id if feed else None} ({feed.state if feed else None}), emulator sessions "
            f"of this consumer {sessions}; main dialog: contiguous {main._contiguous}, seen above "
            f"{sorted(main._seen)}, holds {main._holds} ({len(main._held)} held), streaming "
            f"{main._ms_subscribed}, connection holds {self.conn._held_events!r:.200}; conversation "
            f"notifications that named it {named}; the last ten received {list(self.received_changes)[-10:]}"
            f"; the emulator's sockets of this consumer: {tapped}"
        )

    async def run(self) -> None:
        await self.conn.open()
        while not self.chaos.stopping.is_set():
            await self.cycle()
            self.cycles += 1

    async def cycle(self) -> None:
        chaos, rng, count, bot = self.chaos, self.rng, PROFILE.messages, self.chaos.bot
        conversation = self.current = await self.open_conversation()
        conv_id = conversation.conversation_id
        received: list[str] = []
        conversation.on("message", lambda m: received.append(m.body) if str(m.body).startswith("b") else None)
        bot_closes = rng.random() < 0.5
        sent = [f"c{self.index}.{self.cycles}.{i}" for i in range(count)]
        for i, body in enumerate(sent):
            try:
                closing = "#close" if bot_closes and i == count - 1 else ""
                await send(conversation, body + closing, self.conn)
            except RequestError as exc:
                raise Failure(f"send {body} to {conv_id}: {exc!r}; {self.describe(conversation)}") from exc
            await asyncio.sleep(rng.uniform(0.02, 0.3))
        if bot_closes:
            sent[-1] += "#close"
        expected_replies = ["b" + body[1:].removesuffix("#close") for body in sent]
        await until(
            lambda: len(received) >= count,
            lambda: (
                f"replies in {conv_id}: consumer got {received}, bot got {bot.received.get(conv_id)}, "
                f"consumer view {final_of(conversation)}, {chaos.describe(conv_id)}; consumer side: "
                f"{self.describe(conversation)}"
            ),
        )
        if not bot_closes:
            await close(conversation)
        await until(
            lambda: conversation.stage == lpm.ConversationState.CLOSE,
            lambda: f"{conv_id} closed (consumer): {self.describe(conversation)}",
        )
        await until(lambda: len(bot.received.get(conv_id, ())) >= count, f"{conv_id} messages at the bot")
        bot_view = bot.views[conv_id]
        await until(
            lambda: len(bodies(bot_view)) >= 2 * count and len(bodies(conversation)) >= 2 * count,
            lambda: (
                f"{conv_id}: every message on both sides: consumer {final_of(conversation)}"
                f", bot {final_of(bot_view)}, {chaos.describe(conv_id)}"
            ),
        )
        # The bot learns of the close from its feed, or after a reconnect from the lookup of what
        # left its feed meanwhile: its view is recorded once closed.  (10 s used to be the wait
        # here, and the bot's view was recorded OPEN when the bot was still reconnecting -- a
        # refused login with back-off, stalled upgrades -- and took longer.)
        note = ""
        try:
            await until(lambda: bot_view.stage == lpm.ConversationState.CLOSE, "bot view closed")
        except Failure:
            feed = bot.conn.default_subscription
            note = (
                f"bot view not closed after {OP_TIMEOUT} s: {chaos.describe(conv_id)}; bot feed steps "
                f"{len(feed._steps)}, worker {feed._worker}, departed {sorted(feed._departed)}, "
                f"cached {conv_id in bot.conn.conversations}, bot view is cached "
                f"{bot.conn.get_conversation_by_id(conv_id) is bot_view}"
            )
            trace(f"consumer{self.index}", note)
        chaos.record(conv_id, sent, expected_replies, received, final_of(conversation), final_of(bot_view))
        chaos.outcomes[conv_id].note = note
        del bot.views[conv_id]
        self.current = None


# ---------------------------------------------------------------- the run


@dataclass
class Outcome:
    sent: list[str]
    replies: list[str]
    consumer_got: list[str]
    bot_got: list[str]
    consumer_view: Final
    bot_view: Final
    #: sequences of the consumer's messages as the bot's ``message`` events came
    bot_events: list[int] = field(default_factory=list)
    #: what was seen when the bot's view did not close in time
    note: str = ""


#: A conversation found loose (see check_memory) in this many consecutive samples is reported
#: as kept (with what holds it): with samples 10 s apart, loose for at least 20 s.
LOOSE_SAMPLES = 3
#: Modules of the conversation model: their objects (dialogs, messages, participants, delivery
#: states) all keep their conversation alive, so counting loose conversations covers them.
CONVERSATION_MODEL = frozenset(
    {
        "lpm.client.model.conversation",
        "lpm.client.model.dialog",
        "lpm.client.model.message",
        "lpm.client.model.participant",
    }
)


@dataclass(frozen=True)
class MemorySample:
    time: float
    #: Bytes allocated in lpm/client and still live (tracemalloc; see check_memory).
    traced: int
    rss: int
    #: Conversations cached by all the parties' connections.
    cached: int
    #: Live objects of SDK classes outside the conversation model (connections, subscriptions,
    #: requests, rings, token maintainers...).
    objects: int
    #: Conversations alive though no connection caches them and the run holds none of them.
    loose: int
    #: Of those, how many were loose in the samples before too (LOOSE_SAMPLES in a row).
    kept: int = 0


@dataclass
class Chaos:
    db: Path
    emu: Emulator
    rng: random.Random = field(default_factory=lambda: random.Random(SEED))
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    #: (count, referrers of a few of them) of each sample that found conversations kept loose.
    loose_holders: list[tuple[int, list[list[str]]]] = field(default_factory=list)
    #: The loose conversations of the last samples, as (object id, conversation id).
    loose_recent: deque[set[tuple[int, str]]] = field(default_factory=lambda: deque(maxlen=LOOSE_SAMPLES))
    faults: Counter[str] = field(default_factory=Counter)
    memory: list[MemorySample] = field(default_factory=list)
    first_snapshot: tracemalloc.Snapshot | None = None
    #: Where the SDK's memory grew most between the first samples and the last.
    growth: list[str] = field(default_factory=list)
    consumers: list[Consumer] = field(default_factory=list)
    bot: Bot = None  # type: ignore[assignment]
    restarts: int = 0
    #: What the emulator's consumer sockets received and sent of conversation subscriptions.
    tap: ConsumerSocketTap = field(default_factory=ConsumerSocketTap)

    def record(
        self,
        conv_id: str,
        sent: list[str],
        replies: list[str],
        consumer_got: list[str],
        consumer_view: Final,
        bot_view: Final,
    ) -> None:
        self.bot.checked.add(conv_id)
        self.outcomes[conv_id] = Outcome(
            sent,
            replies,
            list(consumer_got),
            list(self.bot.received.pop(conv_id)),
            consumer_view,
            bot_view,
            self.bot.event_sequences.pop(conv_id, []),
        )

    def describe(self, conv_id: str) -> str:
        """What the emulator and the bot hold of a conversation (for failure messages)."""
        acc = self.emu.world.accounts[ACC]
        conv = acc.conversations.get(conv_id)
        world = final_in_world(self.emu, conv_id) if conv is not None else None
        task = acc.tasks.get(conv_id)
        rings = [(r.ring_id, r.state) for r in task.rings] if task is not None else None
        view = self.bot.conn.get_conversation_by_id(conv_id)
        feed = self.bot.conn.default_subscription
        in_feed = feed.get(conv_id) is not None if feed is not None else None
        return (
            f"in bot feed {in_feed} (feed {feed!r}, loaded {feed.loaded if feed else None}), "
            f"bot reconnects {self.bot.events.counts}, "
            f"bot errors {[text for _, text in self.bot.events.errors[-5:]]}, "
            f"world {world}, rings {rings}, bot state {self.bot.conn.state}, bot view "
            f"{final_of(view) if view is not None else None}, routing listeners {acc.routing_listeners}"
        )

    async def control(self, http: aiohttp.ClientSession, path: str, body: dict[str, Any]) -> Any:
        trace("faults", f"{path} {body}")
        async with http.post(f"{self.emu.base_url}/_emulator/{path}", json=body) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()

    async def restart(self) -> None:
        """Stop the emulator under everyone's feet and start a new one on the same file and port."""
        port = self.emu.port
        trace("faults", "restart")
        await self.emu.stop()
        await asyncio.sleep(self.rng.uniform(0.1, 0.8))
        self.emu = Emulator(db=self.db, port=port, faults=True)
        await self.emu.start()
        assert self.emu.ctx is not None
        self.emu.ctx.hub.tap = self.tap
        self.restarts += 1

    async def inject(self) -> None:
        rng, started = self.rng, time.monotonic()
        restarts = list(PROFILE.restarts)
        stalled = False
        async with aiohttp.ClientSession() as http:
            while time.monotonic() - started < PROFILE.fault_seconds:
                await asyncio.sleep(rng.uniform(*PROFILE.fault_gap))
                if restarts and time.monotonic() - started >= restarts[0] * PROFILE.fault_seconds:
                    restarts.pop(0)
                    self.faults["restart"] += 1
                    await self.restart()
                    continue
                if stalled and rng.random() < 0.5:
                    await self.control(http, "upgrades/release", {})
                    stalled = False
                kind = rng.choice(FAULT_KINDS)
                self.faults[kind] += 1
                stalled = await self.fire(http, kind) or stalled
            await self.control(http, "upgrades/release", {})
            await self.control(http, "reset", {})

    def _consumer_filter(self) -> dict[str, Any]:
        connected = [c for c in self.consumers if c.conn.user_id]
        if connected and self.rng.random() < 0.7:
            return {"consumer_id": self.rng.choice(connected).conn.user_id}
        return {"dialect": "consumer"}

    async def fire(self, http: aiohttp.ClientSession, kind: str) -> bool:
        """Inject one fault; True when upgrades were left stalled."""
        rng = self.rng
        if kind == "drop":
            target = rng.choice([{"dialect": "brand"}, self._consumer_filter(), {}])
            await self.control(http, "sockets/drop", target)
        elif kind == "close-4401":
            target = rng.choice([{"dialect": "brand"}, self._consumer_filter()])
            await self.control(http, "sockets/close", {"code": 4401, **target})
        elif kind == "close-4407":
            await self.control(http, "sockets/close", {"code": 4407, **self._consumer_filter()})
        elif kind == "expire-tokens":
            target = rng.choice([{"user_id": BOT_USER_ID}, self._consumer_filter()])
            target.pop("dialect", None)
            await self.control(http, "tokens/expire", target)
        elif kind == "ws-delay":
            await self.control(
                http,
                "requests",
                {"count": rng.randint(1, 2), "action": "delay", "delay": round(rng.uniform(0.05, 0.3), 3)},
            )
        elif kind == "ws-refuse":
            status = rng.choice([500, 503])
            await self.control(
                http, "requests", {"count": rng.randint(1, 3), "action": "refuse", "status": status}
            )
        elif kind == "ws-drop":
            await self.control(http, "requests", {"count": 1, "action": "drop"})
        elif kind in ("login", "refresh", "idp"):
            status = rng.choice([429, 500, 502, 503])
            count = rng.randint(1, 2)
            await self.control(
                http, "http", {"target": kind, "count": count, "action": "refuse", "status": status}
            )
            # make the call happen: a login after a 4401, an IdP call after a 4407
            if kind == "login":
                await self.control(http, "sockets/close", {"code": 4401, "dialect": "brand"})
            elif kind == "idp":
                await self.control(http, "sockets/close", {"code": 4407, **self._consumer_filter()})
        elif kind == "stall":
            await self.control(http, "upgrades/stall", {"count": rng.randint(1, 3)})
            target = rng.choice([{"dialect": "brand"}, self._consumer_filter()])
            await self.control(http, "sockets/drop", target)
            return True
        else:  # pragma: no cover - FAULT_KINDS and this function go together
            raise AssertionError(kind)
        return False

    def census(self, *, describe: bool = False) -> tuple[int, int, int]:
        """(live objects of the SDK's classes other than the conversation model, conversations
        alive though neither cached by a connection nor held by the run, how many of those were
        loose in each of the last LOOSE_SAMPLES samples)."""
        held = {id(c) for party in [self.bot, *self.consumers] for c in party.conn.conversations.all()}
        held |= {id(c) for c in self.bot.views.values()}
        held |= {id(c.current) for c in self.consumers if c.current is not None}
        objects = 0
        strays: dict[tuple[int, str], lpm.Conversation] = {}
        for obj in gc.get_objects():
            module = type(obj).__dict__.get("__module__")  # (classes' __module__ is a descriptor)
            if not isinstance(module, str) or not module.startswith("lpm.client."):
                continue
            if module not in CONVERSATION_MODEL:
                objects += 1
            elif isinstance(obj, lpm.Conversation) and id(obj) not in held:
                strays[(id(obj), obj.conversation_id)] = obj
        self.loose_recent.append(set(strays))
        kept: set[tuple[int, str]] = set()
        if len(self.loose_recent) == LOOSE_SAMPLES:
            kept = set.intersection(*self.loose_recent)
        if kept or (describe and strays):
            # What holds them (printed with the failure): the types of their referrers.
            described = sorted(kept or strays)[:5]
            self.loose_holders.append((len(kept or strays), holders_of([strays[key] for key in described])))
        return objects, len(strays), len(kept)

    async def drain_loose(self, timeout: float) -> None:
        """Once the faults stopped and every cycle finished: the conversations found loose on
        the way (in flight during outages) must all be released.  One still loose after
        ``timeout`` seconds of calm is held for good -- a leak -- and fails with its holders."""
        deadline = time.monotonic() + timeout
        while True:
            gc.collect()
            late = time.monotonic() > deadline
            _, loose, _ = self.census(describe=late)
            if loose == 0:
                return
            if late:
                raise AssertionError(
                    f"{loose} conversation(s) still held outside the caches {timeout:g} s after the "
                    f"faults stopped; held by {self.loose_holders[-1]}"
                )
            await asyncio.sleep(1.0)

    async def sample_memory(self) -> None:
        process = psutil.Process()
        while True:
            await asyncio.sleep(PROFILE.memory_interval)
            gc.collect()
            snapshot = tracemalloc.take_snapshot().filter_traces(
                # allocations made by the SDK's object model and transports (the emulator runs in
                # this process too: its world grows by design, and frames.py is shared)
                [tracemalloc.Filter(True, "*/lpm/client/*")]
            )
            sdk = sum(stat.size for stat in snapshot.statistics("filename"))
            cached = sum(len(party.conn.conversations) for party in [self.bot, *self.consumers])
            objects, loose, kept = self.census()
            self.memory.append(
                MemorySample(time.monotonic(), sdk, process.memory_info().rss, cached, objects, loose, kept)
            )
            if len(self.memory) == 2:
                self.first_snapshot = snapshot
            elif self.first_snapshot is not None:
                self.growth = [str(stat) for stat in snapshot.compare_to(self.first_snapshot, "lineno")[:8]]


FAULT_KINDS = (
    "drop",
    "drop",
    "close-4401",
    "close-4407",
    "expire-tokens",
    "ws-delay",
    "ws-delay",
    "ws-refuse",
    "ws-drop",
    "login",
    "refresh",
    "idp",
    "stall",
)


def emulator_connections(port: int) -> list[Any]:
    """TCP connections of this process to or from the emulator's port (listener excluded)."""
    return [
        c
        for c in psutil.Process().net_connections(kind="tcp")
        if c.status != psutil.CONN_LISTEN
        and ((c.laddr and c.laddr.port == port) or (c.raddr and c.raddr.port == port))
    ]


async def test_chaos(tmp_path: Path) -> None:
    print(f"chaos seed {SEED} ({'long' if LONG else 'short'}; replay with LPM_CHAOS_SEED={SEED})")
    started = time.monotonic()
    if PROFILE.memory_interval:
        tracemalloc.start()
    emu = await Emulator(db=tmp_path / "world.sqlite", port=0, faults=True).start()
    chaos = Chaos(db=tmp_path / "world.sqlite", emu=emu)
    assert emu.ctx is not None
    emu.ctx.hub.tap = chaos.tap
    tasks_before = asyncio.all_tasks()
    try:
        await run(chaos)
        check(chaos)
        await shut_down(chaos, tasks_before)
    except BaseException as exc:
        print(dump_trace())
        exc.add_note(f"chaos seed {SEED}: replay with LPM_CHAOS_SEED={SEED}")
        for party in [*chaos.consumers, *([chaos.bot] if chaos.bot else [])]:
            await party.conn.close()
        raise
    finally:
        await chaos.emu.stop()
        if PROFILE.memory_interval:
            tracemalloc.stop()
    # the emulator is gone too: nothing of this run may still hold a socket
    await until(lambda: not emulator_connections(chaos.emu.port), "sockets to close", timeout=10)
    print(
        f"chaos done in {time.monotonic() - started:.1f} s: {len(chaos.outcomes)} conversations, "
        f"{sum(len(o.sent) * 2 for o in chaos.outcomes.values())} messages, faults {dict(chaos.faults)}, "
        f"{len(chaos.bot.left_feed)} closed while the bot was offline, accepted conversations announced "
        f"after more than 30 s: {sorted(chaos.bot.late_announcements)}"
    )
    print(publish_summary())


async def run(chaos: Chaos) -> None:
    chaos.bot = Bot(chaos)
    await chaos.bot.start()
    chaos.consumers = [Consumer(chaos, i) for i in range(PROFILE.consumers)]
    runners = [asyncio.create_task(c.run(), name=f"chaos-consumer-{c.index}") for c in chaos.consumers]
    sampler = asyncio.create_task(chaos.sample_memory()) if PROFILE.memory_interval else None
    try:
        await chaos.inject()
        chaos.stopping.set()
        done, pending = await asyncio.wait(runners, timeout=PROFILE.settle_timeout)
        for task in done:
            task.result()  # a consumer's failure, with its own message
        assert not pending, f"{len(pending)} consumers did not finish their cycle after the faults stopped"
        assert not chaos.bot.failures, chaos.bot.failures
        if PROFILE.memory_interval:
            await chaos.drain_loose(timeout=60.0)
    finally:
        for task in [*runners, *([sampler] if sampler else [])]:
            task.cancel()
        await asyncio.gather(*runners, *([sampler] if sampler else []), return_exceptions=True)
    if sampler is not None and not sampler.cancelled() and sampler.exception() is not None:
        raise AssertionError("the memory sampler failed") from sampler.exception()
    assert not PROFILE.memory_interval or chaos.memory, "no memory sample was taken"


def check(chaos: Chaos) -> None:
    emu = chaos.emu
    for m in chaos.memory:  # first: a long run's numbers are worth having even if it fails
        print(
            f"memory t={m.time - chaos.memory[0].time:6.0f}s traced={m.traced / 1e6:7.2f} MB "
            f"rss={m.rss / 1e6:7.1f} MB cached conversations={m.cached} sdk objects={m.objects} "
            f"loose conversations={m.loose} (kept {m.kept})"
        )
    assert chaos.restarts == len(PROFILE.restarts)
    assert chaos.outcomes, "no conversation completed"
    assert all(c.cycles >= 1 for c in chaos.consumers)
    for conv_id, outcome in chaos.outcomes.items():
        if outcome.note:
            print(f"{conv_id}: {outcome.note}")
    for conv_id in chaos.outcomes:
        counts = Counter(text for _, text in final_in_world(emu, conv_id).messages)
        for text in [t for t, n in counts.items() if n > 1]:
            print(f"stored {counts[text]} times in {conv_id}: {publish_report(text)}")
    for conv_id, outcome in chaos.outcomes.items():
        world = final_in_world(emu, conv_id)
        # exactly once, in order, on both sides
        assert outcome.bot_got == outcome.sent, (conv_id, outcome, world)
        assert outcome.consumer_got == outcome.replies, (conv_id, outcome, world)
        # the bot's message events: each consumer message at most once, in sequence order
        assert outcome.bot_events == sorted(set(outcome.bot_events)), (conv_id, outcome.bot_events)
        # the same final state for the consumer, the bot and the emulator
        assert world.stage == world.state == "CLOSE", (conv_id, world)
        assert outcome.consumer_view == world, (conv_id, outcome.consumer_view, world)
        assert outcome.bot_view == world, (conv_id, outcome.bot_view, world, outcome.note)
        texts = [text for _, text in world.messages]
        assert sorted(texts) == sorted(outcome.sent + outcome.replies), (conv_id, texts)
        assert [s for s, _ in world.messages] == list(range(len(texts)))
    # every conversation the world holds was completed by the run (none left behind open)
    conversations = emu.world.accounts[ACC].conversations
    assert set(conversations) == set(chaos.outcomes), set(conversations) ^ set(chaos.outcomes)
    unexpected = [
        text
        for party in [chaos.bot.events, *(c.events for c in chaos.consumers)]
        for kind, text in party.errors
        if not issubclass(kind, EXPECTED_ERRORS)
    ]
    assert unexpected == [], unexpected
    reconnects = sum(c.events.counts["reconnect"] for c in chaos.consumers)
    assert reconnects > 0 and chaos.bot.events.counts["reconnect"] > 0
    if chaos.memory:
        print("SDK memory growth by line since the second sample:", *chaos.growth, sep="\n  ")
        print("what held conversations kept loose:", *chaos.loose_holders, sep="\n  ")
        check_memory(chaos.memory)


def holders_of(conversations: list[lpm.Conversation]) -> list[list[str]]:
    """For each conversation, what refers to it (type names; for dicts and lists, what refers
    to them in turn): the objects that keep a conversation alive beyond the caches."""
    found = []
    for conversation in conversations:
        names = []
        for ref in gc.get_referrers(conversation):
            if isinstance(ref, dict | list | set | tuple):
                outer = [type(r).__qualname__ for r in gc.get_referrers(ref)[:4] if r is not conversations]
                names.append(f"{type(ref).__name__} in {outer}")
            elif ref is not conversations:
                # An object of the model (a dialog): what refers to it, but the conversation.
                outer = [type(r).__qualname__ for r in gc.get_referrers(ref) if r is not conversation][:6]
                names.append(f"{type(ref).__qualname__} in {outer}")
        found.append(names[:8])
    return found


def check_memory(samples: list[MemorySample]) -> None:
    """The SDK holds no more after warm-up (the first third of the run) than before.

    What must be flat in the steady state -- the same number of consumers cycling through
    conversations that open, close and leave the caches (``conversations_cache_duration`` 5 s
    after the feeds drop them; the consumers' long-run feed shows open conversations only):

    * no conversation outlives the caches: every live conversation object is cached by a
      connection or held by the run (the bot's views, each consumer's current conversation),
      give or take those in flight -- a closed-conversation lookup, a step still running, and
      during an outage the steps queued until the socket is back (a dialog subscription to
      retry), which hold the conversations they work on until they ran.  Their number follows
      the outages, not the run's length (an outage of a minute -- a restart, stalled upgrades,
      refused logins -- holds them for a minute), so neither a count with a slack (long runs
      found 11 to 17 over a slack of 10) nor an age (runs found some held 70 s, then
      released) tells a leak.  What is checked is that none of them stays: once the faults
      stopped and every cycle finished, every loose conversation must be released within
      60 s (:meth:`Chaos.drain_loose`).  The samples print how many were loose, and how many
      of those for 20 s or more (with what held them).
      Dialogs, messages and participants keep their conversation alive, so this covers them;
    * the SDK's other objects (connections, subscriptions, requests, rings...) do not grow.

    The cached conversations themselves vary with the load (printed with the samples).

    Not checked: bytes.  The first long runs measured allocations made in ``lpm/client``
    (tracemalloc) and saw them grow 3.6 -> 16 MB.  Part of it was real: the run kept every
    reported error, whose traceback held the frames, and so the conversations, of every history
    load the bot was refused (see :class:`Recorder`).  The rest is an artefact of the
    in-process emulator: CPython recycles freed dicts and tuples through free lists, and a block
    first allocated by the SDK (a conversation's context dict, a log call's arguments) keeps its
    SDK attribution when the emulator reuses it for its world -- which keeps every conversation
    and event for good, by design (a persistent platform).  Short runs found ten times more
    blocks attributed to ``conversation.py``'s context copy than conversations alive.  RSS, which
    holds that world too, is printed for information only.
    """
    steady = samples[len(samples) // 3 :]
    assert len(steady) >= 3, "the long run is too short to judge memory"
    # (Loose conversations, kept or not, are printed with the samples; the leak check is
    # Chaos.drain_loose, once the run is calm.)
    baseline = max(m.objects for m in steady[: len(steady) // 2])
    peak_late = max(m.objects for m in steady[len(steady) // 2 :])
    assert peak_late <= baseline * 1.2 + 200, (baseline, peak_late)


async def shut_down(chaos: Chaos, tasks_before: set[asyncio.Task[Any]]) -> None:
    # the bot's own workers notice within a poll that their conversation was checked
    await until(lambda: not chaos.bot.tasks, lambda: f"bot workers to end: {sorted(chaos.bot._wakeups)}", 5)
    for consumer in chaos.consumers:
        await consumer.conn.close()
    await chaos.bot.conn.close()
    current = asyncio.current_task()
    sdk_tasks = [
        t
        for t in asyncio.all_tasks()
        if t not in tasks_before
        and t is not current
        and t.get_name().startswith("lpm-")
        and not t.get_name().startswith("lpm-emulator")
    ]
    assert sdk_tasks == [], sdk_tasks

    def leftovers() -> list[asyncio.Task[Any]]:
        return [
            t
            for t in asyncio.all_tasks()
            if t not in tasks_before
            and t is not current
            and not t.done()
            and not t.get_name().startswith("lpm-emulator")
        ]

    # the emulator's handlers of the closed sockets wind down in a moment
    with contextlib.suppress(Failure):
        await until(lambda: not leftovers(), "tasks to end", timeout=5)
    assert leftovers() == []
    # every client socket is closed, and the server's side of each with it
    with contextlib.suppress(Failure):
        await until(lambda: not emulator_connections(chaos.emu.port), "sockets to close", timeout=5)
    leaked = emulator_connections(chaos.emu.port)
    ctx = chaos.emu.ctx
    server = chaos.emu._runner.server if chaos.emu._runner is not None else None
    assert leaked == [], (
        leaked,
        f"emulator sessions {list(ctx.hub.sessions) if ctx else None}",
        f"server handlers {[repr(h) for h in server.connections] if server else None}",
    )
