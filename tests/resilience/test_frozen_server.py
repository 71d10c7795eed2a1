"""A frozen server, from outside the process: the emulator runs as a real child process
(:class:`tests.resilience.emulator_process.EmulatorProcess`) and is stopped with SIGSTOP under a
bot and a consumer in conversation.

A stopped process keeps its sockets open and its kernel even accepts new TCP connections, but
nothing answers: no frame, no FIN, no RST.  What must hold: both sides declare their sockets dead
within ``dead_connection_timeout``, keep trying (each upgrade bounded by ``connect_timeout``),
and once the process runs again (SIGCONT) they reconnect and every message sent, before or
during the freeze, is delivered once and in order.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import lpm
from tests.integration.test_sdk_resilience import Chat, start_chat, until
from tests.resilience.emulator_process import EmulatorProcess

LONG = os.environ.get("LPM_CHAOS") == "long"
QUICK = {"keep_alive_interval": 0.5, "dead_connection_timeout": 1.5, "connect_timeout": 1.0}


@pytest.fixture
async def emulator_process(tmp_path: Path) -> AsyncIterator[EmulatorProcess]:
    async with EmulatorProcess(db=tmp_path / "world.db") as emu:
        yield emu


async def frozen_for(emu: EmulatorProcess, chat: Chat, seconds: float) -> tuple[float, asyncio.Future[int]]:
    """Freeze the emulator for ``seconds`` while the consumer sends; returns when both sides
    noticed (seconds after the freeze) and the send made during the freeze."""
    start = time.monotonic()
    sides = (chat.bot, chat.cons)
    lost = [asyncio.ensure_future(side.wait_for("disconnect", timeout=seconds + 30)) for side in sides]
    emu.stop()
    try:
        # Sent into the freeze: written, never answered; replayed on the new socket.
        sending = asyncio.ensure_future(chat.cons_view.send_message("c during"))
        await asyncio.gather(*lost)
        detected = time.monotonic() - start
        await asyncio.sleep(max(seconds - detected, 0.0))
        assert chat.bot.state != lpm.ConnectionState.CONNECTED
    finally:
        emu.cont()
    return detected, sending


async def run_freeze(emu: EmulatorProcess, seconds: float, settings: dict[str, Any]) -> tuple[float, float]:
    chat = await start_chat(emu, settings, **settings)  # type: ignore[arg-type]
    try:
        await chat.cons_view.send_message("c before")
        await until(lambda: chat.received["bot"] == ["c before"], timeout=20)
        detected, sending = await frozen_for(emu, chat, seconds)
        start = time.monotonic()
        for conn in (chat.bot, chat.cons):
            if conn.state != lpm.ConnectionState.CONNECTED:
                await conn.wait_for("reconnect", timeout=60)
        recovered = time.monotonic() - start
        await asyncio.wait_for(sending, 60)
        await chat.cons_view.send_message("c after")
        await until(lambda: len(chat.received["bot"]) >= 3, timeout=30)
        await asyncio.sleep(0.2)  # a duplicate would arrive now
        assert chat.received["bot"] == ["c before", "c during", "c after"]
        return detected, recovered
    finally:
        await chat.cons.close()
        await chat.bot.close()


async def test_a_frozen_server_is_noticed_and_left_behind_when_it_thaws(
    emulator_process: EmulatorProcess,
) -> None:
    detected, recovered = await run_freeze(emulator_process, 4.0, QUICK)
    assert detected < QUICK["dead_connection_timeout"] + 3.0
    print(f"SIGSTOP 4 s: both sides noticed after {detected:.2f} s, back {recovered:.2f} s after SIGCONT")


@pytest.mark.skipif(not LONG, reason="a 75 s freeze with the default settings (LPM_CHAOS=long)")
async def test_a_75_second_freeze_with_the_default_settings(emulator_process: EmulatorProcess) -> None:
    # Default liveness settings; the publish made during the freeze may wait for its answer
    # longer than the freeze lasts (the shrunk test schedule answers within 10 s otherwise).
    detected, recovered = await run_freeze(emulator_process, 75.0, {"response_timeout": 120.0})
    assert detected <= 20.0 + 1.0
    print(f"SIGSTOP 75 s, defaults: noticed after {detected:.2f} s, back {recovered:.2f} s after SIGCONT")
