"""Connection maintenance through the public SDK, with the emulator's fault API.

Sockets dropped mid-conversation, 4401 closes, stalled upgrades, refused logins, slow responses,
reconnect storms and the tasks left after ``close()``.  Timings are shrunk with the options; no
test sleeps long.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

import lpm
from lpm.client.dispatch import ORPHAN_GRACE
from lpm.emulator.app import Emulator
from lpm.errors import (
    ConnectFailedError,
    HttpError,
    NotConnectedError,
    QueueTimeoutError,
    RequestTimeoutError,
)

ACC = "12345678"
FAST: dict[str, Any] = {
    "reconnect_schedule": (0.05, 0.1, 0.2),
    "wait_to_reconnect": 0.05,
    "response_timeout": 10.0,
}
WAIT = 10.0


# ---------------------------------------------------------------- helpers


def brand(emu: Emulator, username: str = "bot", **options: Any) -> lpm.BrandWebsocketConnection:
    conn = lpm.create_connection(
        account_id=ACC,
        user_type=lpm.UserType.BRAND,
        auth_data={"username": username, "password": f"{username}-password"},
        csds_domain=emu.csds_domain,
        **{**FAST, **options},
    )
    assert isinstance(conn, lpm.BrandWebsocketConnection)
    return conn


def consumer(emu: Emulator, **options: Any) -> lpm.ConsumerWebsocketConnection:
    conn = lpm.create_connection(
        account_id=ACC, user_type=lpm.UserType.CONSUMER, csds_domain=emu.csds_domain, **{**FAST, **options}
    )
    assert isinstance(conn, lpm.ConsumerWebsocketConnection)
    return conn


async def fault(emu: Emulator, path: str, body: dict[str, Any]) -> Any:
    async with aiohttp.ClientSession() as http, http.post(f"{emu.base_url}/_emulator/{path}", json=body) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def until(condition: Callable[[], bool], timeout: float = WAIT) -> None:
    """Wait (polling) until ``condition()`` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def later(awaitable: Any) -> asyncio.Task[Any]:
    """Start waiting for an event now (before the action that causes it)."""
    return asyncio.ensure_future(awaitable)


class Recorder:
    """Counts a connection's events and keeps its errors."""

    def __init__(self, conn: lpm.Connection, *names: str) -> None:
        self.errors: list[BaseException] = []
        self.counts: dict[str, int] = {}
        conn.on("error", self.errors.append)
        for name in names:
            self.counts[name] = 0
            conn.on(name, self._counter(name))

    def _counter(self, name: str) -> Callable[..., None]:
        def count(*_: Any) -> None:
            self.counts[name] += 1

        return count


@dataclass
class Chat:
    """A consumer talking to the bot, which accepted the ring."""

    bot: lpm.BrandWebsocketConnection
    cons: lpm.ConsumerWebsocketConnection
    bot_view: lpm.Conversation
    cons_view: lpm.Conversation
    routing: Any
    bot_events: Recorder
    cons_events: Recorder
    received: dict[str, list[str]] = field(default_factory=lambda: {"bot": [], "consumer": []})


EVENTS = ("disconnect", "reconnect", "close")


async def start_chat(
    emu: Emulator, bot_options: dict[str, Any] | None = None, **consumer_options: Any
) -> Chat:
    bot = brand(emu, **(bot_options or {}))
    bot_events = Recorder(bot, *EVENTS)
    await bot.open()
    await bot.set_agent_state(lpm.AgentState.ONLINE)
    routing = await bot.create_routing_task_subscription()
    cons = consumer(emu, **consumer_options)
    cons_events = Recorder(cons, *EVENTS)
    await cons.open()
    rung = later(routing.wait_for("ring", timeout=WAIT))
    cons_view = await cons.create_conversation(skill_id="11")
    ring = await rung
    accepted = later(ring.wait_for("accepted", timeout=WAIT))
    await ring.accept()
    await accepted
    await until(lambda: bot.get_conversation_by_id(cons_view.conversation_id) is not None)
    bot_view = bot.get_conversation_by_id(cons_view.conversation_id)
    await until(lambda: bot_view.assigned_agent is not None)
    await until(lambda: cons_view.assigned_agent is not None)
    chat = Chat(bot, cons, bot_view, cons_view, routing, bot_events, cons_events)
    # what each side receives from the other, in the order the message events came
    bot_view.on("message", lambda m: chat.received["bot"].append(m.body) if m.body.startswith("c") else None)
    cons_view.on(
        "message", lambda m: chat.received["consumer"].append(m.body) if m.body.startswith("b") else None
    )
    return chat


