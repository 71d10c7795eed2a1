"""The SDK's consumer side against the emulator over real loopback sockets.

Every connection here is made with ``lpm.create_connection`` (consumers and the brand users
that play the agent): conversations end to end, every consumer auth flow, user profiles,
step-up, the post-conversation survey, private messages, files, serialization and the
default subscription.  Each test ends by checking that no connection reported an error
(except the errors the test provokes).
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import re
import struct
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest

import lpm
from lpm.emulator.app import Emulator
from lpm.errors import (
    ConfigurationError,
    InvalidStateError,
    NotConnectedError,
    RequestError,
    TokenExpiredError,
)
from lpm.protocol.types import Req

ACC = "12345678"
UNAUTH_CONNECTOR = "3001"
AUTH_CONNECTOR = "3002"
BRAND_ISS = "https://brand.example.com"
FAST: dict[str, Any] = {
    "reconnect_schedule": (0.05, 0.1, 0.2),
    "wait_to_reconnect": 0.05,
    "response_timeout": 10.0,
}
WAIT = 10.0
CONSUMER_ID_64_HEX = re.compile(r"^[0-9a-f]{64}$")


# ---------------------------------------------------------------- helpers


def brand(emu: Emulator, username: str = "bot", **options: Any) -> lpm.BrandWebsocketConnection:
    """A brand connection (``bot`` is user 2001, ``agent`` user 1001)."""
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


def key_file(emu: Emulator) -> str:
    """The private key file of the authenticated connector 3002 (the brand signs id_tokens)."""
    path = emu.world.accounts[ACC].connectors[AUTH_CONNECTOR].private_key_file
    assert path is not None
    return str(path)


def key_text(emu: Emulator) -> str:
    """The PEM text of connector 3002's private key."""
    return Path(key_file(emu)).read_text()


def claims(sub: str = "customer-42", **extra: Any) -> dict[str, Any]:
    """A brand claims set with a customer-info and a personal-info SDE."""
    now = int(time.time())
    sdes = [
        lpm.create_customer_info_sde(customer_id=sub, cstatus="gold", company_size=12),
        lpm.create_personal_info_sde(firstname="Ada", lastname="Lovelace", language="en-GB"),
    ]
    return lpm.create_jwt_claims_set(sub, BRAND_ISS, now + 600, now, sdes=sdes, **extra)


def authenticated_id(sub: str) -> str:
    """The emulator's consumer id of an authenticated identity (64 hex)."""
    return hashlib.sha256(f"{BRAND_ISS}|{sub}".encode()).hexdigest()


async def fault(emu: Emulator, path: str, body: dict[str, Any]) -> Any:
    async with aiohttp.ClientSession() as http, http.post(f"{emu.base_url}/_emulator/{path}", json=body) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def until(predicate: Callable[[], bool], timeout: float = WAIT) -> None:
    """Poll ``predicate`` until it holds (state that is reached through notifications)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not reached within {timeout} s")
        await asyncio.sleep(0.02)


def later(awaitable: Awaitable[Any]) -> asyncio.Task[Any]:
    """Start waiting for an event now (before the action that causes it)."""

    async def run() -> Any:
        return await awaitable

    return asyncio.create_task(run())


def png(width: int = 2, height: int = 2) -> bytes:
    """A real (tiny, grey) PNG image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


class Errors:
    """Records a connection's ``error`` events so a test can assert there were none."""

    def __init__(self, *conns: lpm.Connection) -> None:
        self.errors: list[BaseException] = []
        for conn in conns:
            conn.on("error", self.errors.append)

    def assert_none(self) -> None:
        assert self.errors == [], [repr(e) for e in self.errors]


async def open_agent(emu: Emulator, username: str = "bot") -> tuple[lpm.BrandWebsocketConnection, Any]:
    """An ONLINE brand user with a routing-task subscription."""
    conn = brand(emu, username)
    await conn.open()
    await conn.set_agent_state(lpm.AgentState.ONLINE)
    routing = await conn.create_routing_task_subscription()
    return conn, routing


