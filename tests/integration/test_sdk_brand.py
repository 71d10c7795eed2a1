"""Brand connections through the public SDK against the emulator: a bot and a human agent at work.

Everything goes through ``lpm.create_connection(...)`` and the object model over real loopback
sockets; no raw frames.  Every test checks that the connections reported no ``error`` event.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

import lpm
from lpm.client.auth import agent_login
from lpm.client.auth.csds import CSDS
from lpm.client.auth.http import HttpSettings
from lpm.emulator.app import Emulator

ACC = "12345678"
AGENT_USER = "1001"
BOT_USER = "2001"
FAST: dict[str, Any] = {
    "reconnect_schedule": (0.05, 0.1, 0.2),
    "wait_to_reconnect": 0.05,
    "response_timeout": 10.0,
}
WAIT = 10.0


# ---------------------------------------------------------------- helpers


class Errors:
    """The ``error`` events of some connections, by name."""

    def __init__(self) -> None:
        self.seen: dict[str, list[BaseException]] = {}

    def watch(self, name: str, conn: lpm.Connection) -> None:
        self.seen[name] = []
        conn.on("error", self.seen[name].append)

    def assert_none(self) -> None:
        assert {name: errs for name, errs in self.seen.items() if errs} == {}


def brand(emu: Emulator, username: str = "bot", **options: Any) -> lpm.BrandWebsocketConnection:
    options.setdefault("auth_data", {"username": username, "password": f"{username}-password"})
    conn = lpm.create_connection(
        account_id=ACC, user_type=lpm.UserType.BRAND, csds_domain=emu.csds_domain, **{**FAST, **options}
    )
    assert isinstance(conn, lpm.BrandWebsocketConnection)
    return conn


def consumer(emu: Emulator, **options: Any) -> lpm.ConsumerWebsocketConnection:
    conn = lpm.create_connection(
        account_id=ACC, user_type=lpm.UserType.CONSUMER, csds_domain=emu.csds_domain, **{**FAST, **options}
    )
    assert isinstance(conn, lpm.ConsumerWebsocketConnection)
    return conn


async def until(condition: Callable[[], bool], timeout: float = WAIT) -> None:
    """Wait (polling the object model) until ``condition()`` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def later(awaitable: Any) -> asyncio.Task[Any]:
    """Start waiting for an event now (before the action that causes it)."""
    return asyncio.ensure_future(awaitable)


async def online(conn: lpm.BrandWebsocketConnection) -> lpm.RoutingTaskSubscription:
    """Open ``conn``, go ONLINE and subscribe to rings."""
    await conn.open()
    await conn.set_agent_state(lpm.AgentState.ONLINE)
    routing = await conn.create_routing_task_subscription()
    assert isinstance(routing, lpm.RoutingTaskSubscription)
    return routing


async def accept(ring: lpm.Ring) -> lpm.Ring:
    """Accept a WAITING ring and wait for its ``accepted`` event."""
    assert ring.state == lpm.RingState.WAITING and ring.is_waiting
    accepted = later(ring.wait_for("accepted", timeout=WAIT))
    await ring.accept()
    got: lpm.Ring = await accepted
    assert got is ring
    assert ring.state == lpm.RingState.ACCEPTED
    return ring


async def take_ring(routing: lpm.RoutingTaskSubscription, conversation_id: str) -> lpm.Ring:
    """Wait for a ring of the conversation and accept it."""
    ring: lpm.Ring = await routing.wait_for(
        "ring", lambda r: r.conversation_id == conversation_id, timeout=WAIT
    )
    return await accept(ring)


async def view_of(conn: lpm.BrandWebsocketConnection, conversation_id: str) -> lpm.Conversation:
    """The connection's Conversation object (brands see the account's open conversations)."""
    await until(lambda: conn.get_conversation_by_id(conversation_id) is not None)
    view = conn.get_conversation_by_id(conversation_id)
    assert isinstance(view, lpm.Conversation)
    return view


def assigned(view: lpm.Conversation, conn: lpm.BrandWebsocketConnection) -> bool:
    """Whether ``conn``'s user is the assigned agent (brand views name agents by old id, consumer
    views by PID)."""
    agent = view.assigned_agent
    return agent is not None and (agent.agent_id == conn.agent_id or agent.user_id == conn.user_id)


