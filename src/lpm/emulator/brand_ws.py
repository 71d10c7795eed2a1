"""Brand WebSocket v2.1: ``/ws_api/account/{acc}/messaging/brand/{bearer}?v=2.1``.

The agentVep bearer travels in the URL path (as node-agent-sdk sends it).  An unknown or expired
bearer is refused at the upgrade with HTTP 401 (clients see ``Unexpected server response: 401``).
When the session later expires, the socket closes with 4401.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from lpm.emulator.context import Context
from lpm.emulator.entities import Actor
from lpm.emulator.ws_handlers import HANDLERS, check_api_version
from lpm.emulator.ws_session import Session
from lpm.protocol.types import BRAND_REQUESTS, Dialect


async def brand_socket(ctx: Context, request: web.Request) -> web.StreamResponse:
    account_id = request.match_info["account"]
    check_api_version(ctx, request, Dialect.BRAND_V2)
    bearer = request.match_info.get("token") or _header_bearer(request)
    await ctx.faults.wait_upgrade()
    if request.transport is None or request.transport.is_closing():
        raise web.HTTPServiceUnavailable(text="client went away during the upgrade")
    session_data = ctx.world.session(bearer) if bearer else None
    if bearer is None or session_data is None or session_data.account_id != account_id:
        raise web.HTTPUnauthorized(text="invalid or expired bearer token")
    ws = web.WebSocketResponse(autoping=False, max_msg_size=16 * 1024 * 1024)
    await ws.prepare(request)
    ctx.record_upgrade("brand", request.headers, ws.headers)
    session = Session(ctx, ws, Dialect.BRAND_V2, account_id, HANDLERS, BRAND_REQUESTS)
    session.actor = Actor(account_id, "agent", session_data.user_id)
    session.identity_kind = "agent"
    session.expires_at = _session_expiry(ctx, bearer)
    ctx.hub.attach(session)
    await session.run()
    return ws


def _session_expiry(ctx: Context, bearer: str) -> Callable[[], float | None]:
    """Expiry of the login session, re-read each time so a refresh extends the socket's life;
    a logged-out (or revoked) session counts as expired at once."""

    def expires_at() -> float | None:
        current = ctx.world.sessions.get(bearer)
        return 0.0 if current is None else current.expires_at

    return expires_at


def _header_bearer(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return None