async def start_conversation(
    cons: lpm.ConsumerWebsocketConnection,
    agent: lpm.BrandWebsocketConnection,
    routing: Any,
    skill_id: str = "11",
) -> tuple[lpm.Conversation, lpm.Conversation]:
    """The consumer opens a conversation and the agent accepts its ring; returns (consumer's
    conversation, agent's view of it) once the consumer sees the agent assigned."""
    ring = later(routing.wait_for("ring", lambda r: r.state == lpm.RingState.WAITING, timeout=WAIT))
    conversation = await cons.create_conversation(skill_id=skill_id)
    found = agent.get_conversation_by_id(conversation.conversation_id)
    view = (
        later(
            agent.wait_for("conversation", lambda c: c.conversation_id == conversation.conversation_id, WAIT)
        )
        if found is None
        else None
    )
    got = await ring
    assert got.conversation_id == conversation.conversation_id
    await got.accept()
    agent_view = found if view is None else await view
    await until(lambda: conversation.assigned_agent is not None)
    await until(lambda: agent_view.assigned_agent is not None)
    return conversation, agent_view


@pytest.fixture
async def bot(emulator: Emulator) -> AsyncIterator[tuple[lpm.BrandWebsocketConnection, Any]]:
    """The bot (user 2001, skill 11) online with a routing subscription."""
    conn, routing = await open_agent(emulator, "bot")
    yield conn, routing
    await conn.close()


# ---------------------------------------------------------------- a conversation end to end


async def test_consumer_conversation_end_to_end(emulator: Emulator, bot: tuple[Any, Any]) -> None:
    agent, routing = bot
    async with consumer(emulator) as cons:
        errors = Errors(cons, agent)
        conversation, agent_view = await start_conversation(cons, agent, routing)
        assert conversation.stage == lpm.ConversationState.OPEN
        assert conversation.skill_id == "11"
        assert conversation.consumer is not None and conversation.consumer.user_id == cons.user_id

        # consumer -> agent
        incoming = later(agent_view.wait_for("message", timeout=WAIT))
        assert await conversation.send_message("hello bot") == 0
        at_agent = await incoming
        assert at_agent.body == "hello bot" and at_agent.sequence == 0
        assert at_agent.participant.role == lpm.ParticipantRole.CONSUMER
        assert at_agent.participant.user_id == cons.user_id
        assert not at_agent.sent_by_current_user()

        # agent -> consumer
        reply = later(conversation.wait_for("message", lambda m: m.body == "hi human", WAIT))
        assert await agent_view.send_message("hi human") == 1
        message = await reply
        assert message.body == "hi human" and message.sequence == 1
        assert message.participant.role == lpm.ParticipantRole.ASSIGNED_AGENT
        assert message.content_type == lpm.ContentType.PLAIN_TEXT
        assert [m.sequence for m in conversation.main_dialog.messages] == [0, 1]
        assert conversation.main_dialog.messages[0].sent_by_current_user()

        # accept / read -> the agent's message-delivery-event
        accepted = later(
            agent_view.wait_for("message-delivery-event", lambda ms: bool(ms[0].accepted_by), WAIT)
        )
        await message.accept()
        changed = await accepted
        assert [m.sequence for m in changed] == [1]
        assert cons.user_id in changed[0].accepted_by
        read = later(
            agent_view.wait_for("message-delivery-event", lambda ms: ms[0].has_consumer_read(), WAIT)
        )
        await message.read()
        assert [m.sequence for m in await read] == [1]
        # the consumer's own view of its statuses
        await until(lambda: message.has_consumer_read())

        # chat state
        consumer_at_agent = agent_view.consumer
        assert consumer_at_agent is not None
        typing = later(consumer_at_agent.wait_for("chat-state-change", timeout=WAIT))
        await conversation.set_chat_state(lpm.ParticipantChatState.COMPOSING)
        assert await typing == lpm.ParticipantChatState.COMPOSING
        assert consumer_at_agent.chat_state == lpm.ParticipantChatState.COMPOSING

        latest = conversation.get_latest_consumer_message()
        assert latest is not None and latest.body == "hello bot" and latest.sequence == 0
        assert agent_view.get_latest_consumer_message() is at_agent

        # the consumer closes; CSAT afterwards
        closed = later(conversation.wait_for("close", timeout=WAIT))
        agent_closed = later(agent_view.wait_for("close", timeout=WAIT))
        await conversation.close()
        await closed
        await agent_closed
        assert conversation.stage == lpm.ConversationState.CLOSE
        assert conversation.close_reason == "CONSUMER"
        assert conversation.open_dialog is None
        with pytest.raises(lpm.errors.NoOpenDialogError):
            await conversation.send_message("too late")
        await conversation.set_csat(5, True)
        await until(lambda: conversation.csat == 5)
        with pytest.raises(ConfigurationError):
            await conversation.set_csat(6, True)

        # the closed conversation stays known; a new one can be opened
        second = await cons.create_conversation(skill_id="11")
        assert second.conversation_id != conversation.conversation_id
        assert {c.conversation_id for c in cons.get_all_known_conversations()} == {
            conversation.conversation_id,
            second.conversation_id,
        }
        assert conversation.stage == lpm.ConversationState.CLOSE
        assert await second.send_message("again") == 0
        errors.assert_none()


