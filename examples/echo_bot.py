"""Echo bot: answers every consumer message with an echo and closes the conversation on "bye".

::

    python examples/echo_bot.py                      # on an embedded emulator
    python examples/echo_bot.py --csds-domain http://127.0.0.1:8443
    python examples/echo_bot.py --csds-domain 127.0.0.1:8443 --ca-file ca.pem   # TLS

The script proves itself: a consumer opens a conversation on skill 11 ("sales"), sends
``--messages N`` messages, checks every echo, then says "bye" and waits for the bot to close the
conversation.  Exit code 0 on success.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable

import _common
from _common import log, wait_message

import lpm


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = _common.parser(__doc__, timeout=10.0)
    parser.add_argument("--username", default="bot")
    parser.add_argument("--password", default="bot-password")
    parser.add_argument("--messages", type=int, default=3)
    return parser.parse_args(argv)


def echo_bot(bot: lpm.BrandWebsocketConnection) -> None:
    """Attach the bot's behaviour to a brand connection."""

    async def on_message(conversation: lpm.Conversation, message: lpm.Message) -> None:
        # Only consumer messages are answered (the bot's own echoes come back here too).
        if message.participant.role != lpm.ParticipantRole.CONSUMER:
            return
        text = message.text or ""  # None for a file or rich content: nothing to echo
        if text.strip().lower() == "bye":
            await conversation.send_message("Goodbye!")
            await conversation.close()
            log(f"bot: closed conversation {conversation.conversation_id}")
        else:
            await conversation.send_message(f"echo: {text}")

    bot.on("conversation:message", on_message)


def echo_of(text: str) -> Callable[[lpm.Message], bool]:
    """A ``wait_for`` check: the bot's echo of ``text``."""
    return lambda message: message.text == f"echo: {text}"


async def scenario(args: argparse.Namespace, csds_domain: str) -> None:
    bot = lpm.create_connection(
        account_id=args.account_id,
        user_type=lpm.UserType.BRAND,
        auth_data={"username": args.username, "password": args.password},
        csds_domain=csds_domain,
        ssl=args.ca_file,  # a CA file for TLS, or None
    )
    echo_bot(bot)
    bot.on("error", lambda error: log(f"bot: error {error!r}"))

    consumer = lpm.create_connection(
        account_id=args.account_id, user_type=lpm.UserType.CONSUMER, csds_domain=csds_domain, ssl=args.ca_file
    )

    async with bot, consumer:
        await bot.set_agent_state(lpm.AgentState.ONLINE)
        routing = await bot.create_routing_task_subscription()
        routing.on("ring", lambda ring: ring.accept())  # the coroutine is run as a task
        log(f"bot: {bot.agent_id} is ONLINE")

        conversation = await consumer.create_conversation(skill_id="11")
        log(f"consumer: opened conversation {conversation.conversation_id}")
        for n in range(1, args.messages + 1):
            text = f"message #{n}"
            reply = asyncio.ensure_future(
                conversation.wait_for("message", echo_of(text), timeout=args.timeout)
            )
            await conversation.send_message(text)
            log(f"consumer: sent {text!r}, got {(await reply).text!r}")

        closed = asyncio.ensure_future(conversation.wait_for("close", timeout=args.timeout))
        await conversation.send_message("bye")
        log("consumer: sent 'bye'")
        await closed
        goodbye = await wait_message(conversation, lambda m: m.text == "Goodbye!", args.timeout)
        log(f"consumer: got {goodbye.text!r}; conversation is {conversation.stage}")
        if conversation.stage != lpm.ConversationState.CLOSE:
            raise RuntimeError(f"the conversation is {conversation.stage}, not CLOSE")
    log(f"OK: {args.messages} message(s) echoed, conversation closed on 'bye'")


def main(argv: list[str] | None = None) -> int:
    return _common.main(parse_args(argv), scenario)


if __name__ == "__main__":
    sys.exit(main())
