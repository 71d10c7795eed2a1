"""The emulator's accept layer (lpm.emulator.listener) with real sockets: a stop or a restart
leaves no accepted socket open, slow request heads are timed out, connections beyond the limit
are refused at once.

Sockets are the only thing asserted on: the emulator's side of a connection is a socket of this
process whose local port is the emulator's (psutil); a closed one is gone from that list.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import psutil
import pytest

from lpm.emulator.app import Emulator
from lpm.emulator.listener import HEAD_TIMEOUT_RESPONSE, REFUSED_RESPONSE, connection_limit
from tests.helpers import until

ACC = "12345678"
CSDS = f"/api/account/{ACC}/service/baseURI.json"
CONSUMER_WS = f"/ws_api/account/{ACC}/messaging/consumer?v=3"
#: Generous bound for anything that should happen "at once" (only reached on failure).
WAIT = 10.0


def upgrade_request(path: str = CONSUMER_WS) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def get_request(path: str = CSDS) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode()


def read_response(client: socket.socket) -> bytes:
    """One HTTP response from a blocking socket: its head and its ``Content-Length`` body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = client.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += client.recv(65536)
    return head


def server_side(port: int) -> list[Any]:
    """The emulator's ends of its connections: sockets of this process bound to its port."""
    return [
        c
        for c in psutil.Process().net_connections(kind="tcp")
        if c.status != psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
    ]


@contextmanager
def unraisable_caught() -> Iterator[list[str]]:
    """Collect what the garbage collector reports (``ResourceWarning: unclosed ...``)."""
    caught: list[str] = []
    previous = sys.unraisablehook

    def hook(report: Any) -> None:
        caught.append(f"{report.exc_type.__name__}: {report.exc_value} ({report.object!r})")

    sys.unraisablehook = hook
    try:
        yield caught
    finally:
        sys.unraisablehook = previous


async def read_all(reader: asyncio.StreamReader, timeout: float = WAIT) -> bytes:
    """Everything until the server closes (raises TimeoutError if it does not)."""
    chunks = []
    async with asyncio.timeout(timeout):
        while chunk := await reader.read(65536):
            chunks.append(chunk)
    return b"".join(chunks)


async def closed_by_server(reader: asyncio.StreamReader, timeout: float = WAIT) -> bytes:
    """What the server wrote before closing; a reset counts as closed."""
    try:
        return await read_all(reader, timeout)
    except ConnectionResetError:
        return b""


# ---------------------------------------------------------------- stop and restart


@pytest.mark.parametrize("iterations", range(5))
async def test_stop_closes_connections_accepted_just_before_it(iterations: int) -> None:
    """Issue 18: the root cause.  With asyncio.Server (aiohttp's TCPSite), connections accepted
    in the loop iteration before the server closed were never closed: the transport's
    construction failed on an assertion (CPython gh-109564) and the socket waited for the
    garbage collector.  Two iterations between connect and stop hit it every time; around it
    the other orders of accept and stop."""
    emu = await Emulator().start()
    port = emu.port
    # Blocking connects complete in the kernel's backlog without the event loop.
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(8)]
    try:
        for _ in range(iterations):
            await asyncio.sleep(0)
        with unraisable_caught() as caught:
            await emu.stop()
            assert server_side(port) == []
            gc.collect()
        assert caught == []
    finally:
        for client in clients:
            client.close()