# ---------------------------------------------------------------- consumer auth flows


async def test_anonymous_consumer_signs_up(emulator: Emulator) -> None:
    conn = consumer(emulator)
    assert (conn.auth_type, conn.user_id) == (lpm.AuthType.NONE, None)
    async with conn:
        errors = Errors(conn)
        assert conn.auth_type == lpm.AuthType.CONSUMER_ANONYMOUS
        assert conn.user_id and conn.user_id in emulator.world.accounts[ACC].consumers
        assert await conn.get_token()
        assert conn.user_profile["userId"] == conn.user_id
    errors.assert_none()


async def test_unauthenticated_connector(emulator: Emulator) -> None:
    async with consumer(emulator, unauth_connector_id=UNAUTH_CONNECTOR) as conn:
        errors = Errors(conn)
        assert conn.auth_type == lpm.AuthType.CONSUMER_UNAUTHENTICATED
        assert conn.user_id and conn.user_id in emulator.world.accounts[ACC].consumers
        assert emulator.world.accounts[ACC].consumers[conn.user_id].kind == "unauthenticated"
    errors.assert_none()


async def test_authenticated_connector_with_claims_and_key_file(emulator: Emulator) -> None:
    options = {
        "auth_connector_id": AUTH_CONNECTOR,
        "jwt_claims_set": claims(),
        "jwt_signing_key": key_file(emulator),
    }
    async with consumer(emulator, **options) as conn:
        errors = Errors(conn)
        assert conn.auth_type == lpm.AuthType.CONSUMER_AUTHENTICATED
        assert conn.user_id == authenticated_id("customer-42")
        stored = emulator.world.accounts[ACC].consumers[conn.user_id]
        assert stored.claims["lp_sdes"] == claims()["lp_sdes"]
    errors.assert_none()


async def test_authenticated_connector_with_a_ready_id_token(emulator: Emulator) -> None:
    id_token = jwt.encode(claims("customer-7"), key_text(emulator), algorithm="RS256")
    async with consumer(emulator, auth_connector_id=AUTH_CONNECTOR, id_token=id_token) as conn:
        errors = Errors(conn)
        assert conn.auth_type == lpm.AuthType.CONSUMER_AUTHENTICATED
        assert conn.user_id == authenticated_id("customer-7")
    errors.assert_none()


async def test_mock_authentication(emulator: Emulator) -> None:
    async with consumer(emulator, auth_data={"use_mock_auth": True, "customer_name": "Ada"}) as conn:
        errors = Errors(conn)
        assert conn.auth_type == lpm.AuthType.CONSUMER_MOCK_AUTHENTICATED
        assert conn.user_id == hashlib.sha256(b"mock|Ada").hexdigest()
        profile = await conn.get_user_profile()
        assert profile["userId"] == conn.user_id
    errors.assert_none()
    with pytest.raises(ConfigurationError, match="customer_name"):
        consumer(emulator, auth_data={"use_mock_auth": True})


async def test_caller_supplied_token_continues_the_identity(emulator: Emulator) -> None:
    async with consumer(emulator, unauth_connector_id=UNAUTH_CONNECTOR) as first:
        token = await first.get_token()
        user_id = first.user_id
    assert token is not None
    async with consumer(emulator, token=token) as again:
        errors = Errors(again)
        assert again.auth_type == lpm.AuthType.CONSUMER_UNDETERMINED
        assert again.user_id == user_id
        assert await again.get_token() == token
    errors.assert_none()


