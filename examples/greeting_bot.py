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
import contextlib
import sys
import time
from collections.abc import Callable
from typing import Any

import lpm
from lpm.emulator import Emulator

GREETING = "Hello! I am the greeting bot. How can I help you today?"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--csds-domain", help="default: start an embedded emulator")
    parser.add_argument("--ca-file", help="CA file for a TLS csds domain")
    parser.add_argument("--account-id", default="12345678")
    parser.add_argument("--username", default="bot")
    parser.add_argument("--password", default="bot-password")
    parser.add_argument("--consumers", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=10.0)
    return parser.parse_args(argv)


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


async def wait_message(
    conversation: lpm.Conversation, check: Callable[[lpm.Message], bool], timeout: float
) -> lpm.Message:
    """The first message passing ``check``: one already received, or the next one to arrive."""
    waiter = asyncio.ensure_future(conversation.wait_for("message", check, timeout=timeout))
    for dialog in conversation.dialogs:
        for message in dialog.messages:
            if check(message):
                waiter.cancel()
                return message
    got: lpm.Message = await waiter
    return got


async def scenario(args: argparse.Namespace, csds_domain: str) -> None:
    common: dict[str, Any] = {"account_id": args.account_id, "csds_domain": csds_domain}
    if args.ca_file:
        common["ssl"] = args.ca_file

    # ---- the bot
    bot = lpm.create_connection(
        user_type=lpm.UserType.BRAND,
        auth_data={"username": args.username, "password": args.password},
        **common,
    )
    assert isinstance(bot, lpm.BrandWebsocketConnection)
    greeted: set[str] = set()

    async def on_ring(ring: lpm.Ring) -> None:
        log(f"bot: ring for conversation {ring.conversation_id} (skill {ring.skill_id}), accepting")
        await ring.accept()

    async def on_conversation(conversation: lpm.Conversation) -> None:
        # Every conversation the bot can see is announced once; greet those assigned to it.
        for _ in range(200):
            agent = conversation.assigned_agent
            if agent is not None and (agent.agent_id == bot.agent_id or agent.user_id == bot.user_id):
                break
            await asyncio.sleep(0.025)
        else:
            return
        if conversation.conversation_id not in greeted:
            greeted.add(conversation.conversation_id)
            await conversation.send_message(GREETING)
            log(f"bot: greeted conversation {conversation.conversation_id}")

    bot.on("conversation", on_conversation)
    bot.on("error", lambda error: log(f"bot: error {error!r}"))

    async with bot:
        await bot.set_agent_state(lpm.AgentState.ONLINE)
        routing = await bot.create_routing_task_subscription()
        routing.on("ring", on_ring)
        log(f"bot: {bot.agent_id} is {bot.agent_state}, waiting for rings")

        # ---- the consumers that prove it
        async def one_consumer(n: int) -> None:
            consumer = lpm.create_connection(user_type=lpm.UserType.CONSUMER, **common)
            assert isinstance(consumer, lpm.ConsumerWebsocketConnection)
            async with consumer:
                conversation = await consumer.create_conversation(skill_id="11")
                log(f"consumer {n}: opened conversation {conversation.conversation_id}")
                message = await wait_message(conversation, lambda m: m.body == GREETING, args.timeout)
                log(f"consumer {n}: got {message.body!r}")
                await conversation.close()

        await asyncio.gather(*(one_consumer(n) for n in range(1, args.consumers + 1)))
    log(f"OK: {args.consumers} consumer(s) greeted")


async def run(args: argparse.Namespace) -> None:
    async with contextlib.AsyncExitStack() as stack:
        csds_domain = args.csds_domain
        if csds_domain is None:
            emulator = await stack.enter_async_context(Emulator())
            csds_domain = emulator.csds_domain
            log(f"embedded emulator at {csds_domain}")
        await asyncio.wait_for(scenario(args, csds_domain), args.timeout * 3)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        asyncio.run(run(args))
    except Exception as exc:
        reason = str(exc) or ("no answer in time" if isinstance(exc, TimeoutError) else "")
        print(f"FAILED: {type(exc).__name__}: {reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
