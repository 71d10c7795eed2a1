"""The bot's operations endpoint, scraped: /healthz, /readyz (connected, subscribed, agent
ONLINE; 503 while the socket is down), /metrics (Prometheus), and OpenTelemetry spans."""

from __future__ import annotations

import asyncio
import time

import aiohttp
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from lpm.bot import Bot, ConversationContext, MessageContext
from lpm.testing import ConversationScript, TestEmulator, expect, say


def sample(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    raise AssertionError(f"no sample {name} {labels} in:\n{text}")


def ops_bot() -> Bot:
    bot = Bot("ops")

    @bot.conversation_started
    async def hello(ctx: ConversationContext) -> None:
        await ctx.reply("hello")

    @bot.message("fail")
    async def fail(ctx: MessageContext) -> None:
        raise ValueError("on purpose")

    @bot.message()
    async def echo(ctx: MessageContext) -> None:
        await ctx.reply(ctx.text)

    return bot


async def test_health_readiness_and_metrics(lpm_emulator: TestEmulator) -> None:
    bot = await lpm_emulator.start_bot(ops_bot(), http_port=0)
    assert bot.http_url is not None
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{bot.http_url}/healthz") as response:
            assert response.status == 200 and (await response.json()) == {"status": "ok"}
        async with http.get(f"{bot.http_url}/readyz") as response:
            body = await response.json()
            assert response.status == 200, body
            assert body["checks"] == {
                "running": True,
                "connected": True,
                "subscribed": True,
                "agent_online": True,
            }

        await ConversationScript(
            [expect("hello"), say("ping"), expect("ping"), say("fail"), say("x"), expect("x")]
        ).run(await lpm_emulator.consumer())
        async with http.get(f"{bot.http_url}/metrics") as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain")
            text = await response.text()
        assert sample(text, "lpm_bot_connection_state", lpm_bot_connection_state="connected") == 1
        assert sample(text, "lpm_bot_rings_total", decision="accept") == 1
        assert sample(text, "lpm_bot_messages_received_total") == 3
        assert sample(text, "lpm_bot_messages_sent_total") == 3
        assert sample(text, "lpm_bot_handler_errors_total", kind="message") == 1
        assert sample(text, "lpm_bot_handler_seconds_count", kind="message") == 3
        assert sample(text, "lpm_bot_handler_seconds_count", kind="conversation_started") == 1
        assert sample(text, "lpm_bot_open_conversations") == 1
        assert sample(text, "lpm_bot_reconnects_total") == 0

        # The socket drops: not ready until the session is restored; the reconnect is counted.
        async with http.post(f"{lpm_emulator.base_url}/_emulator/sockets/drop", json={}) as response:
            assert response.status == 200
        statuses: set[int] = set()
        deadline = time.monotonic() + 10
        while True:
            async with http.get(f"{bot.http_url}/readyz") as response:
                statuses.add(response.status)
            async with http.get(f"{bot.http_url}/metrics") as response:
                reconnects = sample(await response.text(), "lpm_bot_reconnects_total")
            if reconnects == 1 and bot.ready:
                break
            assert time.monotonic() < deadline, statuses
            await asyncio.sleep(0.01)
        async with http.get(f"{bot.http_url}/readyz") as response:
            assert response.status == 200


async def test_not_ready_while_stopping(lpm_emulator: TestEmulator) -> None:
    bot = Bot("stopping")
    running = asyncio.Event()

    @bot.message()
    async def slow(ctx: MessageContext) -> None:
        running.set()
        await asyncio.sleep(0.5)

    await lpm_emulator.start_bot(bot, http_port=0)
    url = bot.http_url
    consumer = await lpm_emulator.consumer()
    await ConversationScript([say("slow")]).run(consumer)
    await asyncio.wait_for(running.wait(), 10)
    stopping = asyncio.ensure_future(bot.stop())
    await asyncio.sleep(0.1)
    async with aiohttp.ClientSession() as http, http.get(f"{url}/readyz") as response:
        assert response.status == 503
        assert (await response.json())["checks"]["running"] is False
    await stopping


async def test_handlers_and_actions_are_traced(lpm_emulator: TestEmulator) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    bot = await lpm_emulator.start_bot(ops_bot(), tracing=True)
    await ConversationScript([expect("hello"), say("fail"), say("hi"), expect("hi")]).run(
        await lpm_emulator.consumer()
    )
    await asyncio.sleep(0.1)
    spans = {(s.name, s.status.status_code.name) for s in exporter.get_finished_spans()}
    assert ("lpm.bot.conversation_started", "UNSET") in spans
    assert ("lpm.bot.message", "ERROR") in spans  # "fail" raised
    assert ("lpm.bot.action.reply", "UNSET") in spans
    replies = [s for s in exporter.get_finished_spans() if s.name == "lpm.bot.action.reply"]
    assert all(s.parent is not None for s in replies)  # inside the handler's span
    assert all(s.attributes and s.attributes["lpm.conversation_id"] for s in replies)
    assert bot.running
