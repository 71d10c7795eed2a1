"""A brand connection follows its own agent's state (issue 12.6).

The state of an agent is one per agent, not per session: when another session of the same agent
(or a manager) changes it, the connection hears it (``agent-state``), ``agent_state`` says so,
and that is the state it sends again after a reconnect -- a bot no longer reports ONLINE while
the platform has it AWAY and rings nobody.  Real emulator, real sockets.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

import lpm
from lpm.testing import TestEmulator

WAIT = 20.0
BOT_ID = "12345678.2001"


def availability(state: lpm.AgentState) -> Any:
    """An ``agent-state`` check: the bot's state became ``state``."""
    return lambda info: info.agent_id == BOT_ID and info.availability == state


async def test_a_change_made_by_another_session_is_followed(lpm_emulator: TestEmulator) -> None:
    first = await lpm_emulator.agent("bot")
    second = await lpm_emulator.agent("bot")
    errors: list[BaseException] = []
    first.on("error", errors.append)
    second.on("error", errors.append)
    heard = asyncio.ensure_future(second.wait_for("agent-state", availability(lpm.AgentState.ONLINE), WAIT))
    await first.set_agent_state(lpm.AgentState.ONLINE)
    rings = await first.create_routing_task_subscription()
    await heard
    assert second.agent_state == lpm.AgentState.ONLINE

    # The other session sets AWAY: the first one hears it and no longer claims to be ONLINE.
    away = asyncio.ensure_future(first.wait_for("agent-state", availability(lpm.AgentState.AWAY), WAIT))
    await second.set_agent_state(lpm.AgentState.AWAY)
    info = await away
    assert info.availability == lpm.AgentState.AWAY
    assert first.agent_state == lpm.AgentState.AWAY

    # AWAY: a new conversation rings nobody (routing decides when the conversation is created).
    consumer = await lpm_emulator.consumer()
    conversation = await consumer.create_conversation(skill_id="11")
    task = lpm_emulator.world.accounts[lpm_emulator.account_id].tasks[conversation.conversation_id]
    assert task.rings == []

    # ONLINE again (from the other session): the waiting conversation rings the first one.
    rung = asyncio.ensure_future(rings.wait_for("ring", timeout=WAIT))
    await second.set_agent_state(lpm.AgentState.ONLINE)
    ring = await rung
    assert ring.conversation_id == conversation.conversation_id
    assert first.agent_state == lpm.AgentState.ONLINE
    assert errors == []


async def test_a_manager_change_is_followed_and_kept_after_a_reconnect(lpm_emulator: TestEmulator) -> None:
    bot = await lpm_emulator.agent("bot")
    manager = await lpm_emulator.agent("agent")  # a manager in the default world
    errors: list[BaseException] = []
    bot.on("error", errors.append)
    await bot.set_agent_state(lpm.AgentState.ONLINE)

    away = asyncio.ensure_future(bot.wait_for("agent-state", availability(lpm.AgentState.AWAY), WAIT))
    await manager.set_agent_state(lpm.AgentState.AWAY, agent_id=BOT_ID)
    await away
    assert bot.agent_state == lpm.AgentState.AWAY

    # The bot's socket is lost; after the reconnect it sets the state it knows -- AWAY, the
    # manager's -- again, not the ONLINE it once set itself.
    restored = asyncio.ensure_future(bot.wait_for("reconnect", timeout=WAIT))
    heard_again = asyncio.ensure_future(bot.wait_for("agent-state", availability(lpm.AgentState.AWAY), WAIT))
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{lpm_emulator.base_url}/_emulator/sockets/drop", json={"user_id": "2001"}) as resp,
    ):
        assert resp.status == 200, await resp.text()
    await restored
    await heard_again  # the subscription is restored with the socket
    assert bot.agent_state == lpm.AgentState.AWAY
    assert lpm_emulator.world.agent_state(lpm_emulator.account_id, "2001").availability == "AWAY"
    assert errors == []


async def test_the_state_is_known_from_the_start(lpm_emulator: TestEmulator) -> None:
    """A new session learns the agent's current state (set by an earlier session) at open."""
    earlier = await lpm_emulator.agent("bot")
    await earlier.set_agent_state(lpm.AgentState.BACK_SOON)
    later = await lpm_emulator.agent("bot")
    deadline = asyncio.get_running_loop().time() + WAIT
    while later.agent_state != lpm.AgentState.BACK_SOON:
        assert asyncio.get_running_loop().time() < deadline, f"agent_state is {later.agent_state}"
        await asyncio.sleep(0.02)
