"""Frames written in one turn of the event loop go out together (UmsSocket.send_soon): the first
at once, the others in one ``writelines`` at the end of the turn (one TLS record, one system
call) instead of a write each, in order, each frame a valid masked client frame; a batch that
cannot be written reports every frame unwritten first, then the socket's failure once."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import aiohttp
import pytest
from aiohttp._websocket.writer import WebSocketWriter

from lpm.client.transport.ums_socket import UmsSocket


class FakeTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.writelines_calls: list[list[bytes]] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def writelines(self, chunks: list[bytes]) -> None:
        self.writelines_calls.append([bytes(c) for c in chunks])

    def is_closing(self) -> bool:
        return self.closing


class FakeProtocol:
    _paused = False


class FakeWs:
    def __init__(self, transport: FakeTransport, compress: int = 0) -> None:
        self._writer = WebSocketWriter(FakeProtocol(), transport, use_mask=True, compress=compress)  # type: ignore[arg-type]

    async def send_frame(self, data: bytes, opcode: Any) -> None:
        await self._writer.send_frame(data, opcode)


def unmask(stream: bytes) -> list[bytes]:
    """The payloads of the masked text frames in ``stream``."""
    out = []
    i = 0
    while i < len(stream):
        first, second = stream[i], stream[i + 1]
        assert first == 0x81 and second & 0x80  # FIN + TEXT, masked
        length, i = second & 0x7F, i + 2
        if length == 126:
            (length,), i = struct.unpack("!H", stream[i : i + 2]), i + 2
        elif length == 127:
            (length,), i = struct.unpack("!Q", stream[i : i + 8]), i + 8
        mask, i = stream[i : i + 4], i + 4
        out.append(bytes(b ^ mask[k % 4] for k, b in enumerate(stream[i : i + length])))
        i += length
    return out


async def test_frames_of_one_turn_are_written_together_in_order() -> None:
    transport = FakeTransport()
    sock = UmsSocket(1, FakeWs(transport))  # type: ignore[arg-type]
    assert sock.can_batch
    failed: list[Any] = []
    frames = [b'{"n":%d}' % i for i in range(5)] + [b"x" * 70_000]
    for data in frames:
        sock.send_soon(data, lambda: failed.append("unwritten"), failed.append)
    # the first at once (a lone request waits for nothing), the others at the end of the turn
    assert len(transport.writelines_calls) == 1
    await asyncio.sleep(0)
    assert len(transport.writelines_calls) == 2 and transport.writes == []
    assert [unmask(b"".join(chunks)) for chunks in transport.writelines_calls] == [frames[:1], frames[1:]]
    sock.send_soon(b"next", lambda: None, failed.append)
    assert len(transport.writelines_calls) == 3
    await asyncio.sleep(0)
    assert len(transport.writelines_calls) == 3 and failed == []


async def test_a_batch_that_cannot_be_written_is_reported_unwritten_then_failed_once() -> None:
    transport = FakeTransport()
    sock = UmsSocket(1, FakeWs(transport))  # type: ignore[arg-type]
    events: list[str] = []

    def on_failed(failed_sock: UmsSocket) -> None:
        assert failed_sock is sock
        events.append("failed")

    sock.send_soon(b"{}", lambda: events.append("unwritten 0"), on_failed)
    transport.closing = True
    for i in range(1, 4):
        sock.send_soon(b"{}", lambda i=i: events.append(f"unwritten {i}"), on_failed)
    await asyncio.sleep(0)
    assert events == ["unwritten 1", "unwritten 2", "unwritten 3", "failed"]
    assert len(transport.writelines_calls) == 1  # the first frame, before the socket closed
    sock.send_soon(b"{}", lambda: events.append("unwritten 4"), on_failed)
    assert events[-2:] == ["unwritten 4", "failed"]


@pytest.mark.parametrize("compress", [15])
async def test_a_compressing_socket_writes_each_frame_itself(compress: int) -> None:
    sock = UmsSocket(1, FakeWs(FakeTransport(), compress=compress))  # type: ignore[arg-type]
    assert not sock.can_batch


async def test_a_socket_without_the_known_writer_writes_each_frame_itself() -> None:
    class Other:
        async def send_frame(self, data: bytes, opcode: aiohttp.WSMsgType) -> None: ...

    assert not UmsSocket(1, Other()).can_batch  # type: ignore[arg-type]
