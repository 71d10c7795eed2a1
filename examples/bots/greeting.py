"""Greeting bot on ``lpm.bot``: greets every conversation it takes, answers "hi" and "bye".

Run it against a local emulator (two terminals)::

    lpm emulator                                   # prints csds_domain http://127.0.0.1:8443
    LPM_ACCOUNT_ID=12345678 LPM_USERNAME=bot LPM_PASSWORD=bot-password \\
        LPM_CSDS_DOMAIN=http://127.0.0.1:8443 lpm run examples/bots/greeting.py:bot

then talk to it with ``lpm chat --csds-domain http://127.0.0.1:8443 --skill 11``.
"""

from __future__ import annotations

from lpm.bot import Bot, ConversationContext, MessageContext

GREETING = "Hello! I am the greeting bot. Say 'bye' when you are done."

bot = Bot("greeting")


@bot.conversation_started
async def greet(ctx: ConversationContext) -> None:
    await ctx.reply(GREETING)


@bot.message("hi")
async def hi(ctx: MessageContext) -> None:
    await ctx.reply("Hi again!")


@bot.message("bye")
async def bye(ctx: MessageContext) -> None:
    await ctx.reply("Goodbye!")
    await ctx.close()


@bot.message()
async def anything_else(ctx: MessageContext) -> None:
    await ctx.reply(f"You said {ctx.text!r}. Say 'bye' to finish.")
