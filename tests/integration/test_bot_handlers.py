"""Each ``lpm.bot`` decorator and context action against the embedded emulator."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path

import pytest

import lpm
from lpm.bot import Bot, ConversationContext, MessageContext, RingContext, RingDecision
from lpm.testing import ConversationScript, TestEmulator, expect, expect_close, expect_no_reply, say

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4"
    b"\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82"
)


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def texts(conversation: lpm.Conversation, dialog: lpm.Dialog | None = None) -> list[str]:
    """The bot's (non-consumer) messages of a dialog (MAIN by default), in order."""
    dialog = dialog or conversation.main_dialog
    return [
        m.text or ""
        for m in dialog.messages
        if (m.originator_role or m.participant.role) != lpm.ParticipantRole.CONSUMER
    ]


# ---------------------------------------------------------------- rings


async def test_a_ring_handler_decides_and_the_default_accepts(lpm_emulator: TestEmulator) -> None:
    bot = Bot("rings")
    seen: list[tuple[str | None, int]] = []

    @bot.ring(skill="12")
    async def support_only_when_quiet(ctx: RingContext) -> RingDecision:
        seen.append((ctx.skill_id, ctx.open_conversations))
        return RingDecision.REJECT

    @bot.conversation_started
    async def hello(ctx: ConversationContext) -> None:
        await ctx.reply("hello")

    await lpm_emulator.start_bot(bot)
    await ConversationScript([expect("hello")]).run(await lpm_emulator.consumer())
    assert seen == []  # skill 11 has no ring handler: accepted
    assert bot.metrics.rings.labels("accept")._value.get() == 1


async def test_a_rejected_ring_is_not_served(lpm_emulator: TestEmulator) -> None:
    bot = Bot("rejecting")
    asked: list[str] = []

    @bot.ring()
    async def no(ctx: RingContext) -> bool:
        asked.append(ctx.conversation_id)
        return False

    @bot.conversation_started
    async def hello(ctx: ConversationContext) -> None:
        await ctx.reply("hello")

    await lpm_emulator.start_bot(bot)
    consumer = await lpm_emulator.consumer()
    await ConversationScript([say("anyone?"), expect_no_reply(0.5)]).run(consumer)
    await until(lambda: bot.metrics.rings.labels("reject")._value.get() >= 1)
    assert asked and bot.stats()["open_conversations"] == 0


async def test_a_deferred_ring_stays_unanswered(lpm_emulator: TestEmulator) -> None:
    bot = Bot("deferring")

    @bot.ring()
    async def later(ctx: RingContext) -> RingDecision:
        return ctx.DEFER

    await lpm_emulator.start_bot(bot)
    consumer = await lpm_emulator.consumer()
    conversation = await consumer.create_conversation(skill_id="11")
    await until(lambda: bot.metrics.rings.labels("defer")._value.get() >= 1)
    await asyncio.sleep(0.2)
    assert conversation.assigned_agent is None


async def test_capacity_rejects_rings_beyond_the_limit(lpm_emulator: TestEmulator) -> None:
    bot = Bot("small", max_conversations=1)

    @bot.conversation_started
    async def hello(ctx: ConversationContext) -> None:
        await ctx.reply("hello")

    await lpm_emulator.start_bot(bot)
    first = await lpm_emulator.consumer()
    await ConversationScript([expect("hello")]).run(first)
    second = await lpm_emulator.consumer()
    await ConversationScript([expect_no_reply(0.5)]).run(second)
    await until(lambda: bot.metrics.rings.labels("reject")._value.get() >= 1)
    assert bot.stats()["open_conversations"] == 1


# ---------------------------------------------------------------- messages


