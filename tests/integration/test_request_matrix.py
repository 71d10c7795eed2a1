"""Every request type of both dialects gets its documented response type and code.

One conversation is set up with an agent assigned; then each request type is sent once on the
socket of the dialect that may send it, and the response type/code are checked against the
protocol reference (protocol.md §4.0).
"""

from __future__ import annotations

from typing import Any

import aiohttp

from lpm.emulator.app import Emulator
from lpm.protocol.types import (
    BRAND_REQUESTS,
    CONSUMER_REQUESTS,
    Dialect,
    Req,
    request_wire_name,
    response_type,
)
from tests.helpers import RawSocket, login, signup

ACC = "12345678"


async def setup(emu: Emulator, http: aiohttp.ClientSession) -> tuple[RawSocket, RawSocket, str, str]:
    info = await login(http, emu)
    agent = await RawSocket.brand(http, emu, info["bearer"])
    await agent.request(".ams.routing.SetAgentState", {"availability": "ONLINE"}, expect=202)
    await agent.request(".ams.routing.SubscribeRoutingTasks", {"channelType": "MESSAGING"})
    consumer = await RawSocket.consumer(http, emu, await signup(http, emu))
    conv_id = (await consumer.request("cm.ConsumerRequestConversation"))["body"]["conversationId"]
    while True:
        note = await agent.notification(".ams.routing.RoutingTaskNotification")
        rings = [
            r
            for c in note["body"]["changes"]
            for r in c["result"]["ringsDetails"]
            if r["ringState"] == "WAITING"
        ]
        if rings:
            break
    await agent.request(
        ".ams.routing.UpdateRingState", {"ringId": rings[0]["ringId"], "ringState": "ACCEPTED"}, expect=202
    )
    consumer_id = emu.world.accounts[ACC].conversations[conv_id].consumer_id
    return agent, consumer, conv_id, consumer_id


def bodies(conv_id: str, consumer_id: str, dialect: Dialect) -> dict[Req, Any]:
    text = {
        "dialogId": conv_id,
        "event": {"type": "ContentEvent", "contentType": "text/plain", "message": "x"},
    }
    return {
        Req.GET_CLOCK: {},
        Req.KEEP_ALIVE: None,
        Req.PUBLISH_EVENT: text,
        Req.SUBSCRIBE_MESSAGING_EVENTS: {"dialogId": conv_id, "fromSeq": 0},
        Req.QUERY_MESSAGES: {"dialogId": conv_id, "newerThanSequence": 0, "maxQuantity": 10},
        Req.GENERATE_UPLOAD_URL: {"fileSize": "100", "fileType": "JPG"},
        # A consumer may only ask for its own uploads (and files of its conversations).
        Req.GENERATE_DOWNLOAD_URL: {"relativePath": f"/v1/AUTH_async-images/{ACC}/{consumer_id}_uuid_f.JPG"},
        Req.GENERATE_DOWNLOAD_TOKEN: {"downloadable": {"type": "SecureForm", "dialogId": conv_id}},
        Req.SUBSCRIBE_EX_CONVERSATIONS: {"convState": ["OPEN"]},
        Req.UPDATE_EX_CONVERSATION_SUBSCRIPTION: {"convState": ["OPEN", "CLOSE"]},
        Req.SET_USER_PROFILE: {"firstName": "Ada", "lastName": "L"},
        Req.GET_USER_PROFILE: consumer_id if dialect is Dialect.BRAND_V2 else {"userId": consumer_id},
        Req.GET_BRAND_PROFILE: {"brandId": ACC},
        Req.SET_AGENT_STATE: {"availability": "ONLINE"},
        Req.SUBSCRIBE_AGENTS_STATE: {"agentAvailability": ""},
        Req.SUBSCRIBE_ROUTING_TASKS: {"channelType": "MESSAGING"},
        Req.UPDATE_RING_STATE: None,  # needs a live ring: covered by the brand tests
        Req.UPDATE_CONVERSATION_FIELD: {
            "conversationId": conv_id,
            "conversationField": {"field": "TTRField", "ttrType": "URGENT", "value": 0},
        },
    }


async def run_matrix(
    sock: RawSocket, dialect: Dialect, allowed: frozenset[Req], table: dict[Req, Any]
) -> set[Req]:
    done: set[Req] = set()
    for req in sorted(allowed, key=lambda r: r.value):
        if req not in table or (req is Req.UPDATE_RING_STATE):
            continue
        body = table[req]
        resp = await sock.request(request_wire_name(req, dialect), body, expect=None)
        assert resp["code"] in (200, 202), (req, resp)
        assert resp["type"] == response_type(req, dialect), (req, resp)
        done.add(req)
    return done


async def test_every_request_type_on_both_dialects(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    agent, consumer, conv_id, consumer_id = await setup(emulator, http)
    consumer_done = await run_matrix(
        consumer, Dialect.CONSUMER_V3, CONSUMER_REQUESTS, bodies(conv_id, consumer_id, Dialect.CONSUMER_V3)
    )
    brand_done = await run_matrix(
        agent, Dialect.BRAND_V2, BRAND_REQUESTS, bodies(conv_id, consumer_id, Dialect.BRAND_V2)
    )
    # update subscription and routing subscription by id
    sub = await agent.request(".ams.routing.SubscribeRoutingTasks", {"channelType": "MESSAGING"})
    upd = await agent.request(
        ".ams.routing.UpdateRoutingTaskSubscription",
        {"subscriptionId": sub["body"]["subscriptionId"], "skillId": "11"},
    )
    assert upd["type"] == ".ReqBody$StringResp"
    brand_done |= {Req.UPDATE_ROUTING_TASK_SUBSCRIPTION, Req.UPDATE_RING_STATE}
    # agent-initiated conversation after the consumer's one is closed
    await consumer.request(
        "cm.UpdateConversationField",
        {
            "conversationId": conv_id,
            "conversationField": {"field": "ConversationStateField", "conversationState": "CLOSE"},
        },
    )
    proactive = await agent.request(
        ".ams.cm.AgentRequestConversation", {"consumerId": consumer_id, "skillId": "-1"}
    )
    assert proactive["type"] == ".ams.cm.RequestConversation$Response"
    brand_done.add(Req.AGENT_REQUEST_CONVERSATION)
    consumer_done |= {
        Req.INIT_CONNECTION,
        Req.CONSUMER_REQUEST_CONVERSATION,
        Req.UNSUBSCRIBE_EX_CONVERSATIONS,
    }
    brand_done.add(Req.UNSUBSCRIBE_EX_CONVERSATIONS)
    assert consumer_done == CONSUMER_REQUESTS
    assert brand_done == BRAND_REQUESTS
    await agent.close()
    await consumer.close()
