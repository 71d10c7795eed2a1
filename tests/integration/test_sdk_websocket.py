"""The SDK's WebSocket connections against the emulator over real loopback sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

import lpm
from lpm.emulator.app import Emulator
from lpm.errors import ConfigurationError, NotConnectedError, RequestError

ACC = "12345678"
FAST = {"reconnect_schedule": (0.05, 0.1, 0.2), "wait_to_reconnect": 0.05, "response_timeout": 10.0}


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


class Collector:
    """Records connection errors so a test can assert there were none."""

    def __init__(self, conn: lpm.Connection) -> None:
        self.errors: list[BaseException] = []
        conn.on("error", self.errors.append)


@pytest.fixture
async def bot(emulator: Emulator) -> AsyncIterator[lpm.BrandWebsocketConnection]:
    conn = brand(emulator)
    await conn.open()
    await conn.set_agent_state(lpm.AgentState.ONLINE)
    yield conn
    await conn.close()


async def accept_next_ring(conn: lpm.BrandWebsocketConnection, routing: Any) -> Any:
    ring = await routing.wait_for("ring", timeout=10)
    await ring.accept()
    return ring


async def test_consumer_and_bot_chat(emulator: Emulator, bot: lpm.BrandWebsocketConnection) -> None:
    routing = await bot.create_routing_task_subscription()
    bot_errors = Collector(bot)
    async with consumer(emulator) as cons:
        errors = Collector(cons)
        assert cons.state == lpm.ConnectionState.CONNECTED
        assert cons.auth_type == lpm.AuthType.CONSUMER_ANONYMOUS
        assert cons.user_id
        ring_task = asyncio.create_task(accept_next_ring(bot, routing))
        bot_conversation = asyncio.create_task(bot.wait_for("conversation", timeout=10))
        conversation = await cons.create_conversation(skill_id="11")
        ring = await ring_task
        assert ring.conversation_id == conversation.conversation_id
        agent_view = await bot_conversation
        assert agent_view.conversation_id == conversation.conversation_id

        incoming = asyncio.create_task(agent_view.wait_for("message", timeout=10))
        seq = await conversation.send_message("hello bot")
        assert seq == 0
        message = await incoming
        assert message.body == "hello bot" and message.sequence == 0

        reply = asyncio.create_task(
            conversation.wait_for("message", lambda m: m.body == "hi human", timeout=10)
        )
        await agent_view.send_message("hi human")
        got = await reply
        assert got.participant.role == lpm.ParticipantRole.ASSIGNED_AGENT
        await got.read()

        closed = asyncio.create_task(conversation.wait_for("close", timeout=10))
        await agent_view.close()
        await closed
        assert conversation.stage == lpm.ConversationState.CLOSE
    assert cons.state == lpm.ConnectionState.CLOSED
    assert errors.errors == [] and bot_errors.errors == []


async def test_requests_while_disconnected_are_queued_and_nothing_is_lost(
    emulator: Emulator, bot: lpm.BrandWebsocketConnection
) -> None:
    routing = await bot.create_routing_task_subscription()
    async with consumer(emulator) as cons:
        ring_task = asyncio.create_task(accept_next_ring(bot, routing))
        bot_conversation = asyncio.create_task(bot.wait_for("conversation", timeout=10))
        conversation = await cons.create_conversation(skill_id="11")
        await ring_task
        agent_view = await bot_conversation
        received: list[str] = []
        conversation.on("message", lambda m: received.append(m.body) if m.body.startswith("agent") else None)

        disconnected = asyncio.create_task(cons.wait_for("disconnect", timeout=10))
        reconnected = asyncio.create_task(cons.wait_for("reconnect", timeout=10))
        await fault(emulator, "sockets/drop", {"dialect": "consumer"})
        await disconnected
        # while the consumer is away: the agent writes, the consumer sends (queued)
        await agent_view.send_message("agent 1")
        await agent_view.send_message("agent 2")
        queued = asyncio.create_task(conversation.send_message("consumer while away"))
        await reconnected
        assert await asyncio.wait_for(queued, 10) == 2  # after "agent 1" (0) and "agent 2" (1)
        await agent_view.send_message("agent 3")
        for _ in range(100):
            if len(received) >= 3:
                break
            await asyncio.sleep(0.05)
        assert received == ["agent 1", "agent 2", "agent 3"]  # replayed from the last seen sequence, once


async def test_brand_4401_regenerates_token_and_restores_state(
    emulator: Emulator, bot: lpm.BrandWebsocketConnection
) -> None:
    await bot.create_routing_task_subscription()
    old_token = await bot.get_token()
    reconnected = asyncio.create_task(bot.wait_for("reconnect", timeout=10))
    await fault(emulator, "sockets/close", {"code": 4401, "dialect": "brand"})
    await reconnected
    assert await bot.get_token() != old_token
    state = emulator.world.agent_state(ACC, "2001")
    assert state.availability == "ONLINE"
    assert emulator.world.accounts[ACC].routing_listeners.get("2001") == 1
    # rings still arrive after the reconnect
    async with consumer(emulator) as cons:
        ring = asyncio.create_task(bot.wait_for("ring", timeout=10))
        await cons.create_conversation(skill_id="11")
        assert (await ring).state == lpm.RingState.WAITING


async def test_request_errors_are_typed(emulator: Emulator) -> None:
    async with consumer(emulator) as cons:
        with pytest.raises(RequestError) as info:
            await cons.send(
                "ms.PublishEvent", {"dialogId": "nope", "event": {"type": "ContentEvent", "message": "x"}}
            )
        assert info.value.code == 404 and info.value.request_type == "ms.PublishEvent"
        clock = await cons.send("GetClock", {})
        assert clock["currentTime"] > 0


async def test_create_connection_validation() -> None:
    with pytest.raises(ConfigurationError, match="account_id"):
        lpm.create_connection(account_id="", user_type=lpm.UserType.CONSUMER)
    with pytest.raises(ConfigurationError, match="user_type"):
        lpm.create_connection(account_id=ACC, user_type="robot")
    with pytest.raises(ConfigurationError, match="invalid connection_type: 'pigeon'"):
        lpm.create_connection(account_id=ACC, user_type=lpm.UserType.CONSUMER, connection_type="pigeon")
    # Enum arguments: the member, its value or its name, in any case.
    for spelling in ("BRAND", "brand", "Brand", lpm.UserType.BRAND):
        conn = lpm.create_connection(
            account_id=ACC, user_type=spelling, auth_data={"username": "u", "password": "p"}
        )
        assert isinstance(conn, lpm.BrandWebsocketConnection)
    rest = lpm.create_connection(
        account_id=ACC,
        user_type="BRAND",
        connection_type="REST",
        auth_data={"username": "u", "password": "p"},
    )
    assert isinstance(rest, lpm.BrandRestConnection)
    with pytest.raises(ConfigurationError, match="unknown option"):
        lpm.create_connection(account_id=ACC, user_type=lpm.UserType.CONSUMER, maintainConnection=True)
    with pytest.raises(ConfigurationError, match="response_timeout"):
        lpm.create_connection(account_id=ACC, user_type=lpm.UserType.CONSUMER, response_timeout=-1)
    with pytest.raises(ConfigurationError, match="auth_data"):
        lpm.create_connection(account_id=ACC, user_type=lpm.UserType.BRAND)


async def test_open_without_maintenance_fails_fast(emulator: Emulator) -> None:
    conn = brand(emulator, maintain_connection=False)
    conn.options.auth_data = {"username": "bot", "password": "wrong"}
    conn.token_maintainer._auth_data = conn.options.auth_data
    with pytest.raises(lpm.errors.AuthenticationError):
        await conn.open()
    # A failed first open() leaves nothing running: the connection is CLOSED.
    assert conn.state == lpm.ConnectionState.CLOSED
    with pytest.raises(NotConnectedError):
        await conn.send("GetClock", {})
    await conn.close()
    assert conn.state == lpm.ConnectionState.CLOSED


async def test_keep_alive_holds_an_idle_connection_open(http: aiohttp.ClientSession) -> None:
    async with Emulator(idle_timeout=0.6) as emu:
        conn = consumer(emu, keep_alive_interval=0.15)
        disconnects: list[Any] = []
        conn.on("disconnect", disconnects.append)
        clock_requests: list[Any] = []
        conn.on("GetClock#request", clock_requests.append)
        async with conn:
            await asyncio.sleep(2.0)  # three idle timeouts long: only the keep-alive talks
            assert conn.state == lpm.ConnectionState.CONNECTED
        assert disconnects == []
        assert len(clock_requests) >= 5


async def test_metrics_events_for_every_request(emulator: Emulator) -> None:
    async with consumer(emulator) as cons:
        seen: list[tuple[str, dict[str, Any]]] = []
        cons.on("GetClock#request", lambda m: seen.append(("request", m)))
        cons.on("GetClock#response", lambda m: seen.append(("response", m)))
        await cons.get_clock()
        assert [kind for kind, _ in seen] == ["request", "response"]
        response = seen[1][1]
        assert response["end"] >= response["start"] and response["response"]["currentTime"] > 0


async def test_request_events_carry_bodies_as_dicts(emulator: Emulator) -> None:
    """The SDK sends protocol structs; its ``#request`` / ``#response`` events show the dicts."""
    async with consumer(emulator) as cons:
        seen: list[dict[str, Any]] = []
        cons.on("cm.ConsumerRequestConversation#request", seen.append)
        cons.on("ms.PublishEvent#request", seen.append)
        cons.on("ms.PublishEvent#response", seen.append)
        conversation = await cons.create_conversation(skill_id="11")
        sequence = await conversation.send_message("hello")
        request, published, answered = (m["request"] for m in seen)
        assert request["body"]["channelType"] == "MESSAGING" and request["body"]["skillId"] == "11"
        assert published == answered and published["body"] == {
            "dialogId": conversation.main_dialog.dialog_id,
            "conversationId": conversation.conversation_id,
            "event": {"type": "ContentEvent", "contentType": "text/plain", "message": "hello"},
        }
        assert seen[2]["response"]["sequence"] == sequence


async def test_cancelling_open_closes_the_connection(emulator: Emulator) -> None:
    await fault(emulator, "upgrades/stall", {"count": 100})
    conn = consumer(emulator, connect_timeout=0.2)
    before = asyncio.all_tasks()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await conn.open()
    assert conn.state == lpm.ConnectionState.CLOSED
    await fault(emulator, "upgrades/release", {})
    await asyncio.sleep(0.05)
    leaked = [t for t in asyncio.all_tasks() - before if not t.done() and "lpm" in t.get_name()]
    assert leaked == []
