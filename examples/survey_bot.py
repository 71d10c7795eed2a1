"""Survey bot: the post-conversation survey of skill 12 ("support").

::

    python examples/survey_bot.py                      # on an embedded emulator
    python examples/survey_bot.py --csds-domain http://127.0.0.1:8443
    python examples/survey_bot.py --csds-domain 127.0.0.1:8443 --ca-file ca.pem   # TLS

A human agent (user ``agent``) handles a consumer's conversation on skill 12 and closes it.  The
consumer speaks MULTI_DIALOG, so the conversation stays open with a new ``POST_SURVEY`` dialog
owned by the skill's survey bot (user ``survey-bot``).  The bot asks a question in that dialog, records
the consumer's answer and closes the survey dialog, which closes the conversation.  Exit code 0
when the answer was recorded and the conversation ended.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import _common
from _common import log, until, wait_message

import lpm

SURVEY_SKILL = "12"
QUESTION = "How would you rate the help you got, from 1 to 5?"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = _common.parser(__doc__, timeout=10.0)
    parser.add_argument("--answer", default="5", help="what the consumer answers")
    return parser.parse_args(argv)


class SurveyBot:
    """Asks one question in every POST_SURVEY dialog it is given and records the answers."""

    def __init__(self, conn: lpm.BrandWebsocketConnection) -> None:
        self.conn = conn
        self.answers: dict[str, str] = {}  # conversation id -> answer
        self.done = asyncio.Event()
        conn.on("conversation:dialog", self.on_dialog)
        conn.on("conversation:message", self.on_message)

    async def on_dialog(self, conversation: lpm.Conversation, dialog: lpm.Dialog) -> None:
        # A new dialog in a conversation: the survey starts when the main dialog is closed.
        if dialog.dialog_type != lpm.DialogType.POST_SURVEY:
            return
        log(f"bot: survey dialog {dialog.dialog_id} opened in {conversation.conversation_id}")
        await conversation.send_message(QUESTION)  # goes to the open dialog: the survey
        log(f"bot: asked {QUESTION!r}")

    async def on_message(self, conversation: lpm.Conversation, message: lpm.Message) -> None:
        dialog = message.dialog
        if (
            dialog.dialog_type != lpm.DialogType.POST_SURVEY
            or message.participant.role != lpm.ParticipantRole.CONSUMER
        ):
            return
        self.answers[conversation.conversation_id] = message.text or ""
        log(f"bot: recorded answer {message.text!r}, closing the survey dialog")
        await dialog.close(lpm.DialogCloseReason.AGENT, "survey done")
        self.done.set()


async def scenario(args: argparse.Namespace, csds_domain: str) -> None:
    def brand(username: str) -> lpm.BrandWebsocketConnection:
        conn = lpm.create_connection(
            account_id=args.account_id,
            user_type=lpm.UserType.BRAND,
            auth_data={"username": username, "password": f"{username}-password"},
            csds_domain=csds_domain,
            ssl=args.ca_file,  # a CA file for TLS, or None
        )
        conn.on("error", lambda error: log(f"{username}: error {error!r}"))
        return conn

    bot, agent = brand("survey-bot"), brand("agent")
    survey_bot = SurveyBot(bot)
    # MULTI_DIALOG: the consumer can take part in the survey dialog after the main one closes.
    consumer = lpm.create_connection(
        user_type=lpm.UserType.CONSUMER,
        client_properties={"features": [lpm.Features.MULTI_DIALOG]},
        account_id=args.account_id,
        csds_domain=csds_domain,
        ssl=args.ca_file,  # a CA file for TLS, or None
    )

    async with bot, agent, consumer:
        # The survey bot needs no rings: it is added to survey dialogs by the platform.
        await agent.set_agent_state(lpm.AgentState.ONLINE)
        routing = await agent.create_routing_task_subscription()
        routing.on("ring", lambda ring: ring.accept())
        log("agent: ONLINE on skill 12")

        conversation = await consumer.create_conversation(skill_id=SURVEY_SKILL)
        cid = conversation.conversation_id
        log(f"consumer: opened conversation {cid} on skill {SURVEY_SKILL}")
        await until(lambda: conversation.assigned_agent is not None, args.timeout)
        agent_view = await agent.wait_for_conversation(cid, timeout=args.timeout)
        await until(lambda: agent_view.assigned_agent is not None, args.timeout)

        reply = asyncio.ensure_future(
            wait_message(conversation, lambda m: m.text == "Glad to help!", args.timeout)
        )
        await conversation.send_message("thanks, that solved it")
        await agent_view.send_message("Glad to help!")
        await reply
        log("agent: done, closing the conversation")
        await agent_view.close()

        question = await wait_message(conversation, lambda m: m.text == QUESTION, args.timeout)
        log(f"consumer: survey question in a {question.dialog.dialog_type} dialog: {question.text!r}")
        closed = asyncio.ensure_future(conversation.wait_for("close", timeout=args.timeout))
        await conversation.send_message(args.answer)
        log(f"consumer: answered {args.answer!r}")
        await asyncio.wait_for(survey_bot.done.wait(), args.timeout)
        await closed
        if survey_bot.answers.get(cid) != args.answer:
            raise RuntimeError(f"recorded {survey_bot.answers.get(cid)!r}, expected {args.answer!r}")
        log(f"consumer: conversation is {conversation.stage}")
    log(f"OK: survey answer {args.answer!r} recorded, survey dialog closed")


def main(argv: list[str] | None = None) -> int:
    return _common.main(parse_args(argv), scenario)


if __name__ == "__main__":
    sys.exit(main())
