"""Consumer WebSocket v3: ``/ws_api/account/{acc}/messaging/consumer?v=3``.

The LP consumer JWT comes either in the upgrade header ``Authorization: jwt <token>`` (native
clients), in the path (``/messaging/consumer/{jwt}``, the old codepen form), or in the first
request, ``InitConnection``, as a ``.ams.headers.ConsumerAuthentication`` header (browsers).
Client properties come from the ``Client-Properties`` upgrade header or the InitConnection
``.ams.headers.ClientProperties`` header; their ``features`` (e.g. ``MULTI_DIALOG``) matter for
post-conversation surveys.  A bad JWT at upgrade gets HTTP 401; a bad JWT in InitConnection gets
a 401 response and the socket is closed with 4401.  Expiry closes with 4401 (authenticated) or
4407 (anonymous/unauthenticated identities).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from lpm.emulator import control
from lpm.emulator.context import Context
from lpm.emulator.entities import Actor
from lpm.emulator.http_common import decode_body
from lpm.emulator.world_errors import Unauthorized, WorldError
from lpm.emulator.ws_handlers import HANDLERS, check_api_version
from lpm.emulator.ws_session import CLOSE_AUTH, Handler, Session
from lpm.protocol import frames
from lpm.protocol.types import (
    CLIENT_PROPERTIES_TYPE,
    CONSUMER_REQUESTS,
    HEADER_CLIENT_PROPERTIES,
    HEADER_CONSUMER_AUTH,
    Dialect,
    Req,
)


def authenticate(session: Session, token: str, client_properties: dict[str, Any] | None) -> None:
    """Bind the session to the consumer the JWT names (raises Unauthorized)."""
    ctx = session.ctx
    if len(token) > 2048:
        raise Unauthorized("consumer JWT longer than 2048 characters")
    claims = ctx.tokens.verify_consumer(token, session.account_id)
    control.check_consumer_token(ctx, session.account_id, claims)
    consumer = ctx.world.account(session.account_id).consumers.get(str(claims["sub"]))
    if consumer is None:
        raise Unauthorized("unknown consumer")
    props = None
    if client_properties:
        props = {k: v for k, v in client_properties.items() if k != "type"}
        props = {"type": CLIENT_PROPERTIES_TYPE, **props}
        features = props.get("features")
        session.features = [str(f) for f in features] if isinstance(features, list) else []
    session.actor = Actor(session.account_id, "consumer", consumer.consumer_id, client_properties=props)
    session.identity_kind = consumer.kind
    exp = claims.get("exp")
    session.expires_at = (lambda: float(exp)) if isinstance(exp, int | float) else (lambda: None)


def init_connection(session: Session, req: frames.Request) -> Any:
    if session.actor is not None:
        return "OK already authenticated"
    headers = req.headers if isinstance(req.headers, list) else []
    token = None
    props: dict[str, Any] | None = None
    for header in headers:
        if not isinstance(header, dict):
            continue
        if header.get("type") in (HEADER_CONSUMER_AUTH, "ConsumerAuthentication"):
            token = header.get("jwt")
        elif header.get("type") in (HEADER_CLIENT_PROPERTIES, CLIENT_PROPERTIES_TYPE, "ClientProperties"):
            props = header
    if not isinstance(token, str) or not token:
        raise Unauthorized("InitConnection needs a .ams.headers.ConsumerAuthentication header with a jwt")
    try:
        authenticate(session, token, props)
    except WorldError:
        session.close_with(CLOSE_AUTH, "invalid token")
        raise
    session.ctx.hub.attach(session)
    return "OK"


CONSUMER_HANDLERS: dict[Req, Handler] = {**HANDLERS, Req.INIT_CONNECTION: init_connection}


def _header_properties(request: web.Request) -> dict[str, Any] | None:
    raw = request.headers.get("Client-Properties")
    if not raw:
        return None
    try:
        value = decode_body(raw)
    except frames.FrameError:
        raise web.HTTPBadRequest(text="Client-Properties header is not JSON") from None
    return value if isinstance(value, dict) else None


async def consumer_socket(ctx: Context, request: web.Request) -> web.StreamResponse:
    account_id = request.match_info["account"]
    if account_id not in ctx.world.accounts:
        raise web.HTTPNotFound(text=f"unknown account {account_id}")
    check_api_version(ctx, request, Dialect.CONSUMER_V3)
    await ctx.faults.wait_upgrade()
    if request.transport is None or request.transport.is_closing():
        raise web.HTTPServiceUnavailable(text="client went away during the upgrade")
    token = request.match_info.get("token")
    auth = request.headers.get("Authorization", "")
    if auth[:4].lower() == "jwt ":
        token = auth[4:].strip()
    elif auth[:7].lower() == "bearer ":
        token = auth[7:].strip()
    props = _header_properties(request)
    ws = web.WebSocketResponse(autoping=False, max_msg_size=16 * 1024 * 1024)
    session = Session(ctx, ws, Dialect.CONSUMER_V3, account_id, CONSUMER_HANDLERS, CONSUMER_REQUESTS)
    if token:
        try:
            authenticate(session, token, props)
        except WorldError as exc:
            raise web.HTTPUnauthorized(text=exc.message) from None
    else:
        session.features = []
        deadline = ctx.world.clock() + ctx.settings.init_connection_timeout

        def init_deadline() -> float | None:
            return deadline if session.actor is None else None

        session.expires_at = init_deadline
    await ws.prepare(request)
    ctx.record_upgrade("consumer", request.headers, ws.headers)
    if session.actor is None:
        # Until InitConnection arrives the "identity" is missing: a timeout closes with 4401.
        session.identity_kind = "authenticated"
        ctx.hub.sessions.add(session)  # reachable by the fault API before it authenticates
    else:
        ctx.hub.attach(session)
    await session.run()
    return ws
