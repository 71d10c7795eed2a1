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

from lpm.errors import ConnectFailedError, ProtocolError

__all__ = ["MAX_FRAME_SIZE", "UmsSocket", "UpgradeRefusedError", "cancel_and_wait", "open_ums_socket"]

log = logging.getLogger("lpm.client.transport.ums_socket")

#: Largest frame accepted from UMS (bytes).
MAX_FRAME_SIZE = 64 * 1024 * 1024


class UpgradeRefusedError(ConnectFailedError):
    """The server answered the WebSocket upgrade with an HTTP error (``status``)."""


@dataclass(slots=True, eq=False)
class UmsSocket:
    """A live socket and what belongs to it."""

    generation: int
    ws: aiohttp.ClientWebSocketResponse
    #: Its reader and keep-alive.
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    close_code: int | None = None
    #: Set once the socket is lost or dropped (a restore in progress stops at once).
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    #: The task closing it and stopping its tasks, once lost.
    closer: asyncio.Task[None] | None = None

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
        try:
            async for msg in ws:
                if not is_current():
                    break
                if msg.type is aiohttp.WSMsgType.TEXT:
                    on_text(msg.data)
                elif msg.type is aiohttp.WSMsgType.BINARY:
                    report_error(ProtocolError("binary frame received from UMS", frame=msg.data[:200]))
                elif msg.type is aiohttp.WSMsgType.ERROR:
                    break
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never let the reader die silently
            # str(exc), not exc: a handler that keeps log records (pytest's capture, a MemoryHandler)
            # would keep the exception, its traceback's frames and the conversations they held.
            log.debug("reader of socket %s failed: %s", self.generation, str(exc))
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


async def open_ums_socket(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    *,
    generation: Callable[[], int],
    ssl: Any,
    timeout: float,
) -> UmsSocket:
    """Open a socket (the upgrade bounded by ``timeout`` seconds) numbered by ``generation()``.

    Raises :class:`UpgradeRefusedError` when the upgrade is answered with an HTTP error and
    :class:`~lpm.errors.ConnectFailedError` for a timeout or a network error.  No message
    quotes the URL: the brand URL carries the bearer.
    """
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
                max_msg_size=MAX_FRAME_SIZE,
                compress=0,
            )
    except TimeoutError:
        raise ConnectFailedError(f"the WebSocket upgrade did not complete within {timeout:g} s") from None
    except aiohttp.WSServerHandshakeError as exc:
        raise UpgradeRefusedError(
            f"WebSocket upgrade failed with HTTP {exc.status}", status=exc.status
        ) from None
    except (aiohttp.ClientError, OSError) as exc:
        detail = f": {exc.strerror}" if isinstance(exc, OSError) and exc.strerror else ""
        raise ConnectFailedError(
            f"error opening the WebSocket connection: {type(exc).__name__}{detail}"
        ) from None
    return UmsSocket(generation(), ws)


async def cancel_and_wait(*tasks: asyncio.Future[Any] | None) -> None:
    """Cancel tasks and wait until they have finished unwinding (their outcome no longer matters)."""
    live = [t for t in tasks if t is not None and not t.done()]
    for task in live:
        task.cancel()
    for task in live:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
