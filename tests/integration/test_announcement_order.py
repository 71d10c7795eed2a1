"""The connection's ``conversation`` event comes before any other event of that conversation, and
``ring.accept()`` returns the accepted conversation once it is announced (issue 12.4)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

import lpm
from lpm.emulator.app import Emulator
from tests.integration.test_sdk_resilience import WAIT, brand, consumer


@dataclass
class Offer:
    """A bot with a ring for the conversation a consumer just opened."""

    bot: lpm.BrandWebsocketConnection
    ring: lpm.Ring
    view: lpm.Conversation
    order: list[str]


@pytest.fixture
async def offer(emulator: Emulator) -> AsyncIterator[Offer]:
    bot = brand(emulator, get_all_messages=True)
    cons = consumer(emulator)
    order: list[str] = []
    bot.on("conversation", lambda conversation: order.append("conversation"))
    for name in ("participant-added", "message", "skill-change", "dialog"):
        bot.on(f"conversation:{name}", lambda conversation, *args, name=name: order.append(name))
    try:
        await bot.open()
        await bot.set_agent_state(lpm.AgentState.ONLINE)
        routing = await bot.create_routing_task_subscription()
        await cons.open()
        rung = asyncio.ensure_future(routing.wait_for("ring", timeout=WAIT))
        view = await cons.create_conversation(skill_id="11")
        await view.send_message("c 0")  # before the bot takes part: history once it joins
        yield Offer(bot, await rung, view, order)
    finally:
        await cons.close()
        await bot.close()


async def test_ring_accept_returns_the_announced_conversation_and_events_follow(offer: Offer) -> None:
    conversation = await offer.ring.accept()
    assert isinstance(conversation, lpm.Conversation)
    assert conversation.conversation_id == offer.view.conversation_id and conversation.announced
    assert offer.bot.get_conversation_by_id(offer.view.conversation_id) is conversation
    heard = asyncio.ensure_future(offer.view.wait_for("message", lambda m: m.body == "b 0", timeout=WAIT))
    await conversation.send_message("b 0")  # the bot can talk at once
    got: Any = await heard
    assert got.body == "b 0"
    await asyncio.sleep(0.2)
    assert offer.order and offer.order[0] == "conversation", offer.order
    assert offer.order.count("conversation") == 1


async def test_wait_for_conversation_is_immediate_for_an_announced_one(offer: Offer) -> None:
    conversation = await offer.ring.accept()
    again = await asyncio.wait_for(
        offer.bot.wait_for_conversation(offer.view.conversation_id, timeout=0.1), 1
    )
    assert again is conversation
