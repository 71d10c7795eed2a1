"""Testing your own bot offline with the ``lpm_emulator`` pytest fixture (see docs/testing.md).

The fixture comes with the package (a pytest plugin): no conftest is needed.  Each test gets a
fresh emulator on a free loopback port; connections made with ``lpm_emulator.agent()`` and
``lpm_emulator.consumer()`` are opened for you and closed after the test.
"""

from __future__ import annotations

import asyncio

import aiohttp

import lpm
from lpm.testing import TestEmulator


def order_bot(bot: lpm.BrandWebsocketConnection) -> None:
    """The bot under test: answers "status <n>" with the order's status, anything else with help."""

    async def on_message(conversation: lpm.Conversation, message: lpm.Message) -> None:
        # The bot sees its own messages too: answer consumers only.
        if message.participant.role != lpm.ParticipantRole.CONSUMER:
            return
        words = (message.text or "").split()
        if len(words) == 2 and words[0] == "status":
            await conversation.send_message(f"order {words[1]} has shipped")
        else:
            await conversation.send_message("say: status <order number>")

    bot.on("conversation:message", on_message)


async def start_bot(lpm_emulator: TestEmulator) -> lpm.BrandWebsocketConnection:
    """Log the bot in, attach its behaviour and take conversations of its skills."""
    bot = await lpm_emulator.agent(username="bot")  # password from the emulator's world
    order_bot(bot)
    await bot.set_agent_state(lpm.AgentState.ONLINE)
    rings = await bot.create_routing_task_subscription()
    rings.on("ring", lambda ring: ring.accept())
    return bot


async def reply_to(conversation: lpm.Conversation, text: str) -> str:
    """Send ``text`` as the consumer and return the next message that is not the consumer's."""
    reply = asyncio.ensure_future(
        conversation.wait_for(
            "message", lambda m: m.participant.role != lpm.ParticipantRole.CONSUMER, timeout=10
        )
    )
    await conversation.send_message(text)
    message: lpm.Message = await reply
    return message.text or ""


async def test_bot_answers_order_status(lpm_emulator: TestEmulator) -> None:
    await start_bot(lpm_emulator)
    consumer = await lpm_emulator.consumer()

    conversation = await consumer.create_conversation(skill_id="11")

    assert await reply_to(conversation, "status 42") == "order 42 has shipped"
    assert await reply_to(conversation, "hello") == "say: status <order number>"


async def test_bot_survives_a_dropped_socket(lpm_emulator: TestEmulator) -> None:
    """The emulator's fault API drops every socket; the bot reconnects and keeps answering."""
    await start_bot(lpm_emulator)
    consumer = await lpm_emulator.consumer()
    conversation = await consumer.create_conversation(skill_id="11")
    assert await reply_to(conversation, "status 1") == "order 1 has shipped"

    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{lpm_emulator.base_url}/_emulator/sockets/drop", json={}) as resp,
    ):
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["dropped"] == 2  # the bot's socket and the consumer's

    assert await reply_to(conversation, "status 2") == "order 2 has shipped"