async def test_message_filters_in_order_with_match_and_skill(lpm_emulator: TestEmulator) -> None:
    bot = Bot("filters")

    @bot.message("Hello")
    async def exact(ctx: MessageContext) -> None:
        await ctx.reply("exact")

    @bot.message(re.compile(r"order (\d+)"))
    async def order(ctx: MessageContext) -> None:
        assert ctx.match is not None
        await ctx.reply(f"order {ctx.match.group(1)} shipped")

    @bot.message(lambda m: (m.text or "").endswith("?"))
    async def question(ctx: MessageContext) -> None:
        await ctx.reply("a question")

    @bot.message(skill="12")
    async def never(ctx: MessageContext) -> None:  # the conversation is on skill 11
        await ctx.reply("wrong skill")

    @bot.message()
    async def other(ctx: MessageContext) -> None:
        await ctx.reply(f"other: {ctx.text}")

    await lpm_emulator.start_bot(bot)
    await ConversationScript(
        [
            say("  hello "),
            expect("exact"),
            say("where is order 42?"),
            expect("order 42 shipped"),
            say("why?"),
            expect("a question"),
            say("fine"),
            expect("other: fine"),
        ]
    ).run(await lpm_emulator.consumer())


async def test_state_is_loaded_before_and_saved_after_each_handler(lpm_emulator: TestEmulator) -> None:
    bot = Bot("state")

    @bot.conversation_started
    async def start(ctx: ConversationContext) -> None:
        ctx.state["count"] = 0

    @bot.message()
    async def count(ctx: MessageContext) -> None:
        ctx.state["count"] += 1
        await ctx.reply(str(ctx.state["count"]))

    await lpm_emulator.start_bot(bot)
    transcript = await ConversationScript([say("a"), expect("1"), say("b"), expect("2")]).run(
        await lpm_emulator.consumer()
    )
    assert transcript.conversation is not None
    saved = await bot.store.get(transcript.conversation.conversation_id)
    assert saved is not None and '"count":2' in saved


async def test_a_failing_handler_keeps_the_state_and_the_bot_goes_on(lpm_emulator: TestEmulator) -> None:
    bot = Bot("fragile")

    @bot.message("boom")
    async def boom(ctx: MessageContext) -> None:
        ctx.state["broken"] = True
        raise RuntimeError("boom")

    @bot.message()
    async def fine(ctx: MessageContext) -> None:
        await ctx.reply(f"broken={ctx.state.get('broken', False)}")

    await lpm_emulator.start_bot(bot)
    await ConversationScript([say("boom"), say("ok?"), expect("broken=False")]).run(
        await lpm_emulator.consumer()
    )
    assert bot.metrics.handler_errors.labels("message")._value.get() == 1


async def test_messages_sent_before_the_bot_joined_are_handled_in_order(lpm_emulator: TestEmulator) -> None:
    bot = Bot("late")

    @bot.ring()
    async def slowly(ctx: RingContext) -> RingDecision:
        await asyncio.sleep(0.3)
        return RingDecision.ACCEPT

    @bot.conversation_started
    async def hello(ctx: ConversationContext) -> None:
        await ctx.reply("hello")

    @bot.message()
    async def echo(ctx: MessageContext) -> None:
        await ctx.reply(f"re: {ctx.text}")

    await lpm_emulator.start_bot(bot)
    consumer = await lpm_emulator.consumer()
    conversation = await consumer.create_conversation(skill_id="11")
    await conversation.send_message("first")
    await conversation.send_message("second")
    await ConversationScript([expect("hello"), expect("re: first"), expect("re: second")]).play(conversation)


async def test_file_handler_gets_the_shared_file(lpm_emulator: TestEmulator) -> None:
    bot = Bot("files")

    @bot.file
    async def got_file(ctx: MessageContext) -> None:
        assert ctx.message.relative_path is not None
        data = await ctx.conversation.download_file(ctx.message.relative_path)
        await ctx.reply(f"{ctx.message.file_type} {len(data)} bytes, caption {ctx.message.caption!r}")

    @bot.message()
    async def text(ctx: MessageContext) -> None:
        await ctx.reply("text")

    await lpm_emulator.start_bot(bot)
    consumer = await lpm_emulator.consumer()
    conversation = await consumer.create_conversation(skill_id="11")
    await conversation.upload_file(PNG, caption="a pixel")
    await ConversationScript(
        [expect(f"PNG {len(PNG)} bytes, caption 'a pixel'"), say("hi"), expect("text")]
    ).play(conversation)


# ---------------------------------------------------------------- actions


