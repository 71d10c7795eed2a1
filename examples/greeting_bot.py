"""Greeting bot: goes ONLINE, accepts every ring and greets each new conversation.

::

    python examples/greeting_bot.py                      # on an embedded emulator
    python examples/greeting_bot.py --csds-domain http://127.0.0.1:8443
    python examples/greeting_bot.py --csds-domain 127.0.0.1:8443 --ca-file ca.pem   # TLS

The script proves itself: ``--consumers N`` consumers open conversations on skill 11 ("sales")
and each waits for the greeting.  Exit code 0 when every consumer was greeted.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import _common
from _common import log, wait_message

import lpm

GREETING = "Hello! I am the greeting bot. How can I help you today?"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = _common.parser(__doc__, timeout=10.0)
    parser.add_argument("--username", default="bot")
    parser.add_argument("--password", default="bot-password")
    parser.add_argument("--consumers", type=int, default=3)
    return parser.parse_args(argv)


async def scenario(args: argparse.Namespace, csds_domain: str) -> None:
    # ---- the bot
    bot = lpm.create_connection(
        account_id=args.account_id,
        user_type=lpm.UserType.BRAND,
        auth_data={"username": args.username, "password": args.password},
        csds_domain=csds_domain,
        ssl=args.ca_file,  # a CA file for TLS, or None
    )
    greeted: set[str] = set()

    async def on_ring(ring: lpm.Ring) -> None:
        log(f"bot: ring for conversation {ring.conversation_id} (skill {ring.skill_id}), accepting")
        # accept() returns the conversation once the connection has announced it: greet at once.
        conversation = await ring.accept()
        if conversation.conversation_id not in greeted:
            greeted.add(conversation.conversation_id)
            await conversation.send_message(GREETING)
            log(f"bot: greeted conversation {conversation.conversation_id}")

    bot.on("error", lambda error: log(f"bot: error {error!r}"))

    async with bot:
        await bot.set_agent_state(lpm.AgentState.ONLINE)
        routing = await bot.create_routing_task_subscription()
        routing.on("ring", on_ring)
        log(f"bot: {bot.agent_id} is {bot.agent_state}, waiting for rings")

        # ---- the consumers that prove it
        async def one_consumer(n: int) -> None:
            consumer = lpm.create_connection(
                account_id=args.account_id,
                user_type=lpm.UserType.CONSUMER,
                csds_domain=csds_domain,
                ssl=args.ca_file,
            )
            async with consumer:
                conversation = await consumer.create_conversation(skill_id="11")
                log(f"consumer {n}: opened conversation {conversation.conversation_id}")
                message = await wait_message(conversation, lambda m: m.text == GREETING, args.timeout)
                log(f"consumer {n}: got {message.text!r}")
                await conversation.close()

        await asyncio.gather(*(one_consumer(n) for n in range(1, args.consumers + 1)))
    log(f"OK: {args.consumers} consumer(s) greeted")


def main(argv: list[str] | None = None) -> int:
    return _common.main(parse_args(argv), scenario)


if __name__ == "__main__":
    sys.exit(main())
