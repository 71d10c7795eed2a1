"""Messages sent just before a conversation closed, while the consumer was away, still arrive.

The long chaos run lost them: a consumer whose feed shows open conversations only learns of the
close from the next snapshot (the conversation has left the feed) and releases the conversation;
with a short ``conversations_cache_duration`` it left the cache before the session's catch-up
replayed the dialog's last messages -- those then found no conversation and were dropped
("ContentEvent received for conversation not in cache").  While a session is not restored,
expiries wait (``ConversationCache.session_lost``, unit-tested in
``tests/unit/client/model/test_cache_expiry.py``).  Whether the expiry falls before the replay
depends on the timing of a loaded machine, so this end-to-end scenario does not always meet the
race; it pins the behaviour a user sees.  Real emulator, real sockets.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp

import lpm
from lpm.testing import TestEmulator

WAIT = 20.0


async def _control(emu: TestEmulator, path: str, body: dict[str, Any]) -> Any:
    url = f"{emu.base_url}/_emulator/{path}"
    async with aiohttp.ClientSession() as http, http.post(url, json=body) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {WAIT} s"
        await asyncio.sleep(0.02)


async def test_the_last_messages_before_a_close_reach_a_consumer_that_was_away(
    lpm_emulator: TestEmulator,
) -> None:
    emu = lpm_emulator
    agent = await emu.agent("agent")
    consumer = await emu.consumer(
        default_subscription_query={"stage": ["OPEN"]},
        conversations_cache_duration=0.01,  # a released conversation leaves the cache at once
        reconnect_schedule=(0.05, 0.1),
        wait_to_reconnect=0.05,
    )
    errors: list[BaseException] = []
    consumer.on("error", errors.append)
    await agent.set_agent_state(lpm.AgentState.ONLINE)
    rings = await agent.create_routing_task_subscription()
    rung = asyncio.ensure_future(rings.wait_for("ring", timeout=WAIT))
    conversation = await consumer.create_conversation(skill_id="12")
    received: list[str] = []
    conversation.on("message", lambda message: received.append(str(message.body)))
    agent_view = await (await rung).accept()
    await conversation.send_message("hello")
    await agent_view.send_message("first answer")
    await until(lambda: "first answer" in received, "the first answer")

    # The consumer goes away; the agent answers twice more and closes meanwhile.
    await _control(emu, "upgrades/stall", {"count": 1000})
    disconnected = asyncio.ensure_future(consumer.wait_for("disconnect", timeout=WAIT))
    await _control(emu, "sockets/drop", {"dialect": "consumer"})
    await disconnected
    await agent_view.send_message("second answer")
    await agent_view.send_message("last answer")
    await agent_view.close()
    # A slow server: the restore's requests (profile, feed, the dialog's replay) are each answered
    # late, so the feed's snapshot -- the conversation has left it -- is taken well before the
    # replay of the dialog's last messages.
    await _control(emu, "requests", {"count": 3, "action": "delay", "delay": 0.3})
    reconnected = asyncio.ensure_future(consumer.wait_for("reconnect", timeout=WAIT))
    await _control(emu, "upgrades/release", {})
    await reconnected

    await until(
        lambda: "last answer" in received and conversation.stage == lpm.ConversationState.CLOSE,
        f"the last answer and the close (received {received})",
    )
    assert received == ["hello", "first answer", "second answer", "last answer"]
    assert not [e for e in errors if "not in cache" in str(e)], errors
    # Once the session is restored and caught up, the released conversation does leave the cache.
    await until(
        lambda: consumer.get_conversation_by_id(conversation.conversation_id) is None,
        "the released conversation leaving the cache",
    )