@dataclass
class Chat:
    """A consumer talking to the bot (which accepted the ring), plus the agent when asked for."""

    emu: Emulator
    bot: lpm.BrandWebsocketConnection
    routing: lpm.RoutingTaskSubscription
    cons: lpm.ConsumerWebsocketConnection
    bot_view: lpm.Conversation
    cons_view: lpm.Conversation
    ring: lpm.Ring
    errors: Errors
    others: list[lpm.Connection] = field(default_factory=list)

    async def agent(self, *, go_online: bool = True) -> tuple[lpm.BrandWebsocketConnection, Any]:
        """The human agent (user 1001) on a second brand connection."""
        conn = brand(self.emu, "agent")
        self.errors.watch("agent", conn)
        self.others.append(conn)
        if go_online:
            return conn, await online(conn)
        await conn.open()
        return conn, None


@pytest.fixture
async def chat(emulator: Emulator) -> AsyncIterator[Chat]:
    errors = Errors()
    bot = brand(emulator)
    errors.watch("bot", bot)
    cons = consumer(emulator)
    errors.watch("consumer", cons)
    others: list[lpm.Connection] = []
    try:
        routing = await online(bot)
        assert bot.state == lpm.ConnectionState.CONNECTED
        assert bot.agent_id == f"{ACC}.{BOT_USER}" and bot.agent_state == lpm.AgentState.ONLINE
        await cons.open()
        rung = later(routing.wait_for("ring", timeout=WAIT))  # the only conversation of the world
        cons_view = await cons.create_conversation(skill_id="11")
        ring = await accept(await rung)
        assert ring.conversation_id == cons_view.conversation_id
        bot_view = await view_of(bot, cons_view.conversation_id)
        await until(lambda: assigned(bot_view, bot))
        yield Chat(emulator, bot, routing, cons, bot_view, cons_view, ring, errors, others)
    finally:
        for conn in (*others, cons, bot):
            await conn.close()


# ---------------------------------------------------------------- ring, accept, chat


async def test_bot_goes_online_accepts_a_ring_and_chats(chat: Chat) -> None:
    bot, cons = chat.bot, chat.cons
    bot_view, cons_view = chat.bot_view, chat.cons_view
    assert chat.ring.conversation_id == cons_view.conversation_id
    assert chat.ring.skill_id == "11" and chat.ring.consumer_id == cons.user_id
    assert bot_view.skill_id == "11" and bot_view.stage == lpm.ConversationState.OPEN
    await until(lambda: assigned(cons_view, bot))

    # consumer -> bot
    to_bot = later(bot_view.wait_for("message", timeout=WAIT))
    assert await cons_view.send_message("hello bot") == 0
    message = await to_bot
    assert message.body == "hello bot" and message.sequence == 0
    assert message.participant.role == lpm.ParticipantRole.CONSUMER
    assert message.participant.user_id == cons.user_id
    assert not message.sent_by_current_user()

    # bot -> consumer
    to_consumer = later(cons_view.wait_for("message", lambda m: m.body == "hi human", timeout=WAIT))
    seq = await bot_view.send_message("hi human")
    reply = await to_consumer
    assert reply.sequence == seq and seq > 0
    assert reply.participant.role == lpm.ParticipantRole.ASSIGNED_AGENT
    assert reply.participant.agent_id is None or reply.participant.agent_id == bot.agent_id

    # read receipts travel back as message-delivery-event
    bot_sees_read = later(
        bot_view.wait_for(
            "message-delivery-event", lambda ms: any(m.sequence == seq for m in ms), timeout=WAIT
        )
    )
    await reply.read()
    changed = await bot_sees_read
    mine = next(m for m in changed if m.sequence == seq)
    assert mine.body == "hi human" and mine.has_consumer_read()

    cons_sees_read = later(
        cons_view.wait_for(
            "message-delivery-event", lambda ms: any(m.sequence == 0 for m in ms), timeout=WAIT
        )
    )
    await message.read()
    changed = await cons_sees_read
    assert next(m for m in changed if m.sequence == 0).has_assigned_agent_read()

    # typing indicators
    bot_dialog = bot_view.open_dialog
    cons_dialog = cons_view.open_dialog
    assert bot_dialog is not None and cons_dialog is not None
    await until(lambda: cons_dialog.assigned_agent is not None)
    bot_in_cons_view = cons_dialog.assigned_agent
    assert bot_in_cons_view is not None
    composing = later(bot_in_cons_view.wait_for("chat-state-change", timeout=WAIT))
    await bot_dialog.set_chat_state(lpm.ParticipantChatState.COMPOSING)
    assert await composing == lpm.ParticipantChatState.COMPOSING
    consumer_in_bot_view = bot_dialog.consumer
    assert consumer_in_bot_view is not None
    typing = later(consumer_in_bot_view.wait_for("chat-state-change", timeout=WAIT))
    await cons_dialog.set_chat_state(lpm.ParticipantChatState.COMPOSING)
    assert await typing == lpm.ParticipantChatState.COMPOSING
    assert consumer_in_bot_view.chat_state == lpm.ParticipantChatState.COMPOSING
    chat.errors.assert_none()


