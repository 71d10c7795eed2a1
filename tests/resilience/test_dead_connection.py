"""Silent failures of the network, seen from outside the SDK: a misbehaving TCP proxy
(:mod:`tests.resilience.tcp_proxy`) sits between the bot and the emulator's WebSocket face.

What must hold: a socket that goes silent (a NAT or load balancer that dropped it, no FIN, no
RST) is declared dead within ``dead_connection_timeout`` of its last frame and replaced; while
the network stays down the connection keeps trying (an upgrade that is never answered is bounded
by ``connect_timeout``); once it heals, the messages sent meanwhile arrive, once each and in
order.  The short versions shrink the timeouts; with ``LPM_CHAOS=long`` the default timeouts are
measured too (the bound the documentation gives).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

import lpm
from lpm.emulator.app import Emulator
from tests.integration.test_sdk_resilience import Chat, start_chat, until
from tests.resilience.tcp_proxy import TcpProxy

LONG = os.environ.get("LPM_CHAOS") == "long"
#: Shrunk liveness settings of the short runs: a dead socket is declared after 1.5 s of silence.
QUICK = {"keep_alive_interval": 0.5, "dead_connection_timeout": 1.5, "connect_timeout": 1.0}


@pytest.fixture
async def proxy(emulator: Emulator) -> AsyncIterator[TcpProxy]:
    host, port = emulator.csds_domain.removeprefix("http://").split(":")
    async with TcpProxy(host, int(port)) as proxy_:
        yield proxy_


async def chat_through(emulator: Emulator, proxy: TcpProxy, **liveness: Any) -> Chat:
    """A chat whose bot reaches UMS through ``proxy`` (the consumer goes direct)."""
    return await start_chat(emulator, {"domains": {"facadeMsg": proxy.address}, **liveness})


async def close_chat(chat: Chat) -> None:
    await chat.cons.close()
    await chat.bot.close()


async def timed_reconnect(chat: Chat, timeout: float) -> tuple[float, float]:
    """Seconds until the bot noticed the loss (``disconnect``) and until it was back (``reconnect``)."""
    start = time.monotonic()
    await chat.bot.wait_for("disconnect", timeout=timeout)
    detected = time.monotonic() - start
    await chat.bot.wait_for("reconnect", timeout=timeout)
    return detected, time.monotonic() - start


async def exchange(chat: Chat, texts: list[str]) -> None:
    """The consumer sends ``texts``; the bot must see exactly them, in order."""
    before = len(chat.received["bot"])
    for text in texts:
        await chat.cons_view.send_message(text)
    await until(lambda: len(chat.received["bot"]) >= before + len(texts), timeout=30)
    await asyncio.sleep(0.2)  # a duplicate would arrive now
    assert chat.received["bot"][before:] == texts


async def test_a_blackholed_socket_is_declared_dead_and_replaced(emulator: Emulator, proxy: TcpProxy) -> None:
    chat = await chat_through(emulator, proxy, **QUICK)
    try:
        await exchange(chat, ["c before"])
        proxy.blackhole_open_connections()  # the socket in use goes silent; new ones pass
        # Sent into the silence: stored by UMS, caught up by the bot once it has a new socket.
        await chat.cons_view.send_message("c during")
        detected, recovered = await timed_reconnect(chat, timeout=15)
        # Declared dead 1.5 s after its last frame (a keep-alive answer at most 0.5 s before).
        assert detected < QUICK["dead_connection_timeout"] + 3.0
        await until(lambda: "c during" in chat.received["bot"], timeout=15)
        await exchange(chat, ["c after 1", "c after 2"])
        assert chat.received["bot"] == ["c before", "c during", "c after 1", "c after 2"]
        assert chat.bot_events.counts["close"] == 0
        print(f"blackholed socket: detected after {detected:.2f} s, reconnected after {recovered:.2f} s")
    finally:
        await close_chat(chat)


async def test_a_network_down_for_a_while_then_healed(emulator: Emulator, proxy: TcpProxy) -> None:
    """Every connection is blackholed, new ones too: the upgrades time out and are retried until
    the network heals; nothing sent meanwhile is lost or duplicated."""
    chat = await chat_through(emulator, proxy, **QUICK)
    try:
        await exchange(chat, ["c 0"])
        proxy.blackhole()
        await chat.bot.wait_for("disconnect", timeout=15)
        accepted = proxy.accepted
        sent = [f"c {i}" for i in range(1, 6)]
        for text in sent:
            await chat.cons_view.send_message(text)
        # The bot keeps trying (each upgrade swallowed by the blackhole, bounded by connect_timeout).
        await until(lambda: proxy.accepted >= accepted + 2, timeout=20)
        assert chat.bot.state != lpm.ConnectionState.CONNECTED
        proxy.heal()
        await chat.bot.wait_for("reconnect", timeout=30)
        await until(lambda: len(chat.received["bot"]) >= 6, timeout=20)
        await exchange(chat, ["c 6"])
        assert chat.received["bot"] == [f"c {i}" for i in range(7)]
    finally:
        await close_chat(chat)


async def test_an_upgrade_that_is_never_answered_is_retried(emulator: Emulator, proxy: TcpProxy) -> None:
    proxy.refuse_upgrades()
    bot = lpm.create_connection(
        account_id=emulator.account_id,
        user_type=lpm.UserType.BRAND,
        auth_data={"username": "bot", "password": "bot-password"},
        csds_domain=emulator.csds_domain,
        domains={"facadeMsg": proxy.address},
        reconnect_schedule=(0.1,),
        **QUICK,
    )
    errors: list[BaseException] = []
    bot.on("error", errors.append)
    opening = asyncio.ensure_future(bot.open())
    try:
        await until(lambda: proxy.accepted >= 2, timeout=20)
        assert not opening.done()
        assert any(isinstance(e, lpm.ConnectFailedError) and "did not complete" in str(e) for e in errors)
        proxy.heal()
        await asyncio.wait_for(opening, 20)
        assert bot.state == lpm.ConnectionState.CONNECTED
    finally:
        opening.cancel()
        await bot.close()


async def test_a_socket_cut_mid_frame_is_replaced(emulator: Emulator, proxy: TcpProxy) -> None:
    chat = await chat_through(emulator, proxy, **QUICK)
    try:
        await exchange(chat, ["c 0"])
        proxy.truncate(after=7)  # the next frame from UMS is cut after 7 bytes, then RST
        await chat.cons_view.send_message("c 1")
        await chat.bot.wait_for("disconnect", timeout=15)
        proxy.heal()
        await chat.bot.wait_for("reconnect", timeout=30)
        await until(lambda: len(chat.received["bot"]) >= 2, timeout=20)
        await exchange(chat, ["c 2"])
        assert chat.received["bot"] == ["c 0", "c 1", "c 2"]
    finally:
        await close_chat(chat)


@pytest.mark.skipif(not LONG, reason="the default timeouts take half a minute (LPM_CHAOS=long)")
async def test_default_settings_detect_a_dead_socket_within_the_documented_bound(
    emulator: Emulator, proxy: TcpProxy
) -> None:
    chat = await chat_through(emulator, proxy)
    try:
        proxy.blackhole_open_connections()
        detected, recovered = await timed_reconnect(chat, timeout=60)
        # docs/reliability.md: declared dead 20 s after the last frame (the keep-alive every
        # 10 s answers within milliseconds, so silence starts at most 10 s before the cut).
        assert detected <= 20.0 + 1.0
        assert recovered <= 30.0
        await exchange(chat, ["c after"])
        print(f"default settings: detected after {detected:.2f} s, reconnected after {recovered:.2f} s")
    finally:
        await close_chat(chat)


async def test_a_stalled_event_loop_is_not_taken_for_a_dead_server(
    emulator: Emulator, proxy: TcpProxy
) -> None:
    """The application blocks the event loop (a long GC pause, a blocking call) for longer than
    ``dead_connection_timeout``: frames the server sent meanwhile are unread, not missing, and the
    socket must survive.  (The long chaos run's memory sampler stalled every client at once.)"""
    chat = await chat_through(emulator, proxy, **QUICK)
    try:
        await exchange(chat, ["c before"])
        time.sleep(QUICK["dead_connection_timeout"] * 2)  # noqa: ASYNC251 - the stall is the point
        await asyncio.sleep(QUICK["dead_connection_timeout"])
        await exchange(chat, ["c after"])
        assert chat.bot_events.counts["disconnect"] == 0
    finally:
        await close_chat(chat)
