"""``lpm.bot``: a bot framework on the SDK -- handlers by decorator, conversation state, a runner
with graceful shutdown, health and metrics, and replicas on Redis.

::

    from lpm.bot import Bot, MessageContext

    bot = Bot("echo")

    @bot.message()
    async def echo(ctx: MessageContext) -> None:
        await ctx.reply(f"you said: {ctx.text}")

Run it with ``lpm run my_module:bot`` (or ``bot.run()``); see docs/bots.md.
"""

from lpm.bot.app import Bot
from lpm.bot.context import ConversationContext, MessageContext, RingContext, State, SurveyContext
from lpm.bot.handlers import RingDecision
from lpm.bot.settings import BotSettings

__all__ = [
    "Bot",
    "BotSettings",
    "ConversationContext",
    "MessageContext",
    "RingContext",
    "RingDecision",
    "State",
    "SurveyContext",
]
