"""Brand catch-up after a reconnect, across more open dialogs than are fetched at once.

The history missed while the socket was down is fetched for several dialogs at the same time
(``lpm.client.transport.brand.CATCH_UP_CONCURRENCY``); every missed message must still arrive exactly once
and in sequence order within its dialog.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import aiohttp

import lpm
from lpm.client.transport.brand import CATCH_UP_CONCURRENCY
from lpm.emulator.app import Emulator

WAIT = 20.0


async def _control(emu: Emulator, path: str, body: dict[str, Any]) -> Any:
    url = f"{emu.base_url}/_emulator/{path}"
    async with aiohttp.ClientSession() as http, http.post(url, json=body) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def test_missed_messages_of_many_dialogs_arrive_once_in_order(emulator: Emulator) -> None:
    count = CATCH_UP_CONCURRENCY + 8
    ids = (await _control(emulator, "bench/conversations", {"count": count, "messages": 1}))["conversations"]
    bot = lpm.create_connection(
        account_id=emulator.account_id,
        user_type=lpm.UserType.BRAND,
        auth_data={"username": "bot", "password": "bot-password"},
        csds_domain=emulator.csds_domain,
        wait_for_first_notification=True,
        reconnect_schedule=(0.05, 0.1),
        wait_to_reconnect=0.05,
    )
    received: dict[str, list[tuple[int, str]]] = defaultdict(list)
    bot.on(
        "conversation:message",
        lambda conversation, message: received[conversation.conversation_id].append(
            (message.sequence, message.body)
        ),
    )
    async with bot:
        assert len(bot.get_all_known_conversations()) == count
        await _control(emulator, "upgrades/stall", {"count": 1000})
        disconnected = asyncio.ensure_future(bot.wait_for("disconnect", timeout=WAIT))
        await _control(emulator, "sockets/drop", {"user_id": "bot"})
        await disconnected
        # Three messages in every conversation while the bot is away.
        await _control(emulator, "bench/stream", {"events": 3 * count, "conversations": ids})
        reconnected = asyncio.ensure_future(bot.wait_for("reconnect", timeout=WAIT))
        await _control(emulator, "upgrades/release", {})
        await reconnected
        await asyncio.sleep(0.2)  # a duplicate would arrive now
    for i, conv_id in enumerate(ids):
        expected = [(seq, f"bench event {i + n * count}") for n, seq in enumerate((1, 2, 3))]
        assert received[conv_id] == expected, conv_id
    assert sum(len(v) for v in received.values()) == 3 * count
