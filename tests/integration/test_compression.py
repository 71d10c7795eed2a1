"""The ``compression`` option: permessage-deflate negotiated at the upgrade, and the emulator's
record of what each upgrade negotiated (``GET /_emulator/bench/upgrades``)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

import lpm
from lpm.emulator.app import Emulator
from lpm.errors import ConfigurationError

ACC = "12345678"
FAST = {"reconnect_schedule": (0.05, 0.1, 0.2), "wait_to_reconnect": 0.05, "response_timeout": 10.0}
#: Long and repetitive: deflate shrinks it a lot, and it spans several TCP segments.
LONG = "compress me " * 2000


def brand(emu: Emulator, **options: Any) -> lpm.BrandWebsocketConnection:
    conn = lpm.create_connection(
        account_id=ACC,
        user_type=lpm.UserType.BRAND,
        auth_data={"username": "bot", "password": "bot-password"},
        csds_domain=emu.csds_domain,
        **{**FAST, **options},
    )
    assert isinstance(conn, lpm.BrandWebsocketConnection)
    return conn


def consumer(emu: Emulator, **options: Any) -> lpm.ConsumerWebsocketConnection:
    conn = lpm.create_connection(
        account_id=ACC, user_type=lpm.UserType.CONSUMER, csds_domain=emu.csds_domain, **{**FAST, **options}
    )
    assert isinstance(conn, lpm.ConsumerWebsocketConnection)
    return conn


async def upgrades(emu: Emulator) -> list[dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{emu.base_url}/_emulator/bench/upgrades") as resp,
    ):
        assert resp.status == 200
        records: list[dict[str, Any]] = (await resp.json())["upgrades"]
        return records


async def chat(
    emu: Emulator, bot: lpm.BrandWebsocketConnection, cons: lpm.ConsumerWebsocketConnection
) -> None:
    """A long message each way between a consumer and the bot that accepted its ring."""
    routing = await bot.create_routing_task_subscription()
    await bot.set_agent_state(lpm.AgentState.ONLINE)
    ring_task = asyncio.create_task(routing.wait_for("ring", timeout=10))
    bot_conversation = asyncio.create_task(bot.wait_for("conversation", timeout=10))
    conversation = await cons.create_conversation(skill_id="11")
    await (await ring_task).accept()
    agent_view = await bot_conversation
    incoming = asyncio.create_task(agent_view.wait_for("message", timeout=10))
    await conversation.send_message(LONG)
    assert (await incoming).body == LONG
    reply = asyncio.create_task(conversation.wait_for("message", lambda m: m.body == LONG[::-1], timeout=10))
    await agent_view.send_message(LONG[::-1])
    await reply


async def test_compression_negotiates_permessage_deflate_on_both_faces_and_messages_flow(
    emulator: Emulator,
) -> None:
    errors: list[BaseException] = []
    async with brand(emulator, compression=True) as bot, consumer(emulator, compression=True) as cons:
        bot.on("error", errors.append)
        cons.on("error", errors.append)
        await chat(emulator, bot, cons)
    assert errors == []
    records = await upgrades(emulator)
    assert sorted(r["face"] for r in records) == ["brand", "consumer"]
    for record in records:
        assert "permessage-deflate" in record["offered"]
        assert record["answered"].startswith("permessage-deflate")
        assert record["user_agent"] and record["time"] > 0


async def test_without_the_option_nothing_is_offered_or_negotiated(emulator: Emulator) -> None:
    async with brand(emulator) as bot, consumer(emulator) as cons:
        await chat(emulator, bot, cons)
    records = await upgrades(emulator)
    assert sorted(r["face"] for r in records) == ["brand", "consumer"]
    assert all(r["offered"] is None and r["answered"] is None for r in records)


async def test_a_reconnect_negotiates_compression_again(emulator: Emulator) -> None:
    async with brand(emulator, compression=True) as bot:
        reconnected = asyncio.create_task(bot.wait_for("reconnect", timeout=10))
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{emulator.base_url}/_emulator/sockets/drop", json={"user_id": "bot"}) as resp,
        ):
            assert resp.status == 200
        await reconnected
        await bot.get_clock()
    records = await upgrades(emulator)
    assert len(records) == 2
    assert all(r["answered"].startswith("permessage-deflate") for r in records)


async def test_the_record_shows_a_client_that_offers_deflate_by_itself(emulator: Emulator) -> None:
    """What node-agent-sdk (``ws``) does by default: the emulator answers the offer."""
    url = emulator.base_url.replace("http://", "ws://") + f"/ws_api/account/{ACC}/messaging/consumer?v=3"
    async with aiohttp.ClientSession() as http, http.ws_connect(url, compress=15) as ws:
        assert ws.compress == 15
    (record,) = await upgrades(emulator)
    assert record["face"] == "consumer" and record["answered"].startswith("permessage-deflate")


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_compression_must_be_a_bool(value: Any) -> None:
    with pytest.raises(ConfigurationError, match="compression must be True or False"):
        lpm.create_connection(
            account_id=ACC,
            user_type=lpm.UserType.BRAND,
            auth_data={"username": "bot", "password": "bot-password"},
            compression=value,
        )
