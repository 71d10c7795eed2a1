"""Deterministic regressions for bugs the chaos suite found (each named after the bug)."""

from __future__ import annotations

import asyncio

import aiohttp

from lpm.emulator.app import Emulator
from tests.helpers import RawSocket, signup


async def control(http: aiohttp.ClientSession, emu: Emulator, path: str, body: dict[str, object]) -> None:
    async with http.post(f"{emu.base_url}/_emulator/{path}", json=body) as resp:
        assert resp.status == 200, await resp.text()


async def test_a_held_request_is_not_processed_once_the_server_closed_the_session(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """A request held by a delay fault used to be processed after the session had been closed
    with 4407 (token expiry): the consumer's reconnect had already re-sent it, so the message
    was stored twice -- and the emulator acted for an identity it had just shut out."""
    consumer = await RawSocket.consumer(http, emulator, await signup(http, emulator))
    conv_id = (await consumer.request("cm.ConsumerRequestConversation", {"skillId": "11"}))["body"][
        "conversationId"
    ]
    await control(http, emulator, "requests", {"count": 1, "action": "delay", "delay": 0.3})
    await consumer.ws.send_json(
        {
            "kind": "req",
            "id": "held",
            "type": "ms.PublishEvent",
            "body": {"dialogId": conv_id, "event": {"type": "ContentEvent", "message": "late"}},
        }
    )
    await asyncio.sleep(0.05)  # the request is being held
    await control(http, emulator, "sockets/close", {"code": 4407, "dialect": "consumer"})
    await asyncio.wait_for(consumer.closed.wait(), 5)
    assert consumer.close_code == 4407
    await asyncio.sleep(0.5)  # well past the delay
    assert emulator.world.accounts[emulator.account_id].events[conv_id] == []
    await consumer.close()