# ---------------------------------------------------------------- transfers


async def test_transfer_to_a_skill_rings_the_human_agent(chat: Chat) -> None:
    bot, bot_view = chat.bot, chat.bot_view
    agent, agent_routing = await chat.agent()
    removed = later(bot_view.wait_for("participant-removed", timeout=WAIT))
    to_skill = later(bot_view.wait_for("transfer-skill", timeout=WAIT))
    ring_task = later(take_ring(agent_routing, bot_view.conversation_id))
    await bot_view.transfer(skill_id="12")
    gone = await removed
    assert gone.agent_id == bot.agent_id and gone.state == lpm.ParticipantState.REMOVED
    assert await to_skill == "12"
    assert bot_view.skill_id == "12"
    ring = await ring_task
    assert ring.skill_id == "12"
    agent_view = await view_of(agent, bot_view.conversation_id)
    await until(lambda: assigned(agent_view, agent) and assigned(bot_view, agent))
    await until(lambda: assigned(chat.cons_view, agent))
    # the agent now talks to the consumer
    to_consumer = later(chat.cons_view.wait_for("message", lambda m: m.body == "Alice here", timeout=WAIT))
    await agent_view.send_message("Alice here")
    assert (await to_consumer).participant.role == lpm.ParticipantRole.ASSIGNED_AGENT
    chat.errors.assert_none()


@pytest.mark.parametrize("form", ["user id", "pid", "account.user"])
async def test_transfer_to_an_agent(chat: Chat, form: str) -> None:
    bot_view = chat.bot_view
    agent, agent_routing = await chat.agent()
    assert agent.agent_id == f"{ACC}.{AGENT_USER}" and agent.user_id
    target = {"user id": AGENT_USER, "pid": agent.user_id, "account.user": agent.agent_id}[form]
    suggested = later(bot_view.wait_for("participant-suggested", timeout=WAIT))
    transfer_agent = later(bot_view.wait_for("transfer-agent", timeout=WAIT))
    added = later(bot_view.wait_for("participant-added", timeout=WAIT))
    ring_task = later(take_ring(agent_routing, bot_view.conversation_id))
    await bot_view.transfer(agent_id=target)
    participant = await suggested
    assert participant is await transfer_agent
    assert participant.agent_id == agent.agent_id
    assert participant.state == lpm.ParticipantState.SUGGESTED
    assert participant.role == lpm.ParticipantRole.ASSIGNED_AGENT
    assert bot_view.assigned_agent is None  # a suggestion is not an assignment yet
    await ring_task
    now_added, previously_suggested = await added
    assert now_added is participant and previously_suggested is True
    assert now_added.state == lpm.ParticipantState.ACTIVE
    assert now_added.role == lpm.ParticipantRole.ASSIGNED_AGENT
    assert assigned(bot_view, agent)
    agent_view = await view_of(agent, bot_view.conversation_id)
    await until(lambda: assigned(agent_view, agent))
    chat.errors.assert_none()


# ---------------------------------------------------------------- managers and private messages


async def test_manager_joins_reads_private_messages_and_leaves(chat: Chat) -> None:
    bot_view, cons_view = chat.bot_view, chat.cons_view
    agent, _ = await chat.agent(go_online=False)
    agent_view = await view_of(agent, bot_view.conversation_id)
    assert agent_view.main_dialog.get_self_participant() is None
    joined = later(bot_view.wait_for("participant-added", timeout=WAIT))
    await agent_view.join(lpm.ParticipantRole.MANAGER)
    manager, previously_suggested = await joined
    assert manager.agent_id == agent.agent_id and manager.role == lpm.ParticipantRole.MANAGER
    assert previously_suggested is False
    await until(lambda: agent_view.main_dialog.get_self_participant() is not None)

    consumer_bodies: list[str] = []
    cons_view.on("message", lambda m: consumer_bodies.append(m.body))
    private = later(agent_view.wait_for("message", lambda m: m.body == "between us", timeout=WAIT))
    private_seq = await bot_view.send_private_message("between us")
    got = await private
    assert got.audience == lpm.MessageAudience.AGENTS_AND_MANAGERS and got.sequence == private_seq
    assert got.participant.agent_id == chat.bot.agent_id
    # A public message after it: once the consumer has it, the private one would have come first.
    public = later(cons_view.wait_for("message", lambda m: m.body == "for everyone", timeout=WAIT))
    public_seq = await bot_view.send_message("for everyone")
    await public
    await asyncio.sleep(0.2)  # and nothing trails behind
    assert consumer_bodies == ["for everyone"]
    assert [m.body for m in cons_view.main_dialog.messages] == ["for everyone"]
    assert cons_view.main_dialog.get_message(private_seq) is None
    assert public_seq == private_seq + 1

    left = later(bot_view.wait_for("participant-removed", timeout=WAIT))
    await agent_view.leave()
    assert (await left) is manager
    await until(lambda: agent_view.main_dialog.get_self_participant() is None)
    chat.errors.assert_none()


