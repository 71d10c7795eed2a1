"""Manager bot: a manager watches every open conversation of the account, joins each as MANAGER
and posts a private note that only agents and managers see.

::

    python examples/manager_bot.py                      # on an embedded emulator
    python examples/manager_bot.py --csds-domain http://127.0.0.1:8443
    python examples/manager_bot.py --csds-domain 127.0.0.1:8443 --ca-file ca.pem   # TLS

The manager is user ``agent`` (1001, a manager) with a conversation subscription that has no
agent filter, so it sees conversations handled by anyone.  An echo bot (user ``bot``) answers
``--conversations N`` consumers; the manager joins each conversation and whispers to the bot.
The script checks that the bot got every note and no consumer saw one.  Exit code 0 on success.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import _common
from _common import log, until

import lpm

NOTE = "manager note: I am watching this conversation"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = _common.parser(__doc__, timeout=10.0)
    parser.add_argument("--conversations", type=int, default=2)
    return parser.parse_args(argv)


class Manager:
    """Joins every open conversation it sees as MANAGER and posts one private note in each."""

    def __init__(self, conn: lpm.BrandWebsocketConnection) -> None:
        self.conn = conn
        self.noted: set[str] = set()
        conn.on("conversation", self.on_conversation)

    async def start(self) -> None:
        # The manager only watches: AWAY, so that no new conversation is routed to it (user 1001
        # is also an agent on skill 12, and may still be ONLINE from an earlier session).
        await self.conn.set_agent_state(lpm.AgentState.AWAY)
        # No ``agent_ids`` in the query: every open conversation of the account, whoever has it.
        await self.conn.create_conversation_subscription({"stage": ["OPEN"]})
        log("manager: watching every open conversation")

    async def on_conversation(self, conversation: lpm.Conversation) -> None:
        cid = conversation.conversation_id
        if cid in self.noted or conversation.stage != lpm.ConversationState.OPEN:
            return
        self.noted.add(cid)
        await conversation.join(lpm.ParticipantRole.MANAGER)
        log(f"manager: joined {cid} as MANAGER")
        await conversation.send_private_message(NOTE)  # audience: agents and managers only
        log(f"manager: posted a private note in {cid}")


async def scenario(args: argparse.Namespace, csds_domain: str) -> None:
    def brand(username: str, *, create_default_subscription: bool = True) -> lpm.BrandWebsocketConnection:
        conn = lpm.create_connection(
            account_id=args.account_id,
            user_type=lpm.UserType.BRAND,
            auth_data={"username": username, "password": f"{username}-password"},
            csds_domain=csds_domain,
            ssl=args.ca_file,  # a CA file for TLS, or None
            create_default_subscription=create_default_subscription,
        )
        conn.on("error", lambda error: log(f"{username}: error {error!r}"))
        return conn

    bot = brand("bot")
    # The manager creates its own subscription instead of the default one.
    manager = Manager(brand("agent", create_default_subscription=False))
    notes_seen_by_bot: set[str] = set()

    async def bot_on_message(conversation: lpm.Conversation, message: lpm.Message) -> None:
        if message.audience == lpm.MessageAudience.AGENTS_AND_MANAGERS:
            notes_seen_by_bot.add(conversation.conversation_id)
            log(f"bot: private note in {conversation.conversation_id}: {message.text!r}")
        elif message.participant.role == lpm.ParticipantRole.CONSUMER:
            await conversation.send_message(f"echo: {message.text}")

    bot.on("conversation:message", bot_on_message)

    async with bot, manager.conn:
        await bot.set_agent_state(lpm.AgentState.ONLINE)
        routing = await bot.create_routing_task_subscription()
        routing.on("ring", lambda ring: ring.accept())
        await manager.start()

        async def one_consumer(n: int) -> None:
            consumer = lpm.create_connection(
                account_id=args.account_id,
                user_type=lpm.UserType.CONSUMER,
                csds_domain=csds_domain,
                ssl=args.ca_file,
            )
            async with consumer:
                conversation = await consumer.create_conversation(skill_id="11")
                cid = conversation.conversation_id
                log(f"consumer {n}: opened {cid}")
                await until(lambda: conversation.assigned_agent is not None, args.timeout)
                await until(lambda: cid in notes_seen_by_bot, args.timeout)
                # A public exchange after the note: had the note reached the consumer, it would
                # have come before this echo.
                echo = asyncio.ensure_future(
                    conversation.wait_for("message", lambda m: m.text == "echo: hello", timeout=args.timeout)
                )
                await conversation.send_message("hello")
                await echo
                await asyncio.sleep(0.2)
                texts = [m.text for d in conversation.dialogs for m in d.messages]
                if NOTE in texts:
                    raise RuntimeError(f"consumer {n} saw the private note")
                log(f"consumer {n}: saw {texts} (no private note)")
                await conversation.close()

        await asyncio.gather(*(one_consumer(n) for n in range(1, args.conversations + 1)))
    log(f"OK: manager joined {len(manager.noted)} conversation(s); notes stayed private")


def main(argv: list[str] | None = None) -> int:
    return _common.main(parse_args(argv), scenario)


if __name__ == "__main__":
    sys.exit(main())
