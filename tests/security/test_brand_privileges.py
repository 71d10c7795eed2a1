"""Agents act only for themselves unless they are managers (docs/emulator.md "Errors": another
agent's ring 403): rings, routing-task subscriptions and agent states of other agents."""

from __future__ import annotations

import aiohttp

from lpm.emulator.app import Emulator
from tests.helpers import RawSocket, login, signup

ONLINE = {"channels": ["MESSAGING"], "availability": "ONLINE"}


async def test_agents_cannot_act_for_other_agents(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    acc = emulator.account_id
    agent = await RawSocket.brand(http, emulator, (await login(http, emulator, "agent"))["bearer"])
    bot = await RawSocket.brand(http, emulator, (await login(http, emulator, "bot"))["bearer"])
    # The bot is the only one ringing: ONLINE with a routing subscription.
    await bot.request(".ams.routing.SetAgentState", {**ONLINE, "agentUserId": f"{acc}.2001"}, expect=202)
    await bot.request(".ams.routing.SubscribeRoutingTasks", {"brandId": acc, "agentId": f"{acc}.2001"})
    consumer = await RawSocket.consumer(http, emulator, await signup(http, emulator))
    await consumer.request("cm.ConsumerRequestConversation", {"skillId": "11"})
    while True:
        notification = await bot.notification(".ams.routing.RoutingTaskNotification")
        rings = [r for c in notification["body"]["changes"] for r in c["result"].get("ringsDetails", [])]
        waiting = [r for r in rings if r["ringState"] == "WAITING"]
        if waiting:
            ring_id = waiting[0]["ringId"]
            break
    # Someone else's ring: neither the agent (a manager) nor anyone may take it.
    await agent.request(
        ".ams.routing.UpdateRingState", {"ringId": ring_id, "ringState": "ACCEPTED"}, expect=403
    )
    await agent.request(
        ".ams.routing.UpdateRingState", {"ringId": ring_id, "ringState": "REJECTED"}, expect=403
    )
    # Routing tasks are subscribed to for oneself only.
    await bot.request(
        ".ams.routing.SubscribeRoutingTasks", {"brandId": acc, "agentId": f"{acc}.1001"}, expect=403
    )
    await agent.request(
        ".ams.routing.SubscribeRoutingTasks", {"brandId": acc, "agentId": f"{acc}.2001"}, expect=403
    )
    # A non-manager neither sets nor watches another agent's state; a manager may.
    await bot.request(".ams.routing.SetAgentState", {**ONLINE, "agentUserId": f"{acc}.1001"}, expect=403)
    await bot.request(
        ".ams.routing.SubscribeAgentsState", {"brandId": acc, "agentId": f"{acc}.1001"}, expect=403
    )
    await agent.request(".ams.routing.SubscribeAgentsState", {"brandId": acc, "agentId": f"{acc}.2001"})
    # The ring is still the bot's to accept.
    await bot.request(
        ".ams.routing.UpdateRingState", {"ringId": ring_id, "ringState": "ACCEPTED"}, expect=202
    )
    for sock in (agent, bot, consumer):
        await sock.close()
