"""Consumer load: N consumers talk to an echo bot at the same time; prints the throughput and the
round-trip latency of their messages.

::

    python examples/consumer_load.py                                   # 20 consumers x 10 messages
    python examples/consumer_load.py --consumers 100 --messages 20
    python examples/consumer_load.py --csds-domain http://127.0.0.1:8443

Each consumer opens its own connection and a conversation on skill 11, waits for the bot, then
sends ``--messages M`` messages one after the other; the round trip is the time from
``send_message`` to the arrival of the bot's echo.  Exit code 0 when every message was echoed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time

import _common
from _common import log, until

import lpm


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = _common.parser(__doc__, timeout=30.0)
    parser.add_argument("--consumers", type=int, default=20)
    parser.add_argument("--messages", type=int, default=10)
    return parser.parse_args(argv)


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


async def one_consumer(n: int, args: argparse.Namespace, csds_domain: str) -> list[float]:
    """One consumer's conversation; returns its round-trip times in seconds."""
    consumer = lpm.create_connection(
        account_id=args.account_id, user_type=lpm.UserType.CONSUMER, csds_domain=csds_domain, ssl=args.ca_file
    )
    consumer.on("error", lambda error: log(f"consumer {n}: error {error!r}"))
    loop = asyncio.get_running_loop()
    waiting: dict[str, asyncio.Future[float]] = {}  # expected echo -> arrival time

    def on_message(message: lpm.Message) -> None:
        future = waiting.get(message.text or "")
        if future is not None and not future.done():
            future.set_result(time.perf_counter())

    round_trips: list[float] = []
    async with consumer:
        conversation = await consumer.create_conversation(skill_id="11")
        conversation.on("message", on_message)
        await until(lambda: conversation.assigned_agent is not None, args.timeout)
        for i in range(args.messages):
            text = f"c{n} m{i}"
            arrived = waiting[f"echo: {text}"] = loop.create_future()
            sent = time.perf_counter()
            await conversation.send_message(text)
            round_trips.append(await asyncio.wait_for(arrived, args.timeout) - sent)
        await conversation.close()
    return round_trips


async def scenario(args: argparse.Namespace, csds_domain: str) -> None:
    bot = lpm.create_connection(
        account_id=args.account_id,
        user_type=lpm.UserType.BRAND,
        auth_data={"username": "bot", "password": "bot-password"},
        csds_domain=csds_domain,
        ssl=args.ca_file,  # a CA file for TLS, or None
    )
    bot.on("error", lambda error: log(f"bot: error {error!r}"))

    async def echo(conversation: lpm.Conversation, message: lpm.Message) -> None:
        if message.participant.role == lpm.ParticipantRole.CONSUMER:
            await conversation.send_message(f"echo: {message.text}")

    bot.on("conversation:message", echo)

    async with bot:
        await bot.set_agent_state(lpm.AgentState.ONLINE)
        routing = await bot.create_routing_task_subscription()
        routing.on("ring", lambda ring: ring.accept())
        log(f"echo bot ONLINE; starting {args.consumers} consumer(s) x {args.messages} message(s)")

        started = time.perf_counter()
        results = await asyncio.gather(*(one_consumer(n, args, csds_domain) for n in range(args.consumers)))
        elapsed = time.perf_counter() - started

    round_trips = [rtt for result in results for rtt in result]
    expected = args.consumers * args.messages
    if len(round_trips) != expected:
        raise RuntimeError(f"{len(round_trips)} of {expected} messages echoed")
    log(f"{expected} messages echoed in {elapsed:.2f} s (including connecting and opening conversations)")
    if round_trips:
        log(
            f"throughput {expected / elapsed:.0f} messages/s; round trip "
            f"p50 {percentile(round_trips, 0.5) * 1000:.1f} ms, "
            f"p99 {percentile(round_trips, 0.99) * 1000:.1f} ms, "
            f"mean {statistics.fmean(round_trips) * 1000:.1f} ms"
        )
    log(f"OK: {args.consumers} consumer(s), {expected} message(s), all echoed")


def main(argv: list[str] | None = None) -> int:
    return _common.main(parse_args(argv), scenario)


if __name__ == "__main__":
    sys.exit(main())