async def test_refused_caller_token_reports_and_keeps_the_identity(emulator: Emulator) -> None:
    consumers = emulator.world.accounts[ACC].consumers

    # a garbage token: InitConnection answers 401; the connection stops instead of signing up anew
    before = set(consumers)
    garbage = consumer(emulator, token="not.a.jwt")
    errors = Errors(garbage)
    with pytest.raises(TokenExpiredError):
        await asyncio.wait_for(garbage.open(), WAIT)
    assert garbage.state == lpm.ConnectionState.CLOSED
    assert garbage.token == "not.a.jwt" and garbage.user_id is None
    assert garbage.auth_type == lpm.AuthType.CONSUMER_UNDETERMINED
    assert set(consumers) == before
    assert errors.errors == []  # raised by open(), not reported as well
    await garbage.close()

    # a token that expired (the fault API expires every token issued to the consumer so far)
    async with consumer(emulator, unauth_connector_id=UNAUTH_CONNECTOR) as first:
        token = await first.get_token()
        user_id = first.user_id
    assert token is not None and user_id is not None
    await fault(emulator, "tokens/expire", {"consumer_id": user_id})
    before = set(consumers)
    stale = consumer(emulator, token=token)
    stale_errors = Errors(stale)
    with pytest.raises(TokenExpiredError):
        await asyncio.wait_for(stale.open(), WAIT)
    assert stale.token == token and stale.state == lpm.ConnectionState.CLOSED
    assert set(consumers) == before
    assert stale_errors.errors == []
    await stale.close()

    # Nothing may be left open once the application closed them: an unclosed HTTP session is
    # reported by aiohttp when collected (an unraisable ResourceWarning fails this test).
    # (The recorded errors' tracebacks reference the connections: dropped too.)
    del garbage, stale, errors, stale_errors
    gc.collect()


async def test_caller_token_expiring_while_connected_stops_the_connection(emulator: Emulator) -> None:
    async with consumer(emulator, unauth_connector_id=UNAUTH_CONNECTOR) as first:
        token = await first.get_token()
    assert token is not None
    conn = consumer(emulator, token=token)
    errors = Errors(conn)
    await conn.open()
    user_id = conn.user_id
    before = set(emulator.world.accounts[ACC].consumers)
    closed = later(conn.wait_for("close", timeout=WAIT))
    await fault(emulator, "tokens/expire", {"consumer_id": user_id})
    await closed
    assert conn.state == lpm.ConnectionState.CLOSED
    assert conn.token == token and conn.user_id == user_id
    assert set(emulator.world.accounts[ACC].consumers) == before
    assert [type(e) for e in errors.errors] == [TokenExpiredError]
    with pytest.raises(NotConnectedError):
        await conn.send("GetClock", {})
    await conn.close()  # a no-op once closed...
    del conn, errors
    gc.collect()  # ...that must still have released the HTTP session (see the test above)


async def test_upgrade_refused_with_401(emulator: Emulator) -> None:
    """A 401 at the WebSocket upgrade: an SDK-made identity gets a fresh token (same consumer)
    and reconnects; a caller's token makes the connection stop.  (The fault API's ``http``
    target covers "every other path, WebSocket upgrades included" — consumer upgrades too.)"""
    async with consumer(emulator, unauth_connector_id=UNAUTH_CONNECTOR) as conn:
        errors = Errors(conn)
        user_id, token = conn.user_id, await conn.get_token()
        reconnected = later(conn.wait_for("reconnect", timeout=WAIT))
        await fault(emulator, "http", {"target": "http", "count": 1, "action": "refuse", "status": 401})
        await fault(emulator, "sockets/drop", {"consumer_id": user_id})
        await reconnected
        assert conn.user_id == user_id and await conn.get_token() != token
        assert [type(e) for e in errors.errors] == [TokenExpiredError]

    assert token is not None
    callers = consumer(emulator, token=token)
    callers_errors = Errors(callers)
    await fault(emulator, "http", {"target": "http", "count": 1, "action": "refuse", "status": 401})
    # The first open() raises the refusal itself (issue 12): nothing can replace the token.
    with pytest.raises(TokenExpiredError):
        await asyncio.wait_for(callers.open(), WAIT)
    assert callers.token == token and callers.state == lpm.ConnectionState.CLOSED
    assert callers_errors.errors == []
    await callers.close()