@pytest.fixture
async def chat(emulator: Emulator) -> AsyncIterator[Chat]:
    chat_ = await start_chat(emulator)
    try:
        yield chat_
    finally:
        await chat_.cons.close()
        await chat_.bot.close()


# ---------------------------------------------------------------- (1) drops mid-conversation


@pytest.mark.parametrize("dialect", ["brand", "consumer", "both"])
async def test_drops_mid_conversation_lose_and_duplicate_nothing(
    emulator: Emulator, chat: Chat, dialect: str
) -> None:
    rng = random.Random(f"drops-{dialect}")
    count = 30
    drops = 3
    target = {} if dialect == "both" else {"dialect": dialect}

    async def talk(conversation: lpm.Conversation, prefix: str) -> list[int]:
        sequences = []
        for i in range(count):
            sequences.append(await conversation.send_message(f"{prefix} {i}"))
            await asyncio.sleep(rng.uniform(0, 0.012))
        return sequences

    targets = {
        "brand": [chat.bot_events],
        "consumer": [chat.cons_events],
        "both": [chat.bot_events, chat.cons_events],
    }[dialect]

    async def drop_now_and_then() -> None:
        for n in range(1, drops + 1):
            await asyncio.sleep(rng.uniform(0.03, 0.06))
            answer = await fault(emulator, "sockets/drop", target)
            assert answer["dropped"] == len(targets)
            # the next drop hits the new socket, not the reconnect in progress
            await until(lambda n=n: all(t.counts["reconnect"] == n for t in targets))  # type: ignore[misc]

    cons_seqs, bot_seqs, _ = await asyncio.wait_for(
        asyncio.gather(talk(chat.cons_view, "c"), talk(chat.bot_view, "b"), drop_now_and_then()), 30
    )
    expected_c = [f"c {i}" for i in range(count)]
    expected_b = [f"b {i}" for i in range(count)]
    await until(lambda: len(chat.received["bot"]) >= count and len(chat.received["consumer"]) >= count)
    await asyncio.sleep(0.1)  # anything duplicated would arrive now
    assert chat.received["bot"] == expected_c
    assert chat.received["consumer"] == expected_b
    assert len(set(cons_seqs + bot_seqs)) == 2 * count
    assert sorted(cons_seqs + bot_seqs) == list(range(2 * count))  # each message stored once
    assert cons_seqs == sorted(cons_seqs) and bot_seqs == sorted(bot_seqs)
    # both views hold the whole dialog, in order
    for view in (chat.cons_view, chat.bot_view):
        assert [m.sequence for m in view.main_dialog.messages] == list(range(2 * count))
    for events in targets:
        assert events.counts == {"disconnect": drops, "reconnect": drops, "close": 0}
    assert chat.bot_events.errors == [] and chat.cons_events.errors == []


@pytest.mark.parametrize("side", ["consumer", "brand"])
@pytest.mark.parametrize("fate", ["processed", "never processed"])
async def test_a_message_in_flight_when_the_socket_dies_is_delivered_once(
    emulator: Emulator, side: str, fate: str
) -> None:
    # Reconnecting only after the server has handled the request: its fate is settled by then.
    slow: dict[str, Any] = {"wait_to_reconnect": 0.4}
    chat = await (start_chat(emulator, **slow) if side == "consumer" else start_chat(emulator, slow))
    try:
        view, prefix, peer = (
            (chat.cons_view, "c", "bot") if side == "consumer" else (chat.bot_view, "b", "consumer")
        )
        events = chat.cons_events if side == "consumer" else chat.bot_events
        if fate == "processed":  # the answer is lost with the socket
            await fault(emulator, "requests", {"count": 1, "action": "delay", "delay": 0.15})
        else:  # the request is lost with the socket
            await fault(emulator, "requests", {"count": 1, "action": "drop"})
        body = f"{prefix} in flight"
        sending = later(view.send_message(body))
        await asyncio.sleep(0.05)
        assert not sending.done()
        await fault(emulator, "sockets/drop", {"dialect": side})
        assert await asyncio.wait_for(sending, WAIT) == 0
        assert events.counts["reconnect"] == 1
        await until(lambda: chat.received[peer] == [body])
        after = later(view.wait_for("message", lambda m: m.body == f"{prefix} after", timeout=WAIT))
        assert await view.send_message(f"{prefix} after") == 1
        await after
        assert chat.received[peer] == [body, f"{prefix} after"]
        assert [(m.sequence, m.body) for m in view.main_dialog.messages] == [
            (0, body),
            (1, f"{prefix} after"),
        ]
        assert chat.cons_events.errors == [] and chat.bot_events.errors == []
    finally:
        await chat.cons.close()
        await chat.bot.close()


