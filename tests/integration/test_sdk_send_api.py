"""The SDK's Send API consumer connection against the emulator over real loopback HTTP: requests over
the connector Send API, agent replies through signed webhooks to an ``lpm.webhooks`` receiver."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web

import lpm
import lpm.webhooks
from lpm.client.transport.send_api import ConsumerSendApiConnection
from lpm.emulator.app import Emulator
from lpm.errors import AuthenticationError, ConfigurationError, InvalidStateError, RequestError
from tests.helpers import login

ACC = "12345678"
APP_ID, APP_SECRET = "lpm-emulator-app", "lpm-emulator-app-secret"
FAST = {"reconnect_schedule": (0.05, 0.1, 0.2), "wait_to_reconnect": 0.05, "response_timeout": 10.0}
WEBHOOK_KEYS = [
    "cqm.ExConversationChangeNotification",
    "ms.MessagingEventNotification.ContentEvent",
    "ms.MessagingEventNotification.RichContentEvent",
    "ms.MessagingEventNotification.AcceptStatusEvent",
    "ms.MessagingEventNotification.ChatStateEvent",
]
#: An address nothing listens on: a call that reached I/O would fail with HttpError, not ConfigurationError.
NOWHERE = "http://127.0.0.1:9"
#: The smallest thing the SDK recognises as a PNG.
PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)


def send_api(
    csds_domain: str, ext_consumer_id: str = "ext-1", client_secret: str = APP_SECRET, **options: Any
) -> ConsumerSendApiConnection:
    conn = lpm.create_connection(
        account_id=ACC,
        user_type=lpm.UserType.CONSUMER,
        connection_type=lpm.ConnectionType.SEND_API,
        auth_data={"client_id": APP_ID, "client_secret": client_secret, "ext_consumer_id": ext_consumer_id},
        csds_domain=csds_domain,
        **options,
    )
    assert isinstance(conn, ConsumerSendApiConnection)
    return conn


def brand(emu: Emulator, username: str = "bot") -> lpm.BrandWebsocketConnection:
    conn = lpm.create_connection(
        account_id=ACC,
        user_type=lpm.UserType.BRAND,
        auth_data={"username": username, "password": f"{username}-password"},
        csds_domain=emu.csds_domain,
        **FAST,
    )
    assert isinstance(conn, lpm.BrandWebsocketConnection)
    return conn


class Collector:
    """Records connection errors so a test can assert there were none."""

    def __init__(self, conn: lpm.Connection) -> None:
        self.errors: list[BaseException] = []
        conn.on("error", self.errors.append)


async def eventually(predicate: Callable[[], bool], what: str) -> None:
    for _ in range(400):
        if predicate():
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class Hooked:
    conn: ConsumerSendApiConnection
    receiver: lpm.webhooks.WebhooksReceiver


@pytest.fixture
async def hooked(emulator: Emulator, http: aiohttp.ClientSession) -> AsyncIterator[Hooked]:
    """A (not yet opened) Send API consumer behind a webhook receiver that the default app
    install (the one the connection authenticates as) POSTs its webhooks to."""
    conn = send_api(emulator.csds_domain)
    app = lpm.webhooks.create_app(conn, client_secret=APP_SECRET)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/webhooks"
    bearer = (await login(http, emulator, "agent"))["bearer"]
    hooks: dict[str, Any] = {key: {"endpoint": url} for key in WEBHOOK_KEYS}
    hooks["retry"] = {"retention_time": 10}
    installs = f"{emulator.base_url}/api/account/{ACC}/configuration/app-install/installations"
    async with http.get(installs, headers={"Authorization": f"Bearer {bearer}"}) as resp:
        revision = resp.headers["ac-revision"]  # PUT names it in If-Match
    async with http.put(
        f"{installs}/{APP_ID}",
        json={"client_name": "send-api-connector", "capabilities": {"webhooks": hooks}},
        headers={"Authorization": f"Bearer {bearer}", "If-Match": revision},
    ) as resp:
        assert resp.status == 200, await resp.text()
    yield Hooked(conn, lpm.webhooks.receiver_of(app))
    await runner.cleanup()
    await conn.close()


@pytest.fixture
async def bot(emulator: Emulator) -> AsyncIterator[lpm.BrandWebsocketConnection]:
    conn = brand(emulator)
    await conn.open()
    await conn.set_agent_state(lpm.AgentState.ONLINE)
    yield conn
    await conn.close()


async def accept_next_ring(routing: Any) -> Any:
    ring = await routing.wait_for("ring", timeout=10)
    await ring.accept()
    return ring


# ---------------------------------------------------------------- the conversation scenario


async def test_send_api_consumer_chats_with_a_bot_through_webhooks(
    hooked: Hooked, bot: lpm.BrandWebsocketConnection
) -> None:
    conn = hooked.conn
    routing = await bot.create_routing_task_subscription()
    bot_errors = Collector(bot)
    errors = Collector(conn)
    async with conn:
        assert conn.state == lpm.ConnectionState.CONNECTED
        assert conn.auth_type == lpm.AuthType.CONSUMER_UNDETERMINED
        assert conn.user_id and not conn.is_brand and conn.agent_id is None

        ring_task = asyncio.create_task(accept_next_ring(routing))
        bot_conversation = asyncio.create_task(bot.wait_for("conversation", timeout=10))
        conversation = await conn.create_conversation(skill_id="11")
        assert conn.get_conversation_by_id(conversation.conversation_id) is conversation
        ring = await ring_task
        assert ring.conversation_id == conversation.conversation_id
        agent_view = await bot_conversation
        assert agent_view.conversation_id == conversation.conversation_id
        assert agent_view.consumer is not None and agent_view.consumer.user_id == conn.user_id

        # consumer -> bot over the Send API
        incoming = asyncio.create_task(agent_view.wait_for("message", timeout=10))
        assert await conversation.send_message("hello bot") == 0
        message = await incoming
        assert message.body == "hello bot" and message.sequence == 0
        await conversation.set_chat_state(lpm.ParticipantChatState.COMPOSING)
        await conn.set_user_profile(first_name="Sam", last_name="Connector")

        # bot -> consumer through the webhooks
        reply = asyncio.create_task(
            conversation.wait_for("message", lambda m: m.body == "hi human", timeout=10)
        )
        await agent_view.send_message("hi human")
        got = await reply
        assert got.participant.role == lpm.ParticipantRole.ASSIGNED_AGENT
        assert conversation.assigned_agent is not None
        read = asyncio.create_task(agent_view.wait_for("message-delivery-event", timeout=10))
        await got.read()
        await read

        # a file, uploaded over the Send API and read back
        file_seen = asyncio.create_task(
            agent_view.wait_for("message", lambda m: m.relative_path is not None, timeout=10)
        )
        await conversation.upload_file(PNG, caption="a picture")
        hosted = await file_seen
        assert hosted.relative_path is not None
        assert await conversation.download_file(hosted.relative_path) == PNG

        # the consumer closes (confirmed by webhook) and rates
        closed = asyncio.create_task(agent_view.wait_for("close", timeout=10))
        await conversation.close()
        await closed
        await eventually(lambda: conversation.stage == lpm.ConversationState.CLOSE, "the close webhook")
        await conversation.set_csat(5, True)
        await eventually(lambda: conversation.csat == 5, "the CSAT webhook")
        with pytest.raises(InvalidStateError):
            await conversation.close()
        await hooked.receiver.drain()
    assert conn.state == lpm.ConnectionState.CLOSED
    assert errors.errors == [] and bot_errors.errors == []


async def test_refused_app_jwt_is_regenerated_and_refusals_are_typed(hooked: Hooked) -> None:
    conn = hooked.conn
    await conn.open()
    conversation = await conn.create_conversation()

    # An AppJWT the server refuses (40102, e.g. expired) is replaced and the request sent again.
    conn._app_jwt = "not-an-app-jwt"
    assert await conversation.send_message("still here") == 0
    assert conn._app_jwt != "not-an-app-jwt"

    # A refused ConsumerJWS is an AuthenticationError naming the errorCode, never the token.
    good_jws = conn._consumer_jws
    conn._consumer_jws = "bogus-consumer-jws"
    with pytest.raises(AuthenticationError, match="40103") as auth_error:
        await conversation.send_message("who am I")
    assert auth_error.value.status == 401 and "bogus-consumer-jws" not in str(auth_error.value)
    conn._consumer_jws = good_jws

    # A business refusal is a RequestError with the HTTP status.
    with pytest.raises(RequestError) as refused:
        await conn.publish_event(
            "no-such-conversation",
            "no-such-conversation",
            {"type": "ContentEvent", "contentType": "text/plain", "message": "x"},
        )
    assert 400 <= refused.value.code < 500
    assert refused.value.request_type == "Send API ms.PublishEvent"
    assert refused.value.conversation_id == "no-such-conversation"

    # One open conversation per consumer: a second request is refused in its CONVERSATION slot.
    with pytest.raises(RequestError) as second:
        await conn.create_conversation()
    assert second.value.request_type == "Send API cm.ConsumerRequestConversation"

    # Not available over the Send API (brand-only or needing a socket): before any I/O.
    with pytest.raises(InvalidStateError, match="Send API"):
        await conn.subscribe_routing_tasks({})
    with pytest.raises(InvalidStateError, match="Send API"):
        await conn.update_ring_state("ring-1", "ACCEPTED")
    with pytest.raises(InvalidStateError, match="Send API"):
        await conn.subscribe_conversations({})
    with pytest.raises(InvalidStateError, match="Send API"):
        await conversation.query_messages()
    await conn.close()
    with pytest.raises(lpm.errors.NotConnectedError):
        await conn.set_user_profile(first_name="late")


async def test_webhooks_of_other_consumers_are_ignored(hooked: Hooked) -> None:
    conn = hooked.conn
    errors = Collector(conn)
    await conn.open()
    foreign = {
        "wsNotificationMsg": {
            "kind": "notification",
            "type": "cqm.ExConversationChangeNotification",
            "body": {
                "subscriptionId": APP_ID,
                "changes": [
                    {
                        "type": "UPSERT",
                        "result": {
                            "convId": "someone-else",
                            "conversationDetails": {
                                "state": "OPEN",
                                "stage": "OPEN",
                                "startTs": 1,
                                "participants": [{"id": "another-consumer", "role": "CONSUMER"}],
                                "dialogs": [],
                            },
                        },
                    }
                ],
            },
        }
    }
    await conn.process_webhooks_notification(foreign)
    event = {
        "wsNotificationMsg": {
            "kind": "notification",
            "type": "ms.MessagingEventNotification",
            "body": {
                "dialogId": "someone-else",
                "changes": [
                    {
                        "sequence": 0,
                        "originatorId": "another-consumer",
                        "serverTimestamp": 1,
                        "dialogId": "someone-else",
                        "conversationId": "someone-else",
                        "event": {"type": "ContentEvent", "contentType": "text/plain", "message": "hi"},
                    }
                ],
            },
        }
    }
    await conn.process_webhooks_notification(event)
    assert conn.get_conversation_by_id("someone-else") is None
    assert errors.errors == []
    with pytest.raises(ConfigurationError, match="wsNotificationMsg"):
        await conn.process_webhooks_notification({"nothing": 1})
    await conn.close()


# ---------------------------------------------------------------- credentials and options


async def test_bad_client_secret_fails_open(emulator: Emulator) -> None:
    conn = send_api(emulator.csds_domain, client_secret="wrong-secret")
    with pytest.raises(AuthenticationError) as refused:
        await conn.open()
    assert refused.value.status == 401 and "wrong-secret" not in str(refused.value)
    assert conn.state == lpm.ConnectionState.FAILED_TO_CONNECT
    await conn.close()
    assert conn.state == lpm.ConnectionState.CLOSED


@pytest.mark.parametrize(
    "auth_data",
    [
        None,
        {},
        {"client_id": APP_ID, "client_secret": APP_SECRET},
        {"client_id": APP_ID, "ext_consumer_id": "ext-1"},
        {"client_secret": APP_SECRET, "ext_consumer_id": "ext-1"},
        {"client_id": "", "client_secret": APP_SECRET, "ext_consumer_id": "ext-1"},
        {"client_id": APP_ID, "client_secret": 7, "ext_consumer_id": "ext-1"},
    ],
)
def test_missing_auth_data_is_a_configuration_error(auth_data: Any) -> None:
    with pytest.raises(ConfigurationError, match="auth_data") as bad:
        lpm.create_connection(
            account_id=ACC,
            user_type=lpm.UserType.CONSUMER,
            connection_type=lpm.ConnectionType.SEND_API,
            auth_data=auth_data,
            csds_domain=NOWHERE,
        )
    assert APP_SECRET not in str(bad.value)


def test_send_api_is_for_consumers_only() -> None:
    with pytest.raises(ConfigurationError, match="consumer API"):
        lpm.create_connection(
            account_id=ACC,
            user_type=lpm.UserType.BRAND,
            connection_type=lpm.ConnectionType.SEND_API,
            auth_data={"client_id": APP_ID, "client_secret": APP_SECRET, "ext_consumer_id": "ext-1"},
            csds_domain=NOWHERE,
        )


async def test_actions_before_open_are_refused_without_io() -> None:
    conn = send_api(NOWHERE)
    with pytest.raises(lpm.errors.NotConnectedError):
        await conn.create_conversation()
    assert conn.user_id is None and conn.auth_type == lpm.AuthType.NONE
    await conn.close()
