"""The ``lpm_emulator`` fixture from a project of its own (issue 12.7).

Each test writes a new project in a temporary directory, outside this checkout (no conftest, no
``tests`` package, nothing of this repository's pytest configuration), and runs pytest in it as a
subprocess with this virtualenv's interpreter, where the package is installed: exactly what a
team that adopts the SDK does.  The documented set-up is read from docs/testing.md itself, so the
page and the check cannot drift apart.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs" / "testing.md"

#: A bot and its tests as a user writes them: an async fixture of their own on top of
#: ``lpm_emulator``, and async tests; no imports from pytest-asyncio, no marks.
USER_TESTS = textwrap.dedent(
    """
    import asyncio

    import pytest

    import lpm


    def echo(bot):
        async def on_message(conversation, message):
            if message.participant.role == lpm.ParticipantRole.CONSUMER:
                await conversation.send_message(f"echo: {message.body}")

        bot.on("conversation:message", on_message)


    @pytest.fixture
    async def bot(lpm_emulator):
        conn = await lpm_emulator.agent(username="bot")
        echo(conn)
        await conn.set_agent_state(lpm.AgentState.ONLINE)
        rings = await conn.create_routing_task_subscription()
        rings.on("ring", lambda ring: ring.accept())
        return conn


    async def test_the_bot_echoes(bot, lpm_emulator):
        consumer = await lpm_emulator.consumer()
        conversation = await consumer.create_conversation(skill_id="11")
        reply = asyncio.ensure_future(
            conversation.wait_for(
                "message", lambda m: m.participant.role != lpm.ParticipantRole.CONSUMER, timeout=20
            )
        )
        await conversation.send_message("ping")
        assert (await reply).body == "echo: ping"


    async def test_a_second_test_gets_its_own_emulator(lpm_emulator):
        assert lpm_emulator.world.accounts[lpm_emulator.account_id].conversations == {}
    """
)

#: What pytest needs from a project that set nothing at all (pytest-asyncio's strict mode).
BARE_TEST = textwrap.dedent(
    """
    import lpm


    async def test_fixture_without_any_setting(lpm_emulator):
        consumer = await lpm_emulator.consumer()
        conversation = await consumer.create_conversation(skill_id="11")
        assert conversation.stage == lpm.ConversationState.OPEN
    """
)


def documented_settings() -> str:
    """The ``pyproject.toml`` block of docs/testing.md's set-up."""
    blocks = re.findall(r"```toml\n(.*?)```", DOCS.read_text(encoding="utf-8"), flags=re.S)
    settings = [b for b in blocks if "[tool.pytest.ini_options]" in b]
    assert len(settings) == 1, "docs/testing.md shows one pyproject.toml set-up"
    return settings[0]


def run_pytest(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """pytest in ``project`` with this interpreter; nothing of this checkout's environment leaks
    in (no PYTHONPATH, no pytest options from the environment)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTEST_ADDOPTS", "PYTEST_PLUGINS") and not k.startswith("LPM_")
    }
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def new_project(tmp_path: Path, name: str) -> Path:
    project = tmp_path / name
    (project / "tests").mkdir(parents=True)
    return project


def test_documented_settings_run_with_no_warning(tmp_path: Path) -> None:
    project = new_project(tmp_path, "my-bot")
    (project / "pyproject.toml").write_text(
        '[project]\nname = "my-bot"\nversion = "0.1.0"\n\n' + documented_settings(), encoding="utf-8"
    )
    (project / "tests" / "test_bot.py").write_text(USER_TESTS, encoding="utf-8")
    # -W error: any warning (pytest-asyncio's about its settings, ours, a resource warning) fails.
    result = run_pytest(project, "-W", "error", "-rw")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "2 passed" in result.stdout, output
    assert "warning" not in output.lower(), output


def test_a_project_without_settings_still_runs_fixture_tests(tmp_path: Path) -> None:
    """No pytest-asyncio setting at all: the plugin marks the async tests that use the fixture.
    (pytest-asyncio itself still asks for its loop-scope setting: the docs give it.)"""
    project = new_project(tmp_path, "bare")
    (project / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    (project / "tests" / "test_bare.py").write_text(BARE_TEST, encoding="utf-8")
    result = run_pytest(project)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "1 passed" in result.stdout, output
