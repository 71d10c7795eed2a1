"""A stateless bot on ``lpm.bot``: nothing lives in the process, everything in the store, so any
number of copies serve the same conversations and any of them may die.

Every answer counts the consumer's messages in the conversation's state; with replicas the
count goes on whichever replica answers.  Run three replicas on one Redis::

    lpm emulator
    export LPM_ACCOUNT_ID=12345678 LPM_USERNAME=bot LPM_PASSWORD=bot-password \\
        LPM_CSDS_DOMAIN=http://127.0.0.1:8443 LPM_BOT_REDIS=redis://127.0.0.1:6379/0
    lpm run examples/bots/stateless.py:bot --replica-id a --http-port 9101 &
    lpm run examples/bots/stateless.py:bot --replica-id b --http-port 9102 &
    lpm run examples/bots/stateless.py:bot --replica-id c --http-port 9103 &

(``LPM_BOT_REDIS`` alone also keeps the state in that Redis; one process with
``LPM_BOT_STORE=file:///var/lib/my-bot`` keeps it across its own restarts.)
"""

from __future__ import annotations

from lpm.bot import Bot, MessageContext

bot = Bot("stateless")


@bot.message()
async def count(ctx: MessageContext) -> None:
    answered = int(ctx.state.get("answered", 0)) + 1
    ctx.state["answered"] = answered
    ctx.state.setdefault("seen", []).append(ctx.message.sequence)
    await ctx.reply(f"answer #{answered}: {ctx.text}")
