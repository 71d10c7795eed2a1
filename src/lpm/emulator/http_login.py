"""agentVep: agent login (password, app keys), refresh and logout.

* ``POST /api/account/{acc}/login?v=1.3`` with ``{username, password}`` or
  ``{username, appKey, secret, accessToken, accessTokenSecret}`` answers ``{bearer, csrf,
  sessionTTl, config: {userId, userPid, loginName, ...}, ...}`` and sets the ``Session_id``
  cookie.  Bad credentials: 401 with ``{"error": {"message", "internalCode": 10, ...}}``.  The
  SAML form (``{jwt, assertion}``) is answered 401: the emulator has no identity provider.
* ``POST /api/account/{acc}/refresh`` with the cookie and ``{"csrf"}`` extends the session
  (200, empty body); a wrong csrf/cookie or an expired session is 401.
* ``POST /api/account/{acc}/logout`` (cookie + csrf) ends the session and closes its sockets (4401).

A body that is not a JSON object (malformed, not UTF-8, nested too deeply, an array...) is
answered 400 in the same ``{"error": {...}}`` shape, ``internalCode`` 400.
"""

from __future__ import annotations

import hmac

from aiohttp import web

from lpm.emulator.context import Context
from lpm.emulator.entities import Account, AgentSession, User
from lpm.emulator.http_common import NotAJsonObject, agentvep_error, json_response, read_json_object
from lpm.emulator.http_csds import SERVICES

COOKIE = "Session_id"
_KEY_FIELDS = ("appKey", "secret", "accessToken", "accessTokenSecret")
_USER_KEY_ATTRS = ("app_key", "secret", "access_token", "access_token_secret")


def _same(a: str | None, b: object) -> bool:
    return a is not None and isinstance(b, str) and hmac.compare_digest(a.encode(), b.encode())


def _authenticate(acc: Account, body: dict[str, object]) -> User | None:
    username = body.get("username")
    user = acc.resolve_user(username) if isinstance(username, str) else None
    if user is None:
        return None
    if "password" in body:
        return user if _same(user.password, body["password"]) else None
    if all(k in body for k in _KEY_FIELDS):
        pairs = zip(_USER_KEY_ATTRS, _KEY_FIELDS, strict=True)
        return user if all(_same(getattr(user, attr), body[key]) for attr, key in pairs) else None
    return None


async def _body(request: web.Request, what: str) -> dict[str, object] | web.Response:
    """The JSON object body, or the agentVep 400 answer for one that is not."""
    try:
        return await read_json_object(request)
    except NotAJsonObject as exc:
        problem = "is not valid JSON" if exc.decode_error is not None else "must be a JSON object"
        return agentvep_error(400, f"{what} body {problem}", 400)


async def login(ctx: Context, request: web.Request) -> web.Response:
    account_id = request.match_info["account"]
    acc = ctx.world.accounts.get(account_id)
    body = await _body(request, "login")
    if isinstance(body, web.Response):
        return body
    if acc is None:
        return agentvep_error(401, f"unknown account {account_id}")
    if "assertion" in body:
        return agentvep_error(401, "SAML login is not supported by the emulator")
    user = _authenticate(acc, body)
    if user is None:
        return agentvep_error(401, "Bad credentials")
    session = ctx.world.login(account_id, user, ctx.settings.session_ttl)
    now = ctx.world.now_ms()
    payload = {
        "csrf": session.csrf,
        "wsuk": str(abs(hash(session.session_id)) % 10**18),
        "config": {
            "loginName": user.login_name,
            "userId": user.user_id,
            "userPid": user.pid,
            "userPrivileges": [100, 101, 1730] + ([1500] if user.is_manager else []),
            "serverCurrentTime": now,
            "timeDiff": 0,
            "serverTimeZoneName": "UTC",
            "serverTimeGMTDiff": 0,
            "isLPA": False,
            "isAdmin": user.is_manager,
            "accountTimeZoneId": "UTC",
        },
        "csdsCollectionResponse": {
            "baseURIs": [{"account": account_id, "baseURI": ctx.public_host, "service": s} for s in SERVICES]
        },
        "accountData": {"agentGroupsData": {"items": [{"id": -1, "deleted": False, "name": "Main Group"}]}},
        "sessionTTl": str(int(ctx.settings.session_ttl * 1000)),
        "bearer": session.bearer,
    }
    response = json_response(payload)
    response.set_cookie(COOKIE, session.session_id, path="/", httponly=True, secure=ctx.scheme == "https")
    return response


def _session_for(ctx: Context, request: web.Request, body: object) -> AgentSession | None:
    csrf = body.get("csrf") if isinstance(body, dict) else None
    cookie = request.cookies.get(COOKIE)
    account_id = request.match_info["account"]
    if not isinstance(csrf, str) or not cookie:
        return None
    for session in list(ctx.world.sessions.values()):
        if (
            session.account_id == account_id
            and _same(session.session_id, cookie)
            and _same(session.csrf, csrf)
        ):
            return ctx.world.session(session.bearer)
    return None


async def _live_session(ctx: Context, request: web.Request, action: str) -> AgentSession | web.Response:
    """The agentVep session a refresh or logout names, or the error answer to send instead."""
    body = await _body(request, action)
    if isinstance(body, web.Response):
        return body
    session = _session_for(ctx, request, body)
    if session is None:
        return agentvep_error(401, "session is invalid or expired")
    return session


async def refresh(ctx: Context, request: web.Request) -> web.Response:
    session = await _live_session(ctx, request, "refresh")
    if isinstance(session, web.Response):
        return session
    ctx.world.refresh_session(session)
    return web.Response(status=200)


async def logout(ctx: Context, request: web.Request) -> web.Response:
    session = await _live_session(ctx, request, "logout")
    if isinstance(session, web.Response):
        return session
    ctx.world.logout(session)
    ctx.hub.close_expired(session.account_id)
    return web.Response(status=200)
