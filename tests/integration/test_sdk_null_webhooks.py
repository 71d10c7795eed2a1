"""NULL connections fed by webhooks over real loopback HTTP: the emulator POSTs signed webhooks to an
aiohttp server made by ``lpm.webhooks.create_app``; then a stateless bot answers over REST and with
``lpm.publish_message``."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

import lpm
import lpm.webhooks
from lpm.client.auth import idp
from lpm.client.auth.http import HttpSettings
from lpm.client.subscriptions import webhook_intake as intake_module
from lpm.client.transport.null import NullConnection
from lpm.client.transport.rest import BrandRestConnection
from lpm.emulator.app import Emulator
from lpm.errors import ConfigurationError, InvalidStateError, ProtocolError, RequestError
from lpm.publish import PublishResponse, is_server_jwt, publish_message
from tests.helpers import login

ACC = "12345678"
APP_ID, APP_SECRET = "lpm-emulator-app", "lpm-emulator-app-secret"
FAST = {"reconnect_schedule": (0.05, 0.1, 0.2), "wait_to_reconnect": 0.05, "response_timeout": 10.0}
ALL_KEYS = [
    "cqm.ExConversationChangeNotification",
    "ms.MessagingEventNotification.ContentEvent",
    "ms.MessagingEventNotification.RichContentEvent",
    "ms.MessagingEventNotification.AcceptStatusEvent",
    "ms.MessagingEventNotification.ChatStateEvent",
]
DOCS = sorted((Path(__file__).resolve().parents[2] / "docs" / "connections").glob("*.md"))
#: An address nothing listens on: a call that reached I/O would fail with HttpError, not ConfigurationError.
NOWHERE = "http://127.0.0.1:9"


@dataclass
class Receiver:
    conn: NullConnection
    receiver: lpm.webhooks.WebhooksReceiver
    url: str
    install: dict[str, Any]


@pytest.fixture
async def wemu() -> AsyncIterator[Emulator]:
    async with Emulator(
        faults=True, webhook_retry_base=0.05, webhook_retry_max=0.2, webhook_timeout=2
    ) as emu:
        yield emu


def null_connection(user_type: str = lpm.UserType.BRAND) -> NullConnection:
    conn = lpm.create_connection(account_id=ACC, user_type=user_type, connection_type=lpm.ConnectionType.NULL)
    assert isinstance(conn, NullConnection)
    return conn


def consumer(emu: Emulator) -> lpm.ConsumerWebsocketConnection:
    conn = lpm.create_connection(
        account_id=ACC, user_type=lpm.UserType.CONSUMER, csds_domain=emu.csds_domain, **FAST
    )
    assert isinstance(conn, lpm.ConsumerWebsocketConnection)
    return conn


def rest(emu: Emulator, username: str = "bot") -> BrandRestConnection:
    conn = lpm.create_connection(
        account_id=ACC,
        user_type=lpm.UserType.BRAND,
        connection_type=lpm.ConnectionType.REST,
        auth_data={"username": username, "password": f"{username}-password"},
        csds_domain=emu.csds_domain,
    )
    assert isinstance(conn, BrandRestConnection)
    return conn


async def installations(
    http: aiohttp.ClientSession, emu: Emulator, bearer: str, method: str, suffix: str, body: Any
) -> dict[str, Any]:
    url = f"{emu.base_url}/api/account/{ACC}/configuration/app-install/installations{suffix}"
    headers = {"Authorization": f"Bearer {bearer}"}
    if method in ("PUT", "DELETE"):  # writes name the installations' revision (ac-revision)
        async with http.get(url, headers=headers) as resp:
            headers["If-Match"] = resp.headers["ac-revision"]
    async with http.request(method, url, json=body, headers=headers) as resp:
        assert resp.status in (200, 201), await resp.text()
        data: dict[str, Any] = await resp.json()
        return data


def install_body(url: str) -> dict[str, Any]:
    hooks: dict[str, Any] = {key: {"endpoint": url} for key in ALL_KEYS}
    hooks["retry"] = {"retention_time": 5}
    return {"client_name": "null-bot", "capabilities": {"webhooks": hooks}}


@pytest.fixture
async def hook(wemu: Emulator, http: aiohttp.ClientSession) -> AsyncIterator[Receiver]:
    """A NULL brand connection behind a receiver registered as an app install's webhook endpoint."""
    conn = null_connection()
    bearer = (await login(http, wemu, "agent"))["bearer"]
    # The secret is generated at registration and the receiver needs it before it can listen, so
    # register with a placeholder endpoint, start the receiver, then point the install at it.
    install = await installations(http, wemu, bearer, "POST", "", install_body(f"{NOWHERE}/placeholder"))
    app = lpm.webhooks.create_app(conn, client_secret=install["client_secret"])
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/webhooks"
    await installations(http, wemu, bearer, "PUT", f"/{install['client_id']}", install_body(url))
    yield Receiver(conn, lpm.webhooks.receiver_of(app), url, install)
    await runner.cleanup()
    await conn.close()


