"""Brand WebSocket v2.1 against the emulator: raw shapes, routing, roles, sessions."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from lpm.emulator.app import Emulator
from tests.helpers import RawSocket, login, signup

ACC = "12345678"
AGENT_OLD = f"{ACC}.1001"
BOT_OLD = f"{ACC}.2001"


async def online_agent(
    http: aiohttp.ClientSession, emu: Emulator, username: str = "agent"
) -> tuple[RawSocket, dict[str, Any]]:
    info = await login(http, emu, username)
    sock = await RawSocket.brand(http, emu, info["bearer"])
    state = await sock.request(
        ".ams.routing.SetAgentState",
        {
            "channels": ["MESSAGING"],
            "agentUserId": f"{ACC}.{info['config']['userId']}",
            "availability": "ONLINE",
        },
        expect=202,
    )
    assert state["body"] == "Agent state updated successfully" and state["type"] == ".ReqBody$StringResp"
    sub = await sock.request(
        ".ams.routing.SubscribeRoutingTasks",
        {"brandId": ACC, "agentId": f"{ACC}.{info['config']['userId']}", "channelType": "MESSAGING"},
    )
    assert sub["type"] == ".ams.GenericSubscribe$Response"
    first = await sock.notification(".ams.routing.RoutingTaskNotification")
    assert first["body"]["subscriptionId"] == sub["body"]["subscriptionId"]
    return sock, info


async def new_consumer_conversation(
    http: aiohttp.ClientSession, emu: Emulator, skill: str = "-1"
) -> tuple[RawSocket, str]:
    c = await RawSocket.consumer(http, emu, await signup(http, emu))
    conv_id = (await c.request("cm.ConsumerRequestConversation", {"skillId": skill}))["body"][
        "conversationId"
    ]
    await c.request("ms.SubscribeMessagingEvents", {"dialogId": conv_id})
    return c, conv_id


async def ring_of(sock: RawSocket, conv_id: str, state: str = "WAITING") -> dict[str, Any]:
    while True:
        note = await sock.notification(".ams.routing.RoutingTaskNotification")
        for change in note["body"]["changes"]:
            result = change["result"]
            if result["conversationId"] == conv_id:
                for ring in result["ringsDetails"]:
                    if ring["ringState"] == state:
                        return ring


async def accept_ring(sock: RawSocket, conv_id: str) -> None:
    ring = await ring_of(sock, conv_id)
    resp = await sock.request(
        ".ams.routing.UpdateRingState", {"ringId": ring["ringId"], "ringState": "ACCEPTED"}, expect=202
    )
    assert resp["body"] == "Ring state updated successfully"


async def test_full_agent_flow_in_raw_shapes(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    agent, info = await online_agent(http, emulator)
    pid = info["config"]["userPid"]
    sub = await agent.request(
        ".ams.aam.SubscribeExConversations", {"convState": ["OPEN"], "agentIds": [AGENT_OLD]}
    )
    assert sub["type"] == ".ams.aam.SubscribeExConversations$Response"
    await agent.notification(".ams.aam.ExConversationChangeNotification")  # empty snapshot

    consumer, conv_id = await new_consumer_conversation(http, emulator)
    ring = await ring_of(agent, conv_id)
    assert ring["ringExpiration"] == 72000 and ring["convId"] == conv_id
    assert ring["ringExpirationTs"] - 72000 > 0
    await agent.request(
        ".ams.routing.UpdateRingState", {"ringId": ring["ringId"], "ringState": "ACCEPTED"}, expect=202
    )
    accepted = await ring_of(agent, conv_id, "ACCEPTED")
    assert accepted["ringId"] == ring["ringId"]

    note = await agent.notification(".ams.aam.ExConversationChangeNotification")
    result = note["body"]["changes"][0]["result"]
    details = result["conversationDetails"]
    assert details["participants"]["ASSIGNED_AGENT"] == [AGENT_OLD]
    assert details["participantsPId"]["ASSIGNED_AGENT"] == [pid]
    assert details["participantsPId"]["CONSUMER"] == details["participants"]["CONSUMER"]
    main = details["dialogs"][0]
    assert {(p["id"], p["role"]) for p in main["participantsDetails"]} >= {(AGENT_OLD, "ASSIGNED_AGENT")}
    assert main["channelType"] == "MESSAGING"
    assert "lastUpdateTime" in result and "numberOfunreadMessages" in result

    await consumer.request(
        "ms.PublishEvent", {"dialogId": conv_id, "event": {"type": "ContentEvent", "message": "hello"}}
    )
    live = await agent.notification(".ams.ms.OnlineEventDistribution")
    assert live["body"]["event"]["message"] == "hello"  # one event, no changes array
    assert live["body"]["sequence"] == 0 and "changes" not in live["body"]

    pub = await agent.request(
        ".ams.ms.PublishEvent",
        {
            "dialogId": conv_id,
            "event": {"type": "ContentEvent", "contentType": "text/plain", "message": "hi!"},
        },
        headers=None,
    )
    assert pub["type"] == ".ams.ms.PublishEvent$Response" and pub["body"] == {"sequence": 1}
    own = await agent.notification(".ams.ms.OnlineEventDistribution")
    assert own["body"]["originatorId"] == AGENT_OLD and own["body"]["originatorPId"] == pid
    seen = await consumer.notification("ms.MessagingEventNotification")
    while seen["body"]["changes"][0]["event"].get("message") != "hi!":
        seen = await consumer.notification("ms.MessagingEventNotification")
    change = seen["body"]["changes"][0]
    assert change["originatorId"] == pid and change["originatorMetadata"]["role"] == "ASSIGNED_AGENT"

    history = await agent.request(".ams.ms.QueryMessages", {"dialogId": conv_id, "newerThanSequence": 0})
    assert history["type"] == ".ams.ms.QueryMessages$Response"
    assert [e["sequence"] for e in history["body"]] == [0, 1]
    assert history["body"][1]["originatorPId"] == pid

    profile = await agent.request(
        ".ams.userprofile.GetUserProfile", change["conversationId"] and details["participants"]["CONSUMER"][0]
    )
    assert (
        profile["type"] == ".ams.userprofile.GetUserProfile$Response"
        and profile["body"]["role"] == "CONSUMER"
    )
    # An agent's own profile names it by its old id, as the Messaging Agent API shows it.
    own_profile = await agent.request(".ams.userprofile.GetUserProfile", {"userId": pid})
    assert own_profile["body"] == {"userId": AGENT_OLD}
    assert (await agent.request(".ams.userprofile.GetUserProfile", {}))["body"] == {"userId": AGENT_OLD}

    close = await agent.request(
        ".ams.cm.UpdateConversationField",
        {
            "conversationId": conv_id,
            "conversationField": [{"field": "ConversationStateField", "conversationState": "CLOSE"}],
        },
    )
    assert close["body"] == "OK Conversation resolved successfully"
    gone = await agent.notification(".ams.aam.ExConversationChangeNotification")
    while gone["body"]["changes"][0]["type"] != "DELETE":  # convState OPEN no longer matches
        gone = await agent.notification(".ams.aam.ExConversationChangeNotification")
    assert gone["body"]["changes"][0]["result"]["convId"] == conv_id
    await agent.close()
    await consumer.close()


async def test_agent_requests_reject_expire_and_state_subscription(http: aiohttp.ClientSession) -> None:
    async with Emulator(ring_expiry=0.3) as emu:
        agent, _ = await online_agent(http, emu, "agent")
        bot, _ = await online_agent(http, emu, "bot")
        watch = await agent.request(
            ".ams.routing.SubscribeAgentsState", {"brandId": ACC, "agentId": BOT_OLD, "agentAvailability": ""}
        )
        state = await agent.notification(".ams.routing.AgentStateNotification")
        assert state["body"]["changes"][0]["result"]["availability"] == "ONLINE"
        assert state["body"]["subscriptionId"] == watch["body"]["subscriptionId"]
        await bot.request(
            ".ams.routing.SetAgentState", {"availability": "AWAY", "agentUserId": BOT_OLD}, expect=202
        )
        assert (await agent.notification(".ams.routing.AgentStateNotification"))["body"]["changes"][0][
            "result"
        ]["availability"] == "AWAY"
        await bot.request(
            ".ams.routing.SetAgentState", {"availability": "ONLINE", "agentUserId": BOT_OLD}, expect=202
        )

        # Skill -1 ("any"): both are candidates (in the default world sales is the bot's only).
        _, conv_id = await new_consumer_conversation(http, emu, skill="-1")
        # one of them is rung first; reject it and the other gets the next ring
        rung = agent if emu.world.accounts[ACC].tasks[conv_id].rings[0].user_id == "1001" else bot
        other = bot if rung is agent else agent
        ring = await ring_of(rung, conv_id)
        await rung.request(
            ".ams.routing.UpdateRingState", {"ringId": ring["ringId"], "ringState": "REJECTED"}, expect=202
        )
        second = await ring_of(other, conv_id)
        assert second["ringId"] != ring["ringId"]
        expired = await ring_of(other, conv_id, "EXPIRED")  # nobody answers within 0.3 s
        assert expired["ringId"] == second["ringId"]
        stale = await rung.request(
            ".ams.routing.UpdateRingState", {"ringId": ring["ringId"], "ringState": "ACCEPTED"}, expect=None
        )
        assert stale["code"] in (400, 404)


async def test_transfers_and_roles(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    agent, _ = await online_agent(http, emulator, "agent")
    bot, _ = await online_agent(http, emulator, "bot")
    await bot.request(
        ".ams.routing.SetAgentState", {"availability": "OCCUPIED", "agentUserId": BOT_OLD}, expect=202
    )
    consumer, conv_id = await new_consumer_conversation(http, emulator, skill="12")  # support: agent only
    await accept_ring(agent, conv_id)
    await agent.request(".ams.aam.SubscribeExConversations", {"convState": ["OPEN"]})
    await agent.notification(".ams.aam.ExConversationChangeNotification")

    # transfer to a specific agent: SUGGEST shows state SUGGESTED on v2.1
    await agent.request(
        ".ams.cm.UpdateConversationField",
        {
            "conversationId": conv_id,
            "conversationField": [
                {
                    "field": "ParticipantsChange",
                    "type": "REMOVE",
                    "role": "ASSIGNED_AGENT",
                    "userId": AGENT_OLD,
                },
                {
                    "field": "ParticipantsChange",
                    "type": "SUGGEST",
                    "role": "ASSIGNED_AGENT",
                    "userId": BOT_OLD,
                },
            ],
        },
    )
    note = await agent.notification(".ams.aam.ExConversationChangeNotification")
    details = note["body"]["changes"][0]["result"]["conversationDetails"]
    assert {"id": BOT_OLD, "role": "ASSIGNED_AGENT", "state": "SUGGESTED"} in details["dialogs"][0][
        "participantsDetails"
    ]
    assert "ASSIGNED_AGENT" not in details["participantsPId"]
    await accept_ring(bot, conv_id)
    final = emulator.world.accounts[ACC].conversations[conv_id]
    assert [(p.id, p.state) for p in final.main.participants if p.role == "ASSIGNED_AGENT"] == [
        ("2001", "ACTIVE")
    ]

    # the previous agent joins as MANAGER, publishes privately, leaves
    await agent.request(
        ".ams.cm.UpdateConversationField",
        {
            "conversationId": conv_id,
            "conversationField": [{"field": "ParticipantsChange", "type": "ADD", "role": "MANAGER"}],
        },
    )
    await agent.request(
        ".ams.ms.PublishEvent",
        {
            "dialogId": conv_id,
            "messageAudience": "AGENTS_AND_MANAGERS",
            "event": {"type": "ContentEvent", "message": "psst"},
        },
    )
    private = await bot.notification(".ams.ms.OnlineEventDistribution")
    assert private["body"]["messageAudience"] == "AGENTS_AND_MANAGERS"
    await consumer.no_notification("ms.MessagingEventNotification")
    await agent.request(
        ".ams.cm.UpdateConversationField",
        {
            "conversationId": conv_id,
            "conversationField": {"field": "ParticipantsChange", "type": "REMOVE", "role": "MANAGER"},
        },
    )
    # skill transfer by the bot: removes it and re-rings support (the agent)
    await bot.request(
        ".ams.cm.UpdateConversationField",
        {
            "conversationId": conv_id,
            "conversationField": [
                {
                    "field": "ParticipantsChange",
                    "type": "REMOVE",
                    "role": "ASSIGNED_AGENT",
                    "userId": BOT_OLD,
                },
                {"field": "Skill", "type": "UPDATE", "skill": "12"},
            ],
        },
    )
    await ring_of(agent, conv_id)
    await agent.close()
    await bot.close()
    await consumer.close()


async def test_authorization_and_bad_input(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    agent, _ = await online_agent(http, emulator, "bot")
    consumer, conv_id = await new_consumer_conversation(http, emulator, skill="12")  # the bot is not rung
    denied = await agent.request(
        ".ams.ms.PublishEvent",
        {"dialogId": conv_id, "event": {"type": "ContentEvent", "message": "x"}},
        expect=403,
    )
    assert denied["type"] == ".ReqBody$StringResp"
    await agent.request(".ams.ms.QueryMessages", {"dialogId": conv_id}, expect=403)
    await agent.request(".ams.cm.ConsumerRequestConversation", {}, expect=400)  # consumer-only request
    await agent.request(".ams.routing.UpdateRingState", {"ringId": "x", "ringState": "MAYBE"}, expect=400)
    await agent.request(
        ".ams.routing.SetAgentState", {"availability": "ONLINE", "agentUserId": AGENT_OLD}, expect=403
    )
    clock = await agent.request(".GetClock", {})
    assert clock["type"] == ".GetClock$Response"
    await agent.close()
    await consumer.close()


async def test_manager_subscription_sees_every_conversation(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    info = await login(http, emulator, "agent")  # the default agent is a manager
    manager = await RawSocket.brand(http, emulator, info["bearer"])
    await manager.request(".ams.aam.SubscribeExConversations", {"convState": ["OPEN"]})
    await manager.notification(".ams.aam.ExConversationChangeNotification")
    _, conv_id = await new_consumer_conversation(http, emulator)
    note = await manager.notification(".ams.aam.ExConversationChangeNotification")
    assert note["body"]["changes"][0]["result"]["convId"] == conv_id
    # agent-initiated conversation with a consumer whose conversation closed
    consumer_id = emulator.world.accounts[ACC].conversations[conv_id].consumer_id
    await manager.request(
        ".ams.cm.AgentRequestConversation",
        {"consumerId": consumer_id, "channelType": "MESSAGING"},
        expect=400,
    )
    await manager.close()


async def test_bearer_checks_refresh_logout_and_expiry(http: aiohttp.ClientSession) -> None:
    async with Emulator(session_ttl=1.0) as emu:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await RawSocket.brand(http, emu, "not-a-bearer")
        assert info.value.status == 401
        jwt = await signup(http, emu)
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await RawSocket.brand(http, emu, jwt)  # consumer tokens are refused on the brand API

        body = await login(http, emu)
        sock = await RawSocket.brand(http, emu, body["bearer"])
        bad = await http.post(f"{emu.base_url}/api/account/{ACC}/refresh?v=1.3", json={"csrf": "wrong"})
        assert bad.status == 401 and (await bad.json())["error"]["internalCode"] == 10
        good = await http.post(f"{emu.base_url}/api/account/{ACC}/refresh?v=1.3", json={"csrf": body["csrf"]})
        assert good.status == 200
        await sock.closed.wait()  # the 1 s session ends: 4401
        assert sock.close_code == 4401

        body = await login(http, emu)
        sock = await RawSocket.brand(http, emu, body["bearer"])
        out = await http.post(f"{emu.base_url}/api/account/{ACC}/logout", json={"csrf": body["csrf"]})
        assert out.status == 200
        await sock.closed.wait()
        assert sock.close_code == 4401


async def test_login_variants(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    url = f"{emulator.base_url}/api/account/{ACC}/login?v=1.3"
    keys = {
        "username": "bot",
        "appKey": "bot-app-key",
        "secret": "bot-app-secret",
        "accessToken": "bot-access-token",
        "accessTokenSecret": "bot-access-token-secret",
    }
    async with http.post(url, json=keys) as resp:
        body = await resp.json()
        assert resp.status == 200 and body["config"]["userId"] == "2001"
        assert body["sessionTTl"] == "28800000" and "Session_id" in resp.cookies
    async with http.post(url, json={**keys, "secret": "nope"}) as resp:
        assert resp.status == 401
    async with http.post(url, json={"jwt": "dummy", "assertion": "x"}) as resp:
        assert resp.status == 401
    async with http.post(url, data=b"{oops", headers={"Content-Type": "application/json"}) as resp:
        assert resp.status == 400
    async with http.post(
        f"{emulator.base_url}/api/account/999/login", json={"username": "agent", "password": "x"}
    ) as resp:
        assert resp.status == 401


async def test_csds_shapes(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    for path in ("api", "csdr"):
        async with http.get(
            f"{emulator.base_url}/{path}/account/{ACC}/service/baseURI.json?version=1.0"
        ) as resp:
            services = {e["service"]: e["baseURI"] for e in (await resp.json())["baseURIs"]}
            assert services["agentVep"] == services["facadeMsg"] == emulator.public_host
            assert {"asyncMessagingEnt", "idp", "sentinel", "swift", "msgHist"} <= set(services)
    async with http.get(f"{emulator.base_url}/api/account/{ACC}/service/idp/baseURI.json") as resp:
        assert await resp.json() == {"service": "idp", "account": ACC, "baseURI": emulator.public_host}
    async with http.get(f"{emulator.base_url}/api/account/{ACC}/service/nope/baseURI.json") as resp:
        assert resp.status == 404
    async with http.get(f"{emulator.base_url}/api/account/999/service/baseURI.json") as resp:
        assert resp.status == 401
