"""The emulator's accept layer: its listening sockets, its accept loop, and every connection it
accepted, from ``accept()`` to ``close()``.  aiohttp parses and answers the requests; this module
owns the sockets underneath it (see docs/emulator.md, "Connections and limits").

Why not aiohttp's ``TCPSite`` (an ``asyncio.Server``):

* **A shutdown must close every accepted socket.**  ``asyncio.Server`` accepts in one loop
  iteration and builds the transport in a task that runs in the next.  A ``Server.close()`` in
  between (a stop, or a restart under a reconnect storm) makes that construction fail on
  ``assert self._sockets is not None`` in ``Server._attach`` -- silently outside debug mode -- and
  the accepted socket stays open until the garbage collector finds it (``ResourceWarning:
  unclosed transport``; CPython gh-109564, not fixed in 3.11).  Here the accept loop hands each
  socket over itself, and :meth:`Listener.close_all` closes whatever it holds at any stage.
* **Running out of file descriptors must not stop the server.**  Connections beyond
  :attr:`Listener.max_connections` (derived from the open-file limit) are answered 503 and closed
  at once, keeping descriptors in reserve for the database, logs and webhooks.  Should
  ``accept()`` still fail with EMFILE (descriptors used elsewhere in the process), the waiting
  clients are refused with a spare descriptor kept for that (the way libuv does it), the loop
  retries every :data:`RESOURCE_RETRY` seconds (no busy loop), and the warning is rate-limited
  and logged without a traceback: asyncio's own handling logs one through the loop's exception
  handler, and a logging handler that needs a descriptor to format it (an import, a file) raised
  out of the event loop and ended the process.
* **Slow request heads are timed out** (slowloris).  aiohttp has no header timeout (its
  keep-alive timer only closes idle connections, after an hour by default): each
  :class:`Connection` must deliver a complete request head within ``header_timeout`` seconds --
  counted from the accept for the first request (a TLS handshake included) and from the first
  byte of each later one on a kept-alive connection, plus a short grace (:data:`HEAD_GRACE`) --
  or it is answered 408 and closed.  A head is complete when the application's handler starts
  (``app.py`` calls :meth:`Connection.request_started` from its outermost middleware), so no
  HTTP is parsed here.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import math
import os
import socket
import ssl
import sys
from collections.abc import Callable
from typing import Final

log = logging.getLogger(__name__)

try:
    import resource
except ImportError:  # pragma: no cover - Windows has no RLIMIT_NOFILE
    resource = None  # type: ignore[assignment]

#: ``accept()`` errors that mean "out of descriptors or memory": not the waiting client's fault.
_RESOURCE_ERRNOS: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
#: ``accept()`` errors of one client that left (or was filtered) before it was accepted.
_CLIENT_ERRNOS: Final = frozenset(
    code
    for code in (
        errno.ECONNABORTED,
        errno.ECONNRESET,
        errno.EPERM,
        getattr(errno, "EPROTO", None),
        errno.EAGAIN,
        errno.EINTR,
    )
    if code is not None
)

#: Seconds between accept attempts while the process is out of descriptors.
RESOURCE_RETRY: Final = 0.1
#: At most one "out of descriptors" / "at the connection limit" warning per this many seconds.
WARNING_INTERVAL: Final = 10.0
#: Descriptors kept free when the connection limit is derived from the open-file limit: at least
#: this many, and at least an eighth of the limit (the database, logs, webhook deliveries, file
#: uploads, the event loop's own).
MIN_RESERVE: Final = 32
#: The connection limit when the open-file limit is unlimited or unknown.
UNLIMITED_CONNECTIONS: Final = 1 << 20
#: Pending connections the kernel queues before ``accept()`` (it caps it at ``somaxconn``).
BACKLOG: Final = 1024
#: Seconds a connection gets after its head deadline before it is closed: a head that arrived
#: while the event loop was busy (a long garbage collection, a blocking call of an embedded
#: emulator's host) is dispatched only a few iterations later, and must not be taken for slow.
HEAD_GRACE: Final = 0.5
#: How many times a head deadline is pushed back because the event loop itself was late.
_MAX_EXTENSIONS: Final = 3


def _response(status: str, body: bytes, extra: str = "") -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n"
    )
    return head.encode() + body


#: What a connection refused at the limit reads (written before any request: it is all the
#: client gets; a plain-HTTP client reports the status, others a closed connection).
REFUSED_RESPONSE: Final = _response(
    "503 Service Unavailable", b"emulator at its connection limit; retry\n", "Retry-After: 1\r\n"
)
#: What a connection that did not complete its request head in time reads.
HEAD_TIMEOUT_RESPONSE: Final = _response("408 Request Timeout", b"request head not received in time\n")


# ---------------------------------------------------------------- open-file limit


def open_file_limit() -> int | None:
    """The soft ``RLIMIT_NOFILE`` of this process (None: unlimited, or no such limit here)."""
    if resource is None:  # pragma: no cover - Windows
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


def raise_open_file_limit() -> tuple[int, int] | None:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit; return ``(before, after)``.

    The limit belongs to the process, so only its owner should raise it: ``lpm emulator`` does at
    start.  An embedded :class:`~lpm.emulator.Emulator` leaves its host's limit alone (code of the
    host that uses ``select()`` breaks on descriptors above 1023, and child processes inherit the
    limit) and derives its connection limit from whatever the limit is.  None when there is no
    such limit (Windows) or it cannot be changed.
    """
    if resource is None:  # pragma: no cover - Windows
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard:
        return soft, soft
    # macOS refuses "unlimited", and soft limits above OPEN_MAX (10240): fall back to those.
    if hard == resource.RLIM_INFINITY:
        targets = [UNLIMITED_CONNECTIONS, 10240]
    else:
        targets = [hard, *([10240] if hard > 10240 else [])]
    for target in (t for t in targets if t > soft):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            continue
        return soft, target
    return soft, soft