# ---------------------------------------------------------------- (2) 4401 on the brand side


async def test_brand_4401_regenerates_the_token_and_resumes(emulator: Emulator) -> None:
    bot = brand(emulator)
    events = Recorder(bot, *EVENTS)
    regenerated: list[Any] = []
    bot.on("token-regenerated", regenerated.append)
    try:
        await bot.open()
        await bot.set_agent_state(lpm.AgentState.ONLINE)
        routing = await bot.create_routing_task_subscription()
        old_token = await bot.get_token()
        reconnected = later(bot.wait_for("reconnect", timeout=WAIT))
        assert (await fault(emulator, "sockets/close", {"code": 4401, "dialect": "brand"}))["closed"] == 1
        await reconnected
        new_token = await bot.get_token()
        assert new_token != old_token
        assert regenerated == [{"agent_id": bot.agent_id}]
        assert events.counts == {"disconnect": 1, "reconnect": 1, "close": 0}
        assert bot.agent_state == lpm.AgentState.ONLINE
        assert emulator.world.agent_state(ACC, "2001").availability == "ONLINE"
        assert emulator.world.accounts[ACC].routing_listeners.get("2001") == 1
        assert routing.state == lpm.RoutingSubscriptionState.SUBSCRIBED

        # the restored routing subscription rings, and the bot can take the conversation
        cons = consumer(emulator)
        async with cons:
            on_connection = later(bot.wait_for("ring", timeout=WAIT))
            rung = later(routing.wait_for("ring", timeout=WAIT))
            conversation = await cons.create_conversation(skill_id="11")
            ring = await rung
            assert ring is await on_connection
            assert ring.conversation_id == conversation.conversation_id and ring.is_waiting
            accepted = later(ring.wait_for("accepted", timeout=WAIT))
            await ring.accept()
            await accepted
        assert events.errors == []
    finally:
        await bot.close()


# ---------------------------------------------------------------- (3) queueing


async def test_requests_during_downtime_wait_or_time_out(emulator: Emulator) -> None:
    chat = await start_chat(emulator, request_queue_timeout=0.6, connect_timeout=0.2)
    try:
        await fault(emulator, "upgrades/stall", {"count": 1000})
        disconnected = later(chat.cons.wait_for("disconnect", timeout=WAIT))
        await fault(emulator, "sockets/drop", {"dialect": "consumer"})
        await disconnected
        started = time.monotonic()
        with pytest.raises(QueueTimeoutError):
            await chat.cons_view.send_message("c too late")
        assert 0.55 <= time.monotonic() - started < 2.0

        queued = later(chat.cons_view.send_message("c queued"))
        clock = later(chat.cons.get_clock())
        await asyncio.sleep(0.1)
        assert not queued.done() and not clock.done()
        assert chat.cons.state in (lpm.ConnectionState.CONNECTING, lpm.ConnectionState.FAILED_TO_CONNECT)
        reconnected = later(chat.cons.wait_for("reconnect", timeout=WAIT))
        await fault(emulator, "upgrades/release", {})
        await reconnected
        assert await asyncio.wait_for(queued, WAIT) == 0  # the timed-out one was never sent
        assert await asyncio.wait_for(clock, WAIT) > 0
        await until(lambda: chat.received["bot"] == ["c queued"])
        # while it was down, attempts failed on the stalled upgrade: reported, nothing else
        assert chat.cons_events.errors
        assert all(isinstance(e, ConnectFailedError) for e in chat.cons_events.errors)
        assert chat.bot_events.errors == []
    finally:
        await chat.cons.close()
        await chat.bot.close()


async def test_requests_are_refused_once_the_outage_is_too_long(emulator: Emulator) -> None:
    cons = consumer(emulator, max_request_queue_time=0.2, connect_timeout=0.2)
    events = Recorder(cons, *EVENTS)
    async with cons:
        await fault(emulator, "upgrades/stall", {"count": 1000})
        disconnected = later(cons.wait_for("disconnect", timeout=WAIT))
        await fault(emulator, "sockets/drop", {"dialect": "consumer"})
        await disconnected
        early = later(cons.get_clock())  # within the window: queued
        await asyncio.sleep(0.3)
        with pytest.raises(NotConnectedError):
            await cons.get_clock()
        reconnected = later(cons.wait_for("reconnect", timeout=WAIT))
        await fault(emulator, "upgrades/release", {})
        await reconnected
        assert await asyncio.wait_for(early, WAIT) > 0
        assert await cons.get_clock() > 0
    assert all(isinstance(e, ConnectFailedError) for e in events.errors)


