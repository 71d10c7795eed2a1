"""One WebSocket to UMS: opened, read, written and closed -- and nothing about requests.

:class:`UmsSocket` wraps an aiohttp client WebSocket with the generation number the client
session gave it, the tasks that work on it (reader, keep-alive) and the event that marks its
loss.  The connection (:mod:`lpm.client.transport.websocket`) decides what a lost socket means.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from lpm.errors import ConnectFailedError, LimitExceededError, ProtocolError

__all__ = ["MAX_FRAME_SIZE", "UmsSocket", "UpgradeRefusedError", "cancel_and_wait", "open_ums_socket"]

log = logging.getLogger("lpm.client.transport.ums_socket")

#: Largest frame accepted from UMS by default (bytes; the ``max_frame_size`` option).
MAX_FRAME_SIZE = 16 * 1024 * 1024


class UpgradeRefusedError(ConnectFailedError):
    """The server answered the WebSocket upgrade with an HTTP error (``status``)."""


@dataclass(slots=True, eq=False)
class UmsSocket:
    """A live socket and what belongs to it."""

    generation: int
    ws: aiohttp.ClientWebSocketResponse
    #: Largest frame the reader accepts (aiohttp closes with 1009 beyond it).
    max_frame_size: int = MAX_FRAME_SIZE
    #: Its reader and keep-alive.
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    close_code: int | None = None
    #: Set once the socket is lost or dropped (a restore in progress stops at once).
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    #: The task closing it and stopping its tasks, once lost.
    closer: asyncio.Task[None] | None = None
    #: When the last frame arrived (``loop.time()``; the opening counts as one).
    last_received: float = field(default_factory=lambda: asyncio.get_running_loop().time())
    #: Since when the watchdog counts silence (moved forward after a stall of the event loop).
    counted_from: float = field(default_factory=lambda: asyncio.get_running_loop().time())
    #: Frames queued by :meth:`send_soon` for the end of this turn of the event loop, with what
    #: to call if they cannot be written.
    _batch: list[tuple[bytes, Callable[[], None], Callable[[UmsSocket], None]]] | None = None
    #: Whether :meth:`send_soon` may be used: frames are written as they are (no compression)
    #: through the aiohttp writer this module knows (None: not looked at yet).
    _batchable: bool | None = None

    @property
    def can_batch(self) -> bool:
        """Whether :meth:`send_soon` may be used (see ``_batchable``)."""
        batchable = self._batchable
        if batchable is None:
            writer = getattr(self.ws, "_writer", None)
            batchable = self._batchable = (
                writer is not None
                and not getattr(writer, "compress", 1)
                and hasattr(writer, "_write_websocket_frame")
                and hasattr(getattr(writer, "transport", None), "writelines")
            )
        return batchable

    def send_soon(
        self, data: bytes, on_unwritten: Callable[[], None], on_failed: Callable[[UmsSocket], None]
    ) -> None:
        """Write one text frame (bytes already UTF-8 JSON).  The first frame of a turn of the event
        loop is written at once (a lone request waits for nothing); the frames that follow it in
        the same turn are written together at its end, in one ``writelines``: one TLS record and
        one system call for all of them, where a write each costs both per frame (pipelined
        requests: a burst of responses wakes many callers, each writing its next request).

        If frames cannot be written, ``on_unwritten`` of each of them is called, then each
        distinct ``on_failed`` once, with this socket.  Only when :attr:`can_batch`.
        """
        frame = (data, on_unwritten, on_failed)
        batch = self._batch
        if batch is None:
            self._batch = []
            asyncio.get_running_loop().call_soon(self._flush)
            self._write([frame])
        else:
            batch.append(frame)

    def _flush(self) -> None:
        batch, self._batch = self._batch, None
        if batch:
            self._write(batch)

    def _write(self, batch: list[tuple[bytes, Callable[[], None], Callable[[UmsSocket], None]]]) -> None:
        writer: Any = self.ws._writer
        transport = writer.transport
        collector = _Collector(transport)
        try:
            if writer._closing or transport is None:
                raise aiohttp.ClientConnectionResetError("Cannot write to closing transport")
            writer.transport = collector
            try:
                for data, _, _ in batch:
                    writer._write_websocket_frame(data, aiohttp.WSMsgType.TEXT, 0)
            finally:
                writer.transport = transport
            if writer._output_size > writer._limit:
                writer._output_size = 0
            transport.writelines(collector.chunks)
        except (ConnectionError, RuntimeError, aiohttp.ClientError) as exc:
            log.debug("writing %d frame(s) to socket %s failed: %s", len(batch), self.generation, str(exc))
            failed: dict[Callable[[UmsSocket], None], None] = {}
            for _, on_unwritten, on_failed in batch:
                on_unwritten()
                failed[on_failed] = None
            for on_failed in failed:
                on_failed(self)

    async def send(self, data: bytes) -> None:
        """Write one text frame (bytes already UTF-8 JSON).  Raises what aiohttp raises on a dead
        socket (``ConnectionError``, ``RuntimeError``, ``aiohttp.ClientError``)."""
        send_frame = getattr(self.ws, "send_frame", None)
        if send_frame is not None:
            await send_frame(data, aiohttp.WSMsgType.TEXT)
        else:  # aiohttp < 3.11
            await self.ws.send_str(data.decode())

    async def read(
        self,
        on_text: Callable[[str], None],
        report_error: Callable[[BaseException], None],
        is_current: Callable[[], bool],
    ) -> int | None:
        """Hand every text frame to ``on_text`` until the socket ends; returns its close code.

        Stops at once when ``is_current()`` turns false (an abandoned socket never acts on the
        connection); a binary frame is reported, never fatal.
        """
        ws = self.ws
        clock = asyncio.get_running_loop().time
        text = aiohttp.WSMsgType.TEXT
        try:
            async for msg in ws:
                if not is_current():
                    break
                self.last_received = clock()
                if msg.type is text:
                    on_text(msg.data)
                elif msg.type is aiohttp.WSMsgType.BINARY:
                    report_error(ProtocolError("binary frame received from UMS", frame=msg.data[:200]))
                elif msg.type is aiohttp.WSMsgType.ERROR:
                    # The reader refused the server's input (too large, not UTF-8...) and closed.
                    report_error(_read_failure(msg.data, self.max_frame_size))
                    break
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never let the reader die silently
            # str(exc), not exc: a handler that keeps log records (pytest's capture, a MemoryHandler)
            # would keep the exception, its traceback's frames and the conversations they held.
            log.debug("reader of socket %s failed: %s", self.generation, str(exc))
            if is_current():
                report_error(ProtocolError(f"reading from UMS failed ({type(exc).__name__}); reconnecting"))
        return ws.close_code

    async def shut(self) -> None:
        """Stop the socket's tasks and close it (quick when the peer is already gone)."""
        tasks = [t for t in self.tasks if not t.done() and t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            # A code the server sent (4401...) is not ours to echo: close normally.
            await asyncio.wait_for(self.ws.close(code=1000), 5)
        await cancel_and_wait(*tasks)


class _Collector:
    """Stands in for the transport while the aiohttp writer frames a batch: keeps the bytes."""

    __slots__ = ("chunks", "transport")

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.chunks: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.chunks.append(data)

    def is_closing(self) -> bool:
        return bool(self.transport.is_closing())


async def open_ums_socket(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    *,
    generation: Callable[[], int],
    ssl: Any,
    timeout: float,
    max_frame_size: int = MAX_FRAME_SIZE,
    compression: bool = False,
) -> UmsSocket:
    """Open a socket (the upgrade bounded by ``timeout`` seconds) numbered by ``generation()``.

    ``compression`` offers permessage-deflate (the largest window, 2**15); frames are compressed
    only if the server accepts (aiohttp then inflates and deflates every frame itself).

    Raises :class:`UpgradeRefusedError` when the upgrade is answered with an HTTP error and
    :class:`~lpm.errors.ConnectFailedError` for a timeout or a network error.  No message
    quotes the URL: the brand URL carries the bearer.
    """
    failure: ConnectFailedError
    try:
        # The handshake is bounded: a server that accepts TCP/TLS but never answers the
        # upgrade must not leave the connection CONNECTING forever (peer study, issue #135).
        async with asyncio.timeout(timeout):
            ws = await session.ws_connect(
                url,
                headers=headers,
                ssl=ssl,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0),
                autoping=True,
                heartbeat=None,
                max_msg_size=max_frame_size,
                compress=15 if compression else 0,
            )
    except TimeoutError:
        failure = ConnectFailedError(f"the WebSocket upgrade did not complete within {timeout:g} s")
    except aiohttp.WSServerHandshakeError as exc:
        failure = UpgradeRefusedError(f"WebSocket upgrade failed with HTTP {exc.status}", status=exc.status)
    except (aiohttp.ClientError, OSError) as exc:
        detail = f": {exc.strerror}" if isinstance(exc, OSError) and exc.strerror else ""
        failure = ConnectFailedError(f"error opening the WebSocket connection: {type(exc).__name__}{detail}")
    else:
        return UmsSocket(generation(), ws, max_frame_size)
    # Raised here, outside the ``except`` blocks, so that aiohttp's error is not even the
    # *context* of ours: its text quotes the URL, and the brand URL carries the bearer.
    raise failure


def _read_failure(error: object, max_frame_size: int) -> ProtocolError:
    """The error of an ``ERROR`` message of aiohttp's reader, as the SDK reports it (1009: a
    frame larger than ``max_frame_size``; 1007: a text frame that is not UTF-8)."""
    code = error.code if isinstance(error, aiohttp.WebSocketError) else None
    if code == 1009:
        return LimitExceededError(
            f"UMS sent a frame larger than max_frame_size ({max_frame_size} bytes); socket closed",
            limit="max_frame_size",
        )
    if code is not None:
        return ProtocolError(f"UMS sent an invalid frame; socket closed with {code}")
    return ProtocolError(f"reading from UMS failed: {type(error).__name__}")


async def cancel_and_wait(*tasks: asyncio.Future[Any] | None) -> None:
    """Cancel tasks and wait until they have finished unwinding (their outcome no longer matters)."""
    live = [t for t in tasks if t is not None and not t.done()]
    for task in live:
        task.cancel()
    for task in live:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