async def eventually(predicate: Callable[[], bool], what: str) -> None:
    for _ in range(400):
        if predicate():
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"timed out waiting for {what}")


# ---------------------------------------------------------------- synthetic notifications


def conversation_payload(
    cid: str, consumer_id: str = "consumer-1", stage: str = "OPEN", ts: int = 1
) -> dict[str, Any]:
    details = {
        "state": stage,
        "stage": stage,
        "startTs": 1,
        "metaDataLastUpdateTs": ts,
        "participants": [{"id": consumer_id, "role": "CONSUMER"}],
        "dialogs": [
            {
                "dialogId": cid,
                "participantsDetails": [{"id": consumer_id, "role": "CONSUMER", "state": "ACTIVE"}],
                "dialogType": "MAIN",
                "channelType": "MESSAGING",
                "state": stage,
            }
        ],
    }
    body = {
        "subscriptionId": APP_ID,
        "changes": [{"type": "UPSERT", "result": {"convId": cid, "conversationDetails": details}}],
    }
    return {
        "wsNotificationMsg": {
            "kind": "notification",
            "type": "cqm.ExConversationChangeNotification",
            "body": body,
        }
    }


def message_payload(cid: str, sequence: int, text: str, consumer_id: str = "consumer-1") -> dict[str, Any]:
    change = {
        "sequence": sequence,
        "originatorId": consumer_id,
        "originatorMetadata": {"id": consumer_id, "role": "CONSUMER"},
        "serverTimestamp": 2,
        "event": {"type": "ContentEvent", "contentType": "text/plain", "message": text},
        "conversationId": cid,
        "dialogId": cid,
    }
    body = {"dialogId": cid, "changes": [change]}
    return {
        "wsNotificationMsg": {"kind": "notification", "type": "ms.MessagingEventNotification", "body": body}
    }


async def post(http: aiohttp.ClientSession, url: str, payload: Any, secret: str | None) -> int:
    raw = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["x-liveperson-signature"] = lpm.webhooks.signature(raw, secret)
    async with http.post(url, data=raw, headers=headers) as resp:
        return resp.status


# ---------------------------------------------------------------- NULL connection + receiver, end to end


async def test_null_connection_gets_conversations_and_messages_in_order(
    wemu: Emulator, hook: Receiver
) -> None:
    null = hook.conn
    errors: list[BaseException] = []
    null.on("error", errors.append)
    assert null.state == lpm.ConnectionState.NULL
    await null.open()
    assert null.state == lpm.ConnectionState.NULL and null.is_brand
    intake = intake_module.webhooks_intake(null)
    intake.clear_conversation_timeout = 0.05
    announced = asyncio.create_task(null.wait_for("conversation", timeout=10))
    async with consumer(wemu) as cons:
        conversation = await cons.create_conversation(skill_id="11")
        seen = await announced
        assert seen.conversation_id == conversation.conversation_id
        assert seen.consumer is not None and seen.consumer.user_id == cons.user_id
        assert intake.get(seen.conversation_id) is seen
        received: list[tuple[int | None, Any]] = []
        seen.on("message", lambda m: received.append((m.sequence, m.body)))
        for i in range(12):
            await conversation.send_message(f"message {i}")
        await eventually(lambda: len(received) == 12, "12 messages")
        assert received == [(i, f"message {i}") for i in range(12)]

        # Closed: released from the intake (webhooks send no DELETE), then from the cache.
        closed = asyncio.create_task(seen.wait_for("close", timeout=10))
        await conversation.close()
        await closed
        await eventually(
            lambda: intake.get(seen.conversation_id) is None, "the closed conversation's release"
        )
        assert null.conversations.ref_count(seen) == 0
    assert hook.receiver.rejected == 0 and hook.receiver.received > 12
    assert errors == []
    # NULL connections have nothing to act with.
    with pytest.raises(InvalidStateError, match="NULL connection"):
        await seen.main_dialog.send_message("hello?")
    with pytest.raises(InvalidStateError, match="NULL connection"):
        await seen.main_dialog.query_messages()