async def test_reply_rich_and_typing(lpm_emulator: TestEmulator) -> None:
    bot = Bot("rich")
    card = {"type": "vertical", "elements": [{"type": "text", "text": "a card"}]}

    @bot.message()
    async def answer(ctx: MessageContext) -> None:
        await ctx.typing()
        await ctx.reply_rich(card, quick_replies=None)
        await ctx.typing(False)
        await ctx.reply(
            "after the card", quick_replies={"type": "quickReplies", "itemsPerRow": 1, "replies": []}
        )

    await lpm_emulator.start_bot(bot)
    consumer = await lpm_emulator.consumer()
    conversation = await consumer.create_conversation(skill_id="11")
    states: list[str] = []

    def on_added(participant: lpm.Participant, _restored: bool) -> None:
        if participant.role == lpm.ParticipantRole.ASSIGNED_AGENT:
            participant.on("chat-state-change", states.append)

    conversation.on("participant-added", on_added)
    await ConversationScript(
        [say("show me"), expect(lambda m: m.structured_content == card), expect("after the card")]
    ).play(conversation)
    await until(lambda: lpm.ParticipantChatState.COMPOSING in states)


async def test_transfer_to_an_agent(lpm_emulator: TestEmulator) -> None:
    bot = Bot("handover")

    @bot.message()
    async def hand_over(ctx: MessageContext) -> None:
        await ctx.reply("a human will help you")
        await ctx.transfer(agent="1001")  # the default world's human agent

    agent = await lpm_emulator.agent()
    await agent.set_agent_state(lpm.AgentState.ONLINE)
    rings = await agent.create_routing_task_subscription()
    await lpm_emulator.start_bot(bot)
    consumer = await lpm_emulator.consumer()
    conversation = await consumer.create_conversation(skill_id="11")
    await until(lambda: conversation.assigned_agent is not None)
    rings.on("ring", lambda ring: ring.accept())
    await ConversationScript([say("help"), expect("a human will help you")]).play(conversation)
    human = await agent.wait_for_conversation(conversation.conversation_id, timeout=10)
    await until(lambda: human.assigned_agent is not None and human.assigned_agent.agent_id == agent.agent_id)
    await until(lambda: bot.stats()["open_conversations"] == 0)


async def test_close_then_conversation_closed_sees_the_last_state(
    lpm_emulator: TestEmulator, tmp_path: Path
) -> None:
    bot = Bot("closer")
    closed: list[dict[str, object]] = []

    @bot.message("bye")
    async def bye(ctx: MessageContext) -> None:
        ctx.state["said_bye"] = True
        await ctx.reply("bye!")
        await ctx.close()

    @bot.message()
    async def note(ctx: MessageContext) -> None:
        ctx.state.setdefault("notes", []).append(ctx.text)

    @bot.conversation_closed
    async def done(ctx: ConversationContext) -> None:
        closed.append(dict(ctx.state))

    await lpm_emulator.start_bot(bot, store=f"file://{tmp_path}")
    transcript = await ConversationScript(
        [say("a"), say("b"), say("bye"), expect("bye!"), expect_close()]
    ).run(await lpm_emulator.consumer())
    await until(lambda: bool(closed))
    assert closed == [{"notes": ["a", "b"], "said_bye": True}]
    assert transcript.conversation is not None
    await until(
        lambda: not (tmp_path / "closer" / f"{transcript.conversation.conversation_id}.json").exists()
    )


async def test_conversation_closed_by_the_consumer(lpm_emulator: TestEmulator) -> None:
    bot = Bot("watcher")
    closed: list[str] = []

    @bot.conversation_started
    async def hello(ctx: ConversationContext) -> None:
        await ctx.reply("hello")

    @bot.conversation_closed
    async def done(ctx: ConversationContext) -> None:
        closed.append(ctx.conversation_id)

    await lpm_emulator.start_bot(bot)
    consumer = await lpm_emulator.consumer()
    conversation = await consumer.create_conversation(skill_id="11")
    await ConversationScript([expect("hello")]).play(conversation)
    await conversation.close()
    await until(lambda: closed == [conversation.conversation_id])


# ---------------------------------------------------------------- restarts


