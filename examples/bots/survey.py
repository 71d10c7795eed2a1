"""Survey bot on ``lpm.bot``: runs the post-conversation survey of skill 12 ("support").

When a human agent closes a conversation of a consumer that speaks MULTI_DIALOG, the platform
opens a survey dialog and adds the skill's survey bot to it.  This bot asks for a rating from 1
to 5, asks again (once) when the answer is not a number in range, thanks the consumer and closes
the survey.  It takes no rings (``take_conversations=False``).

Run it against a local emulator, as the default world's survey bot::

    lpm emulator
    LPM_ACCOUNT_ID=12345678 LPM_USERNAME=survey-bot LPM_PASSWORD=survey-bot-password \\
        LPM_CSDS_DOMAIN=http://127.0.0.1:8443 lpm run examples/bots/survey.py:bot
"""

from __future__ import annotations

from lpm.bot import Bot, SurveyContext

QUESTION = "How would you rate the help you got, from 1 to 5?"

bot = Bot("survey", take_conversations=False)


@bot.survey
async def survey(ctx: SurveyContext) -> None:
    if ctx.message is None:  # the survey dialog has just opened
        await ctx.reply(QUESTION)
        return
    answer = ctx.text.strip()
    if answer in {"1", "2", "3", "4", "5"}:
        ctx.state["rating"] = int(answer)
        await ctx.reply("Thank you for your feedback!")
        await ctx.close()
        return
    ctx.state["invalid"] = int(ctx.state.get("invalid", 0)) + 1
    if ctx.state["invalid"] > 1:
        await ctx.reply("No problem, thank you anyway.")
        await ctx.close()
    else:
        await ctx.reply("Please answer with a number from 1 to 5.")