async def test_a_restart_under_stalled_upgrades_and_half_open_connections_leaves_no_socket() -> None:
    """Issue 18: every kind of connection a stop can find, on both emulators of a restart."""
    emu = await Emulator(faults=True).start()
    port = emu.port
    writers: list[asyncio.StreamWriter] = []

    async def connect(data: bytes = b"", shut_write: bool = False) -> asyncio.StreamReader:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writers.append(writer)
        if data:
            writer.write(data)
            await writer.drain()
        if shut_write:
            writer.write_eof()
        return reader

    async def control(http: aiohttp.ClientSession, path: str, body: dict[str, Any]) -> None:
        async with http.post(f"{emu.base_url}/_emulator/{path}", json=body) as r:
            assert r.status == 200, await r.text()

    try:
        async with aiohttp.ClientSession() as http:
            # WebSocket sessions: two dropped by the fault API (their clients keep their ends),
            # two alive.
            dropped = [await http.ws_connect(emu.ws_base_url + CONSUMER_WS) for _ in range(2)]
            await control(http, "sockets/drop", {})
            live = [await http.ws_connect(emu.ws_base_url + CONSUMER_WS) for _ in range(2)]
            await control(http, "upgrades/stall", {"count": 100})
            stalled = [await connect(upgrade_request()) for _ in range(3)]
            await connect(upgrade_request())
            writers[-1].close()  # a stalled client that left
            partial = [await connect(b"GET /api/acc") for _ in range(3)]
            silent = [await connect() for _ in range(3)]
            half_closed = [await connect(b"GET /api/acc", shut_write=True) for _ in range(2)]
            await until(lambda: len(server_side(port)) >= 11, "the connections to be accepted")

            with unraisable_caught() as caught:
                await emu.stop()
                assert server_side(port) == []
                for reader in stalled:
                    answer = await closed_by_server(reader)
                    # Never upgraded once the shutdown began: 503 (or closed before answering).
                    assert b"101 Switching Protocols" not in answer, answer
                for reader in [*partial, *silent, *half_closed]:
                    await closed_by_server(reader)
                for ws in [*dropped, *live]:
                    await ws.close()

                # The restart: same port; the new emulator serves, and stops as cleanly.
                emu = await Emulator(faults=True, port=port).start()
                async with http.get(f"{emu.base_url}{CSDS}") as r:
                    assert r.status == 200
                ws = await http.ws_connect(emu.ws_base_url + CONSUMER_WS)
                await control(http, "upgrades/stall", {"count": 1})
                late = [await connect(upgrade_request()), await connect(), await connect(b"GET /")]
                await until(lambda: len(server_side(port)) >= 4, "the connections to be accepted")
                await emu.stop()
                assert server_side(port) == []
                await ws.close()
                for reader in late:
                    await closed_by_server(reader)
                gc.collect()
            assert caught == []
    finally:
        for writer in writers:
            writer.close()
        await emu.stop()


async def test_a_stalled_upgrade_is_answered_503_when_the_emulator_stops() -> None:
    async with Emulator(faults=True) as emu:
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{emu.base_url}/_emulator/upgrades/stall", json={"count": 1}) as r,
        ):
            assert r.status == 200
        reader, writer = await asyncio.open_connection("127.0.0.1", emu.port)
        writer.write(upgrade_request())
        await until(lambda: emu.ctx is not None and emu.ctx.faults.stall_upgrades == 0, "the stall")
        await emu.stop()
        answer = await closed_by_server(reader)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 503"), answer


# ---------------------------------------------------------------- slow request heads


async def test_a_request_head_trickled_in_is_answered_408_and_closed() -> None:
    async with Emulator(header_timeout=0.5) as emu:
        started = time.monotonic()  # before the connect: the server's clock starts at its accept
        reader, writer = await asyncio.open_connection("127.0.0.1", emu.port)
        head = get_request()

        async def trickle() -> None:
            for byte in head[:-2]:  # never the final CRLF
                writer.write(bytes([byte]))
                await asyncio.sleep(0.05)

        trickler = asyncio.create_task(trickle())
        try:
            answer = await closed_by_server(reader)
        finally:
            trickler.cancel()
            writer.close()
        assert time.monotonic() - started >= 0.5
        assert answer == HEAD_TIMEOUT_RESPONSE
        assert emu.listener is not None and emu.listener.head_timeouts == 1


@pytest.mark.parametrize(
    "data", [b"", b"GET /ws_api/account/12345678/messaging/consumer?v=3 HTTP/1.1\r\nUpg"]
)
async def test_a_connection_that_never_completes_a_head_is_closed(data: bytes) -> None:
    """Nothing at all, or an unfinished upgrade request."""
    async with Emulator(header_timeout=0.3) as emu:
        reader, writer = await asyncio.open_connection("127.0.0.1", emu.port)
        writer.write(data)
        answer = await closed_by_server(reader)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 408")
        await until(lambda: server_side(emu.port) == [], "the server's end to close")


async def test_a_tls_handshake_never_started_counts_against_the_header_timeout() -> None:
    async with Emulator(tls=True, header_timeout=0.3) as emu:
        reader, writer = await asyncio.open_connection("127.0.0.1", emu.port)
        await closed_by_server(reader)
        writer.close()
        await until(lambda: server_side(emu.port) == [], "the server's end to close")