async def test_sdk_made_identity_renews_after_expiry(emulator: Emulator) -> None:
    """An identity the SDK obtained (unauthenticated connector) is renewed, not abandoned:
    the anonymous token is refreshed, so the consumer id stays the same."""
    async with consumer(emulator, unauth_connector_id=UNAUTH_CONNECTOR) as conn:
        errors = Errors(conn)
        user_id, token = conn.user_id, await conn.get_token()
        reconnected = later(conn.wait_for("reconnect", timeout=WAIT))
        await fault(emulator, "tokens/expire", {"consumer_id": user_id})
        await reconnected
        assert conn.user_id == user_id and await conn.get_token() != token
        assert conn.auth_type == lpm.AuthType.CONSUMER_UNAUTHENTICATED
        errors.assert_none()


# ---------------------------------------------------------------- user profile


async def test_user_profile_and_sdes_seen_by_the_agent(emulator: Emulator, bot: tuple[Any, Any]) -> None:
    agent, _ = bot
    options = {
        "auth_connector_id": AUTH_CONNECTOR,
        "jwt_claims_set": claims(),
        "jwt_signing_key": key_file(emulator),
    }
    async with consumer(emulator, **options) as cons:
        errors = Errors(cons, agent)
        await cons.set_user_profile(first_name="Ada", last_name="Lovelace", nick_name="ada")
        profile = await cons.get_user_profile()
        assert (profile["firstName"], profile["lastName"], profile["nickName"]) == ("Ada", "Lovelace", "ada")
        assert profile["userId"] == cons.user_id

        seen = await agent.send(".ams.userprofile.GetUserProfile", cons.user_id)
        seen = seen[0] if isinstance(seen, list) else seen
        assert seen["firstName"] == "Ada" and seen["userId"] == cons.user_id
        assert seen["claims"]["lp_sdes"] == claims()["lp_sdes"]
        by_request = await agent.request(Req.GET_USER_PROFILE, cons.user_id)
        by_request = by_request[0] if isinstance(by_request, list) else by_request
        assert by_request["claims"]["lp_sdes"][1]["personal"]["firstname"] == "Ada"
        errors.assert_none()


# ---------------------------------------------------------------- step-up


async def test_step_up_keeps_the_conversation(emulator: Emulator, bot: tuple[Any, Any]) -> None:
    agent, routing = bot
    async with consumer(emulator, unauth_connector_id=UNAUTH_CONNECTOR) as cons:
        errors = Errors(cons, agent)
        conversation, agent_view = await start_conversation(cons, agent, routing)
        cid = conversation.conversation_id
        old_id, old_token, old_type = cons.user_id, await cons.get_token(), cons.auth_type
        assert old_type == lpm.AuthType.CONSUMER_UNAUTHENTICATED
        assert old_id is not None and old_token is not None
        incoming = later(agent_view.wait_for("message", timeout=WAIT))
        assert await conversation.send_message("before step-up") == 0
        await incoming

        removed = later(agent_view.wait_for("participant-removed", timeout=WAIT))
        added = later(agent_view.wait_for("participant-added", timeout=WAIT))
        new_id = await cons.step_up(
            AUTH_CONNECTOR, jwt_claims_set=claims("stepped"), jwt_signing_key=key_file(emulator)
        )

        assert new_id == cons.user_id == authenticated_id("stepped")
        assert CONSUMER_ID_64_HEX.match(new_id)
        assert cons.auth_type == lpm.AuthType.CONSUMER_AUTHENTICATED
        assert await cons.get_token() != old_token
        assert cons.state == lpm.ConnectionState.CONNECTED
        # the agent sees the consumer participant replaced
        assert (await removed).user_id == old_id
        new_participant, _ = await added
        assert new_participant.user_id == new_id and new_participant.role == lpm.ParticipantRole.CONSUMER
        # the same Conversation object goes on
        assert cons.get_conversation_by_id(cid) is conversation
        await until(lambda: conversation.consumer is not None and conversation.consumer.user_id == new_id)
        incoming = later(agent_view.wait_for("message", lambda m: m.body == "after step-up", WAIT))
        assert await conversation.send_message("after step-up") == 1
        at_agent = await incoming
        assert at_agent.body == "after step-up" and at_agent.participant.user_id == new_id
        reply = later(conversation.wait_for("message", lambda m: m.body == "welcome back", WAIT))
        await agent_view.send_message("welcome back")
        assert (await reply).sequence == 2

        # the stepped-up identity is renewed as itself when its token expires (never downgraded)
        reconnected = later(cons.wait_for("reconnect", timeout=WAIT))
        await fault(emulator, "tokens/expire", {"consumer_id": new_id})
        await reconnected
        assert cons.user_id == new_id and cons.auth_type == lpm.AuthType.CONSUMER_AUTHENTICATED
        incoming = later(agent_view.wait_for("message", lambda m: m.body == "renewed", WAIT))
        assert await conversation.send_message("renewed") == 3
        assert (await incoming).participant.user_id == new_id
        errors.assert_none()

        # the old identity is no longer part of the conversation
        async with consumer(emulator, token=old_token, create_default_subscription=False) as old:
            with pytest.raises(RequestError) as info:
                await old.send(
                    "ms.PublishEvent",
                    {
                        "dialogId": cid,
                        "conversationId": cid,
                        "event": {"type": "ContentEvent", "contentType": "text/plain", "message": "ghost"},
                    },
                )
            assert info.value.code in (401, 403)