# ---------------------------------------------------------------- history and conversation fields


async def test_history_of_a_brand_conversation(chat: Chat) -> None:
    bot_view, cons_view = chat.bot_view, chat.cons_view
    sent: dict[int, str] = {}
    for i in range(3):
        sent[await cons_view.send_message(f"consumer {i}")] = f"consumer {i}"
        sent[await bot_view.send_message(f"bot {i}")] = f"bot {i}"
    sent[await bot_view.send_private_message("private")] = "private"
    await until(lambda: len(bot_view.main_dialog.messages) == len(sent))
    assert sorted(sent) == list(range(len(sent)))  # no accept statuses were sent: contiguous

    queried = await bot_view.query_messages()
    assert [(m.sequence, m.body) for m in queried] == sorted(sent.items())
    assert all(m is bot_view.main_dialog.get_message(m.sequence or 0) for m in queried)
    newest = await bot_view.query_messages(max_quantity=2, sequence_min=len(sent) - 3)
    assert [m.sequence for m in newest] == [len(sent) - 2, len(sent) - 1]

    # a second brand user (a manager, not in the conversation) loads the complete history
    agent, _ = await chat.agent(go_online=False)
    agent_view = await view_of(agent, bot_view.conversation_id)
    history = await agent_view.get_all_publish_events()
    assert [(m.sequence, m.body) for m in history] == sorted(sent.items())
    assert history[-1].audience == lpm.MessageAudience.AGENTS_AND_MANAGERS
    roles = {m.body: m.participant.role for m in history}
    assert roles["consumer 0"] == lpm.ParticipantRole.CONSUMER
    assert roles["bot 0"] == lpm.ParticipantRole.ASSIGNED_AGENT
    assert agent_view.main_dialog.last_contiguous_sequence == len(sent) - 1
    chat.errors.assert_none()


async def test_notes_and_ttr_are_seen_by_the_other_side(chat: Chat) -> None:
    bot_view = chat.bot_view
    agent, _ = await chat.agent(go_online=False)
    agent_view = await view_of(agent, bot_view.conversation_id)

    await bot_view.set_note("called back on Tuesday")
    await until(lambda: agent_view.note == "called back on Tuesday")
    result = await bot_view.set_agent_note("wants a refund", name="Botty")
    assert result == {"truncated": False, "truncated_text": None}
    await until(lambda: agent_view.note is not None and "wants a refund" in agent_view.note)
    notes = json.loads(agent_view.note or "[]")
    assert [n["noteContent"] for n in notes if n["agentId"] == chat.bot.agent_id] == ["wants a refund"]

    ttr = later(agent_view.wait_for("ttr-change", timeout=WAIT))
    await bot_view.set_ttr(lpm.TTRType.URGENT)
    ttr_type, ttr_value, _effective = await ttr
    assert ttr_type == lpm.TTRType.URGENT and agent_view.ttr_type == lpm.TTRType.URGENT
    assert ttr_value == agent_view.ttr_value

    custom = later(agent_view.wait_for("ttr-change", timeout=WAIT))
    await bot_view.set_ttr(lpm.TTRType.CUSTOM, 90)
    assert (await custom)[:2] == (lpm.TTRType.CUSTOM, 90)

    when = int(time.time() * 1000) + 3_600_000
    ettr = later(agent_view.wait_for("manual-ettr-change", timeout=WAIT))
    await bot_view.set_manual_ettr(when)
    manual, effective = await ettr
    assert manual == when and agent_view.ttr_effective_manual == when
    assert effective == agent_view.ttr_effective
    chat.errors.assert_none()


# ---------------------------------------------------------------- closing and stateless bots


