"""A hostile server, seen from the SDK: frames and HTTP answers no honest platform sends.

The WebSocket frames are written by the emulator's own socket writer onto the real socket (the
test reaches into the emulator to queue raw bytes), so the SDK reads them exactly as it would
read them from a broken or malicious server.  HTTP answers come from a small hostile aiohttp
server standing in for CSDS or agentVep.

What must hold for each input: a typed error on the connection's ``error`` event (or raised by
the call), bounded memory, and a connection that goes on working -- never a crash, a silent drop
or a stalled stream.
"""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

import lpm
from lpm.client.auth.csds import CSDSCache
from lpm.client.auth.http import HttpSettings
from lpm.emulator.app import Emulator
from lpm.errors import LimitExceededError, ProtocolError
from lpm.protocol import frames
from tests.integration.test_sdk_resilience import Chat, brand, consumer, start_chat, until

BRAND_EVENT = ".ams.ms.OnlineEventDistribution"


def inject(emulator: Emulator, data: bytes, *, brand_sockets: bool = True) -> int:
    """Queue raw ``data`` as a text frame on every brand (or consumer) socket; returns how many."""
    sessions = [s for s in emulator.ctx.hub.sessions if s.brand == brand_sockets]
    for session in sessions:
        session._push(data)
    return len(sessions)


def errors_of(chat: Chat, kind: type[BaseException]) -> list[BaseException]:
    return [e for e in chat.bot_events.errors if isinstance(e, kind)]


async def exchange(chat: Chat, texts: list[str]) -> None:
    """The consumer sends ``texts``; the bot sees exactly them next, in order."""
    before = len(chat.received["bot"])
    for text in texts:
        await chat.cons_view.send_message(text)
    await until(lambda: len(chat.received["bot"]) >= before + len(texts), timeout=20)
    await asyncio.sleep(0.1)
    assert chat.received["bot"][before:] == texts


@pytest.fixture
async def chat(emulator: Emulator) -> AsyncIterator[Chat]:
    chat_ = await start_chat(emulator, {"max_frame_size": 64 * 1024})
    try:
        yield chat_
    finally:
        await chat_.cons.close()
        await chat_.bot.close()


async def last_brand_event(chat: Chat, text: str) -> dict[str, Any]:
    """The raw body of the brand event that carried the consumer's ``text`` to the bot."""
    bodies: list[Any] = []
    chat.bot.on("notification", lambda type_, body: bodies.append(body) if type_ == BRAND_EVENT else None)
    await exchange(chat, [text])
    matching = [b for b in bodies if isinstance(b, dict) and b.get("event", {}).get("message") == text]
    assert matching, "the bot received no OnlineEventDistribution for the message"
    return dict(matching[-1])


def notification(body: Any) -> bytes:
    return frames.encode(frames.Notification(type=BRAND_EVENT, body=body))


# ---------------------------------------------------------------- frames


async def test_a_deeply_nested_frame_is_a_protocol_error_and_the_socket_stays(
    emulator: Emulator, chat: Chat
) -> None:
    assert inject(emulator, b"[" * 20_000 + b"]" * 20_000) == 1
    await until(lambda: bool(errors_of(chat, ProtocolError)), timeout=10)
    assert "nested too deeply" in str(errors_of(chat, ProtocolError)[0])
    await exchange(chat, ["c after"])
    assert chat.bot_events.counts["disconnect"] == 0


async def test_an_oversized_frame_is_reported_and_the_connection_recovers(
    emulator: Emulator, chat: Chat
) -> None:
    reconnected = asyncio.ensure_future(chat.bot.wait_for("reconnect", timeout=20))
    inject(emulator, b'"' + b"x" * 100_000 + b'"')  # over the 64 KiB max_frame_size
    await reconnected
    limits = errors_of(chat, LimitExceededError)
    assert len(limits) == 1 and limits[0].limit == "max_frame_size"  # type: ignore[attr-defined]
    await exchange(chat, ["c after"])


async def test_a_text_frame_that_is_not_utf8_is_reported_and_the_connection_recovers(
    emulator: Emulator, chat: Chat
) -> None:
    reconnected = asyncio.ensure_future(chat.bot.wait_for("reconnect", timeout=20))
    inject(emulator, b'{"kind": "notification", "type": "\xff\xfe"}')
    await reconnected
    assert any("1007" in str(e) for e in errors_of(chat, ProtocolError))
    await exchange(chat, ["c after"])


async def test_an_out_of_range_sequence_is_refused_and_never_silences_the_dialog(
    emulator: Emulator, chat: Chat
) -> None:
    body = await last_brand_event(chat, "c 0")
    inject(
        emulator, notification({**body, "sequence": 2**62, "event": {**body["event"], "message": "c forged"}})
    )
    await until(lambda: bool(errors_of(chat, ProtocolError)), timeout=10)
    assert "sequence" in str(errors_of(chat, ProtocolError)[0])
    await exchange(chat, ["c 1", "c 2"])  # still announced: the dialog did not jump to 2**62
    assert "c forged" not in chat.received["bot"]


