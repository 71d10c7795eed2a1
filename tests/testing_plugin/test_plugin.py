"""The ``lpm.testing`` pytest plugin: the ``lpm_emulator`` fixture, its connection helpers and marker."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import lpm
from lpm.emulator import Emulator, load_toml
from lpm.errors import AuthenticationError, ConfigurationError
from lpm.testing import TestEmulator

WORLD = textwrap.dedent(
    """
    [[accounts]]
    id = "55555555"

    [[accounts.users]]
    user_id = "7"
    login_name = "ada"
    password = "ada-secret"
    skills = ["100"]

    [[accounts.skills]]
    skill_id = "100"
    name = "billing"
    """
)


async def test_fixture_is_a_running_emulator(lpm_emulator: TestEmulator) -> None:
    # What existing users rely on: an Emulator with csds_domain / account_id, fault API on.
    assert isinstance(lpm_emulator, Emulator)
    assert lpm_emulator.account_id == "12345678"
    assert lpm_emulator.csds_domain == f"http://127.0.0.1:{lpm_emulator.port}"
    assert lpm_emulator.settings.faults is True
    conn = lpm.create_connection(
        account_id=lpm_emulator.account_id,
        user_type=lpm.UserType.CONSUMER,
        csds_domain=lpm_emulator.csds_domain,
    )
    async with conn:
        assert conn.state == lpm.ConnectionState.CONNECTED


async def test_agent_and_consumer_talk(lpm_emulator: TestEmulator) -> None:
    agent = await lpm_emulator.agent()  # "agent", password looked up in the world
    consumer = await lpm_emulator.consumer()
    assert agent.state == consumer.state == lpm.ConnectionState.CONNECTED
    assert agent.agent_id == "12345678.1001"

    await agent.set_agent_state(lpm.AgentState.ONLINE)
    rings = await agent.create_routing_task_subscription()
    accepted = asyncio.ensure_future(rings.wait_for("ring", timeout=10))
    conversation = await consumer.create_conversation(skill_id="12")  # support: the agent's skill
    ring = await accepted
    await ring.accept()

    on_agent_side = asyncio.ensure_future(agent.wait_for("conversation:message", timeout=10))
    await conversation.send_message("hi")
    _conv, message = await on_agent_side
    assert message.body == "hi"


async def test_helpers_pass_options_and_other_logins(lpm_emulator: TestEmulator) -> None:
    bot = await lpm_emulator.agent("bot", "bot-password", response_timeout=5.0)
    assert bot.agent_id == "12345678.2001"
    assert bot.options.response_timeout == 5.0
    app_keys = await lpm_emulator.agent(
        auth_data={
            "username": "agent",
            "app_key": "agent-app-key",
            "secret": "agent-app-secret",
            "access_token": "agent-access-token",
            "access_token_secret": "agent-access-token-secret",
        }
    )
    assert app_keys.agent_id == "12345678.1001"
    unauth = await lpm_emulator.consumer(unauth_connector_id="3001")
    assert unauth.state == lpm.ConnectionState.CONNECTED
    rest = await lpm_emulator.connection(
        user_type=lpm.UserType.BRAND,
        connection_type=lpm.ConnectionType.REST,
        auth_data={"username": "bot", "password": "bot-password"},
    )
    assert isinstance(rest, lpm.BrandRestConnection)


async def test_unknown_user_and_wrong_password(lpm_emulator: TestEmulator) -> None:
    with pytest.raises(ConfigurationError, match="nobody"):
        await lpm_emulator.agent("nobody")
    with pytest.raises(AuthenticationError):
        await lpm_emulator.agent("agent", "wrong-password", maintain_connection=False)


async def test_stop_closes_every_helper_connection() -> None:
    async with TestEmulator() as emu:
        agent = await emu.agent("bot")
        consumer = await emu.consumer()
        closes: list[object] = []
        consumer.on("close", closes.append)
    assert agent.state == consumer.state == lpm.ConnectionState.CLOSED
    # Closed by the SDK (1000 from the application), not lost when the server went away.
    assert closes and closes[0] == {"code": 1000, "reason": "closed by the application"}


@pytest.mark.lpm_emulator(ring_expiry=1.5, tls=True)
async def test_marker_sets_settings(lpm_emulator: TestEmulator) -> None:
    assert lpm_emulator.settings.ring_expiry == 1.5
    assert lpm_emulator.ca_file is not None and lpm_emulator.ca_file.is_file()
    assert not lpm_emulator.csds_domain.startswith("http")
    consumer = await lpm_emulator.consumer()  # trusts the emulator's CA by itself
    assert consumer.options.ssl == str(lpm_emulator.ca_file)
    conversation = await consumer.create_conversation(skill_id="11")
    assert conversation.conversation_id


def _world(tmp: Path) -> Path:
    path = tmp / "world.toml"
    path.write_text(WORLD, encoding="utf-8")
    return path


async def test_custom_world(tmp_path: Path) -> None:
    async with TestEmulator(load_toml(_world(tmp_path))) as emu:
        assert emu.account_id == "55555555"
        ada = await emu.agent("ada")  # password from the world file
        assert ada.agent_id == "55555555.7"
        consumer = await emu.consumer()
        conversation = await consumer.create_conversation(skill_id="100")
        assert conversation.skill_id == "100"


def test_plugin_loads_by_itself_in_strict_mode(tmp_path: Path) -> None:
    """A user project: no conftest, pytest-asyncio in strict mode, the marker, a world file."""
    _world(tmp_path)
    (tmp_path / "test_user.py").write_text(
        textwrap.dedent(
            """
            import pytest
            from pathlib import Path
            from lpm.emulator import load_toml

            WORLD = load_toml(Path(__file__).with_name("world.toml"))

            @pytest.mark.asyncio
            async def test_default(lpm_emulator):
                consumer = await lpm_emulator.consumer()
                conversation = await consumer.create_conversation(skill_id="11")
                assert conversation.conversation_id

            @pytest.mark.asyncio
            @pytest.mark.lpm_emulator(WORLD)
            async def test_world(lpm_emulator):
                assert lpm_emulator.account_id == "55555555"
                assert (await lpm_emulator.agent("ada")).agent_id == "55555555.7"
            """
        ),
        encoding="utf-8",
    )
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n"
        "filterwarnings = error\naddopts = --strict-markers -p no:cacheprovider\n",
        encoding="utf-8",
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
