"""``lpm run``: the examples' bots as real processes against the emulator, stopped by SIGTERM
(exit 0, agent AWAY, JSON logs), and the errors a wrong target or login gives."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

import lpm
from lpm.testing import ConversationScript, TestEmulator, expect, say

ROOT = Path(__file__).resolve().parents[2]


def env_for(emu: TestEmulator, **more: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "LPM_ACCOUNT_ID": emu.account_id,
        "LPM_USERNAME": "bot",
        "LPM_PASSWORD": "bot-password",
        "LPM_CSDS_DOMAIN": emu.csds_domain,
        **more,
    }


async def test_lpm_run_serves_until_sigterm(lpm_emulator: TestEmulator) -> None:
    observer = await lpm_emulator.agent(username="bot")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lpm.cli.main",
        "run",
        "examples/bots/greeting.py:bot",
        cwd=ROOT,
        env=env_for(lpm_emulator, LPM_BOT_LOG_FORMAT="json"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    lines: list[dict[str, object]] = []
    assert process.stderr is not None

    async def read() -> None:
        assert process.stderr is not None
        async for raw in process.stderr:
            lines.append(json.loads(raw))

    reader = asyncio.ensure_future(read())
    try:
        deadline = time.monotonic() + 20
        while not any(line.get("event") == "started" for line in lines):
            assert process.returncode is None and time.monotonic() < deadline, lines
            await asyncio.sleep(0.05)
        await ConversationScript(
            [expect(lambda m: (m.text or "").startswith("Hello!")), say("hi"), expect("Hi again!")]
        ).run(await lpm_emulator.consumer())
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 20) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await asyncio.wait_for(reader, 5)
    events = [line.get("event") for line in lines]
    assert (
        events.index("started") < events.index("signal") < events.index("stopping") < events.index("stopped")
    )
    assert all({"ts", "level", "logger", "message"} <= set(line) for line in lines)
    assert all(line.get("bot") == "greeting" for line in lines if str(line["logger"]).startswith("lpm.bot"))
    assert "bot-password" not in json.dumps(lines)
    deadline = time.monotonic() + 5
    while observer.agent_state != lpm.AgentState.AWAY:
        assert time.monotonic() < deadline, observer.agent_state
        await asyncio.sleep(0.02)


async def run_cli(*args: str, env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lpm.cli.main",
        "run",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 30)
    return process.returncode or 0, output.decode()


async def test_lpm_run_errors(lpm_emulator: TestEmulator) -> None:
    env = env_for(lpm_emulator)
    code, output = await run_cli("examples/bots/greeting.py", env=env)
    assert code == 2 and "module:attribute" in output
    code, output = await run_cli("examples/bots/greeting.py:nobody", env=env)
    assert code == 2 and "no attribute 'nobody'" in output
    code, output = await run_cli("examples/bots/greeting.py:GREETING", env=env)
    assert code == 2 and "not an lpm.bot.Bot" in output
    code, output = await run_cli("examples/bots/greeting.py:bot", env={**env, "LPM_PASSWORD": "wrong"})
    assert code == 4, output
    assert "wrong" not in output
    code, output = await run_cli("examples/bots/greeting.py:bot", env={**env, "LPM_ACCOUNT_ID": ""})
    assert code == 3 and "LPM_ACCOUNT_ID" in output
