"""FAQ bot on ``lpm.bot``: answers known questions, hands the conversation to a human on request
or after two questions it cannot answer.

Run it against a local emulator::

    lpm emulator
    LPM_ACCOUNT_ID=12345678 LPM_USERNAME=bot LPM_PASSWORD=bot-password \\
        LPM_CSDS_DOMAIN=http://127.0.0.1:8443 lpm run examples/bots/faq.py:bot

Transfers go to skill 12 ("support" in the emulator's default world), where the human agent
``agent`` / ``agent-password`` takes them (``lpm agent --csds-domain ... --username agent``).
"""

from __future__ import annotations

import re

from lpm.bot import Bot, ConversationContext, MessageContext

HUMAN_SKILL = "12"
#: Question pattern -> answer.
ANSWERS: dict[re.Pattern[str], str] = {
    re.compile(r"\b(price|prices|cost|plan)s?\b", re.I): "Plans start at 10 EUR a month.",
    re.compile(r"\b(hours|open)\b", re.I): "We answer around the clock.",
    re.compile(r"\b(refund|money back)\b", re.I): "Refunds take 5 working days.",
}
MISSES_BEFORE_HUMAN = 2

bot = Bot("faq")


@bot.conversation_started
async def welcome(ctx: ConversationContext) -> None:
    ctx.state["misses"] = 0
    await ctx.reply("Hi! Ask me about prices, opening hours or refunds, or say 'human'.")


@bot.message(re.compile(r"\b(human|agent|person)\b", re.I))
async def to_human(ctx: MessageContext) -> None:
    await ctx.reply("Let me find you a human, one moment...")
    await ctx.transfer(skill=HUMAN_SKILL)


@bot.message()
async def answer(ctx: MessageContext) -> None:
    for pattern, text in ANSWERS.items():
        if pattern.search(ctx.text):
            await ctx.reply(text)
            return
    misses = int(ctx.state.get("misses", 0)) + 1
    ctx.state["misses"] = misses
    if misses >= MISSES_BEFORE_HUMAN:
        await ctx.reply("I cannot answer that; a human will take over.")
        await ctx.transfer(skill=HUMAN_SKILL)
    else:
        await ctx.reply("Sorry, I do not know that one. Try prices, hours or refunds.")
