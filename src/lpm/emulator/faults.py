"""Fault injection: the state behind the ``/_emulator`` control API.

Faults are armed by HTTP calls (see :mod:`lpm.emulator.control`) and consumed by the faces:
the WebSocket request loop asks :meth:`Faults.next_ws_request` before handling each request,
the HTTP middleware asks :meth:`Faults.next_http` for login/refresh/IdP calls, and the WebSocket
upgrade waits while ``stall_upgrades`` is set.  When the emulator stops (:meth:`Faults.shut_down`)
stalled upgrades are answered 503 instead of being let through.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import web


@dataclass(slots=True)
class RequestFault:
    """What to do to the next ``count`` requests."""

    count: int
    #: "delay" (answer late), "refuse" (answer with ``status``), "drop" (never answer).
    action: str
    delay: float = 0.0
    status: int = 503


@dataclass(slots=True)
class Faults:
    enabled: bool = False
    ws: list[RequestFault] = field(default_factory=list)
    #: HTTP faults by target: "login", "refresh", "idp", "csds", "any".
    http: dict[str, list[RequestFault]] = field(default_factory=dict)
    stall_upgrades: int = 0
    #: Set when the emulator stops: no upgrade goes through any more.
    closed: bool = False
    _stall_release: asyncio.Event | None = None

    def next_ws_request(self) -> RequestFault | None:
        return self._take(self.ws)

    def next_http(self, target: str) -> RequestFault | None:
        return self._take(self.http.get(target, [])) or self._take(self.http.get("any", []))

    @staticmethod
    def _take(queue: list[RequestFault]) -> RequestFault | None:
        while queue:
            head = queue[0]
            if head.count <= 0:
                queue.pop(0)
                continue
            head.count -= 1
            if head.count == 0:
                queue.pop(0)
            return head
        return None

    async def wait_upgrade(self) -> None:
        """Hold a WebSocket upgrade while stalls are armed (released by :meth:`release`).

        Raises ``HTTPServiceUnavailable`` (503) once the emulator is stopping: an upgrade held
        until then must not become a session the shutdown has already passed by.
        """
        if not self.closed and self.stall_upgrades > 0:
            self.stall_upgrades -= 1
            if self._stall_release is None:
                self._stall_release = asyncio.Event()
            await self._stall_release.wait()
        if self.closed:
            raise web.HTTPServiceUnavailable(text="emulator shutting down")

    def release(self) -> None:
        if self._stall_release is not None:
            self._stall_release.set()
            self._stall_release = None

    def reset(self) -> None:
        self.ws.clear()
        self.http.clear()
        self.stall_upgrades = 0
        self.release()

    def shut_down(self) -> None:
        """The emulator is stopping: disarm everything, answer stalled upgrades 503."""
        self.closed = True
        self.reset()