async def test_close_bubbles_to_a_connection_level_handler(chat: Chat) -> None:
    closed: list[tuple[Any, ...]] = []
    chat.cons.on("conversation:close", lambda *args: closed.append(args))
    conversation_closed = later(chat.cons.wait_for("conversation:close", timeout=WAIT))
    bot_closed = later(chat.bot_view.wait_for("close", timeout=WAIT))
    await chat.bot_view.close()
    await conversation_closed
    assert closed == [(chat.cons_view,)]
    assert chat.cons_view.stage == lpm.ConversationState.CLOSE
    await bot_closed
    assert chat.bot_view.stage == lpm.ConversationState.CLOSE and chat.bot_view.open_dialog is None
    chat.errors.assert_none()


async def test_serialize_load_and_unload(chat: Chat) -> None:
    bot_view, cons_view = chat.bot_view, chat.cons_view
    arrived = later(bot_view.wait_for("message", timeout=WAIT))
    await cons_view.send_message("my card number is 4111")
    await arrived
    await bot_view.send_message("thanks, noted")
    text = bot_view.serialize()
    assert "4111" not in text and "thanks, noted" not in text
    data = json.loads(text)
    bodies = [m["body"] for d in data["dialogs"] for m in d["messages"]]
    assert bodies == [
        hashlib.sha256(b"my card number is 4111").hexdigest(),
        hashlib.sha256(b"thanks, noted").hexdigest(),
    ]

    # a stateless bot: another connection, without subscriptions, picks the conversation up
    stateless = brand(chat.emu, create_default_subscription=False)
    chat.errors.watch("stateless", stateless)
    chat.others.append(stateless)
    await stateless.open()
    loaded = stateless.load_conversation(text)
    assert isinstance(loaded, lpm.Conversation)
    assert stateless.get_conversation_by_id(bot_view.conversation_id) is loaded
    assert loaded.conversation_id == bot_view.conversation_id and loaded.skill_id == "11"
    assert [m.sequence for m in loaded.main_dialog.messages] == [0, 1]
    assert loaded.assigned_agent is not None and loaded.assigned_agent.agent_id == chat.bot.agent_id
    reply = later(cons_view.wait_for("message", lambda m: m.body == "from the stateless bot", timeout=WAIT))
    await loaded.send_message("from the stateless bot")
    await reply
    loaded.unload()
    assert stateless.get_conversation_by_id(bot_view.conversation_id) is None
    with pytest.raises(lpm.errors.InvalidStateError):
        bot_view.unload()  # not loaded with load_conversation
    chat.errors.assert_none()


# ---------------------------------------------------------------- other ways to log in


async def _connects(conn: lpm.BrandWebsocketConnection, agent_id: str | None) -> None:
    errors = Errors()
    errors.watch("conn", conn)
    try:
        await conn.open()
        assert conn.state == lpm.ConnectionState.CONNECTED
        if agent_id is not None:
            assert conn.agent_id == agent_id
        assert (await conn.get_clock()) > 0
    finally:
        await conn.close()
    assert conn.state == lpm.ConnectionState.CLOSED
    errors.assert_none()


async def test_app_key_login(emulator: Emulator) -> None:
    auth = {
        "username": "bot",
        "app_key": "bot-app-key",
        "secret": "bot-app-secret",
        "access_token": "bot-access-token",
        "access_token_secret": "bot-access-token-secret",
    }
    await _connects(brand(emulator, auth_data=auth), f"{ACC}.{BOT_USER}")


async def _agent_session(emulator: Emulator) -> agent_login.AgentSession:
    http = HttpSettings(emulator.csds_domain)
    try:
        host = await CSDS.lookup(ACC, "agentVep", http=http)
        return await agent_login.login(http, host, ACC, {"username": "agent", "password": "agent-password"})
    finally:
        await http.close()


async def test_existing_agent_session(emulator: Emulator) -> None:
    session = await _agent_session(emulator)
    assert session.refreshable and session.user_id == AGENT_USER and session.user_pid
    data = {
        "token": session.token,
        "csrf": session.csrf,
        "sessionId": session.session_id,
        "userId": session.user_id,
        "userPid": session.user_pid,
    }
    conn = brand(emulator, auth_data=None, auth_agent_session_data=data)
    await _connects(conn, f"{ACC}.{AGENT_USER}")
    assert conn.user_id == session.user_pid


async def test_caller_supplied_bearer(emulator: Emulator) -> None:
    session = await _agent_session(emulator)
    conn = brand(emulator, auth_data=None, token=session.token, agent_id=f"{ACC}.{AGENT_USER}")
    await _connects(conn, f"{ACC}.{AGENT_USER}")
    # without the agent id the bearer alone is enough to connect
    await _connects(brand(emulator, auth_data=None, token=session.token), None)