def connection_limit(max_connections: int, soft_limit: int | None) -> int:
    """How many connections a listener serves at once: ``max_connections`` when set (> 0), else
    the open-file limit minus a reserve of ``max(MIN_RESERVE, limit // 8)`` descriptors."""
    if max_connections > 0:
        return max_connections
    if soft_limit is None:
        return UNLIMITED_CONNECTIONS
    return max(1, soft_limit - max(MIN_RESERVE, soft_limit // 8))


# ---------------------------------------------------------------- one connection


class Connection(asyncio.Protocol):
    """One accepted connection: hands every event to aiohttp's protocol (created only once the
    connection is admitted) and closes the connection if a request head is not complete in time.
    """

    def __init__(self, listener: Listener, accepted_at: float) -> None:
        self._listener = listener
        self._accepted_at = accepted_at
        self.transport: asyncio.Transport | None = None
        self._inner: asyncio.Protocol | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._deadline_at = 0.0
        self._extensions = 0
        #: Requests whose handler is running (a WebSocket's lasts as long as the socket).
        self._requests = 0
        #: True once the connection was closed for a request head not received in time.
        self.head_timed_out = False

    @staticmethod
    def of(transport: asyncio.BaseTransport | None) -> Connection | None:
        """The connection a request arrived on (None: not accepted by a :class:`Listener`)."""
        protocol = transport.get_protocol() if transport is not None else None
        return protocol if isinstance(protocol, Connection) else None

    # -------------------------------------------------------------- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        listener = self._listener
        if listener.closing:
            # Accepted just before the listener began to close: never reaches aiohttp.
            transport.abort()
            return
        listener.connections.add(self)
        self._inner = listener.protocol_factory()
        self._inner.connection_made(transport)
        self._arm(self._accepted_at + listener.header_timeout)

    def data_received(self, data: bytes) -> None:
        if self._inner is None:
            return
        if self._requests == 0 and self._deadline is None:
            # The first byte of the next request head (between requests, a kept-alive connection
            # is idle, which aiohttp's keep-alive timeout bounds): the head's clock starts.
            loop = asyncio.get_running_loop()
            self._arm(loop.time() + self._listener.header_timeout)
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._listener.forget(self)
        inner, self._inner = self._inner, None
        self.transport = None
        if inner is not None:
            inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    # -------------------------------------------------------------- request phases

    def request_started(self) -> None:
        """A request head is complete: its handler starts (the head's clock stops)."""
        self._requests += 1
        self._disarm()

    def request_finished(self) -> None:
        """The handler of a request returned."""
        self._requests = max(0, self._requests - 1)

    def abort(self) -> None:
        """Drop the connection now (nothing queued is written)."""
        if self.transport is not None:
            self.transport.abort()

    # -------------------------------------------------------------- the head's clock

    def _arm(self, when: float, *, extension: bool = False) -> None:
        self._disarm()
        if not extension:
            self._extensions = 0  # a new head
        self._deadline_at = when
        self._deadline = asyncio.get_running_loop().call_at(when, self._head_timed_out)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _head_timed_out(self) -> None:
        self._deadline = None
        transport = self.transport
        if transport is None or transport.is_closing() or self._requests:
            return
        # What the server was too busy to look at is not the client's delay: a head received
        # before the deadline is dispatched a few loop iterations later (the grace), and time the
        # loop lost past the deadline (this call being late) is given back.
        now = asyncio.get_running_loop().time()
        late = now - self._deadline_at
        if self._extensions == 0 or (late > HEAD_GRACE and self._extensions < _MAX_EXTENSIONS):
            self._extensions += 1
            self._arm(now + max(HEAD_GRACE, late), extension=True)
            return
        self.head_timed_out = True
        self._listener.head_timeouts += 1
        log.debug(
            "closing %s: no complete request head within %.1f s",
            transport.get_extra_info("peername"),
            self._listener.header_timeout,
        )
        if transport.get_write_buffer_size():
            # Still writing an earlier response the client does not read: do not wait for it.
            transport.abort()
        else:
            transport.write(HEAD_TIMEOUT_RESPONSE)
            transport.close()


# ---------------------------------------------------------------- the listener


class Listener:
    """Listening sockets and an accept loop serving ``protocol_factory`` (aiohttp's server).

    ``header_timeout``: seconds a connection has to deliver each complete request head (see the
    module docstring); ``max_connections``: connections served at once (0: derived from the
    open-file limit, see :func:`connection_limit`); ``ssl_context``: serve TLS (the handshake
    counts against the first head's time).
    """

    def __init__(
        self,
        protocol_factory: Callable[[], asyncio.Protocol],
        *,
        header_timeout: float,
        max_connections: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        backlog: int = BACKLOG,
    ) -> None:
        if not header_timeout > 0 or math.isinf(header_timeout):
            raise ValueError(f"header_timeout must be a positive number of seconds, not {header_timeout!r}")
        if max_connections < 0:
            raise ValueError(f"max_connections must be 0 (automatic) or more, not {max_connections!r}")
        self.protocol_factory = protocol_factory
        self.header_timeout = float(header_timeout)
        #: Connections served at once; beyond it new ones are refused (503) and closed at once.
        self.max_connections = connection_limit(max_connections, open_file_limit())
        self._ssl = ssl_context
        self._backlog = backlog
        #: Admitted connections still open.
        self.connections: set[Connection] = set()
        #: Set once the listener stopped accepting: connections still being handed over are closed.
        self.closing = False
        #: Connections refused at the limit (closed at once), and closed for a slow head.
        self.refused = 0
        self.head_timeouts = 0
        self._sockets: list[socket.socket] = []
        self._accepting: list[asyncio.Task[None]] = []
        #: Sockets accepted and not yet handed to a transport, by the task handing them over.
        self._handoffs: dict[asyncio.Task[None], socket.socket] = {}
        self._unstarted: set[socket.socket] = set()
        self._spare: int | None = None
        self._drained = asyncio.Event()
        self._last_warning = -math.inf

    @property
    def port(self) -> int:
        """The bound port (0 before :meth:`start`)."""
        return int(self._sockets[0].getsockname()[1]) if self._sockets else 0

    @property
    def open_connections(self) -> int:
        """Connections admitted or being handed over, not yet closed."""
        return len(self.connections) + len(self._handoffs)

    # -------------------------------------------------------------- start

    async def start(self, host: str, port: int) -> None:
        """Bind every address ``host`` resolves to (on one port) and start accepting.

        Raises ``OSError`` (with the errno, e.g. EADDRINUSE) when an address cannot be bound.
        """
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        seen: set[tuple[int, object]] = set()
        try:
            for family, kind, proto, _, address in infos:
                if (family, address) in seen:
                    continue
                seen.add((family, address))
                if port == 0 and self._sockets:
                    # One port for every address: clients are given a single host:port.
                    address = (address[0], self.port, *address[2:])
                self._sockets.append(self._bind(family, kind, proto, address))
        except BaseException:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()
            raise
        self._spare = _open_spare()
        for sock in self._sockets:
            self._accepting.append(
                loop.create_task(self._accept_loop(sock), name=f"lpm-emulator-accept-{self.port}")
            )

    def _bind(self, family: int, kind: int, proto: int, address: tuple[object, ...]) -> socket.socket:
        sock = socket.socket(family, kind, proto)
        try:
            if os.name == "posix" and sys.platform != "cygwin":
                # Restart on the same port at once, as asyncio's create_server does.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                raise OSError(
                    exc.errno, f"error while attempting to bind on address {address!r}: {exc.strerror}"
                ) from None
            sock.listen(self._backlog)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    # -------------------------------------------------------------- accepting

    async def _accept_loop(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = await loop.sock_accept(sock)
            except OSError as exc:
                if exc.errno in _RESOURCE_ERRNOS:
                    self._shed(sock, exc)
                    await asyncio.sleep(RESOURCE_RETRY)
                elif exc.errno not in _CLIENT_ERRNOS:
                    self._warn("accept() failed on port %s: %s", self.port, str(exc))
                    await asyncio.sleep(RESOURCE_RETRY)
                continue
            self._admit(conn)
            # A storm of connections must not starve everything else of the loop.
            await asyncio.sleep(0)

    def _admit(self, conn: socket.socket) -> None:
        if self.closing or self.open_connections >= self.max_connections:
            self._refuse(conn)
            if not self.closing:
                self._warn(
                    "refusing connections: %d open, the limit is %d (max_connections; raise it, or "
                    "the open-file limit `ulimit -n`)",
                    self.open_connections,
                    self.max_connections,
                )
            return
        loop = asyncio.get_running_loop()
        self._unstarted.add(conn)
        task = loop.create_task(self._hand_over(conn, loop.time()))
        self._handoffs[task] = conn
        task.add_done_callback(self._handed_over)

    async def _hand_over(self, conn: socket.socket, accepted_at: float) -> None:
        self._unstarted.discard(conn)
        loop = asyncio.get_running_loop()
        try:
            await loop.connect_accepted_socket(
                lambda: Connection(self, accepted_at),
                conn,
                ssl=self._ssl,
                ssl_handshake_timeout=self.header_timeout if self._ssl is not None else None,
            )
        except Exception as exc:
            # A failed (or too slow) TLS handshake: asyncio aborted the transport already, whose
            # socket closes in a callback queued before this one.  Should the transport not
            # have been built at all, the socket is still open: close it.
            log.debug("connection not established: %s", repr(exc))
            loop.call_soon(conn.close)

    def _handed_over(self, task: asyncio.Task[None]) -> None:
        self._handoffs.pop(task, None)
        self._check_drained()

    def _refuse(self, conn: socket.socket) -> None:
        """Answer 503 (plain HTTP only: a TLS client cannot read it) and close at once."""
        self.refused += 1
        with contextlib.suppress(OSError):
            conn.setblocking(False)
            if self._ssl is None:
                conn.send(REFUSED_RESPONSE)
        conn.close()

    def _shed(self, sock: socket.socket, exc: OSError) -> None:
        """Out of descriptors: refuse the clients waiting in the backlog now (rather than leave
        them hanging), using the spare descriptor kept for that, then keep the spare again."""
        if self._spare is not None:
            os.close(self._spare)
            self._spare = None
        shed = 0
        while shed < self._backlog:
            try:
                conn, _ = sock.accept()
            except OSError:
                break
            self._refuse(conn)
            shed += 1
        self._spare = _open_spare()
        self._warn(
            "out of file descriptors (%s): %d connection(s) refused; %d open (limit %d); raise the "
            "open-file limit (`ulimit -n`)",
            exc.strerror or exc,
            shed,
            self.open_connections,
            self.max_connections,
        )

    def _warn(self, message: str, *args: object) -> None:
        """Log a warning at most once per :data:`WARNING_INTERVAL`, and never fail: at the
        descriptor limit a handler may need one to format or write the record."""
        now = asyncio.get_running_loop().time()
        if now - self._last_warning < WARNING_INTERVAL:
            return
        self._last_warning = now
        try:
            log.warning(message, *args)
        except Exception:
            with contextlib.suppress(Exception):
                os.write(2, f"lpm emulator: {message % args}\n".encode(errors="replace"))

    # -------------------------------------------------------------- closing

    def forget(self, conn: Connection) -> None:
        """``conn`` is closed (called from its ``connection_lost``)."""
        self.connections.discard(conn)
        self._check_drained()

    def _check_drained(self) -> None:
        if self.closing and not self.connections and not self._handoffs:
            self._drained.set()

    async def stop_accepting(self) -> None:
        """Close the listening sockets; connections accepted from now on are closed at once,
        those being handed over never reach aiohttp.  Idempotent."""
        self.closing = True
        for task in self._accepting:
            task.cancel()
        if self._accepting:
            await asyncio.gather(*self._accepting, return_exceptions=True)
            self._accepting.clear()
        for sock in self._sockets:
            sock.close()
        self._sockets.clear()
        if self._spare is not None:
            os.close(self._spare)
            self._spare = None

    async def close_all(self, timeout: float = 5.0) -> None:
        """Stop accepting, drop every connection still open (the graceful part -- close frames,
        answers in flight -- is aiohttp's and the emulator's, before this) and wait until their
        sockets are closed.  Idempotent."""
        await self.stop_accepting()
        handoffs = list(self._handoffs)
        for task in handoffs:
            task.cancel()
        if handoffs:
            await asyncio.gather(*handoffs, return_exceptions=True)
        # A task cancelled before its first step never ran: its socket is still ours to close.
        for conn in self._unstarted:
            conn.close()
        self._unstarted.clear()
        for connection in list(self.connections):
            connection.abort()
        self._check_drained()
        # Each transport closes its socket in a callback on the next loop iteration.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained.wait(), timeout)


def _open_spare() -> int | None:
    """A descriptor held in reserve, closed to accept (and refuse) clients when none is left."""
    try:
        return os.open(os.devnull, os.O_RDONLY)
    except OSError:
        return None
