"""Three replicas of one bot (``lpm run``, real processes) on a real ``redis-server``; one is
killed with SIGKILL while consumers talk.  Every consumer message is answered exactly once, the
conversations' state is intact, and the failover time is measured and reported.

The bot is ``examples/bots/stateless.py``: each answer is ``answer #<n>: <text>`` with ``n`` the
count kept in the conversation's state, which also lists the sequences it answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

import lpm
from lpm.testing import TestEmulator
from tests.redis_server import start_redis

ROOT = Path(__file__).resolve().parents[2]
BOT = ROOT / "examples" / "bots" / "stateless.py"
PREFIX = "lpm:bot:stateless:"
LEASE = 1.5
CONSUMERS = 6
MESSAGES = 8
#: Failover must finish within the lease, a sweep (lease / 3) and a margin for the answer itself.
FAILOVER_BOUND = LEASE + LEASE / 3 + 3.0


@dataclass
class Replica:
    name: str
    process: asyncio.subprocess.Process
    lines: list[dict[str, Any]] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    def url(self) -> str | None:
        for line in self.lines:
            if line.get("event") == "started":
                message = str(line.get("message", ""))
                if " at " in message:
                    return message.rsplit(" at ", 1)[1]
        return None


async def spawn(name: str, emu: TestEmulator, redis_url: str) -> Replica:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "LPM_ACCOUNT_ID": emu.account_id,
        "LPM_USERNAME": "bot",
        "LPM_PASSWORD": "bot-password",
        "LPM_CSDS_DOMAIN": emu.csds_domain,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lpm.cli.main",
        "run",
        f"{BOT}:bot",
        "--redis",
        redis_url,
        "--replica-id",
        name,
        "--lease",
        str(LEASE),
        "--http-port",
        "0",
        "--grace",
        "5",
        "--log-format",
        "json",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    replica = Replica(name, process)

    async def read() -> None:
        assert process.stderr is not None
        async for raw in process.stderr:
            text = raw.decode(errors="replace").strip()
            try:
                replica.lines.append(json.loads(text))
            except ValueError:
                replica.lines.append({"message": text})

    replica.reader = asyncio.create_task(read())
    return replica


async def until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


@pytest.mark.timeout(90)
async def test_three_replicas_one_killed(lpm_emulator: TestEmulator, record_property: Any) -> None:
    with start_redis() as server:
        replicas = [await spawn(f"r{i}", lpm_emulator, server.url) for i in (1, 2, 3)]
        client = aioredis.from_url(server.url, decode_responses=True)
        try:
            await run_scenario(lpm_emulator, replicas, client, record_property)
        finally:
            for replica in replicas:
                if replica.process.returncode is None:
                    replica.process.kill()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(replica.process.wait(), 10)
                if replica.reader is not None:
                    replica.reader.cancel()
            await client.aclose()


async def run_scenario(emu: TestEmulator, replicas: list[Replica], client: Any, record_property: Any) -> None:
    await until(
        lambda: all(r.url() for r in replicas),
        30,
        f"replicas not started: {[r.lines[-3:] for r in replicas]}",
    )
    async with aiohttp.ClientSession() as http:
        for replica in replicas:
            async with http.get(f"{replica.url()}/readyz") as response:
                assert response.status == 200, await response.text()

    consumers = [await emu.consumer() for _ in range(CONSUMERS)]
    conversations = [await c.create_conversation(skill_id="11") for c in consumers]
    latencies: dict[str, list[tuple[float, float]]] = {c.conversation_id: [] for c in conversations}
    killed: dict[str, Any] = {}
    halfway = asyncio.Event()
    progress = [0]

    async def talk(conversation: lpm.Conversation) -> None:
        for n in range(1, MESSAGES + 1):
            text = f"m{n}"
            expected = f"answer #{n}: {text}"
            reply = asyncio.ensure_future(
                conversation.wait_for("message", lambda m, e=expected: m.text == e, timeout=20)
            )
            sent = time.monotonic()
            await conversation.send_message(text)
            await reply
            latencies[conversation.conversation_id].append((sent, time.monotonic() - sent))
            progress[0] += 1
            if progress[0] >= CONSUMERS * MESSAGES // 3:
                halfway.set()
            await asyncio.sleep(0.05)

    async def kill_one() -> None:
        await halfway.wait()
        owners = await client.mget([f"{PREFIX}owner:{c.conversation_id}" for c in conversations])
        counts = {r.name: owners.count(r.name) for r in replicas}
        victim = max(replicas, key=lambda r: counts[r.name])
        killed["name"] = victim.name
        killed["conversations"] = [
            c.conversation_id for c, owner in zip(conversations, owners, strict=True) if owner == victim.name
        ]
        killed["at"] = time.monotonic()
        victim.process.send_signal(signal.SIGKILL)

    await asyncio.gather(kill_one(), *(talk(c) for c in conversations))
    assert killed["conversations"], "the killed replica owned no conversation"

    # Every consumer message answered exactly once, in order.
    for conversation in conversations:
        answers = [
            m.text
            for m in conversation.main_dialog.messages
            if (m.originator_role or m.participant.role) != lpm.ParticipantRole.CONSUMER
        ]
        assert answers == [f"answer #{n}: m{n}" for n in range(1, MESSAGES + 1)], answers
    # The state is intact: one count per message, each sequence once.
    for conversation in conversations:
        record = json.loads(await client.get(f"{PREFIX}state:{conversation.conversation_id}"))
        consumer_sequences = [
            m.sequence
            for m in conversation.main_dialog.messages
            if (m.originator_role or m.participant.role) == lpm.ParticipantRole.CONSUMER
        ]
        assert record["state"]["answered"] == MESSAGES
        assert record["state"]["seen"] == consumer_sequences
    # Failover: the first answer in each of the dead replica's conversations after the kill.
    failover = 0.0
    for cid in killed["conversations"]:
        after = [sent + took for sent, took in latencies[cid] if sent + took > killed["at"]]
        if after:
            failover = max(failover, min(after) - killed["at"])
    worst = max(took for values in latencies.values() for _, took in values)
    record_property("failover_seconds", round(failover, 3))
    print(
        f"\nfailover: replica {killed['name']} killed owning {len(killed['conversations'])} conversation(s); "
        f"their next answers came {failover:.2f} s after the kill (lease {LEASE} s); "
        f"slowest answer {worst:.2f} s"
    )
    assert failover < FAILOVER_BOUND
    survivors = [r for r in replicas if r.name != killed["name"]]
    takeovers = sum(1 for r in survivors for line in r.lines if "took over" in str(line.get("message", "")))
    assert takeovers >= len(killed["conversations"])

    # The survivors stop cleanly on SIGTERM.
    for replica in survivors:
        replica.process.send_signal(signal.SIGTERM)
    for replica in survivors:
        assert await asyncio.wait_for(replica.process.wait(), 20) == 0, replica.lines[-5:]
    assert await client.keys(f"{PREFIX}replica:*") == []