async def test_mock_step_up_of_an_anonymous_consumer(emulator: Emulator) -> None:
    async with consumer(emulator) as cons:
        errors = Errors(cons)
        conversation = await cons.create_conversation(skill_id="11")
        echo = later(conversation.wait_for("message", lambda m: m.sequence == 0, WAIT))
        assert await conversation.send_message("anonymous") == 0
        await echo
        old_token = await cons.get_token()
        with pytest.raises(ConfigurationError):
            await cons.step_up(AUTH_CONNECTOR)  # no credentials: refused before any I/O
        assert await cons.get_token() == old_token

        new_id = await cons.step_up(AUTH_CONNECTOR, customer_name="Grace")
        assert new_id == cons.user_id == hashlib.sha256(b"mock|Grace").hexdigest()
        assert cons.auth_type == lpm.AuthType.CONSUMER_MOCK_AUTHENTICATED
        assert cons.get_conversation_by_id(conversation.conversation_id) is conversation
        echo = later(conversation.wait_for("message", lambda m: m.sequence == 1, WAIT))
        assert await conversation.send_message("as Grace") == 1
        assert (await echo).participant.user_id == new_id

        # renewed as Grace after an expiry
        reconnected = later(cons.wait_for("reconnect", timeout=WAIT))
        await fault(emulator, "tokens/expire", {"consumer_id": new_id})
        await reconnected
        assert cons.user_id == new_id and cons.auth_type == lpm.AuthType.CONSUMER_MOCK_AUTHENTICATED
        with pytest.raises(lpm.errors.AuthenticationError):
            await cons.step_up(AUTH_CONNECTOR, customer_name="Grace")  # already authenticated
        assert cons.user_id == new_id and cons.state == lpm.ConnectionState.CONNECTED
        errors.assert_none()


# ---------------------------------------------------------------- post-conversation survey


