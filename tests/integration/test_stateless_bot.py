"""Two processes of ``examples/stateless_webhook_bot.py`` behind one webhook endpoint serve the same
conversation in turn; the state between them travels only through the store (a real Redis server,
or files).

The emulator POSTs the app install's webhooks to a small load balancer in the test process, which
forwards every POST unchanged (body and signature header) to bot A or bot B: consumer messages go
alternately to A and B, and the other notifications (conversation changes, the bots' own
messages) alternate on a separate turn — so each bot also receives notifications about a
conversation it has never seen, and must load it from the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

import lpm
import lpm.webhooks
from lpm.emulator.app import Emulator
from lpm.errors import ConfigurationError
from lpm.stores import ConversationStore, FileConversationStore, RedisConversationStore, store_from_url
from tests.helpers import login
from tests.redis_server import start_redis

ACC = "12345678"
BOT = Path(__file__).resolve().parents[2] / "examples" / "stateless_webhook_bot.py"
KEYS = ["cqm.ExConversationChangeNotification", "ms.MessagingEventNotification.ContentEvent"]
MESSAGES = 6
ANSWER = re.compile(r"^(bot-[ab]) answer #(\d+): received #(\d+)$")

pytestmark = pytest.mark.timeout(60)


@dataclass
class BotProcess:
    """A running bot: its process, webhook URL and everything it printed."""

    name: str
    process: asyncio.subprocess.Process
    url: str = ""
    lines: list[str] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None


async def start_bot(name: str, emu: Emulator, store_url: str, secret: str) -> BotProcess:
    """Start one bot process and wait for its ``listening on`` line."""
    env = dict(os.environ, LPM_CLIENT_SECRET=secret)  # not on the command line: ps shows argv
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(BOT),
        "--csds-domain",
        emu.csds_domain,
        "--port",
        "0",
        "--store",
        store_url,
        "--name",
        name,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    bot = BotProcess(name, process)
    assert process.stdout is not None
    stdout = process.stdout
    async with asyncio.timeout(20):
        while not bot.url:
            line = (await stdout.readline()).decode(errors="replace")
            if not line:
                raise AssertionError(f"{name} exited before listening:\n" + "".join(bot.lines))
            bot.lines.append(line)
            found = re.search(r"listening on (http://\S+)", line)
            if found:
                bot.url = found.group(1)

    async def read() -> None:
        while line := await stdout.readline():
            bot.lines.append(line.decode(errors="replace"))

    bot.reader = asyncio.create_task(read())
    return bot


async def stop_bot(bot: BotProcess) -> None:
    """SIGTERM (the bot shuts down cleanly), SIGKILL if it does not within 5 s."""
    if bot.process.returncode is None:
        bot.process.terminate()
        try:
            await asyncio.wait_for(bot.process.wait(), 5)
        except TimeoutError:
            bot.process.kill()
            await bot.process.wait()
    if bot.reader is not None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(bot.reader, 2)
        bot.reader.cancel()


class LoadBalancer:
    """One webhook endpoint in front of the bots (see the module docstring)."""

    def __init__(self, http: aiohttp.ClientSession, upstreams: list[str]) -> None:
        self.http = http
        self.upstreams = upstreams
        self.turns = {"consumer": 0, "other": 0}
        self.forwarded: dict[str, int] = {}

    @staticmethod
    def is_consumer_message(payload: Any) -> bool:
        message = lpm.webhooks.notification_of(payload)
        body = message.get("body") if message is not None else None
        changes = body.get("changes") if isinstance(body, dict) else None
        if not isinstance(changes, list) or not changes or not isinstance(changes[0], dict):
            return False
        change = changes[0]
        event = change.get("event") or {}
        role = (change.get("originatorMetadata") or {}).get("role")
        return event.get("type") == "ContentEvent" and role == "CONSUMER"

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            kind = "consumer" if self.is_consumer_message(json.loads(raw)) else "other"
        except ValueError:
            kind = "other"
        upstream = self.upstreams[self.turns[kind] % len(self.upstreams)]
        self.turns[kind] += 1
        headers = {
            name: value
            for name, value in request.headers.items()
            if name.lower() in ("content-type", lpm.webhooks.SIGNATURE_HEADER)
        }
        async with self.http.post(upstream, data=raw, headers=headers) as resp:
            self.forwarded[upstream] = self.forwarded.get(upstream, 0) + 1
            return web.Response(status=resp.status, body=await resp.read())


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(tls=False) as emulator:
        yield emulator


@pytest.fixture
def redis_url() -> Iterator[str]:
    with start_redis() as server:
        yield server.url


@pytest.fixture(params=["redis", "file"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "redis":
        url: str = request.getfixturevalue("redis_url")
        return url
    return f"file://{tmp_path / 'conversations'}"


async def installations(
    http: aiohttp.ClientSession, emu: Emulator, bearer: str, method: str, suffix: str, body: Any
) -> dict[str, Any]:
    url = f"{emu.base_url}/api/account/{ACC}/configuration/app-install/installations{suffix}"
    headers = {"Authorization": f"Bearer {bearer}"}
    if method in ("PUT", "DELETE"):  # writes name the installations' revision (ac-revision)
        async with http.get(url, headers=headers) as resp:
            headers["If-Match"] = resp.headers["ac-revision"]
    async with http.request(method, url, json=body, headers=headers) as resp:
        assert resp.status in (200, 201), await resp.text()
        data: dict[str, Any] = await resp.json()
        return data


def install_body(url: str) -> dict[str, Any]:
    hooks: dict[str, Any] = {key: {"endpoint": url} for key in KEYS}
    hooks["retry"] = {"retention_time": 5}
    return {"client_name": "stateless-bot", "capabilities": {"webhooks": hooks}}


async def test_two_bot_processes_serve_one_conversation_in_turn(
    emu: Emulator, http: aiohttp.ClientSession, store_url: str
) -> None:
    started = time.monotonic()
    bearer = (await login(http, emu, "agent"))["bearer"]
    install = await installations(http, emu, bearer, "POST", "", install_body("http://127.0.0.1:9/not-yet"))
    secret = install["client_secret"]

    bots: list[BotProcess] = []
    runner: web.AppRunner | None = None
    try:
        bots = list(
            await asyncio.gather(
                start_bot("bot-a", emu, store_url, secret), start_bot("bot-b", emu, store_url, secret)
            )
        )
        balancer = LoadBalancer(http, [bot.url for bot in bots])
        app = web.Application()
        app.router.add_post("/webhooks", balancer.handle)
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        endpoint = f"http://127.0.0.1:{runner.addresses[0][1]}/webhooks"
        await installations(http, emu, bearer, "PUT", f"/{install['client_id']}", install_body(endpoint))

        consumer = lpm.create_connection(
            account_id=ACC, user_type=lpm.UserType.CONSUMER, csds_domain=emu.csds_domain
        )
        assert isinstance(consumer, lpm.ConsumerWebsocketConnection)
        answers: list[tuple[str, int, int]] = []
        async with consumer:
            conversation = await consumer.create_conversation(skill_id="11")
            cid = conversation.conversation_id
            for i in range(MESSAGES):
                answered = asyncio.ensure_future(
                    conversation.wait_for(
                        "message", lambda m: isinstance(m.body, str) and ANSWER.match(m.body), timeout=10
                    )
                )
                sequence = await conversation.send_message(f"question {i}")
                message = await answered
                found = ANSWER.match(message.body)
                assert found is not None
                answers.append((found.group(1), int(found.group(2)), int(found.group(3))))
                assert int(found.group(3)) == sequence
            assert conversation.assigned_agent is not None

        # Answers alternate between the processes and the counter, kept only in the store,
        # grows across them.
        assert [name for name, _, _ in answers] == ["bot-a", "bot-b"] * (MESSAGES // 2)
        assert [count for _, count, _ in answers] == list(range(1, MESSAGES + 1))
        store: ConversationStore = store_from_url(store_url)
        assert isinstance(
            store, RedisConversationStore if store_url.startswith("redis") else FileConversationStore
        )
        try:
            saved = await store.get(cid)
        finally:
            await store.close()
        assert saved is not None
        envelope = json.loads(saved)
        assert envelope["answered"] == MESSAGES and envelope["last_by"] == answers[-1][0]
        assert json.loads(envelope["conversation"])["conversation_id"] == cid
        assert "question" not in saved  # serialize() hashes message bodies
        assert all(count > 0 for count in balancer.forwarded.values()) and len(balancer.forwarded) == 2
    finally:
        for bot in bots:
            await stop_bot(bot)
        if runner is not None:
            await runner.cleanup()
    output = "".join(line for bot in bots for line in bot.lines)
    for bot in bots:
        handled = [line for line in bot.lines if f"conversation={cid}" in line and "answered=" in line]
        assert len(handled) == MESSAGES // 2, "".join(bot.lines)
        assert bot.process.returncode == 0, "".join(bot.lines)
    assert secret not in output and "question" not in output and "Traceback" not in output, output
    assert "error" not in output and "failed" not in output, output
    assert time.monotonic() - started < 20


async def test_stores_round_trip_and_urls(tmp_path: Path, redis_url: str) -> None:
    files = store_from_url(f"file://{tmp_path}/s")
    redis_store = store_from_url(redis_url)
    for store in (files, redis_store):
        assert isinstance(store, ConversationStore)
        try:
            assert await store.get("c/../1") is None
            await store.put("c/../1", '{"a": 1}')
            await store.put("c/../1", '{"a": 2}')
            assert await store.get("c/../1") == '{"a": 2}'
            await store.delete("c/../1")
            await store.delete("c/../1")
            assert await store.get("c/../1") is None
        finally:
            await store.close()
    assert [p.name for p in (tmp_path / "s").iterdir()] == []  # no temp files left, ids never paths
    expiring = RedisConversationStore(redis_url, prefix="t:", ttl=0.2)
    try:
        await expiring.put("x", "y")
        assert await expiring.get("x") == "y"
        await asyncio.sleep(0.4)
        assert await expiring.get("x") is None
    finally:
        await expiring.close()
    for bad in ("", "ftp://x", "file://host/dir"):
        with pytest.raises(ConfigurationError):
            store_from_url(bad)
    assert "secret" not in repr(RedisConversationStore("redis://:secret@127.0.0.1:1/0"))


async def test_redis_store_without_the_package_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(ConfigurationError, match=r"lp-messaging-sdk\[redis\]"):
        RedisConversationStore("redis://127.0.0.1:6379/0")
