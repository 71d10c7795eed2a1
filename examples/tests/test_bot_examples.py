"""The ``lpm.bot`` examples of ``examples/bots/``, each against the test's emulator, checked with
conversation scripts (``lpm.testing.ConversationScript``)."""

from __future__ import annotations

import asyncio
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import lpm
from lpm.bot import Bot
from lpm.testing import (
    ConversationScript,
    TestEmulator,
    expect,
    expect_close,
    expect_transfer,
    say,
)

BOTS = Path(__file__).resolve().parents[1] / "bots"


def load(name: str) -> ModuleType:
    """A fresh copy of ``examples/bots/<name>.py`` (each test gets its own Bot)."""
    spec = importlib.util.spec_from_file_location(f"example_bot_{name}", BOTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def bot_of(module: ModuleType) -> Bot:
    bot = module.bot
    assert isinstance(bot, Bot)
    return bot


async def test_greeting_bot(lpm_emulator: TestEmulator) -> None:
    greeting = load("greeting")
    await lpm_emulator.start_bot(bot_of(greeting))
    script = ConversationScript(
        [
            expect(greeting.GREETING),
            say("hi"),
            expect("Hi again!"),
            say("what is this?"),
            expect(re.compile(r"You said 'what is this\?'")),
            say("bye"),
            expect("Goodbye!"),
            expect_close(),
        ]
    )
    await script.run(await lpm_emulator.consumer())


async def test_faq_bot_answers_then_transfers(lpm_emulator: TestEmulator) -> None:
    faq = load("faq")
    await lpm_emulator.start_bot(bot_of(faq))
    await ConversationScript(
        [
            expect(re.compile(r"^Hi!")),
            say("what are your prices?"),
            expect("Plans start at 10 EUR a month."),
            say("I want a human please"),
            expect("Let me find you a human, one moment..."),
            expect_transfer(skill=faq.HUMAN_SKILL),
        ]
    ).run(await lpm_emulator.consumer())


async def test_faq_bot_transfers_after_two_misses(lpm_emulator: TestEmulator) -> None:
    faq = load("faq")
    await lpm_emulator.start_bot(bot_of(faq))
    await ConversationScript(
        [
            expect(re.compile(r"^Hi!")),
            say("what colour is the sky?"),
            expect(re.compile(r"^Sorry")),
            say("and the sea?"),
            expect("I cannot answer that; a human will take over."),
            expect_transfer(skill="12"),
        ]
    ).run(await lpm_emulator.consumer())


async def test_survey_bot(lpm_emulator: TestEmulator) -> None:
    survey = load("survey")
    bot = await lpm_emulator.start_bot(bot_of(survey), username="survey-bot")
    agent = await lpm_emulator.agent()  # the human agent of skill 12
    await agent.set_agent_state(lpm.AgentState.ONLINE)
    rings = await agent.create_routing_task_subscription()
    rings.on("ring", lambda ring: ring.accept())
    consumer = await lpm_emulator.consumer(client_properties={"features": [lpm.Features.MULTI_DIALOG]})
    conversation = await consumer.create_conversation(skill_id="12")
    view = await agent.wait_for_conversation(conversation.conversation_id, timeout=10)
    deadline = asyncio.get_running_loop().time() + 10
    while view.assigned_agent is None:
        assert asyncio.get_running_loop().time() < deadline, "the agent never took the conversation"
        await asyncio.sleep(0.02)
    await view.close()  # the survey dialog opens for the survey bot

    await ConversationScript(
        [
            expect(survey.QUESTION),
            say("great"),
            expect("Please answer with a number from 1 to 5."),
            say("5"),
            expect("Thank you for your feedback!"),
        ]
    ).play(conversation)
    await conversation.wait_for("close", timeout=10)
    while bot.stats()["finished_runs"] < 3:  # the survey opened, two answers
        assert asyncio.get_running_loop().time() < deadline + 10, bot.stats()
        await asyncio.sleep(0.02)


async def test_stateless_bot_keeps_count_in_the_store(lpm_emulator: TestEmulator) -> None:
    stateless = load("stateless")
    bot = await lpm_emulator.start_bot(bot_of(stateless))
    transcript = await ConversationScript(
        [say("one"), expect("answer #1: one"), say("two"), expect("answer #2: two")]
    ).run(await lpm_emulator.consumer())
    assert transcript.conversation is not None
    saved = await bot.store.get(transcript.conversation.conversation_id)
    assert saved is not None and '"answered":2' in saved
