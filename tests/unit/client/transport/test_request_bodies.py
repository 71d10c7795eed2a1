"""The socket connections build their request bodies as the protocol's structs
(:mod:`lpm.protocol.requests`): what they put on the wire is the JSON they sent as dicts before
(same keys, no ``null``), and the emulator reads it back with the same structs."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

import lpm
from lpm.protocol import frames
from lpm.protocol import requests as pm
from lpm.protocol.types import Req

EVENT = {"type": "ContentEvent", "contentType": "text/plain", "message": "hi"}


class Recorder:
    """Stands in for ``connection.request``: keeps what was sent, answers ``answer``."""

    def __init__(self, answer: Any = None) -> None:
        self.sent: list[tuple[Req, Any]] = []
        self.answer = answer

    async def __call__(self, req: Req, body: Any = None, **_: Any) -> Any:
        self.sent.append((req, body))
        return self.answer

    def wire(self) -> list[tuple[Req, Any]]:
        """What went out: each body through the frame encoder, as JSON decodes it."""
        return [(req, msgspec.json.decode(frames.encode(body))) for req, body in self.sent]


class _Maintainer:
    agent_id = "123.1001"
    user_pid = "pid-1"


def consumer(answer: Any = None) -> tuple[Any, Recorder]:
    conn = lpm.create_connection(
        account_id="123", user_type=lpm.UserType.CONSUMER, csds_domain="http://127.0.0.1:1"
    )
    recorder = Recorder(answer)
    conn.request = recorder  # type: ignore[method-assign]
    return conn, recorder


def brand(answer: Any = None, *, agent: bool = True) -> tuple[Any, Recorder]:
    conn = lpm.create_connection(
        account_id="123", user_type=lpm.UserType.BRAND, csds_domain="http://127.0.0.1:1", token="t"
    )
    if agent:
        conn.token_maintainer = _Maintainer()
    recorder = Recorder(answer)
    conn.request = recorder  # type: ignore[method-assign]
    return conn, recorder


async def test_publish_is_the_dict_it_replaces_and_the_emulator_reads_it() -> None:
    conn, sent = consumer({"sequence": 3})
    await conn.publish_event("c", "d", EVENT)
    await conn.publish_event("c", "d", EVENT, audience=lpm.MessageAudience.AGENTS_AND_MANAGERS)
    [(req, body), (_, private)] = sent.sent
    assert req is Req.PUBLISH_EVENT and isinstance(body, pm.PublishEventRequest)
    encoded = frames.encode(body)
    assert encoded == b'{"dialogId":"d","conversationId":"c","event":' + frames.encode(EVENT) + b"}"
    assert msgspec.json.decode(frames.encode(private))["messageAudience"] == "AGENTS_AND_MANAGERS"
    parsed = pm.parse_body(pm.PublishEventBody, msgspec.json.decode(encoded))
    assert parsed.event == pm.ContentEvent(message="hi") and parsed.conversationId == "c"
    await conn.close()


async def test_consumer_bodies_on_the_wire(monkeypatch: pytest.MonkeyPatch) -> None:
    conn, sent = consumer({"conversationId": "c"})
    conn.client_properties = {"appId": "app"}
    cache = type(conn.conversations)
    monkeypatch.setattr(cache, "create_local", lambda self, conversation_id: _Subscribable())
    await conn.create_conversation(skill_id="11", campaign_info={"campaignId": 1, "engagementId": 2})
    await conn.get_user_profile()
    await conn.get_user_profile("u1")
    await conn.subscribe_messaging_events("c", "d", 0)
    await conn.subscribe_messaging_events("c", "d", 7)
    assert sent.wire() == [
        (
            Req.CONSUMER_REQUEST_CONVERSATION,
            {
                "ttrDefName": "NORMAL",
                "channelType": "MESSAGING",
                "skillId": "11",
                "brandId": "123",
                "conversationContext": {
                    "type": "CustomContext",
                    "name": "lpm-python-sdk",
                    "clientProperties": {"type": ".ClientProperties", "appId": "app"},
                },
                "campaignInfo": {"campaignId": 1, "engagementId": 2},
            },
        ),
        (Req.GET_USER_PROFILE, {}),
        (Req.GET_USER_PROFILE, {"userId": "u1"}),
        # fromSeq is sent even at its default (0), as the SDK always did.
        (Req.SUBSCRIBE_MESSAGING_EVENTS, {"conversationId": "c", "dialogId": "d", "fromSeq": 0}),
        (Req.SUBSCRIBE_MESSAGING_EVENTS, {"conversationId": "c", "dialogId": "d", "fromSeq": 7}),
    ]
    request = pm.parse_body(pm.ConsumerRequestConversationBody, sent.wire()[0][1])
    assert (request.channelType, request.campaignInfo) == ("MESSAGING", pm.CampaignInfo(1, 2))
    await conn.close()


class _Subscribable:
    async def subscribe_messaging(self) -> None:
        return None


async def test_shared_actions_on_the_wire() -> None:
    conn, sent = consumer({"subscriptionId": "s1", "relativePath": "/p"})
    fields = [{"field": "ConversationStateField", "conversationState": "CLOSE"}]
    await conn.update_conversation_field("c", fields)
    await conn.subscribe_conversations({"convState": ["OPEN"], "dialogTypes": ["MAIN"], "brandId": "123"})
    await conn.unsubscribe_conversations("s1")
    await conn.generate_upload_url(1000, "PNG")
    await conn.generate_download_url("/p")
    assert sent.wire() == [
        (Req.UPDATE_CONVERSATION_FIELD, {"conversationId": "c", "conversationField": fields}),
        (Req.SUBSCRIBE_EX_CONVERSATIONS, {"convState": ["OPEN"], "dialogTypes": ["MAIN"], "brandId": "123"}),
        (Req.UNSUBSCRIBE_EX_CONVERSATIONS, {"subscriptionId": "s1"}),
        (Req.GENERATE_UPLOAD_URL, {"fileSize": "1000", "fileType": "PNG"}),  # a string, as the schema
        (Req.GENERATE_DOWNLOAD_URL, {"relativePath": "/p"}),
    ]
    update = pm.parse_update_conversation_field(sent.wire()[0][1])
    assert update.conversationField == [pm.ConversationStateField(conversationState="CLOSE")]
    with pytest.raises(TypeError):  # a key the protocol does not know is not dropped silently
        await conn.subscribe_conversations({"nope": 1})
    await conn.close()


async def test_brand_bodies_on_the_wire() -> None:
    conn, sent = brand({"subscriptionId": "r1"})
    await conn._verify()
    await conn.set_agent_state("ONLINE")
    await conn.set_agent_state("AWAY", description="lunch")
    await conn.set_agent_state("ONLINE", agent_id="123.2002")
    await conn.subscribe_routing_tasks({})
    await conn.subscribe_routing_tasks({"skillId": "12"})
    await conn.update_ring_state("ring-1", lpm.RingState.ACCEPTED)
    me, channels = {"agentUserId": "123.1001"}, {"channels": ["MESSAGING"]}
    assert sent.wire() == [
        (Req.GET_USER_PROFILE, {"userId": "pid-1"}),
        (Req.SET_AGENT_STATE, {"availability": "ONLINE", **channels, **me}),
        (Req.SET_AGENT_STATE, {"availability": "AWAY", **channels, **me, "description": "lunch"}),
        (Req.SET_AGENT_STATE, {"availability": "ONLINE", "agentUserId": "123.2002", **channels}),
        (Req.SUBSCRIBE_ROUTING_TASKS, {"channelType": "MESSAGING", "brandId": "123", "agentId": "123.1001"}),
        (
            Req.SUBSCRIBE_ROUTING_TASKS,
            {"channelType": "MESSAGING", "brandId": "123", "agentId": "123.1001", "skillId": "12"},
        ),
        (Req.UPDATE_RING_STATE, {"ringId": "ring-1", "ringState": "ACCEPTED"}),
    ]
    assert pm.parse_body(pm.UpdateRingStateBody, sent.wire()[-1][1]).ringState == "ACCEPTED"
    await conn.close()


async def test_brand_without_an_agent_id_leaves_it_out() -> None:
    conn, sent = brand({"subscriptionId": "r1"}, agent=False)
    await conn._verify()
    await conn.set_agent_state("ONLINE")
    await conn.subscribe_routing_tasks({})
    assert sent.wire() == [
        (Req.GET_USER_PROFILE, {}),
        (Req.SET_AGENT_STATE, {"availability": "ONLINE", "channels": ["MESSAGING"]}),
        (Req.SUBSCRIBE_ROUTING_TASKS, {"channelType": "MESSAGING", "brandId": "123"}),
    ]
    await conn.close()


def test_defaults_a_client_may_omit_still_decode() -> None:
    assert pm.parse_body(pm.SubscribeMessagingEventsBody, {"dialogId": "d"}).fromSeq == 0
    assert pm.parse_body(pm.ConsumerRequestConversationBody, {}).channelType == "MESSAGING"
