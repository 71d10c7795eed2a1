"""The runner's graceful stop under load: consumers keep talking while the bot stops.  No handler
in flight is cut off within the grace period, and no message is lost: what arrived while the bot
was stopping or down is answered, once, by the next bot on the same store."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import lpm
from lpm.bot import Bot, MessageContext
from lpm.testing import TestEmulator

CONSUMERS = 8
MESSAGES = 6


def slow_counter() -> Bot:
    bot = Bot("slow", grace_period=5)

    @bot.message()
    async def answer(ctx: MessageContext) -> None:
        await asyncio.sleep(0.15)  # a handler that takes a while: some are in flight at the stop
        ctx.state["n"] = int(ctx.state.get("n", 0)) + 1
        await ctx.reply(f"#{ctx.state['n']} {ctx.text}")

    return bot


def answers(conversation: lpm.Conversation) -> list[str]:
    return [
        m.text or ""
        for m in conversation.main_dialog.messages
        if (m.originator_role or m.participant.role) != lpm.ParticipantRole.CONSUMER
    ]


async def test_stop_under_load_loses_nothing(lpm_emulator: TestEmulator, tmp_path: Path) -> None:
    store = f"file://{tmp_path}"
    first = await lpm_emulator.start_bot(slow_counter(), store=store)
    consumers = [await lpm_emulator.consumer() for _ in range(CONSUMERS)]
    conversations = [await c.create_conversation(skill_id="11") for c in consumers]
    replies = [0]

    async def talk(conversation: lpm.Conversation) -> None:
        for n in range(1, MESSAGES + 1):
            expected = f"#{n} m{n}"
            reply = asyncio.ensure_future(
                conversation.wait_for("message", lambda m, e=expected: m.text == e, timeout=30)
            )
            await conversation.send_message(f"m{n}")
            await reply
            replies[0] += 1

    talking = [asyncio.ensure_future(talk(c)) for c in conversations]
    deadline = time.monotonic() + 20
    while replies[0] < CONSUMERS * 2 or first.stats()["in_flight"] < 3:
        assert time.monotonic() < deadline, (replies, first.stats())
        await asyncio.sleep(0.005)

    # Stop while handlers run and messages keep coming.
    in_flight = first.stats()["in_flight"]
    stopped_at = time.monotonic()
    await first.stop()
    took = time.monotonic() - stopped_at
    stats = first.stats()
    assert stats["started_runs"] == stats["finished_runs"], stats  # nobody cut off
    assert took < 5, f"the stop took {took:.2f} s"
    assert first.connection.state == lpm.ConnectionState.CLOSED

    # Messages keep arriving while nobody serves; the next bot on the same store answers them.
    await asyncio.sleep(0.3)
    second = await lpm_emulator.start_bot(slow_counter(), store=store)
    await asyncio.wait_for(asyncio.gather(*talking), 30)
    for conversation in conversations:
        assert answers(conversation) == [f"#{n} m{n}" for n in range(1, MESSAGES + 1)]
    assert second.stats()["started_runs"] + stats["finished_runs"] == CONSUMERS * MESSAGES
    print(f"\nstopped with {in_flight} handler(s) in flight in {took:.2f} s; none cut off, none lost")


async def test_serve_stops_on_request_and_sets_the_agent_away(lpm_emulator: TestEmulator) -> None:
    bot = Bot("served")
    observer = await lpm_emulator.agent(username="bot")  # another session of the same user
    await lpm_emulator.start_bot(bot)
    await bot.stop()  # the fixture's start_bot started it: serve() below starts it again
    serving = asyncio.ensure_future(bot.serve())
    deadline = time.monotonic() + 10
    while not bot.ready:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    assert observer.agent_state == lpm.AgentState.ONLINE
    bot.request_stop()
    await asyncio.wait_for(serving, 10)
    assert not bot.running
    while observer.agent_state != lpm.AgentState.AWAY:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