async def test_signature_is_verified_and_refused_requests_are_not_processed(
    hook: Receiver, http: aiohttp.ClientSession
) -> None:
    forged = conversation_payload("forged")
    assert await post(http, hook.url, forged, None) == 401
    assert await post(http, hook.url, forged, "not-the-secret") == 401
    async with http.post(hook.url, data=b"{}", headers={"x-liveperson-signature": "sha1=AAAA"}) as resp:
        assert resp.status == 401
    assert await post(http, hook.url, [1, 2], hook.install["client_secret"]) == 400
    await hook.receiver.drain()
    assert hook.conn.conversations.get("forged") is None
    assert hook.receiver.rejected == 4 and hook.receiver.received == 0

    assert await post(http, hook.url, forged, hook.install["client_secret"]) == 200
    await hook.receiver.drain()
    assert hook.conn.conversations.get("forged") is not None

    # A signed payload of an unknown type is accepted (retrying cannot help) and reported.
    errors: list[BaseException] = []
    hook.conn.on("error", errors.append)
    odd = {"wsNotificationMsg": {"type": "routing.RoutingTaskNotification", "body": {}}}
    assert await post(http, hook.url, odd, hook.install["client_secret"]) == 200
    await hook.receiver.drain()
    assert [str(e) for e in errors] == ["invalid notification type routing.RoutingTaskNotification"]


def test_verify_signature() -> None:
    body = b'{"wsNotificationMsg": {}}'
    good = lpm.webhooks.signature(body, "s3cret")
    assert good.startswith("sha1=")
    assert lpm.webhooks.verify_signature(body, good, "s3cret")
    assert lpm.webhooks.verify_signature(body, "SHA1=" + good[5:], "s3cret")
    assert not lpm.webhooks.verify_signature(body + b" ", good, "s3cret")
    assert not lpm.webhooks.verify_signature(body, good, "other")
    assert not lpm.webhooks.verify_signature(body, good[5:], "s3cret")  # no sha1= prefix
    assert not lpm.webhooks.verify_signature(body, None, "s3cret")
    assert not lpm.webhooks.verify_signature(body, "sha1=ünïcode", "s3cret")
    assert not lpm.webhooks.verify_signature(body, good, "")
    with pytest.raises(ConfigurationError, match="client_secret"):
        lpm.webhooks.create_app(null_connection(), client_secret="")
    with pytest.raises(ConfigurationError, match="path"):
        lpm.webhooks.create_app(null_connection(), client_secret="x", path="webhooks")


