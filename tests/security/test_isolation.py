"""A consumer can neither read, publish to, subscribe to nor close another consumer's conversation.

Refusals are 403 ("acting on a conversation you are not in", docs/emulator.md), an unknown
subscription id 404; the victim's conversation is untouched afterwards.  Raw consumer sockets,
the Send API, and the SDK's public API (a conversation loaded into another consumer's connection).
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

import lpm
from lpm.emulator.app import Emulator
from lpm.errors import RequestError
from tests.helpers import RawSocket, signup
from tests.security.faces import app_jwt, consumer_jws, send_api


def _text(dialog_id: str, text: str) -> dict[str, Any]:
    return {
        "dialogId": dialog_id,
        "event": {"type": "ContentEvent", "contentType": "text/plain", "message": text},
    }


def _close(conv_id: str, field: str = "ConversationStateField") -> dict[str, Any]:
    return {"conversationId": conv_id, "conversationField": {"field": field, "conversationState": "CLOSE"}}


async def test_consumer_socket_cannot_touch_another_consumers_conversation(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    victim_jwt, intruder_jwt = await signup(http, emulator), await signup(http, emulator)
    victim = await RawSocket.consumer(http, emulator, victim_jwt)
    intruder = await RawSocket.consumer(http, emulator, intruder_jwt)
    conv = (await victim.request("cm.ConsumerRequestConversation", {"skillId": "11"}))["body"][
        "conversationId"
    ]
    await victim.request("ms.PublishEvent", _text(conv, "my secret order number"))
    sub = (await victim.request("cqm.SubscribeExConversations", {"convState": ["OPEN"]}))["body"]
    victim_id = emulator.world.accounts[emulator.account_id].conversations[conv].consumer_id

    refusals = [
        ("ms.PublishEvent", _text(conv, "injected")),
        ("ms.PublishEvent", {**_text(conv, "injected"), "conversationId": conv}),
        ("ms.SubscribeMessagingEvents", {"dialogId": conv, "conversationId": conv, "fromSeq": 0}),
        ("cm.UpdateConversationField", _close(conv)),
        ("cm.UpdateConversationField", _close(conv, "Stage")),
        (
            "cm.UpdateConversationField",
            {
                "conversationId": conv,
                "conversationField": {"field": "TTRField", "ttrType": "URGENT", "value": 0},
            },
        ),
        (
            "cm.UpdateConversationField",
            {
                "conversationId": conv,
                "conversationField": {
                    "field": "DialogChange",
                    "type": "UPDATE",
                    "dialog": {"dialogId": conv, "state": "CLOSE"},
                },
            },
        ),
        ("userprofile.GetUserProfile", {"userId": victim_id}),
    ]
    for type_, body in refusals:
        resp = await intruder.request(type_, body, expect=None)
        assert resp["code"] == 403, (type_, resp)
    await intruder.request(
        "cqm.UnsubscribeExConversations", {"subscriptionId": sub["subscriptionId"]}, expect=404
    )
    # A subscription naming the victim (or re-using its subscription id) shows the intruder nothing.
    await intruder.request(
        "cqm.SubscribeExConversations", {"consumerId": victim_id, "subscriptionId": sub["subscriptionId"]}
    )
    snapshot = await intruder.notification("cqm.ExConversationChangeNotification")
    assert snapshot["body"]["changes"] == []
    await intruder.no_notification("ms.MessagingEventNotification")

    # The victim's conversation is intact and its subscription still works.
    await victim.request("ms.PublishEvent", _text(conv, "still mine"))
    conv_state = emulator.world.accounts[emulator.account_id].conversations[conv]
    assert conv_state.stage == "OPEN" and conv_state.ttr_type == "NORMAL"
    events = emulator.world.accounts[emulator.account_id].events[conv]
    assert [e.event["message"] for e in events] == ["my secret order number", "still mine"]
    change = await victim.notification("cqm.ExConversationChangeNotification")
    assert change["body"]["subscriptionId"] == sub["subscriptionId"]
    await victim.close()
    await intruder.close()


async def test_send_api_consumer_cannot_touch_another_consumers_conversation(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    app = await app_jwt(http, emulator)
    victim, intruder = (
        await consumer_jws(http, emulator, app, "victim"),
        await consumer_jws(http, emulator, app, "x"),
    )
    status, body = await send_api(
        http,
        emulator,
        app,
        victim,
        [
            {"kind": "req", "id": "1", "type": "userprofile.SetUserProfile", "body": {}},
            {"kind": "req", "id": "2", "type": "cm.ConsumerRequestConversation", "body": {"skillId": "11"}},
        ],
        batch=True,
    )
    assert status == 200, body
    conv = body[1]["body"]["conversationId"]
    for type_, frame_body in (
        ("ms.PublishEvent", _text(conv, "injected")),
        ("cm.UpdateConversationField", _close(conv)),
        ("cm.UpdateConversationField", _close(conv, "Stage")),
    ):
        status, resp = await send_api(
            http, emulator, app, intruder, {"kind": "req", "id": "9", "type": type_, "body": frame_body}
        )
        assert (status, resp["code"]) == (403, 403), (type_, resp)
    assert emulator.world.accounts[emulator.account_id].conversations[conv].stage == "OPEN"
    assert not emulator.world.accounts[emulator.account_id].events.get(conv)


@pytest.mark.parametrize("action", ["send_message", "close"])
async def test_sdk_consumer_cannot_act_on_a_loaded_foreign_conversation(
    emulator: Emulator, action: str
) -> None:
    options: dict[str, Any] = {
        "account_id": emulator.account_id,
        "user_type": lpm.UserType.CONSUMER,
        "csds_domain": emulator.csds_domain,
    }
    async with lpm.create_connection(**options) as victim, lpm.create_connection(**options) as intruder:
        conversation = await victim.create_conversation(skill_id="11")
        await conversation.send_message("mine")
        stolen = intruder.load_conversation(conversation.serialize())
        with pytest.raises(RequestError) as info:
            if action == "send_message":
                await stolen.send_message("injected")
            else:
                await stolen.close()
        assert info.value.code == 403
        assert info.value.conversation_id in (None, conversation.conversation_id)
        conv = emulator.world.accounts[emulator.account_id].conversations[conversation.conversation_id]
        assert conv.stage == "OPEN"
        assert [
            e.event["message"] for e in emulator.world.accounts[emulator.account_id].events[conv.conv_id]
        ] == ["mine"]
