"""Raw-protocol helpers for tests: log in, get consumer tokens, and drive sockets frame by frame.

These speak the wire protocol directly (no SDK), so emulator tests do not depend on the SDK.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from lpm.emulator.app import Emulator

ACCOUNT = "12345678"
TIMEOUT = 10.0


async def until(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    """Wait until ``condition()`` holds (polled), failing with ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def login(
    http: aiohttp.ClientSession, emu: Emulator, username: str = "agent", password: str | None = None
) -> dict[str, Any]:
    """agentVep login; returns the JSON body (``bearer``, ``csrf``, ``config``...)."""
    password = password or f"{username}-password"
    async with http.post(
        f"{emu.base_url}/api/account/{emu.account_id}/login?v=1.3",
        json={"username": username, "password": password},
    ) as resp:
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
        return body


async def signup(http: aiohttp.ClientSession, emu: Emulator) -> str:
    """An anonymous consumer JWT from the IdP ``signup`` endpoint."""
    async with http.post(f"{emu.base_url}/api/account/{emu.account_id}/signup") as resp:
        assert resp.status == 200, await resp.text()
        jwt: str = (await resp.json())["jwt"]
        return jwt


class RawSocket:
    """A WebSocket speaking raw UMS frames; notifications are queued for :meth:`notification`."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self.notifications: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.close_code: int | None = None
        self.closed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def brand(cls, http: aiohttp.ClientSession, emu: Emulator, bearer: str) -> RawSocket:
        ws = await http.ws_connect(
            f"{emu.ws_base_url}/ws_api/account/{emu.account_id}/messaging/brand/{bearer}?v=2.1",
            ssl=emu.client_ssl_context() or True,
        )
        return cls(ws)

    @classmethod
    async def consumer(
        cls,
        http: aiohttp.ClientSession,
        emu: Emulator,
        jwt: str | None,
        client_properties: str | None = None,
    ) -> RawSocket:
        headers = {"Authorization": f"jwt {jwt}"} if jwt else {}
        if client_properties:
            headers["Client-Properties"] = client_properties
        ws = await http.ws_connect(
            f"{emu.ws_base_url}/ws_api/account/{emu.account_id}/messaging/consumer?v=3",
            headers=headers,
            ssl=emu.client_ssl_context() or True,
        )
        return cls(ws)

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            frame = msg.json()
            if frame.get("kind") == "resp" and frame.get("reqId") in self._pending:
                self._pending.pop(frame["reqId"]).set_result(frame)
            else:
                await self.notifications.put(frame)
        self.close_code = self.ws.close_code
        self.closed.set()

    async def request(
        self,
        type_: str,
        body: Any = None,
        *,
        headers: Any = None,
        metadata: Any = None,
        expect: int | None = 200,
    ) -> dict[str, Any]:
        """Send a request and return its response frame (asserting ``code == expect`` if set)."""
        req_id = str(next(self._ids))
        frame: dict[str, Any] = {"kind": "req", "id": req_id, "type": type_}
        if body is not None:
            frame["body"] = body
        if headers is not None:
            frame["headers"] = headers
        if metadata is not None:
            frame["metadata"] = metadata
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = future
        await self.ws.send_json(frame)
        resp = await asyncio.wait_for(future, TIMEOUT)
        if expect is not None:
            assert resp["code"] == expect, resp
        return resp

    async def notification(self, type_: str | None = None, wait: float = TIMEOUT) -> dict[str, Any]:
        """The next notification (of ``type_``, skipping others)."""
        while True:
            frame = await asyncio.wait_for(self.notifications.get(), wait)
            if type_ is None or frame.get("type") == type_:
                return frame

    async def no_notification(self, type_: str | None = None, wait: float = 0.3) -> None:
        """Assert that no notification (of ``type_``) arrives within ``wait`` seconds."""
        try:
            frame = await self.notification(type_, wait=wait)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected notification {frame}")

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