def counting_bot(name: str = "counter") -> Bot:
    bot = Bot(name)

    @bot.message()
    async def count(ctx: MessageContext) -> None:
        ctx.state["n"] = int(ctx.state.get("n", 0)) + 1
        await ctx.reply(f"#{ctx.state['n']} {ctx.text}")

    return bot


async def test_state_and_unanswered_messages_survive_a_restart(
    lpm_emulator: TestEmulator, tmp_path: Path
) -> None:
    store = f"file://{tmp_path}"
    first = await lpm_emulator.start_bot(counting_bot(), store=store)
    consumer = await lpm_emulator.consumer()
    conversation = await consumer.create_conversation(skill_id="11")
    await ConversationScript([say("one"), expect("#1 one"), say("two"), expect("#2 two")]).play(conversation)
    await first.stop()
    await conversation.send_message("three")  # nobody serves the conversation now
    await lpm_emulator.start_bot(counting_bot(), store=store)
    await ConversationScript([expect("#3 three"), say("four"), expect("#4 four")]).play(conversation)


async def test_a_handler_cut_off_runs_again_without_repeating_its_replies(
    lpm_emulator: TestEmulator, tmp_path: Path
) -> None:
    """The first bot sends "a" and is stopped (no grace) before the handler returns: nothing is
    saved.  The second bot runs the handler again for the same message: "a" is found in the
    dialog (its idempotency key) and not sent again; "b" is."""
    store = f"file://{tmp_path}"
    blocked = asyncio.Event()

    def make(block: bool) -> Bot:
        bot = Bot("replay")

        @bot.message()
        async def two_replies(ctx: MessageContext) -> None:
            ctx.state["runs"] = int(ctx.state.get("runs", 0)) + 1
            await ctx.reply("a")
            if block:
                blocked.set()
                await asyncio.Event().wait()  # "crash" here
            await ctx.reply("b")

        return bot

    first = await lpm_emulator.start_bot(make(True), store=store)
    consumer = await lpm_emulator.consumer()
    conversation = await consumer.create_conversation(skill_id="11")
    await conversation.send_message("go")
    await asyncio.wait_for(blocked.wait(), 10)
    await first.stop(grace=0)
    second = await lpm_emulator.start_bot(make(False), store=store)
    await until(lambda: texts(conversation) == ["a", "b"])
    await ConversationScript([expect("a"), expect("b"), expect_no_reply(0.3)]).play(conversation)
    saved = await second.store.get(conversation.conversation_id)
    assert saved is not None and '"runs":1' in saved  # the state of the run that completed


# ---------------------------------------------------------------- configuration


def test_handlers_must_be_coroutines() -> None:
    bot = Bot("strict")

    def plain(ctx: MessageContext) -> None:
        pass

    with pytest.raises(lpm.ConfigurationError, match="async def"):
        bot.message()(plain)  # type: ignore[arg-type]
    with pytest.raises(lpm.ConfigurationError, match="parentheses"):

        @bot.message  # type: ignore[arg-type]
        async def forgot(ctx: MessageContext) -> None:
            pass


async def test_settings_come_from_the_environment(
    lpm_emulator: TestEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LPM_ACCOUNT_ID", lpm_emulator.account_id)
    monkeypatch.setenv("LPM_USERNAME", "bot")
    monkeypatch.setenv("LPM_PASSWORD", "bot-password")
    monkeypatch.setenv("LPM_CSDS_DOMAIN", lpm_emulator.csds_domain)
    bot = Bot("from-env")

    @bot.conversation_started
    async def hello(ctx: ConversationContext) -> None:
        await ctx.reply("hello from env")

    async with bot:
        assert bot.ready and bot.connection.agent_id == f"{lpm_emulator.account_id}.2001"
        await ConversationScript([expect("hello from env")]).run(await lpm_emulator.consumer())
    assert not bot.running


async def test_a_refused_login_fails_start(lpm_emulator: TestEmulator) -> None:
    bot = Bot("refused")
    with pytest.raises(lpm.AuthenticationError):
        await lpm_emulator.start_bot(bot, password="wrong")
    assert not bot.running
