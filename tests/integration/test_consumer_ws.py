"""Consumer WebSocket v3 against the emulator over real loopback sockets."""

from __future__ import annotations

import json

import aiohttp
import pytest

from lpm.emulator.app import Emulator
from tests.helpers import RawSocket, signup


async def test_conversation_flow_with_short_names(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    c = await RawSocket.consumer(http, emulator, await signup(http, emulator))
    sub = await c.request("cqm.SubscribeExConversations", {"convState": ["OPEN", "CLOSE"]})
    assert sub["type"] == "cqm.SubscribeExConversationsResponse"
    sub_id = sub["body"]["subscriptionId"]
    snapshot = await c.notification("cqm.ExConversationChangeNotification")
    assert snapshot["body"] == {"subscriptionId": sub_id, "changes": []}

    resp = await c.request(
        "cm.ConsumerRequestConversation", {"skillId": "-1", "brandId": emulator.account_id}
    )
    assert resp["type"] == "cm.RequestConversationResponse"
    conv_id = resp["body"]["conversationId"]
    upsert = await c.notification("cqm.ExConversationChangeNotification")
    change = upsert["body"]["changes"][0]
    assert change["type"] == "UPSERT"
    details = change["result"]["conversationDetails"]
    assert change["result"]["convId"] == conv_id
    assert details["state"] == "OPEN" and details["stage"] == "OPEN"
    assert details["dialogs"][0]["dialogId"] == conv_id
    assert details["dialogs"][0]["dialogType"] == "MAIN"
    assert details["participants"][0]["role"] == "CONSUMER"

    sub_resp = await c.request(
        "ms.SubscribeMessagingEvents", {"dialogId": conv_id, "conversationId": conv_id}
    )
    assert sub_resp["type"] == "GenericSubscribeResponse"
    pub = await c.request(
        "ms.PublishEvent",
        {
            "dialogId": conv_id,
            "event": {"type": "ContentEvent", "contentType": "text/plain", "message": "hi"},
        },
        metadata=[{"type": "ExternalId", "id": "x-1"}],
    )
    assert pub["type"] == "ms.PublishEventResponse" and pub["body"] == {"sequence": 0}
    event = await c.notification("ms.MessagingEventNotification")
    ev = event["body"]["changes"][0]
    assert ev["sequence"] == 0 and ev["event"]["message"] == "hi"
    assert ev["originatorMetadata"]["role"] == "CONSUMER"
    assert ev["metadata"] == [{"type": "ExternalId", "id": "x-1"}]
    assert "serverTimestamp" in ev

    typing = await c.request(
        "ms.PublishEvent",
        {"dialogId": conv_id, "event": {"type": "ChatStateEvent", "chatState": "COMPOSING"}},
    )
    assert typing["body"] == {"sequence": 0}
    chat = await c.notification("ms.MessagingEventNotification")
    chat_change = chat["body"]["changes"][0]
    assert "sequence" not in chat_change and "serverTimestamp" not in chat_change

    closed = await c.request(
        "cm.UpdateConversationField",
        {
            "conversationId": conv_id,
            "conversationField": {"field": "ConversationStateField", "conversationState": "CLOSE"},
        },
    )
    assert closed["body"] == "OK Conversation resolved successfully"
    final = None
    while final is None or final["body"]["changes"][0]["result"]["conversationDetails"]["state"] != "CLOSE":
        final = await c.notification("cqm.ExConversationChangeNotification")
    details = final["body"]["changes"][0]["result"]["conversationDetails"]
    assert details["closeReason"] == "CONSUMER" and details["stage"] == "CLOSE"
    assert details["dialogs"][0]["closedBy"] == "CONSUMER"

    unsub = await c.request("cqm.UnsubscribeExConversations", {"subscriptionId": sub_id})
    assert unsub["type"] == "StringResponse"
    await c.close()


async def test_replay_from_sequence(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    c = await RawSocket.consumer(http, emulator, await signup(http, emulator))
    conv_id = (await c.request("cm.ConsumerRequestConversation"))["body"]["conversationId"]
    for i in range(5):
        await c.request(
            "ms.PublishEvent", {"dialogId": conv_id, "event": {"type": "ContentEvent", "message": f"m{i}"}}
        )
    await c.request("ms.SubscribeMessagingEvents", {"dialogId": conv_id, "fromSeq": 3})
    replay = await c.notification("ms.MessagingEventNotification")
    assert [ch["sequence"] for ch in replay["body"]["changes"]] == [3, 4]
    await c.close()


async def test_init_connection_and_client_properties(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    jwt = await signup(http, emulator)
    c = await RawSocket.consumer(http, emulator, None)
    early = await c.request("cm.ConsumerRequestConversation", expect=401)
    assert "InitConnection" in early["body"]
    init = await c.request(
        "InitConnection",
        headers=[
            {
                "type": ".ams.headers.ClientProperties",
                "deviceFamily": "DESKTOP",
                "features": ["MULTI_DIALOG"],
            },
            {"type": ".ams.headers.ConsumerAuthentication", "jwt": jwt},
        ],
    )
    assert init["code"] == 200
    conv = await c.request("cm.ConsumerRequestConversation", {"skillId": "12"})
    conv_id = conv["body"]["conversationId"]
    pub = await c.request(
        "ms.PublishEvent", {"dialogId": conv_id, "event": {"type": "ContentEvent", "message": "x"}}
    )
    assert pub["code"] == 200
    # MULTI_DIALOG + the survey skill: an agent close opens a POST_SURVEY dialog
    agent_conv = emulator.world.accounts[emulator.account_id].conversations[conv_id]
    assert agent_conv.features == ["MULTI_DIALOG"]
    await c.close()


async def test_init_connection_with_a_bad_token_closes_4401(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    c = await RawSocket.consumer(http, emulator, None)
    resp = await c.request(
        "InitConnection",
        headers=[{"type": ".ams.headers.ConsumerAuthentication", "jwt": "not-a-jwt"}],
        expect=401,
    )
    assert resp["code"] == 401
    await c.closed.wait()
    assert c.close_code == 4401


async def test_bad_token_at_upgrade_is_401(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await RawSocket.consumer(http, emulator, "eyJhbGciOiJub25lIn0.e30.")
    assert info.value.status == 401


async def test_brand_bearer_refused_on_consumer_api(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    from tests.helpers import login

    bearer = (await login(http, emulator))["bearer"]
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await RawSocket.consumer(http, emulator, bearer)
    assert info.value.status == 401


async def test_bad_input_never_kills_the_socket(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    c = await RawSocket.consumer(http, emulator, await signup(http, emulator))
    await c.ws.send_str("{not json")
    bad = await c.notification()
    assert bad["kind"] == "resp" and bad["code"] == 400 and bad["reqId"] is None
    await c.ws.send_str(json.dumps([1, 2, 3]))
    assert (await c.notification())["code"] == 400
    await c.ws.send_bytes(b"\x00\x01")
    assert (await c.notification())["code"] == 400
    assert "unknown request type" in (await c.request("ms.DoesNotExist", expect=400))["body"]
    wrong_dialect = await c.request(".ams.routing.SetAgentState", {"availability": "ONLINE"}, expect=400)
    assert "not supported on the consumer API" in wrong_dialect["body"]
    missing = await c.request(
        "ms.PublishEvent", {"event": {"type": "ContentEvent", "message": "x"}}, expect=400
    )
    assert "dialogId" in missing["body"]
    await c.request(
        "ms.PublishEvent", {"dialogId": "nope", "event": {"type": "ContentEvent", "message": "x"}}, expect=404
    )
    conv_id = (await c.request("cm.ConsumerRequestConversation"))["body"]["conversationId"]
    second = await c.request("cm.ConsumerRequestConversation", expect=400)
    assert "already has an open conversation" in second["body"]
    await c.request(
        "cm.UpdateConversationField",
        {
            "conversationId": conv_id,
            "conversationField": [{"field": "ConversationStateField", "conversationState": "CLOSE"}],
        },
    )
    closed = await c.request(
        "ms.PublishEvent",
        {"dialogId": conv_id, "event": {"type": "ContentEvent", "message": "late"}},
        expect=400,
    )
    assert "closed" in closed["body"]
    big = await c.request(
        "ms.GenerateURLForUploadFile", {"fileSize": 4 * 1024 * 1024, "fileType": "PNG"}, expect=413
    )
    assert "limit" in big["body"]
    await c.request("ms.GenerateURLForUploadFile", {"fileSize": 10, "fileType": "EXE"}, expect=400)
    # still alive
    clock = await c.request("GetClock")
    assert clock["type"] == "GetClockResponse" and clock["body"]["currentTime"] > 0
    await c.close()


async def test_consumers_are_isolated(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    alice = await RawSocket.consumer(http, emulator, await signup(http, emulator))
    mallory = await RawSocket.consumer(http, emulator, await signup(http, emulator))
    conv_id = (await alice.request("cm.ConsumerRequestConversation"))["body"]["conversationId"]
    await mallory.request("cqm.SubscribeExConversations", {"convState": ["OPEN"]})
    assert (await mallory.notification("cqm.ExConversationChangeNotification"))["body"]["changes"] == []
    event = {"type": "ContentEvent", "message": "hijack"}
    await mallory.request("ms.PublishEvent", {"dialogId": conv_id, "event": event}, expect=403)
    await mallory.request("ms.SubscribeMessagingEvents", {"dialogId": conv_id}, expect=403)
    await mallory.request(
        "cm.UpdateConversationField",
        {
            "conversationId": conv_id,
            "conversationField": {"field": "ConversationStateField", "conversationState": "CLOSE"},
        },
        expect=403,
    )
    await alice.request(
        "ms.PublishEvent", {"dialogId": conv_id, "event": {"type": "ContentEvent", "message": "mine"}}
    )
    await mallory.no_notification()
    await alice.close()
    await mallory.close()


async def test_file_sharing_round_trip(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    c = await RawSocket.consumer(http, emulator, await signup(http, emulator))
    conv_id = (await c.request("cm.ConsumerRequestConversation"))["body"]["conversationId"]
    up = (await c.request("ms.GenerateURLForUploadFile", {"fileSize": "4", "fileType": "PNG"}))["body"]
    assert up["relativePath"].startswith(f"/v1/AUTH_async-images/{emulator.account_id}/")
    params = up["queryParams"]
    url = f"{emulator.base_url}{up['relativePath']}"
    async with http.put(url, params=params, data=b"\x89PNG") as resp:
        assert resp.status == 201
    async with http.put(url, params={**params, "temp_url_sig": "0" * 40}, data=b"x") as resp:
        assert resp.status == 401
    down = (await c.request("ms.GenerateURLForDownloadFile", {"relativePath": up["relativePath"]}))["body"]
    async with http.get(f"{emulator.base_url}{down['relativePath']}", params=down["queryParams"]) as resp:
        assert resp.status == 200 and await resp.read() == b"\x89PNG"
    file_event = {
        "type": "ContentEvent",
        "contentType": "hosted/file",
        "message": {"caption": "logo", "relativePath": up["relativePath"], "fileType": "PNG"},
    }
    pub = await c.request("ms.PublishEvent", {"dialogId": conv_id, "event": file_event})
    assert pub["body"] == {"sequence": 0}
    await c.close()


async def test_idle_socket_is_closed(http: aiohttp.ClientSession) -> None:
    async with Emulator(idle_timeout=0.3) as emu:
        c = await RawSocket.consumer(http, emu, await signup(http, emu))
        await c.closed.wait()
        assert c.close_code == 1000


async def test_expired_unauthenticated_token_closes_4407(http: aiohttp.ClientSession) -> None:
    async with Emulator(consumer_token_ttl=1) as emu:
        c = await RawSocket.consumer(http, emu, await signup(http, emu))
        await c.closed.wait()
        assert c.close_code == 4407


async def test_tls(http: aiohttp.ClientSession) -> None:
    async with Emulator(tls=True) as emu:
        assert emu.ca_file is not None and emu.ca_file.exists()
        assert not emu.csds_domain.startswith("http")
        ssl_ctx = emu.client_ssl_context()
        async with http.get(
            f"https://{emu.csds_domain}/api/account/{emu.account_id}/service/baseURI.json", ssl=ssl_ctx
        ) as r:
            assert r.status == 200
        async with http.post(f"{emu.base_url}/api/account/{emu.account_id}/signup", ssl=ssl_ctx) as r:
            jwt = (await r.json())["jwt"]
        c = await RawSocket.consumer(http, emu, jwt)
        assert (await c.request("GetClock"))["code"] == 200
        await c.close()