async def test_post_conversation_survey(emulator: Emulator) -> None:
    human, routing = await open_agent(emulator, "agent")
    survey_bot = brand(emulator, "survey-bot")  # the survey bot of skill 12
    await survey_bot.open()
    try:
        cons = consumer(emulator, client_properties={"features": [lpm.Features.MULTI_DIALOG]})
        async with cons:
            errors = Errors(cons, human, survey_bot)
            conversation, agent_view = await start_conversation(cons, human, routing, skill_id="12")
            bot_view = survey_bot.get_conversation_by_id(conversation.conversation_id)
            if bot_view is None:
                bot_view = await survey_bot.wait_for(
                    "conversation", lambda c: c.conversation_id == conversation.conversation_id, WAIT
                )

            survey_at_consumer = later(conversation.wait_for("dialog", timeout=WAIT))
            survey_at_bot = later(bot_view.wait_for("dialog", timeout=WAIT))
            await agent_view.close()
            survey: lpm.Dialog = await survey_at_consumer
            assert survey.dialog_type == lpm.DialogType.POST_SURVEY
            assert conversation.open_dialog is survey
            assert conversation.main_dialog.state == lpm.DialogState.CLOSE
            assert conversation.stage == lpm.ConversationState.OPEN

            bot_survey: lpm.Dialog = await survey_at_bot
            assert bot_survey.dialog_id == survey.dialog_id
            assert bot_view.open_dialog is bot_survey
            assert bot_survey.get_self_participant() is not None

            question = later(conversation.wait_for("message", lambda m: m.body == "How did we do?", WAIT))
            assert await bot_view.send_message("How did we do?") == 0
            asked = await question
            assert asked.dialog is survey and asked.sequence == 0 and asked.body == "How did we do?"

            answer = later(bot_view.wait_for("message", lambda m: m.body == "great", WAIT))
            assert await conversation.send_message("great") == 1
            answered = await answer
            assert answered.dialog is bot_survey and answered.body == "great"
            assert [m.body for m in survey.messages] == ["How did we do?", "great"]

            closed = later(conversation.wait_for("close", timeout=WAIT))
            await bot_survey.close(lpm.DialogCloseReason.AGENT, "survey done")
            await closed
            assert conversation.stage == lpm.ConversationState.CLOSE
            assert survey.state == lpm.DialogState.CLOSE
            assert conversation.open_dialog is None
            errors.assert_none()
    finally:
        await survey_bot.close()
        await human.close()


# ---------------------------------------------------------------- private messages


async def test_private_messages_never_reach_the_consumer(emulator: Emulator, bot: tuple[Any, Any]) -> None:
    agent, routing = bot
    async with consumer(emulator) as cons:
        errors = Errors(cons, agent)
        conversation, agent_view = await start_conversation(cons, agent, routing)
        seen: list[Any] = []
        conversation.on("message", seen.append)
        private = await agent_view.send_private_message("only for agents")
        public = later(conversation.wait_for("message", lambda m: m.body == "for everyone", WAIT))
        await agent_view.send_message("for everyone")
        got = await public
        assert got.body == "for everyone" and got.sequence == private + 1
        await asyncio.sleep(0.1)
        assert [m.body for m in seen] == ["for everyone"]
        assert [m.body for m in conversation.main_dialog.messages] == ["for everyone"]
        # the agent has both, the private one marked as such
        await until(lambda: len(agent_view.main_dialog.messages) == 2)
        audiences = [m.audience for m in agent_view.main_dialog.messages]
        assert audiences == [lpm.MessageAudience.AGENTS_AND_MANAGERS, lpm.MessageAudience.ALL]
        with pytest.raises(InvalidStateError):
            await conversation.send_private_message("consumers cannot")
        errors.assert_none()


# ---------------------------------------------------------------- files


async def test_file_upload_and_download(emulator: Emulator, bot: tuple[Any, Any]) -> None:
    agent, routing = bot
    image = png()
    async with consumer(emulator) as cons:
        errors = Errors(cons, agent)
        conversation, agent_view = await start_conversation(cons, agent, routing)

        requests: list[Any] = []
        cons.on("ms.GenerateURLForUploadFile#request", requests.append)
        with pytest.raises(ConfigurationError, match="3 MB"):
            await conversation.upload_file(image + b"\x00" * (3 * 1024 * 1024), caption="too big")
        assert requests == []

        incoming = later(agent_view.wait_for("message", timeout=WAIT))
        sequence = await conversation.upload_file(image, caption="logo")
        message = await incoming
        assert message.sequence == sequence
        assert message.content_type == lpm.ContentType.HOSTED_FILE
        assert message.is_downloadable and message.relative_path
        assert (message.caption, message.file_type) == ("logo", "PNG")
        assert len(requests) == 1

        assert await agent_view.download_file(message.relative_path) == image
        assert await conversation.download_file(message.relative_path) == image
        mine = conversation.main_dialog.get_message(sequence)
        assert mine is not None and mine.relative_path == message.relative_path
        errors.assert_none()


# ---------------------------------------------------------------- serialize / load