async def test_a_sequence_reused_with_other_content_is_reported(emulator: Emulator, chat: Chat) -> None:
    body = await last_brand_event(chat, "c 0")
    sequence = body["sequence"]
    inject(emulator, notification({**body, "event": {**body["event"], "message": "c forged"}}))
    await until(lambda: bool(errors_of(chat, ProtocolError)), timeout=10)
    error = str(errors_of(chat, ProtocolError)[0])
    assert f"sequence {sequence}" in error and chat.bot_view.conversation_id in error
    assert chat.bot_view.main_dialog.get_message(sequence).body == "c 0"  # the first one is kept
    await exchange(chat, ["c 1"])
    # The same event again (a replay) is no error.
    inject(emulator, notification(body))
    await exchange(chat, ["c 2"])
    assert len(errors_of(chat, ProtocolError)) == 1


async def test_more_conversations_than_max_conversations_are_reported_once(emulator: Emulator) -> None:
    consumers = [consumer(emulator) for _ in range(4)]
    manager = brand(emulator, "agent", max_conversations=2)
    errors: list[BaseException] = []
    manager.on("error", errors.append)
    try:
        for cons in consumers:
            await cons.open()
            await cons.create_conversation(skill_id="11")
        await manager.open()
        await until(lambda: any(isinstance(e, LimitExceededError) for e in errors), timeout=10)
        limits = [e for e in errors if isinstance(e, LimitExceededError)]
        assert len(limits) == 1 and limits[0].limit == "max_conversations"
        assert len(manager.conversations) == 2
    finally:
        await manager.close()
        for cons in consumers:
            await cons.close()


# ---------------------------------------------------------------- HTTP answers


class HostileHttp:
    """An HTTP server whose every answer comes from ``answer`` (swappable by the test)."""

    def __init__(self) -> None:
        self.answer: Callable[[web.Request], Awaitable[web.StreamResponse]] = self._not_found
        self._runner: web.AppRunner | None = None
        self.port = 0

    @staticmethod
    async def _not_found(request: web.Request) -> web.StreamResponse:
        return web.Response(status=404)

    async def __aenter__(self) -> HostileHttp:
        async def route(request: web.Request) -> web.StreamResponse:
            return await self.answer(request)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", route)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    @property
    def domain(self) -> str:
        return f"http://127.0.0.1:{self.port}"


async def endless_json(request: web.Request) -> web.StreamResponse:
    """A chunked body (no Content-Length) that would go on for 200 MB."""
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    chunk = b" " * (1024 * 1024)
    await response.write(b'{"baseURIs": [')
    for _ in range(200):
        try:
            await response.write(chunk)
        except (ConnectionError, RuntimeError):
            break
    return response


async def nested_json(request: web.Request) -> web.StreamResponse:
    return web.Response(body=b"[" * 100_000 + b"]" * 100_000, content_type="application/json")


async def csds_lookup(domain: str) -> str:
    """What every connection does first: look up a service in CSDS."""
    async with HttpSettings(domain) as http:
        return await CSDSCache().lookup("12345678", "agentVep", http=http)


async def test_an_endless_http_body_is_refused_in_bounded_memory() -> None:
    async with HostileHttp() as hostile:
        hostile.answer = endless_json
        tracemalloc.start()
        try:
            with pytest.raises(LimitExceededError) as info:
                await asyncio.wait_for(csds_lookup(hostile.domain), 30)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert info.value.limit == "max_body_size"
        # The 16 MiB limit: read in chunks and refused once past it, never read whole.
        assert peak < 48 * 1024 * 1024, f"peak {peak / 2**20:.0f} MiB"
        print(f"endless HTTP body: refused past 16 MiB, traced peak {peak / 2**20:.1f} MiB")


async def test_a_deeply_nested_http_answer_is_a_protocol_error() -> None:
    async with HostileHttp() as hostile:
        hostile.answer = nested_json
        with pytest.raises(ProtocolError, match="not JSON the SDK can read"):
            await asyncio.wait_for(csds_lookup(hostile.domain), 30)


async def test_a_malformed_login_answer_during_relogin_never_ends_maintenance(emulator: Emulator) -> None:
    """The reconnect after a 4401 logs in again; the login answer is nested too deeply (it used to
    raise RecursionError and end the maintainer for good).  Once login answers properly again the
    bot is back, with nothing lost."""
    async with HostileHttp() as gate, aiohttp.ClientSession() as http:
        hostile = False

        async def login_gate(request: web.Request) -> web.StreamResponse:
            if hostile:
                return await nested_json(request)
            async with http.request(
                request.method,
                f"{emulator.base_url}{request.rel_url}",
                data=await request.read(),
                headers={
                    k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")
                },
            ) as upstream:
                return web.Response(
                    status=upstream.status,
                    body=await upstream.read(),
                    headers={"Content-Type": upstream.headers.get("Content-Type", "application/json")},
                )

        gate.answer = login_gate
        chat = await start_chat(emulator, {"domains": {"agentVep": f"127.0.0.1:{gate.port}"}})
        try:
            hostile = True
            for session in [s for s in emulator.ctx.hub.sessions if s.brand]:
                session.close_with(4401, "token expired")
            await chat.bot.wait_for("disconnect", timeout=10)
            await until(lambda: bool(errors_of(chat, ProtocolError)), timeout=10)
            await chat.cons_view.send_message("c during")
            await asyncio.sleep(0.5)  # a few failed logins on the shrunk schedule
            assert chat.bot.state != lpm.ConnectionState.CONNECTED
            hostile = False
            await chat.bot.wait_for("reconnect", timeout=20)
            await until(lambda: chat.received["bot"] == ["c during"], timeout=20)
            await exchange(chat, ["c after"])
        finally:
            await chat.cons.close()
            await chat.bot.close()