# ---------------------------------------------------------------- (4) stalled upgrades


async def test_a_stalled_upgrade_gives_up_on_time(emulator: Emulator) -> None:
    bot = brand(emulator, connect_timeout=0.5)
    events = Recorder(bot, *EVENTS)
    waits: list[Any] = []
    bot.on("reconnect-wait", waits.append)
    failed = later(bot.wait_for("error", timeout=WAIT))
    await fault(emulator, "upgrades/stall", {"count": 100})
    started = time.monotonic()
    opening = later(bot.open())
    try:
        error = await failed
        assert isinstance(error, ConnectFailedError)
        assert 0.45 <= time.monotonic() - started < 1.5
        await until(lambda: bool(waits))
        assert waits[0] == {"seconds": 0.05}
        assert not opening.done()
        assert bot.state in (lpm.ConnectionState.CONNECTING, lpm.ConnectionState.FAILED_TO_CONNECT)
        await fault(emulator, "upgrades/release", {})
        await asyncio.wait_for(opening, WAIT)
        assert bot.state == lpm.ConnectionState.CONNECTED
        assert await bot.get_clock() > 0
        assert events.errors and all(isinstance(e, ConnectFailedError) for e in events.errors)
        assert events.counts == {"disconnect": 0, "reconnect": 0, "close": 0}
    finally:
        opening.cancel()
        await bot.close()


# ---------------------------------------------------------------- (5) refused logins


async def test_open_keeps_retrying_a_refused_login(emulator: Emulator) -> None:
    bot = brand(emulator)
    events = Recorder(bot, *EVENTS)
    token_waits: list[Any] = []
    bot.on("generate-token-wait", token_waits.append)
    await fault(emulator, "http", {"target": "login", "count": 2, "action": "refuse", "status": 503})
    try:
        await asyncio.wait_for(bot.open(), WAIT)
        assert bot.state == lpm.ConnectionState.CONNECTED
        assert bot.agent_id == f"{ACC}.2001"
        assert len(token_waits) == 2
        assert len(events.errors) == 2
        assert all(isinstance(e, HttpError) and e.status == 503 for e in events.errors)
        assert all("bot-password" not in str(e) for e in events.errors)
    finally:
        await bot.close()


# ---------------------------------------------------------------- (6) slow responses


async def test_slow_responses_time_out(emulator: Emulator) -> None:
    cons = consumer(emulator, response_timeout=0.3)
    events = Recorder(cons, *EVENTS)
    timeouts: list[BaseException] = []
    cons.on("timeout", timeouts.append)
    async with cons:
        await fault(emulator, "requests", {"count": 1, "action": "delay", "delay": 0.6})
        started = time.monotonic()
        with pytest.raises(RequestTimeoutError) as info:
            await cons.get_clock()
        assert 0.25 <= time.monotonic() - started < 0.55
        assert timeouts == [info.value]
        assert info.value.request_type == "GetClock"
        # the late answer is dropped quietly; the connection stays usable
        await asyncio.sleep(0.4)
        assert await cons.get_clock() > 0
        assert cons.state == lpm.ConnectionState.CONNECTED
    assert events.errors == [] and events.counts["disconnect"] == 0


# ---------------------------------------------------------------- (7) reconnect storms


