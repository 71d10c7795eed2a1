"""The SDK reads every published notification into the right objects (issue 14).

Each published notification of the corpus is fed to the SDK the way it arrives in production:
consumer-socket frames and webhook bodies through a NULL connection's webhooks intake (the same
decoding and routing as a socket's, :func:`lpm.client.dispatch.dispatch_notification`), brand
frames through the brand decoders into a brand connection's cache.  Frames of one published flow
are fed in order to one connection, and the object model (conversations, dialogs, participants,
messages, skills, CSAT) is checked against what the frames say.  Every notification of the
corpus is fed by one of these tests (the last test checks it).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

import lpm
import lpm.webhooks
from lpm.client.dispatch import dispatch_notification
from lpm.client.subscriptions.webhook_intake import process_webhooks_notification
from lpm.protocol.notifications import (
    ConversationChange,
    decode_conversation_changes,
    decode_messaging_events,
    decode_routing_tasks,
)
from tests.fidelity.corpus import load_corpus

CORPUS = load_corpus()
NOTIFICATIONS = {name for name, p in CORPUS.items() if p.kind == "notification"}
FED: set[str] = set()

AGENT = "29c3019d-fe0b-5200-afe8-737abfeae4b4"
PCS_CONSUMER = "5e9ee96c-226e-44b6-ac51-b1dfe494ba10"
SURVEY_BOT = "2fa9ac85-d8a9-5bd6-8384-8c32dabae97f"
CONTROLLER = "22815dea-5b5c-5c8f-a4bf-2e52a0f6820a"


def frame(name: str) -> Any:
    FED.add(name)
    return CORPUS[name].frame


class Errors:
    def __init__(self, conn: lpm.Connection) -> None:
        self.errors: list[BaseException] = []
        conn.on("error", self.errors.append)


@pytest.fixture
async def consumer() -> AsyncIterator[lpm.Connection]:
    conn = lpm.create_connection(
        account_id="64467156", user_type=lpm.UserType.CONSUMER, connection_type=lpm.ConnectionType.NULL
    )
    yield conn
    await conn.close()


@pytest.fixture
async def brand() -> AsyncIterator[lpm.Connection]:
    conn = lpm.create_connection(
        account_id="64467156", user_type=lpm.UserType.BRAND, connection_type=lpm.ConnectionType.NULL
    )
    yield conn
    await conn.close()


def roles(participants: Any) -> list[tuple[str, str]]:
    return [(p.user_id, str(p.role)) for p in participants]


# ---------------------------------------------------------------- the PCS tutorial (consumer)


async def test_pcs_tutorial_flow(consumer: lpm.Connection) -> None:
    errors = Errors(consumer)
    await process_webhooks_notification(consumer, frame("consumer_ex_conversation_empty_snapshot"))
    assert consumer.conversations.all() == []
    await process_webhooks_notification(consumer, frame("consumer_ex_conversation_post_survey"))
    conv = consumer.conversations.get("__YOUR_CONVERSATION_ID__")
    assert conv is not None
    assert (conv.state, conv.stage, conv.close_reason) == ("CLOSE", "OPEN", "CONSUMER")
    main, survey = conv.dialogs
    # Dialog participants without "state" (the consumer dialect never sends it) are active; the
    # platform's CONTROLLER is one of MAIN's.
    assert roles(main.participants) == [
        (PCS_CONSUMER, "CONSUMER"),
        (CONTROLLER, "CONTROLLER"),
        (AGENT, "ASSIGNED_AGENT"),
    ]
    assert all(p.state == "ACTIVE" for p in main.participants)
    assert (main.state, main.closed_by) == ("CLOSE", "CONSUMER")
    assert (survey.dialog_id, survey.dialog_type, survey.state) == (
        "__YOUR_POST_SURVEY_DIALOG_ID__",
        "POST_SURVEY",
        "OPEN",
    )
    assert roles(survey.participants) == [
        (PCS_CONSUMER, "CONSUMER"),
        (SURVEY_BOT, "AGENT"),
        (AGENT, "READER"),
    ]
    assert conv.open_dialog is survey and conv.csat is None
    assert survey.meta_data == {"appInstallId": "756e7363-4472-4ae1-b1ae-b3b0b52107a0"}

    for name in (
        "consumer_messaging_event_replay",
        "consumer_messaging_event_agent_composing",
        "consumer_messaging_event_agent_text",
        "consumer_messaging_event_consumer_text",
        "consumer_messaging_event_agent_accept",
        "consumer_messaging_event_agent_read",
        "consumer_messaging_event_consumer_active",
    ):
        await process_webhooks_notification(consumer, frame(name))
    assert [(m.sequence, m.body, m.originator_role) for m in main.messages] == [
        (0, "Hello from the agent", "ASSIGNED_AGENT"),
        (2, "Hello again", "ASSIGNED_AGENT"),
        (3, "Hello from the consumer", "CONSUMER"),
    ]
    assert main.get_participant(AGENT) is not None

    await process_webhooks_notification(consumer, frame("consumer_messaging_event_action"))
    await process_webhooks_notification(consumer, frame("consumer_ex_conversation_survey_completed"))
    done = consumer.conversations.get("0179f2ed-2cae-4890-9971-c8fa2b6a31a0")
    assert done is not None and (done.state, done.stage) == ("CLOSE", "CLOSE")
    assert done.skill_id == "496645413"
    survey_done = done.get_dialog("POST_SURVEY")
    assert survey_done is not None
    assert (survey_done.state, survey_done.closed_by, survey_done.closed_cause) == (
        "CLOSE",
        "AGENT",
        "Completed",
    )
    assert errors.errors == []


def test_pcs_survey_replay_is_decoded() -> None:
    body = frame("consumer_messaging_event_survey_replay")["body"]
    first, question = decode_messaging_events(body, brand=False)
    # "metadata": null and an array of metadata both read.
    assert (first.sequence, first.originator_id, first.originator_role, first.metadata) == (
        0,
        SURVEY_BOT,
        "AGENT",
        None,
    )
    assert question.metadata is not None and question.metadata[0]["type"] == "Question"
    assert len(question.event["quickReplies"]["replies"]) == 6
    assert question.dialog_id == "PwT_YK91Sum3vu5H6T3YnA"


# ---------------------------------------------------------------- older consumer shapes


async def test_conversation_metadata_tutorial_older_shapes(consumer: lpm.Connection) -> None:
    """participantsPId maps, result.lastUpdateTime, no stage and no dialogs: read without error
    (the MAIN dialog then has no participants; stage is state)."""
    errors = Errors(consumer)
    await process_webhooks_notification(consumer, frame("consumer_ex_conversation_legacy_created"))
    conv = consumer.conversations.get("6b2622de-26b7-4e05-a7f2-5c2d50b3502f")
    assert conv is not None
    assert (conv.state, conv.stage, conv.update_time, conv.ttr_type, conv.ttr_value) == (
        "OPEN",
        "OPEN",
        1477840967209,
        "PRIORITIZED",
        600,
    )
    assert [d.dialog_type for d in conv.dialogs] == ["MAIN"] and conv.main_dialog.participants == []
    _, [change] = decode_conversation_changes(
        frame("consumer_ex_conversation_legacy_assigned")["body"], brand=False
    )
    assert roles(change.conversation.participants) == [
        ("72fca421-d1a2-459c-a420-6c5b1f3e75b0", "CONSUMER"),
        ("734d9867-40e3-52b9-a401-07e877676d64", "ASSIGNED_AGENT"),
    ]
    await process_webhooks_notification(consumer, CORPUS["consumer_ex_conversation_legacy_assigned"].frame)
    assert errors.errors == []


async def test_reference_example_aam_spelling_and_csat(consumer: lpm.Connection) -> None:
    """The API reference's aam. spelling is read, and the consumer CSAT shape
    (conversationDetails.csat) gives conversation.csat."""
    errors = Errors(consumer)
    published = frame("consumer_ex_conversation_aam_csat")
    await process_webhooks_notification(consumer, published)
    conv = consumer.conversations.get("a9531749-a0c1-4571-8459-9e97c8366832")
    assert conv is not None and conv.csat == 1
    kind, _ = dispatch_notification(published["type"], published["body"], brand=False, sink=_Sink())
    assert kind == "cqm.ExConversationChangeNotification"
    assert errors.errors == []


# ---------------------------------------------------------------- webhooks


async def test_webhooks_examples_flow(brand: lpm.Connection) -> None:
    errors = Errors(brand)
    for name in (
        "webhook_ex_conversation_created",
        "webhook_messaging_event_consumer_text",
        "webhook_ex_conversation_agent_assigned",
        "webhook_messaging_event_agent_read",
        "webhook_messaging_event_agent_composing",
        "webhook_messaging_event_agent_active",
        "webhook_messaging_event_agent_text",
    ):
        await process_webhooks_notification(brand, frame(name))
    conv = brand.conversations.get("5491244f-e462-4c63-bf4e-faf4b2d3e7b5")
    assert conv is not None and conv.account_id == "64467156"
    assert (conv.state, conv.stage, conv.ttr_type, conv.ttr_value) == ("OPEN", "OPEN", "PRIORITIZED", 600)
    messages = conv.main_dialog.messages
    assert [(m.sequence, m.body) for m in messages] == [
        (0, "Hello from Consumer"),
        (2, "Hello from the Agent\n"),
    ]
    # The agent's read receipt (sequence 1) marks the consumer's message read.
    assert messages[0].read_by.keys() == {AGENT} and not messages[1].read_by
    assert errors.errors == []


async def test_events_page_example(brand: lpm.Connection) -> None:
    errors = Errors(brand)
    published = frame("webhook_messaging_event_audience")
    [event] = decode_messaging_events(published["body"], brand=False)
    assert (
        event.conversation_id,
        event.dialog_id,
        event.audience,
        event.sequence,
        event.originator_role,
    ) == (
        "4fe52a76-7316-45fe-acf3-482cfb621d9c",
        "4fe52a76-7316-45fe-acf3-482cfb621d9c",
        "ALL",
        39,
        "CONSUMER",
    )
    # A message of a conversation the connection does not hold is reported, not applied.
    await process_webhooks_notification(brand, published)
    assert len(errors.errors) == 1 and "not in cache" in str(errors.errors[0])


async def test_receiver_takes_both_payload_forms(brand: lpm.Connection) -> None:
    """lpm.webhooks.create_app: the documented form (the notification itself) and the Node SDK's
    wsNotificationMsg wrapper are both processed."""
    app = lpm.webhooks.create_app(brand, client_secret="s3cret")
    created = CORPUS["webhook_ex_conversation_created"].frame
    text = CORPUS["webhook_messaging_event_consumer_text"].frame
    async with TestServer(app) as server, aiohttp.ClientSession() as http:
        for payload in (created, {"wsNotificationMsg": text, "sentTs": 1}):
            raw = json.dumps(payload).encode()
            headers = {lpm.webhooks.SIGNATURE_HEADER: lpm.webhooks.signature(raw, "s3cret")}
            async with http.post(server.make_url("/webhooks"), data=raw, headers=headers) as resp:
                assert resp.status == 200
        await lpm.webhooks.receiver_of(app).drain()
    conv = brand.conversations.get("5491244f-e462-4c63-bf4e-faf4b2d3e7b5")
    assert conv is not None and [m.body for m in conv.main_dialog.messages] == ["Hello from Consumer"]
    assert lpm.webhooks.notification_of(created) is created
    assert lpm.webhooks.notification_of({"wsNotificationMsg": text}) is text
    assert lpm.webhooks.notification_of({"nothing": 1}) is None


# ---------------------------------------------------------------- brand frames


async def test_node_agent_sdk_test_frames(brand: lpm.Connection) -> None:
    _, [change] = decode_conversation_changes(frame("brand_ex_conversation_post_survey")["body"], brand=True)
    conv = brand.conversations.from_info(change.conversation)
    assert conv.account_id == "2344566" and (conv.state, conv.stage) == ("CLOSE", "OPEN")
    assert conv.number_of_unread_messages == {
        "102f83624a545696f5dd87ecdd6edf394430f3445666ba68b533c847abb11": 1,
        "2344566.901083232": 0,
        "2344566.1282051932": 10,
    }
    # The context's client properties (the consumer's channel) are read apart from the context.
    assert conv.client_properties is not None and conv.client_properties["appId"] == "whatsapp"
    assert conv.context == {"type": "CustomContext", "name": "WhatsApp Business"}
    assert conv.csat is None and conv.handler_skill_id == "1251428632"
    main = conv.main_dialog
    # Managers by PID with their old id beside; the CONTROLLER has no PID in participantsPId.
    assert [(p.user_id, p.agent_id, str(p.role)) for p in main.participants] == [
        ("102f83624a545696f5dd87ecdd6edf394430f3445666ba68b533c847abb11", None, "CONSUMER"),
        ("f675416a-7d5a-5d06-a7bd-bdf5fcc426a1", "2344566.1282051932", "MANAGER"),
        ("2344566.1257599432", "2344566.1257599432", "CONTROLLER"),
        ("8ffebb81-0614-568c-a011-3b17eafc5b9d", "2344566.901083232", "MANAGER"),
    ]
    survey = conv.get_dialog("POST_SURVEY")
    assert survey is not None and survey.state == "OPEN"

    _, [damaged] = decode_conversation_changes(
        frame("brand_ex_conversation_suggested_transform_error")["body"], brand=True
    )
    suggested = brand.conversations.from_info(damaged.conversation)
    # A SUGGESTED agent missing from participantsPId keeps its old id (as node-agent-sdk does).
    assert [(p.user_id, str(p.role), str(p.state)) for p in suggested.main_dialog.participants][-1] == (
        "7149717.880365851",
        "ASSIGNED_AGENT",
        "SUGGESTED",
    )
    assert suggested.stage == "OPEN" and suggested.first_conversation is True


def test_agent_getting_started_frames() -> None:
    sub_id, tasks = decode_routing_tasks(frame("brand_routing_task_empty_snapshot")["body"])
    assert (sub_id, tasks) == ("36267a8d-adf9-4dd9-994c-e1fd73fc3735", [])
    # The earlier routing notification: the conversation is named on the ring only.
    _, [(change_type, task)] = decode_routing_tasks(frame("brand_routing_task_legacy_ring")["body"])
    assert (change_type, task.conversation_id, task.consumer_id, task.skill_id) == (
        "UPSERT",
        "57bc39d9-cad3-46c6-94a9-abd10be5b7c8",
        "1f537b4e-6a74-441a-96b6-873109558499",
        "-1",
    )
    [ring] = task.rings
    assert (ring.state, ring.expiration_ms) == ("WAITING", 72000)
    # The earlier OnlineEventDistribution: only originatorPId, short type name.
    published = frame("brand_online_event_legacy")
    kind, events = dispatch_notification(published["type"], published["body"], brand=True, sink=_Sink())
    assert kind == "ms.MessagingEventNotification"
    [event] = events
    assert (event.sequence, event.originator_id, event.originator_agent_id, event.event["message"]) == (
        2,
        "3b5b7ec6-2b0f-53af-9afd-11d4072c85a7",
        None,
        "From consumer",
    )


class _Sink:
    """A notification sink that returns what it is given."""

    def on_conversation_changes(self, subscription_id: str | None, changes: list[ConversationChange]) -> Any:
        return changes

    def on_messaging_events(self, events: list[Any]) -> Any:
        return events

    def on_routing_tasks(self, subscription_id: str | None, tasks: list[Any]) -> Any:
        return tasks

    def on_agent_states(self, states: list[Any]) -> Any:
        return states


def test_every_published_notification_is_fed() -> None:
    """Runs last (file order): every notification of the corpus went through one test above."""
    assert not NOTIFICATIONS - FED, sorted(NOTIFICATIONS - FED)