async def test_receiver_answers_at_once_and_keeps_each_conversation_in_order(
    http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = null_connection()
    app = lpm.webhooks.create_app(conn, client_secret="secret", path="/hooks")
    receiver = lpm.webhooks.receiver_of(app)
    gate = asyncio.Event()
    original = intake_module.process_webhooks_notification

    async def held(connection: Any, payload: Any) -> None:
        # Conversation "slow" waits for the gate; "fast" does not.
        body = json.dumps(payload)
        if '"slow"' in body:
            await gate.wait()
        await original(connection, payload)

    monkeypatch.setattr(lpm.webhooks, "process_webhooks_notification", held)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/hooks"
    try:
        for cid in ("slow", "fast"):
            assert await post(http, url, conversation_payload(cid), "secret") == 200
        for i in range(8):
            for cid in ("slow", "fast"):
                assert await post(http, url, message_payload(cid, i, f"{cid} {i}"), "secret") == 200
        # Every request was answered while "slow" could not be processed at all.
        await eventually(lambda: receiver.pending == 9, "the fast conversation")
        fast = conn.conversations.get("fast")
        assert fast is not None and [m.body for m in fast.main_dialog.messages] == [
            f"fast {i}" for i in range(8)
        ]
        assert conn.conversations.get("slow") is None
        gate.set()
        await receiver.drain()
        slow = conn.conversations.get("slow")
        assert slow is not None and [m.body for m in slow.main_dialog.messages] == [
            f"slow {i}" for i in range(8)
        ]
        assert receiver.processed == receiver.received == 18

        # Cleanup cancels what is still queued.
        gate.clear()
        assert await post(http, url, message_payload("slow", 8, "never"), "secret") == 200
        assert receiver.pending == 1
    finally:
        await runner.cleanup()
    assert receiver.pending == 0
    assert [m.body for m in slow.main_dialog.messages][-1] == "slow 7"
    await conn.close()


async def test_process_webhooks_notification_validates_its_input() -> None:
    conn = null_connection(lpm.UserType.CONSUMER)
    assert not conn.is_brand and conn.state == lpm.ConnectionState.NULL
    with pytest.raises(ConfigurationError, match="notification is missing wsNotificationMsg"):
        await intake_module.process_webhooks_notification(conn, {"sentTs": 1})
    with pytest.raises(ConfigurationError, match=r"invalid notification type ms\.Nope"):
        await intake_module.process_webhooks_notification(conn, {"wsNotificationMsg": {"type": "ms.Nope"}})
    with pytest.raises(ConfigurationError, match="JSON"):
        await intake_module.process_webhooks_notification(conn, b"not json")
    with pytest.raises(ConfigurationError):
        await intake_module.process_webhooks_notification(conn, [])
    bad = {"wsNotificationMsg": {"type": "cqm.ExConversationChangeNotification", "body": {"changes": 3}}}
    with pytest.raises(ProtocolError):
        await intake_module.process_webhooks_notification(conn, bad)
    # JSON text works as well as a dict; a message for an unknown conversation is reported.
    errors: list[BaseException] = []
    conn.on("error", errors.append)
    await intake_module.process_webhooks_notification(conn, json.dumps(conversation_payload("c1")))
    await intake_module.process_webhooks_notification(conn, message_payload("c1", 0, "hi"))
    await intake_module.process_webhooks_notification(conn, message_payload("c2", 0, "lost"))
    c1 = conn.conversations.get("c1")
    assert c1 is not None and [m.body for m in c1.main_dialog.messages] == ["hi"]
    assert len(errors) == 1 and "not in cache" in str(errors[0])
    await conn.close()
    await conn.close()
    assert conn.state == lpm.ConnectionState.NULL


# ---------------------------------------------------------------- the stateless bot answers


async def test_stateless_bot_answers_over_rest_and_publish_message(
    wemu: Emulator, hook: Receiver, http: aiohttp.ClientSession
) -> None:
    null = hook.conn
    announced = asyncio.create_task(null.wait_for("conversation", timeout=10))
    async with consumer(wemu) as cons:
        conversation = await cons.create_conversation(skill_id="11")
        seen = await announced
        first = asyncio.create_task(seen.wait_for("message", timeout=10))
        await conversation.send_message("I need help")
        assert (await first).body == "I need help"

        # The bot process keeps nothing but this text between webhooks.
        saved = seen.serialize()
        assert "I need help" not in saved
        async with rest(wemu, "bot") as bot:
            mine = bot.load_conversation(saved)
            assert mine.conversation_id == conversation.conversation_id and mine is not seen
            assert mine.consumer is not None and mine.consumer.user_id == cons.user_id
            await mine.join(lpm.ParticipantRole.ASSIGNED_AGENT)
            reply = asyncio.create_task(
                conversation.wait_for("message", lambda m: m.body == "on it", timeout=10)
            )
            sequence = await mine.send_message("on it")
            assert (await reply).sequence == sequence == 1
            mine.unload()
            assert bot.conversations.get(mine.conversation_id) is None
            # The NULL side learns of the join and the answer through webhooks.
            await eventually(
                lambda: seen.assigned_agent is not None and seen.assigned_agent.user_id == bot.user_id,
                "the bot's join",
            )
            await eventually(
                lambda: [m.body for m in seen.main_dialog.messages][-1:] == ["on it"], "the answer"
            )

            # publish_message with the agent's bearer.
            bearer = await bot.get_token()
            assert not is_server_jwt(bearer)
            got = asyncio.create_task(conversation.wait_for("message", timeout=10))
            response = await publish_message(
                ACC,
                bearer,
                conversation.conversation_id,
                conversation.conversation_id,
                "by bearer",
                csds_domain=wemu.csds_domain,
            )
            assert isinstance(response, PublishResponse) and response.status == 201 and response.sequence == 2
            message = await got
            assert (message.body, message.sequence) == ("by bearer", 2)
            assert message.participant.user_id == bot.user_id

            # publish_message with a server JWT (AppJWT): it must say whom it speaks for.
            async with HttpSettings(wemu.csds_domain) as settings:
                app_jwt = await idp.sentinel_app_jwt(settings, wemu.public_host, ACC, APP_ID, APP_SECRET)
            assert is_server_jwt(app_jwt)
            with pytest.raises(ConfigurationError, match="originator_role"):
                await publish_message(
                    ACC,
                    app_jwt,
                    conversation.conversation_id,
                    conversation.conversation_id,
                    "x",
                    csds_domain=NOWHERE,
                )
            with pytest.raises(ConfigurationError, match="originator_id"):
                await publish_message(
                    ACC,
                    app_jwt,
                    conversation.conversation_id,
                    conversation.conversation_id,
                    "x",
                    originator_role=lpm.ParticipantRole.ASSIGNED_AGENT,
                    csds_domain=NOWHERE,
                )
            got = asyncio.create_task(conversation.wait_for("message", timeout=10))
            response = await publish_message(
                ACC,
                app_jwt,
                conversation.conversation_id,
                conversation.conversation_id,
                "by the server",
                metadata=[{"type": "BotResponse", "intents": []}],
                quick_replies={"type": "quickReplies", "itemsPerRow": 1, "replies": []},
                originator_id=bot.user_id,
                originator_role=lpm.ParticipantRole.ASSIGNED_AGENT,
                csds_domain=wemu.csds_domain,
            )
            assert response.sequence == 3
            message = await got
            assert (message.body, message.participant.user_id) == ("by the server", bot.user_id)

            # A private message does not reach the consumer; refusals are typed.
            private = await publish_message(
                ACC,
                bearer,
                conversation.conversation_id,
                conversation.conversation_id,
                "psst",
                message_audience=lpm.MessageAudience.AGENTS_AND_MANAGERS,
                csds_domain=wemu.csds_domain,
            )
            assert private.sequence == 4
            with pytest.raises(RequestError) as info:
                await publish_message(ACC, bearer, "nope", "nope", "x", csds_domain=wemu.csds_domain)
            assert info.value.code == 404
            assert info.value.request_type == "REST POST /v1/conversations/{cid}/dialogs/{did}/messages"
            assert bearer not in str(info.value)
        await eventually(
            lambda: [m.body for m in seen.main_dialog.messages][-1:] == ["psst"], "the private message"
        )
        assert [m.body for m in conversation.main_dialog.messages] == [
            "I need help",
            "on it",
            "by bearer",
            "by the server",
        ]


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"account_id": ""}, "account_id"),
        ({"token": 5}, "token"),
        ({"conversation_id": None}, "conversation_id"),
        ({"dialog_id": " "}, "dialog_id"),
        ({"text": ""}, "text"),
        ({"metadata": "x"}, "metadata"),
        ({"metadata": ["x"]}, "metadata"),
        ({"message_audience": "EVERYONE"}, "message_audience"),
        ({"quick_replies": []}, "quick_replies"),
        ({"originator_id": ""}, "originator_id"),
        ({"originator_role": "BOSS"}, "originator_role"),
        ({"csds_domain": ""}, "csds_domain"),
        ({"domains": {"asyncMessagingEnt": 1}}, "domains"),
    ],
)
async def test_publish_message_validates_arguments_before_any_io(
    overrides: dict[str, Any], match: str
) -> None:
    arguments: dict[str, Any] = {
        "account_id": ACC,
        "token": "opaque-bearer",
        "conversation_id": "c",
        "dialog_id": "c",
        "text": "hello",
        "csds_domain": NOWHERE,
    }
    arguments.update(overrides)
    with pytest.raises(ConfigurationError, match=match):
        await publish_message(**arguments)


# ---------------------------------------------------------------- the guide's examples


def test_connections_guide_examples_run() -> None:
    text = "\n".join(page.read_text(encoding="utf-8") for page in DOCS)
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    runnable = [b for b in blocks if "asyncio.run(" in b]
    assert len(runnable) >= 5  # one per connection type
    for block in runnable:
        result = subprocess.run(
            [sys.executable, "-c", block], capture_output=True, text=True, timeout=90, check=False
        )
        assert result.returncode == 0, result.stderr
        assert "OK" in result.stdout, (block, result.stdout)
