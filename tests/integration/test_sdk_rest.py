"""The SDK's brand REST connection (UMS REST v1) against the emulator over real loopback HTTP: the
conversation scenario of the WebSocket tests driven by a REST bot, ETag retries, token renewal and
typed errors."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest

import lpm
from lpm.client.transport import rest as rest_module
from lpm.client.transport.rest import (
    BrandRestConnection,
    event_from_rest_item,
    plan_fields,
    rest_message_body,
)
from lpm.emulator.app import Emulator
from lpm.errors import (
    AuthenticationError,
    ConfigurationError,
    InvalidStateError,
    NoOpenDialogError,
    NotConnectedError,
    RequestError,
)

ACC = "12345678"
FAST = {"reconnect_schedule": (0.05, 0.1, 0.2), "wait_to_reconnect": 0.05, "response_timeout": 10.0}
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8


def rest(emu: Emulator, username: str = "agent", **options: Any) -> BrandRestConnection:
    """A REST connection of ``username`` (``agent`` is a manager, ``bot`` is not)."""
    if "token" not in options:
        options["auth_data"] = {"username": username, "password": f"{username}-password"}
    conn = lpm.create_connection(
        account_id=ACC,
        user_type=lpm.UserType.BRAND,
        connection_type=lpm.ConnectionType.REST,
        csds_domain=emu.csds_domain,
        **options,
    )
    assert isinstance(conn, BrandRestConnection)
    return conn


def consumer(emu: Emulator) -> lpm.ConsumerWebsocketConnection:
    conn = lpm.create_connection(
        account_id=ACC, user_type=lpm.UserType.CONSUMER, csds_domain=emu.csds_domain, **FAST
    )
    assert isinstance(conn, lpm.ConsumerWebsocketConnection)
    return conn


class Collector:
    """Records connection errors so a test can assert there were none."""

    def __init__(self, conn: lpm.Connection) -> None:
        self.errors: list[BaseException] = []
        conn.on("error", self.errors.append)


async def fault(emu: Emulator, path: str, body: dict[str, Any]) -> Any:
    async with aiohttp.ClientSession() as http, http.post(f"{emu.base_url}/_emulator/{path}", json=body) as r:
        assert r.status == 200, await r.text()
        return await r.json()


# ---------------------------------------------------------------- the conversation scenario


async def test_rest_bot_drives_a_whole_conversation(emulator: Emulator) -> None:
    agent = rest(emulator)
    states: list[str] = []
    agent.on("state", states.append)
    async with consumer(emulator) as cons, agent:
        assert agent.state == lpm.ConnectionState.CONNECTED
        assert states == ["connecting", "connected"]
        assert agent.agent_id == f"{ACC}.1001" and agent.user_id
        agent_errors, consumer_errors = Collector(agent), Collector(cons)
        conversation = await cons.create_conversation(skill_id="12")
        cid = conversation.conversation_id

        # A conversation known only by its id: read it, then join it.
        view = await agent.get_conversation_by_id(cid)
        assert view is agent.conversations.get(cid)
        assert view.skill_id == "12" and view.assigned_agent is None
        assert view.consumer is not None and view.consumer.user_id == cons.user_id
        joined = asyncio.create_task(conversation.wait_for("participant-added", timeout=10))
        await view.join(lpm.ParticipantRole.ASSIGNED_AGENT)
        participant, _ = await joined
        assert participant.role == lpm.ParticipantRole.ASSIGNED_AGENT
        assert await agent.get_conversation_by_id(cid) is view
        assert view.assigned_agent is not None and view.assigned_agent.user_id == agent.user_id

        # Messages: the consumer receives them with the right sequences; private ones stay brand-side.
        got = asyncio.create_task(conversation.wait_for("message", timeout=10))
        assert await view.send_message("hello from REST") == 0
        message = await got
        assert (message.body, message.sequence) == ("hello from REST", 0)
        assert message.participant.role == lpm.ParticipantRole.ASSIGNED_AGENT
        assert await view.send_private_message("note to self") == 1
        rich = asyncio.create_task(conversation.wait_for("message", timeout=10))
        card = {"type": "vertical", "elements": [{"type": "text", "text": "a card"}]}
        assert await view.send_rich_text(card, quick_replies={"type": "quickReplies", "itemsPerRow": 1}) == 2
        assert (await rich).sequence == 2  # the private message (1) never reached the consumer

        assigned_seen_by_consumer = conversation.assigned_agent
        assert assigned_seen_by_consumer is not None
        typing = asyncio.create_task(assigned_seen_by_consumer.wait_for("chat-state-change", timeout=10))
        await view.main_dialog.set_chat_state(lpm.ParticipantChatState.COMPOSING)
        assert await typing == lpm.ParticipantChatState.COMPOSING

        # History over REST: every stored message, merged into the bot's objects.
        assert await conversation.send_message("hi REST") == 3
        history = await view.query_messages()
        assert [m.sequence for m in history] == [0, 1, 2, 3]
        assert history[0].body == "hello from REST" and history[1].audience == "AGENTS_AND_MANAGERS"
        assert history[2].body == card
        assert history[3].body == "hi REST" and history[3].participant.role == lpm.ParticipantRole.CONSUMER
        assert view.main_dialog.messages == history
        assert [m.sequence for m in await view.query_messages(max_quantity=2, sequence_min=1)] == [2, 3]
        assert [m.sequence for m in await view.query_messages(sequence_max=2)] == [0, 1]

        delivered = asyncio.create_task(conversation.wait_for("message-delivery-event", timeout=10))
        await history[3].read()
        changed = await delivered
        assert [m.sequence for m in changed] == [3] and changed[0].has_assigned_agent_read()
        assert [m.sequence for m in await view.get_all_publish_events()] == [0, 1, 2, 3]

        # TTR and manual ETTR: the PATCH answers update the cached conversation at once.
        ttr = asyncio.create_task(conversation.wait_for("ttr-change", timeout=10))
        await view.set_ttr(lpm.TTRType.URGENT)
        assert view.ttr_type == lpm.TTRType.URGENT and view.ttr_value == 300
        assert (await ttr)[0] == lpm.TTRType.URGENT
        ettr = int(time.time() * 1000) + 3_600_000
        await view.set_manual_ettr(ettr)
        assert view.ttr_effective_manual == ettr

        # Transfer to skill "sales" (11), then close.
        await view.transfer(skill_id="11")
        refreshed = await agent.get_conversation_by_id(cid)  # a manager may still read it
        assert refreshed.skill_id == "11" and refreshed.assigned_agent is None
        closed = asyncio.create_task(conversation.wait_for("close", timeout=10))
        await view.close()
        assert view.stage == lpm.ConversationState.CLOSE  # from the PATCH answer
        await closed
        assert agent_errors.errors == [] and consumer_errors.errors == []
    assert agent.state == lpm.ConnectionState.CLOSED
    assert states[-2:] == ["closing", "closed"]


async def test_leave_transfer_to_agent_close_dialog_and_files(emulator: Emulator) -> None:
    async with consumer(emulator) as cons, rest(emulator) as agent:
        conversation = await cons.create_conversation(skill_id="11")
        cid = conversation.conversation_id
        view = await agent.get_conversation_by_id(cid)
        await view.join(lpm.ParticipantRole.MANAGER)
        await agent.get_conversation_by_id(cid)
        me = view.main_dialog.get_self_participant()
        assert me is not None and me.role == lpm.ParticipantRole.MANAGER
        await view.leave()
        await agent.get_conversation_by_id(cid)
        assert view.main_dialog.get_self_participant() is None

        await view.join(lpm.ParticipantRole.ASSIGNED_AGENT)
        await agent.get_conversation_by_id(cid)
        # A hosted file: upload path, swift upload, HOSTED_FILE publish; and the way back.
        got = asyncio.create_task(conversation.wait_for("message", timeout=10))
        sequence = await view.upload_file(PNG, caption="a picture")
        message = await got
        assert message.sequence == sequence and message.relative_path
        assert await view.download_file(message.relative_path) == PNG
        assert await conversation.download_file(message.relative_path) == PNG

        # Transfer to an agent (the bot, 2001): suggested as ASSIGNED_AGENT, the agent removed.
        await view.transfer(agent_id="2001")
        await agent.get_conversation_by_id(cid)
        assert view.assigned_agent is None
        # (the public v3 shapes do not list SUGGESTED participants: look at the emulator's world)
        world = emulator.world.accounts[ACC].conversations[cid].main.participants
        assert [(p.id, p.role, p.state) for p in world if p.role != "CONSUMER"] == [
            ("2001", "ASSIGNED_AGENT", "SUGGESTED")
        ]

        # Close the MAIN dialog: the conversation closes with it.
        closed = asyncio.create_task(conversation.wait_for("close", timeout=10))
        await view.main_dialog.close(lpm.DialogCloseReason.AGENT)
        await closed
        await agent.get_conversation_by_id(cid)
        assert view.stage == lpm.ConversationState.CLOSE and view.main_dialog.closed_by == "AGENT"
        with pytest.raises(NoOpenDialogError):
            await view.send_message("too late")
        with pytest.raises(RequestError) as info:
            await view.main_dialog.send_message("too late")  # the dialog object does not check: UMS does
        assert info.value.code in (400, 403)
        assert info.value.request_type == "REST POST /v1/conversations/{cid}/dialogs/{did}/messages"
        assert (info.value.conversation_id, info.value.dialog_id) == (cid, cid)


async def test_etag_is_read_again_once_when_the_conversation_changed(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with consumer(emulator) as cons, rest(emulator) as agent:
        conversation = await cons.create_conversation(skill_id="11")
        view = await agent.get_conversation_by_id(conversation.conversation_id)
        await view.join(lpm.ParticipantRole.ASSIGNED_AGENT)
        original = agent._authorized
        calls: list[tuple[str, str]] = []
        races = [1]  # how many times the conversation changes between a GET and its PATCH

        async def racing(method: str, url: str, request_type: str, *args: Any) -> Any:
            template = request_type.split(" ", 2)[2]  # "REST {method} {template}"
            calls.append((method, template))
            response = await original(method, url, request_type, *args)
            if method == "GET" and template == rest_module.CONVERSATION and races[0] > 0:
                races[0] -= 1
                await conversation.send_message("meanwhile")  # a new message: a new ETag
            return response

        monkeypatch.setattr(agent, "_authorized", racing)
        await view.set_ttr(lpm.TTRType.PRIORITIZED)
        assert calls == [("GET", rest_module.CONVERSATION), ("PATCH", rest_module.CONVERSATION)] * 2
        assert view.ttr_type == lpm.TTRType.PRIORITIZED

        # Changed before both attempts: the second 412 is raised, typed.
        calls.clear()
        races[0] = 2
        with pytest.raises(RequestError) as info:
            await view.set_ttr(lpm.TTRType.URGENT)
        assert info.value.code == 412 and info.value.request_type == "REST PATCH /v1/conversations/{cid}"
        assert info.value.conversation_id == conversation.conversation_id
        assert len(calls) == 4


async def test_errors_are_typed(emulator: Emulator) -> None:
    async with consumer(emulator) as cons, rest(emulator, "bot") as bot, rest(emulator) as agent:
        conversation = await cons.create_conversation(skill_id="11")
        cid = conversation.conversation_id
        # The bot is neither a participant nor a manager: it may not read the conversation.
        with pytest.raises(RequestError) as info:
            await bot.get_conversation_by_id(cid)
        assert info.value.code == 403 and info.value.request_type == "REST GET /v1/conversations/{cid}"
        assert info.value.conversation_id == cid
        with pytest.raises(RequestError) as info:
            await agent.get_conversation_by_id("no-such-conversation")
        assert info.value.code == 404
        with pytest.raises(ConfigurationError):
            await agent.get_conversation_by_id("")

        view = await agent.get_conversation_by_id(cid)
        # What REST has no endpoint for fails before any I/O, with a clear message.
        with pytest.raises(InvalidStateError, match="REST"):
            await view.set_note("a note")
        with pytest.raises(InvalidStateError, match="REST"):
            await view.transfer(skill_id="11")  # nobody is assigned: there is nothing to transfer
        with pytest.raises(InvalidStateError, match="webhooks"):
            await agent.subscribe_conversations({})
        with pytest.raises(InvalidStateError):
            await agent.get_user_profile(None)

        # A server error is a RequestError too.
        await fault(emulator, "http", {"target": "http", "count": 1, "action": "refuse", "status": 503})
        with pytest.raises(RequestError) as info:
            await agent.get_conversation_by_id(cid)
        assert info.value.code == 503
        assert await agent.get_conversation_by_id(cid) is view

    closed = rest(emulator)
    with pytest.raises(NotConnectedError):
        await closed.get_conversation_by_id("x")
    await closed.close()
    assert closed.state == lpm.ConnectionState.CLOSED


async def test_token_is_regenerated_on_401_and_a_static_token_fails(emulator: Emulator) -> None:
    async with consumer(emulator) as cons, rest(emulator) as agent:
        conversation = await cons.create_conversation(skill_id="11")
        old = await agent.get_token()
        await fault(emulator, "tokens/expire", {"user_id": "1001"})
        view = await agent.get_conversation_by_id(conversation.conversation_id)  # 401, new login, retried
        assert view.conversation_id == conversation.conversation_id
        assert await agent.get_token() != old

        # A caller-supplied bearer works as long as it is valid; it cannot be renewed.
        static = rest(emulator, token=f"Bearer {await agent.get_token()}", agent_id=f"{ACC}.1001")
        async with static:
            assert (
                await static.get_conversation_by_id(view.conversation_id)
            ).conversation_id == view.conversation_id
            assert static.agent_id == f"{ACC}.1001"
            await fault(emulator, "tokens/expire", {"user_id": "1001"})
            with pytest.raises(AuthenticationError) as auth:
                await static.get_conversation_by_id(view.conversation_id)
            assert auth.value.status == 401 and await static.get_token() not in str(auth.value)


async def test_open_fails_with_bad_credentials_and_factory_routing(emulator: Emulator) -> None:
    conn = lpm.create_connection(
        account_id=ACC,
        user_type=lpm.UserType.BRAND,
        connection_type=lpm.ConnectionType.REST,
        auth_data={"username": "agent", "password": "wrong"},
        csds_domain=emulator.csds_domain,
    )
    with pytest.raises(AuthenticationError):
        await conn.open()
    assert conn.state == lpm.ConnectionState.FAILED_TO_CONNECT
    await conn.close()
    assert conn.state == lpm.ConnectionState.CLOSED

    # Closed while its login is still in flight: open() says so.
    slow = rest(emulator)
    await fault(emulator, "http", {"target": "login", "count": 1, "action": "delay", "delay": 1.0})
    opening = asyncio.create_task(slow.open())
    await asyncio.sleep(0.2)
    assert slow.state == lpm.ConnectionState.CONNECTING
    await slow.close()
    with pytest.raises(NotConnectedError, match="closed before"):
        await opening
    assert slow.state == lpm.ConnectionState.CLOSED

    with pytest.raises(ConfigurationError, match="auth_data"):
        lpm.create_connection(account_id=ACC, user_type=lpm.UserType.BRAND, connection_type="rest")
    with pytest.raises(ConfigurationError, match="brand API"):
        lpm.create_connection(account_id=ACC, user_type=lpm.UserType.CONSUMER, connection_type="rest")
    with pytest.raises(ConfigurationError, match="Send API"):
        lpm.create_connection(account_id=ACC, user_type=lpm.UserType.CONSUMER, connection_type="sendapi")


# ---------------------------------------------------------------- pure mapping


def test_conversation_fields_map_to_rest_writes() -> None:
    close_and_ttr = plan_fields(
        [
            {"field": "TTRField", "ttrType": "URGENT", "value": 0},
            {"field": "ManualETTR", "time": 5},
            {"field": "ConversationStateField", "conversationState": "CLOSE"},
        ]
    )
    assert [(op.kind, op.body) for op in close_and_ttr] == [
        ("conversation", {"type": "URGENT", "value": 0, "manualETTR": 5, "stage": "CLOSE"})
    ]
    transfer = plan_fields(
        [
            {"field": "Skill", "type": "UPDATE", "skill": "11"},
            {"field": "ParticipantsChange", "type": "REMOVE", "userId": f"{ACC}.2001", "role": "READER"},
            {
                "field": "ParticipantsChange",
                "type": "SUGGEST",
                "userId": f"{ACC}.2001",
                "role": "ASSIGNED_AGENT",
            },
            {
                "field": "ParticipantsChange",
                "type": "REMOVE",
                "userId": f"{ACC}.1001",
                "role": "ASSIGNED_AGENT",
            },
        ]
    )
    assert [(op.kind, op.user_id, op.params) for op in transfer] == [
        ("remove", f"{ACC}.2001", {}),
        ("transfer", f"{ACC}.1001", {"transferToSkillId": "11", "transferToAgentId": f"{ACC}.2001"}),
    ]
    suggest = plan_fields(
        [{"field": "ParticipantsChange", "type": "SUGGEST", "userId": "x", "role": "ASSIGNED_AGENT"}]
    )
    assert suggest[0].body == {"id": "x", "role": "ASSIGNED_AGENT", "state": "SUGGESTED"}
    close_dialog = plan_fields(
        [
            {
                "field": "DialogChange",
                "type": "UPDATE",
                "dialog": {"dialogId": "d", "state": "CLOSE", "closedCause": "bye"},
            }
        ]
    )
    assert (close_dialog[0].kind, close_dialog[0].dialog_id, close_dialog[0].body) == (
        "dialog",
        "d",
        {"state": "CLOSE", "closeReason": "bye"},
    )
    for unsupported in (
        [{"field": "CSATRate", "csatRate": 5}],
        [{"field": "Skill", "type": "UPDATE", "skill": "11"}],
        [{"field": "DialogChange", "type": "CREATE", "dialog": {"dialogId": "d"}}],
        [{"field": "ParticipantsChange", "type": "UPDATE", "userId": "x", "role": "AGENT"}],
    ):
        with pytest.raises(InvalidStateError):
            plan_fields(unsupported)


def test_publish_bodies_and_history_items_round_trip() -> None:
    text = {"type": "ContentEvent", "contentType": "text/plain", "message": "hi", "quickReplies": {"q": 1}}
    body = rest_message_body(text, audience="AGENTS_AND_MANAGERS", metadata=[{"type": "X"}])
    assert body == {
        "type": "PLAIN_TEXT",
        "content": {"text": "hi"},
        "quickReplies": {"q": 1},
        "metadata": [{"type": "X"}],
        "messageAudience": "AGENTS_AND_MANAGERS",
    }
    assert rest_message_body({"type": "ChatStateEvent", "chatState": "COMPOSING"}) == {
        "type": "CHAT_STATE",
        "content": {"chatState": "COMPOSING"},
    }
    with pytest.raises(ConfigurationError, match="content type"):
        rest_message_body({"type": "ContentEvent", "contentType": "forms/secure-invitation", "message": {}})
    item = {
        "sequence": 4,
        "dialogId": "d",
        "conversationId": "c",
        "originator": {"id": "p", "role": "ASSIGNED_AGENT"},
        "type": "ACKNOWLEDGEMENT",
        "content": {"sequenceList": [1, 2], "status": "READ"},
        "messageAudience": "ALL",
        "createdTs": 123,
    }
    event = event_from_rest_item(item)
    assert event.event == {"type": "AcceptStatusEvent", "status": "READ", "sequenceList": [1, 2]}
    assert (event.sequence, event.originator_id, event.originator_role, event.server_ts) == (
        4,
        "p",
        "ASSIGNED_AGENT",
        123,
    )
    plain = event_from_rest_item({**item, "type": "PLAIN_TEXT", "content": {"text": "x"}})
    assert plain.event == {"type": "ContentEvent", "contentType": "text/plain", "message": "x"}
