"""Transfer bot: answers consumers on skill 11 and, when one asks for a "human", transfers the
conversation to skill 12 ("support"), where a human agent accepts the ring and says hello.

::

    python examples/transfer_bot.py                      # on an embedded emulator
    python examples/transfer_bot.py --csds-domain http://127.0.0.1:8443
    python examples/transfer_bot.py --csds-domain 127.0.0.1:8443 --ca-file ca.pem   # TLS

Three connections run in this script: the bot (user ``bot``), the human agent (user ``agent``,
on skill 12) and a consumer that drives the scenario.  Exit code 0 when the consumer
was answered by the bot and then greeted by the human agent.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import _common
from _common import log, until, wait_message

import lpm

HUMAN_SKILL = "12"
HUMAN_HELLO = "Hello, I am a human agent. How can I help?"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = _common.parser(__doc__, timeout=10.0)
    return parser.parse_args(argv)


def transfer_bot(bot: lpm.BrandWebsocketConnection) -> None:
    """The bot: answers consumer messages; "human" transfers the conversation to skill 12."""

    async def on_message(conversation: lpm.Conversation, message: lpm.Message) -> None:
        if message.participant.role != lpm.ParticipantRole.CONSUMER:
            return
        # After the transfer the conversation belongs to the human agent's skill: hands off.
        if conversation.skill_id == HUMAN_SKILL:
            return
        if "human" in (message.text or "").lower():
            await conversation.send_message("Let me find you a human, one moment...")
            await conversation.transfer(skill_id=HUMAN_SKILL)
            log(f"bot: transferred {conversation.conversation_id} to skill {HUMAN_SKILL}")
        else:
            await conversation.send_message(f"bot: I can answer {message.text!r}; say 'human' for a person")

    bot.on("conversation:message", on_message)


def human_agent(agent: lpm.BrandWebsocketConnection, routing: lpm.RoutingTaskSubscription) -> None:
    """The human agent: accepts rings on skill 12 and says hello."""

    async def on_ring(ring: lpm.Ring) -> None:
        if ring.skill_id != HUMAN_SKILL:
            await ring.reject()  # skill 11 is the bot's job in this scenario
            return
        log(f"agent: ring for {ring.conversation_id} on skill {ring.skill_id}, accepting")
        view = await ring.accept()  # the conversation, once the connection has announced it
        await view.send_message(HUMAN_HELLO)
        log("agent: said hello")

    routing.on("ring", on_ring)


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

    bot, agent = brand("bot"), brand("agent")
    consumer = lpm.create_connection(
        account_id=args.account_id, user_type=lpm.UserType.CONSUMER, csds_domain=csds_domain, ssl=args.ca_file
    )
    transfer_bot(bot)

    async with bot, agent, consumer:
        await bot.set_agent_state(lpm.AgentState.ONLINE)
        bot_routing = await bot.create_routing_task_subscription()
        bot_routing.on("ring", lambda ring: ring.accept())
        log("bot: ONLINE")

        conversation = await consumer.create_conversation(skill_id="11")
        log(f"consumer: opened conversation {conversation.conversation_id} on skill 11")
        await until(lambda: conversation.assigned_agent is not None, args.timeout)
        log("consumer: the bot has joined")

        # The human agent comes ONLINE once the bot has the conversation (the agent is on
        # skill 11 too, and this scenario wants the bot to answer first).
        await agent.set_agent_state(lpm.AgentState.ONLINE)
        agent_routing = await agent.create_routing_task_subscription()
        human_agent(agent, agent_routing)
        log("agent: ONLINE")

        answer = asyncio.ensure_future(
            wait_message(conversation, lambda m: (m.text or "").startswith("bot: "), args.timeout)
        )
        await conversation.send_message("what are your prices?")
        log(f"consumer: got {(await answer).text!r}")

        hello = asyncio.ensure_future(
            wait_message(conversation, lambda m: m.text == HUMAN_HELLO, args.timeout)
        )
        await conversation.send_message("I want a human please")
        log(f"consumer: got {(await hello).text!r}")
        if conversation.skill_id != HUMAN_SKILL:
            raise RuntimeError(f"the conversation is on skill {conversation.skill_id}")
        await conversation.close()
    log("OK: transferred to skill 12 and greeted by the human agent")


def main(argv: list[str] | None = None) -> int:
    return _common.main(parse_args(argv), scenario)


if __name__ == "__main__":
    sys.exit(main())
