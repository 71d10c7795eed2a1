"""A misbehaving TCP proxy for resilience tests: what networks do to long-lived sockets.

:class:`TcpProxy` listens on loopback and forwards every connection to an upstream address.
Its behaviour can be switched at any time, for the connections already open and for new ones:

* ``blackhole()``: bytes are read and thrown away in both directions, and nothing is closed --
  what a NAT or a load balancer that forgot a connection does (no FIN, no RST).  ``heal()``
  lets *new* connections through again; a blackholed connection stays dead, as it would.
* ``refuse_upgrades()``: new connections are accepted and read, but never answered -- a server
  that accepts TCP and then hangs.
* ``truncate(after)``: each connection forwards ``after`` more bytes from the server, then is
  aborted mid-stream (RST).

Nothing here is specific to HTTP or WebSockets; it sees bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from dataclasses import dataclass, field

__all__ = ["Mode", "TcpProxy"]

_CHUNK = 64 * 1024


class Mode(enum.Enum):
    """What the proxy does with the connections it accepts."""

    PASS = "pass"
    BLACKHOLE = "blackhole"
    NO_ANSWER = "no-answer"
    TRUNCATE = "truncate"


@dataclass(eq=False)
class _Link:
    """One proxied connection."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    blackholed: bool = False
    #: Bytes from the server still forwarded before the link is aborted (None: no limit).
    budget: int | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class TcpProxy:
    """A TCP proxy from ``127.0.0.1:<port>`` to ``upstream_host:upstream_port``."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.mode = Mode.PASS
        self._truncate_after = 0
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        #: Connections accepted so far (a reconnecting client opens new ones).
        self.accepted = 0

    @property
    def port(self) -> int:
        """The port the proxy listens on."""
        assert self._server is not None, "start() first"
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``: a ``host[:port]`` for the SDK's ``domains`` option."""
        return f"127.0.0.1:{self.port}"

    async def start(self) -> TcpProxy:
        """Listen on a free loopback port."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def close(self) -> None:
        """Stop listening and abort every connection."""
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            self._abort(link)
        tasks = [t for link in self._links for t in link.tasks]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._links.clear()
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> TcpProxy:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---------------------------------------------------------------- switches

    def blackhole(self) -> None:
        """Every open connection and every new one goes silent (nothing forwarded, nothing closed)."""
        self.mode = Mode.BLACKHOLE
        for link in self._links:
            link.blackholed = True

    def blackhole_open_connections(self) -> None:
        """The connections open now go silent; new ones are forwarded."""
        for link in self._links:
            link.blackholed = True

    def refuse_upgrades(self) -> None:
        """New connections are accepted and never answered."""
        self.mode = Mode.NO_ANSWER

    def truncate(self, after: int) -> None:
        """Every connection (open or new) forwards ``after`` more bytes from the server, then is
        aborted."""
        self.mode = Mode.TRUNCATE
        self._truncate_after = after
        for link in self._links:
            link.budget = after

    def heal(self) -> None:
        """New connections are forwarded again (silenced ones stay silent)."""
        self.mode = Mode.PASS

    # ---------------------------------------------------------------- forwarding

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        link = _Link(client=writer)
        self._links.add(link)
        try:
            if self.mode is Mode.NO_ANSWER or self.mode is Mode.BLACKHOLE:
                link.blackholed = True
                await self._swallow(reader)
                return
            up_reader, up_writer = await asyncio.open_connection(self.upstream_host, self.upstream_port)
            link.upstream = up_writer
            if self.mode is Mode.TRUNCATE:
                link.budget = self._truncate_after
            link.tasks = [
                asyncio.create_task(self._pump(reader, up_writer, link, from_server=False)),
                asyncio.create_task(self._pump(up_reader, writer, link, from_server=True)),
            ]
            await asyncio.gather(*link.tasks, return_exceptions=True)
        except OSError:
            pass
        finally:
            self._abort(link)
            self._links.discard(link)

    @staticmethod
    async def _swallow(reader: asyncio.StreamReader) -> None:
        while await reader.read(_CHUNK):
            pass

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: _Link, *, from_server: bool
    ) -> None:
        while True:
            data = await reader.read(_CHUNK)
            if not data:
                if not link.blackholed:
                    with contextlib.suppress(OSError):
                        writer.write_eof()
                if link.blackholed:
                    await asyncio.Event().wait()  # a blackhole never reports the end either
                return
            if link.blackholed:
                continue
            if from_server and link.budget is not None:
                if len(data) >= link.budget:
                    writer.write(data[: link.budget])
                    with contextlib.suppress(OSError):
                        await writer.drain()
                    self._abort(link)
                    return
                link.budget -= len(data)
            writer.write(data)
            with contextlib.suppress(OSError):
                await writer.drain()

    @staticmethod
    def _abort(link: _Link) -> None:
        for writer in (link.client, link.upstream):
            if writer is not None and not writer.is_closing():
                writer.transport.abort()
