"""The porting guides' examples do what the guides say.

``docs/porting-from-node-agent-sdk.md`` shows one echo bot twice: with node-agent-sdk (JavaScript)
and with ``lpm``.  Both run here as their own processes, exactly as written, against the emulator
(the Node one over TLS, the only way node-agent-sdk connects), and a consumer checks that each
accepts the conversation, marks the message read and answers it the same way.  The guide's raw
requests program runs as written.  (``tools/check_typing.py`` type-checks every Python block.)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import lpm
from lpm.emulator import Emulator
from tests.conformance.peer import NODE_DIR, require_peer

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "porting-from-node-agent-sdk.md"
READY_TIMEOUT = 60.0


def blocks(language: str, page: Path = GUIDE) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.S)


@contextlib.asynccontextmanager
async def running(command: list[str], env: dict[str, str], cwd: Path) -> AsyncIterator[None]:
    """The bot process, once it printed ``ready``; stopped (killed if need be) afterwards."""
    proc = await asyncio.create_subprocess_exec(
        *command,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            while (line := await proc.stdout.readline()) != b"ready\n":
                if not line:  # exited before it was ready
                    err = await proc.stderr.read()
                    raise AssertionError(f"the bot exited ({await proc.wait()}): {err.decode()}")
        yield
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def talk_to_the_bot(emu: Emulator, **tls: str) -> None:
    """A consumer's conversation: the bot joins, reads and answers."""
    consumer = lpm.create_connection(
        account_id=emu.account_id, user_type=lpm.UserType.CONSUMER, csds_domain=emu.csds_domain, **tls
    )
    async with consumer:
        conversation = await consumer.create_conversation(skill_id="11")
        agent = await conversation.wait_for(
            "participant-added",
            lambda participant, _initial: participant.role == lpm.ParticipantRole.ASSIGNED_AGENT,
            timeout=30,
        )
        assert agent[0].role == lpm.ParticipantRole.ASSIGNED_AGENT
        reply = asyncio.ensure_future(
            conversation.wait_for(
                "message", lambda m: m.participant.role != lpm.ParticipantRole.CONSUMER, timeout=30
            )
        )
        read = asyncio.ensure_future(conversation.wait_for("message-delivery-event", timeout=30))
        await conversation.send_message("hello")
        answer = await reply
        assert answer.text == "you said: hello"
        statuses = await read
        assert any(message.has_assigned_agent_read for message in statuses)
        await conversation.close()


def bot_env(emu: Emulator) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LP_", "NODE_"))}
    env.update(LP_ACCOUNT=emu.account_id, LP_USER="bot", LP_PASS="bot-password", LP_CSDS=emu.csds_domain)
    return env


def test_the_guide_shows_one_bot_in_each_language() -> None:
    (js,) = blocks("javascript")
    python = blocks("python")
    assert "new Agent(" in js and "agent.reconnect()" in js and "publishEvent" in js
    assert "lpm.create_connection(" in python[0] and "async with agent" in python[0]


async def test_python_bot_answers(tmp_path: Path) -> None:
    bot = blocks("python")[0]
    async with Emulator() as emu, running([sys.executable, "-c", bot], bot_env(emu), tmp_path):
        await talk_to_the_bot(emu)


async def test_node_agent_sdk_bot_answers(tmp_path: Path) -> None:
    node = require_peer()
    (bot,) = blocks("javascript")
    script = tmp_path / "bot.js"
    script.write_text(bot, encoding="utf-8")
    async with Emulator(tls=True) as emu:
        env = bot_env(emu)
        # node-agent-sdk as `make conformance` installs it; the emulator's CA is the only trust anchor.
        env.update(NODE_PATH=str(NODE_DIR / "node_modules"), NODE_EXTRA_CA_CERTS=str(emu.ca_file))
        async with running([node, str(script)], env, tmp_path):
            await talk_to_the_bot(emu, ssl=str(emu.ca_file))


@pytest.mark.parametrize("index", range(1, len(blocks("python"))))
async def test_raw_requests_program_runs(index: int) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        blocks("python")[index],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode == 0, err.decode()
    assert out.decode().splitlines()[-1] == "OK", (out.decode(), err.decode())