@pytest.mark.parametrize("kept_alive", [False, True])
async def test_a_head_received_while_the_event_loop_was_blocked_is_not_taken_for_slow(
    kept_alive: bool,
) -> None:
    """The chaos suite's memory sampler blocks the loop for seconds: the head had arrived in
    time, but the deadline fired in the same iteration that first saw it, before aiohttp could
    dispatch it, and a complete request was answered 408."""
    async with Emulator(header_timeout=0.3) as emu:
        listener = emu.listener
        assert listener is not None
        client = socket.create_connection(("127.0.0.1", emu.port))
        try:
            client.settimeout(WAIT)
            await until(lambda: len(listener.connections) == 1, "the connection to be admitted")
            head = get_request()
            if kept_alive:
                client.sendall(head)
                await asyncio.sleep(0.5)  # answered, then idle past the header timeout
                assert read_response(client).startswith(b"HTTP/1.1 200")
                # The next head's first bytes start its clock...
                client.sendall(head[:10])
                await asyncio.sleep(0.05)
                head = head[10:]
            client.sendall(head)  # ...and the head is complete, in the kernel's buffer, when
            time.sleep(0.6)  # the event loop is blocked past the deadline  # noqa: ASYNC251
            answer = await asyncio.get_running_loop().run_in_executor(None, read_response, client)
            assert answer.startswith(b"HTTP/1.1 200"), answer
            assert listener.head_timeouts == 0
        finally:
            client.close()


async def test_requests_kept_alive_and_websockets_outlive_the_header_timeout() -> None:
    """Only an unfinished head is timed: idle time between requests of a kept-alive
    connection, a long request, a WebSocket session are not."""
    async with Emulator(header_timeout=0.3, faults=True) as emu:
        reader, writer = await asyncio.open_connection("127.0.0.1", emu.port)
        for _ in range(2):
            writer.write(get_request())
            status = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
            assert status.startswith(b"HTTP/1.1 200"), status
            length = int(status.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            await asyncio.sleep(0.8)  # idle, kept alive, well past the header timeout
        writer.close()
        async with aiohttp.ClientSession() as http:
            # A request whose handler takes longer than the header timeout.
            async with http.post(
                f"{emu.base_url}/_emulator/http",
                json={"target": "csds", "count": 1, "action": "delay", "delay": 0.8},
            ) as r:
                assert r.status == 200
            async with http.get(f"{emu.base_url}{CSDS}") as r:
                assert r.status == 200
            ws = await http.ws_connect(emu.ws_base_url + CONSUMER_WS)
            await asyncio.sleep(0.8)
            await ws.send_json({"kind": "req", "id": "1", "type": "GetClock", "body": {}})
            answer = await asyncio.wait_for(ws.receive_json(), WAIT)
            assert answer["reqId"] == "1" and answer["code"] == 200
            await ws.close()
        assert emu.listener is not None and emu.listener.head_timeouts == 0


# ---------------------------------------------------------------- the connection limit


async def test_connections_beyond_the_limit_are_refused_at_once_and_served_once_some_close() -> None:
    async with Emulator(max_connections=4, header_timeout=WAIT * 3) as emu:
        held = [await asyncio.open_connection("127.0.0.1", emu.port) for _ in range(4)]
        listener = emu.listener
        assert listener is not None
        await until(lambda: len(listener.connections) == 4, "the connections to be admitted")
        reader, writer = await asyncio.open_connection("127.0.0.1", emu.port)
        assert await closed_by_server(reader) in (REFUSED_RESPONSE, b"")
        writer.close()
        assert listener.refused == 1
        # Those already connected are still served.
        held_reader, held_writer = held[0]
        held_writer.write(get_request())
        status = await asyncio.wait_for(held_reader.readuntil(b"\r\n\r\n"), WAIT)
        assert status.startswith(b"HTTP/1.1 200")
        # Once some close, new connections are served again.
        for _, w in held[1:3]:
            w.close()
        await until(lambda: len(listener.connections) == 2, "the closed connections to be gone")
        async with aiohttp.ClientSession() as http, http.get(f"{emu.base_url}{CSDS}") as r:
            assert r.status == 200
        for _, w in held:
            w.close()


def test_the_connection_limit_keeps_descriptors_in_reserve() -> None:
    assert connection_limit(0, 1024) == 896
    assert connection_limit(0, 128) == 96
    assert connection_limit(0, 20) == 1
    assert connection_limit(0, None) > 100_000
    assert connection_limit(50, 1024) == 50