async def test_every_drop_reconnects_once_and_close_is_final(emulator: Emulator, chat: Chat) -> None:
    rounds = 6
    for i in range(rounds):
        dialect = "consumer" if i % 2 == 0 else "brand"
        events = chat.cons_events if dialect == "consumer" else chat.bot_events
        conn = chat.cons if dialect == "consumer" else chat.bot
        reconnected = later(conn.wait_for("reconnect", timeout=WAIT))
        await fault(emulator, "sockets/drop", {"dialect": dialect})
        await reconnected
        assert events.counts["disconnect"] == events.counts["reconnect"]
        arrived = later(chat.cons_view.wait_for("message", lambda m, i=i: m.body == f"b {i}", timeout=WAIT))
        await chat.bot_view.send_message(f"b {i}")
        await arrived
    assert chat.cons_events.counts == {"disconnect": rounds // 2, "reconnect": rounds // 2, "close": 0}
    assert chat.bot_events.counts == {"disconnect": rounds // 2, "reconnect": rounds // 2, "close": 0}

    # a burst: drops land while the previous reconnect is still under way
    for _ in range(5):
        await fault(emulator, "sockets/drop", {"dialect": "consumer"})
        await asyncio.sleep(0.02)
    await until(lambda: chat.cons_events.counts["disconnect"] == chat.cons_events.counts["reconnect"])
    await until(lambda: chat.cons.state == lpm.ConnectionState.CONNECTED)
    arrived = later(chat.cons_view.wait_for("message", lambda m: m.body == "b after", timeout=WAIT))
    await chat.bot_view.send_message("b after")
    await arrived
    assert chat.received["consumer"] == [f"b {i}" for i in range(rounds)] + ["b after"]
    # drops during a restore fail that attempt (reported); anything else would be a bug
    assert [e for e in chat.cons_events.errors if not isinstance(e, ConnectFailedError)] == []
    assert chat.bot_events.errors == []

    counts = dict(chat.cons_events.counts)
    await chat.cons.close()
    await chat.bot.close()
    await asyncio.sleep(0.2)
    assert chat.cons_events.counts == {**counts, "close": 1}
    assert chat.cons.state == chat.bot.state == lpm.ConnectionState.CLOSED
    assert chat.bot_events.counts["close"] == 1


async def test_close_while_reconnecting_stops_everything(emulator: Emulator) -> None:
    cons = consumer(emulator, connect_timeout=0.2)
    events = Recorder(cons, *EVENTS)
    await cons.open()
    await fault(emulator, "upgrades/stall", {"count": 1000})
    disconnected = later(cons.wait_for("disconnect", timeout=WAIT))
    await fault(emulator, "sockets/drop", {"dialect": "consumer"})
    await disconnected
    queued = later(cons.get_clock())
    await asyncio.sleep(0.1)
    await cons.close()
    with pytest.raises(NotConnectedError):
        await queued
    await fault(emulator, "upgrades/release", {})
    await asyncio.sleep(0.3)
    assert cons.state == lpm.ConnectionState.CLOSED
    assert events.counts == {"disconnect": 1, "reconnect": 0, "close": 1}
    assert all(isinstance(e, ConnectFailedError) for e in events.errors)  # the stalled attempts
    await cons.close()  # closing twice is harmless
    assert events.counts["close"] == 1


# ---------------------------------------------------------------- (8) no task left behind


async def test_close_leaves_no_task_running(emulator: Emulator) -> None:
    before = asyncio.all_tasks()
    chat = await start_chat(emulator, keep_alive_interval=0.05)
    arrived = later(chat.bot_view.wait_for("message", timeout=WAIT))
    await chat.cons_view.send_message("c hello")
    await arrived
    reconnected = later(chat.cons.wait_for("reconnect", timeout=WAIT))
    await fault(emulator, "sockets/drop", {})
    await reconnected
    await until(lambda: chat.bot.state == lpm.ConnectionState.CONNECTED)
    await asyncio.sleep(0.15)  # a keep-alive or two
    await chat.cons.close()
    await chat.bot.close()
    current = asyncio.current_task()
    sdk = [
        t
        for t in asyncio.all_tasks()
        if t not in before and t is not current and t.get_name().startswith("lpm-")
    ]
    assert sdk == []

    def leftovers() -> list[asyncio.Task[Any]]:
        return [t for t in asyncio.all_tasks() if t not in before and t is not current and not t.done()]

    # the emulator's own tasks for the closed sockets wind down in a moment; the SDK's must not exist
    with contextlib.suppress(AssertionError):
        await until(lambda: not leftovers(), timeout=2)
    assert leftovers() == []
    assert chat.cons_events.errors == [] and chat.bot_events.errors == []


async def test_a_subscription_answered_after_its_timeout_is_not_reported_as_unknown(
    emulator: Emulator,
) -> None:
    """SubscribeExConversations answered after ``response_timeout``: the caller got its timeout;
    the server's subscription and its snapshot are expected, not "unknown subscription" errors."""
    bot = brand(emulator, response_timeout=0.3, create_default_subscription=False)
    errors: list[BaseException] = []
    bot.on("error", errors.append)
    try:
        await bot.open()
        await fault(emulator, "requests", {"count": 1, "action": "delay", "delay": 1.0})
        with pytest.raises(RequestTimeoutError):
            await bot.create_conversation_subscription({"stage": ["OPEN"]})
        await asyncio.sleep(1.0 + ORPHAN_GRACE + 0.5)  # the late answer, its snapshot, the grace
        assert [e for e in errors if "unknown subscription" in str(e)] == []
        assert bot.state == lpm.ConnectionState.CONNECTED
    finally:
        await bot.close()
