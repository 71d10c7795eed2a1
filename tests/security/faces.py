"""Raw HTTP calls to the emulator's faces used across the security tests (no SDK)."""

from __future__ import annotations

from typing import Any

import aiohttp

from lpm.emulator.app import Emulator

APP_ID = "lpm-emulator-app"
APP_SECRET = "lpm-emulator-app-secret"


async def app_jwt(http: aiohttp.ClientSession, emu: Emulator) -> str:
    """An AppJWT from sentinel."""
    async with http.post(
        f"{emu.base_url}/sentinel/api/account/{emu.account_id}/app/token?v=1.0&grant_type=client_credentials",
        data={"client_id": APP_ID, "client_secret": APP_SECRET},
    ) as resp:
        assert resp.status == 200
        token: str = (await resp.json())["access_token"]
        return token


async def consumer_jws(http: aiohttp.ClientSession, emu: Emulator, app: str, ext_id: str) -> str:
    """A Send API ConsumerJWS for ``ext_id``."""
    async with http.post(
        f"{emu.base_url}/api/account/{emu.account_id}/consumer?v=1.0",
        headers={"Authorization": app},
        json={"ext_consumer_id": ext_id},
    ) as resp:
        assert resp.status == 201
        token: str = (await resp.json())["token"]
        return token


async def send_api(
    http: aiohttp.ClientSession,
    emu: Emulator,
    app: str | None,
    jws: str | None,
    frame: Any,
    *,
    batch: bool = False,
) -> tuple[int, Any]:
    """POST a Send API SEND (one frame) or CONVERSATION (``batch``) request."""
    headers = {}
    if app is not None:
        headers["Authorization"] = app
    if jws is not None:
        headers["X-LP-ON-BEHALF"] = jws
    path = "" if batch else "/send"
    async with http.post(
        f"{emu.base_url}/api/account/{emu.account_id}/messaging/consumer/conversation{path}?v=3",
        headers=headers,
        json=frame,
    ) as resp:
        return resp.status, await resp.json()


async def rest(
    http: aiohttp.ClientSession, emu: Emulator, method: str, path: str, token: str | None, body: Any = None
) -> tuple[int, Any]:
    """A UMS REST v1 call with ``Brand-ID`` and ``Authorization: Bearer <token>``."""
    headers = {"Brand-ID": emu.account_id}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with http.request(method, f"{emu.base_url}{path}", headers=headers, json=body) as resp:
        text = await resp.text()
        try:
            return resp.status, await resp.json(content_type=None) if text else None
        except ValueError:
            return resp.status, text


async def upgrade_status(http: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None) -> int:
    """The HTTP status of a refused WebSocket upgrade (101 when it was accepted)."""
    try:
        ws = await http.ws_connect(url, headers=headers or {})
    except aiohttp.WSServerHandshakeError as exc:
        return exc.status
    await ws.close()
    return 101


def brand_ws_url(emu: Emulator, bearer: str) -> str:
    return f"{emu.ws_base_url}/ws_api/account/{emu.account_id}/messaging/brand/{bearer}?v=2.1"


def consumer_ws_url(emu: Emulator) -> str:
    return f"{emu.ws_base_url}/ws_api/account/{emu.account_id}/messaging/consumer?v=3"