async def test_serialize_and_load_on_a_fresh_connection(emulator: Emulator, bot: tuple[Any, Any]) -> None:
    agent, routing = bot
    async with consumer(emulator) as cons:
        errors = Errors(cons, agent)
        conversation, agent_view = await start_conversation(cons, agent, routing)
        incoming = later(agent_view.wait_for("message", timeout=WAIT))
        await conversation.send_message("secret text")
        await incoming
        reply = later(conversation.wait_for("message", lambda m: m.body == "agent secret", WAIT))
        await agent_view.send_message("agent secret")
        await reply
        token = await cons.get_token()

        serialized = conversation.serialize()
        assert "secret text" not in serialized and "agent secret" not in serialized
        assert hashlib.sha256(b"secret text").hexdigest() in serialized

        async with consumer(emulator, token=token, create_default_subscription=False) as fresh:
            fresh_errors = Errors(fresh)
            loaded = fresh.load_conversation(serialized)
            assert loaded is not conversation
            assert fresh.get_conversation_by_id(conversation.conversation_id) is loaded
            assert loaded.conversation_id == conversation.conversation_id
            assert loaded.stage == lpm.ConversationState.OPEN and loaded.skill_id == "11"
            bodies = [m.body for m in loaded.main_dialog.messages]
            assert bodies == [
                hashlib.sha256(b"secret text").hexdigest(),
                hashlib.sha256(b"agent secret").hexdigest(),
            ]
            assert loaded.main_dialog.last_contiguous_sequence == 1
            assert loaded.assigned_agent is not None
            assert loaded.assigned_agent.user_id == conversation.assigned_agent.user_id  # type: ignore[union-attr]
            # a loaded conversation can act: it publishes as the same consumer
            got = later(agent_view.wait_for("message", lambda m: m.sequence == 2, WAIT))
            assert await loaded.send_message("from the loaded copy") == 2
            assert (await got).body == "from the loaded copy"
            loaded.unload()
            assert fresh.get_conversation_by_id(conversation.conversation_id) is None
            with pytest.raises(InvalidStateError):
                loaded.unload()
            with pytest.raises(ConfigurationError):
                fresh.load_conversation("{not json")
            fresh_errors.assert_none()
        errors.assert_none()


# ---------------------------------------------------------------- default subscription


async def test_default_subscription_finds_the_open_conversation(
    emulator: Emulator, bot: tuple[Any, Any]
) -> None:
    agent, routing = bot
    async with consumer(emulator, unauth_connector_id=UNAUTH_CONNECTOR) as first:
        conversation, agent_view = await start_conversation(first, agent, routing)
        incoming = later(agent_view.wait_for("message", timeout=WAIT))
        await conversation.send_message("remember me")
        await incoming
        token = await first.get_token()
    cid = conversation.conversation_id

    # without waiting: the conversation arrives as a "conversation" event, then "ready" (once)
    second = consumer(emulator, token=token)
    errors = Errors(second, agent)
    readies: list[Any] = []
    second.on("ready", lambda: readies.append(True))
    found = later(second.wait_for("conversation", timeout=WAIT))
    ready = later(second.wait_for("ready", timeout=WAIT))
    async with second:
        again = await found
        await ready
        assert again.conversation_id == cid
        assert second.get_conversation_by_id(cid) is again
        assert again.stage == lpm.ConversationState.OPEN
        # the messaging subscription was made for it: the history came back, live events follow
        await until(lambda: [m.body for m in again.main_dialog.messages] == ["remember me"])
        live = later(again.wait_for("message", lambda m: m.body == "still here", WAIT))
        await agent_view.send_message("still here")
        assert (await live).body == "still here"
        await asyncio.sleep(0.1)
        assert readies == [True]

    # wait_for_ready=True: open() returns with the conversation loaded
    third = consumer(emulator, token=token, wait_for_ready=True)
    errors_third = Errors(third)
    ready_events: list[Any] = []
    third.on("ready", lambda: ready_events.append(True))
    async with third:
        assert ready_events == [True]
        loaded = third.get_conversation_by_id(cid)
        assert loaded is not None and loaded.stage == lpm.ConversationState.OPEN
        assert third.default_subscription is not None and third.default_subscription.loaded
        assert [c.conversation_id for c in third.get_all_known_conversations()] == [cid]
    errors.assert_none()
    errors_third.assert_none()
