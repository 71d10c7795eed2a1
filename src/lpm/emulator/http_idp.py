"""Consumer identity faces: the IdP (``idp`` service) and sentinel (AppJWT) of the emulator.

IdP, every path under ``/api/account/{acc}/`` (protocol §2.3, node SDK reference §3.12):

* ``POST signup`` (no body) → ``{"jwt"}``: a new *anonymous* consumer (legacy demo flow).
* ``GET signup.jsonp?callback=<name>``: the same for a web page, as a script
  (``application/javascript``, :mod:`lpm.emulator.jsonp`): ``/**/<name>({"jwt": "..."});``, what
  LivePerson's messaging-window JavaScript SDK (``windowKit``, ``lpUtils.signup``) loads and reads
  ``jwt`` from.  A missing or malformed ``callback`` is refused with 400 (the IdP's error body, no
  script); an unknown account answers 404 with the error body passed to the callback (a browser
  does not run it: the script element's ``error`` event fires).  Not cached (``no-store``).
* ``POST anonymous/authorize`` (empty body) → ``{"token"}``: an external unauthenticated token
  (``settings.anonymous_token_ttl``).  With ``{"id_token": <old token>}`` it is refreshed: a fresh
  token with the same ``sub``.  An expired old token is accepted as long as it is validly signed
  and was issued less than 730 h ago (:data:`ANONYMOUS_REFRESH_WINDOW`).
* ``POST app/{connectorId}/authenticate?v=3.0`` → ``{"token": <LP consumer JWT>}``:

  - unauthenticated connector, ``{"id_token": <anonymous token>}``: consumer kind
    ``unauthenticated`` whose id is a UUID derived (uuid5) from the anonymous ``sub``, so
    repeated authentications of one anonymous identity yield the same consumer;
  - authenticated connector, ``{"id_token": <brand-signed JWT>}`` (RS256 public key or HS256
    secret of the connector): consumer kind ``authenticated`` with id
    ``sha256(iss + "|" + sub)`` (64 hex).  The brand's ``lp_sdes`` and standard profile claims are
    kept on the consumer (GetUserProfile ``claims``), each authentication replacing them with the
    latest id_token's; the LP JWT carries ``"lp.ext": {"sub", "iss", "lp_sdes": <hash>}``;
  - mock code flow, ``{"code": "<customer name>", "redirect_uri": ...}`` (node SDK tests use
    ``app/default/authenticate?v=2``): consumer kind ``mock`` with id ``sha256("mock|" + name)``
    and the SDEs ``ctmrinfo.customerId = "lpTest<name>"`` and ``personal.firstname = <name>``.
    A body with ``code`` (and no ``id_token``) takes this flow on any connector id;
  - step-up: either of the last two forms plus ``"lp_jwt": <current LP consumer JWT>`` of an
    anonymous/unauthenticated consumer.  The new identity takes over the old one's open
    conversation (:meth:`World.step_up`); sockets are not re-keyed, since the old socket belongs
    to the old token and the client reconnects with the new one.
* ``POST authenticate`` (legacy implicit): ``{"authCode": <brand JWT>}`` → ``{"jwt"}``, verified
  by the account's first authenticated connector.
* ``POST consumer?v=1.0`` (Send API identity): header ``Authorization: <AppJWT>`` (a ``Bearer ``
  prefix is tolerated), body ``{"ext_consumer_id"}`` → 201 ``{"token": <ConsumerJWS>}``.  The
  consumer (kind ``connector``) is derived (uuid5) from (app client id, ext_consumer_id).

IdP errors answer ``{"error": {"message": ..., "internalErrorCode": N}}`` with these codes
(emulator choices; the platform's own values are undocumented):

======  ====  ==================================================================================
HTTP    code  meaning
======  ====  ==================================================================================
400     4000  malformed JSON, body not an object, missing or ill-typed field
401     4010  invalid token: bad signature, tampered, wrong issuer/audience/algorithm, revoked
401     4011  token expired (id_token, or an anonymous token presented for authentication)
401     4012  wrong connector kind: anonymous token on an authenticated connector, non-anonymous
              token on an unauthenticated one, step-up to an unauthenticated connector
401     4013  anonymous token too old to refresh (issued more than 730 h ago)
401     4014  step-up ``lp_jwt`` invalid or expired, or naming an unknown consumer
401     4015  step-up ``lp_jwt`` names a consumer that is already authenticated
401     4016  AppJWT missing or invalid (``consumer?v=1.0``)
404     4040  unknown account
404     4041  unknown connector (legacy ``authenticate``: no authenticated connector configured)
409     4090  step-up conflict: the authenticated consumer already has an open conversation
======  ====  ==================================================================================

Any other refusal of the world model keeps its status with ``internalErrorCode = status * 10``.

Sentinel: ``POST /sentinel/api/account/{acc}/app/token?v=1.0&grant_type=client_credentials`` with
``client_id`` and ``client_secret`` in a form body (or the query, as lp-messaging-sdk sends them)
→ ``{"access_token": <AppJWT>, "token_type": "Bearer", "expires_in": <s>}``.  Errors follow
OAuth 2 (RFC 6749 §5.2): 400 ``invalid_request`` (no grant_type), 400
``unsupported_grant_type``, 401 ``invalid_client`` (unknown client, wrong or missing secret),
404 ``not_found`` (unknown account); each with an ``error_description``.

Error messages never echo tokens or secrets.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import jwt
from aiohttp import web

from lpm.emulator import jsonp
from lpm.emulator import token_issuer as tk
from lpm.emulator.context import Context
from lpm.emulator.entities import Account, Connector
from lpm.emulator.extensions import Route
from lpm.emulator.http_common import NotAJsonObject, json_response, read_json_object
from lpm.emulator.world_errors import Unauthorized, WorldError
from lpm.protocol.frames import encode
from lpm.protocol.requests import as_list

#: An anonymous token may be refreshed for this long after it was issued (protocol §2.3).
ANONYMOUS_REFRESH_WINDOW = 730 * 3600.0
#: ``iss`` of mock-flow identities (``lp.ext.iss`` of their LP JWT).
MOCK_ISSUER = "https://idp.liveperson.net/mock"
#: Brand id_token claims kept on an authenticated consumer (shown by GetUserProfile).
PROFILE_CLAIMS = (
    "sub",
    "given_name",
    "family_name",
    "name",
    "email",
    "phone_number",
    "preferred_username",
)
#: Consumer kinds an ``lp_jwt`` may have to be stepped up.
STEP_UP_SOURCES = frozenset({"anonymous", "unauthenticated"})

# Namespace of the emulator's deterministic (uuid5) consumer ids.
_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://lpm-emulator/idp")

BAD_REQUEST = 4000
INVALID_TOKEN = 4010
TOKEN_EXPIRED = 4011
WRONG_CONNECTOR_KIND = 4012
REFRESH_TOO_OLD = 4013
INVALID_LP_JWT = 4014
NOT_STEPPABLE = 4015
INVALID_APP_JWT = 4016
UNKNOWN_ACCOUNT = 4040
UNKNOWN_CONNECTOR = 4041
STEP_UP_CONFLICT = 4090

Handler = Callable[[Context, web.Request], Awaitable[web.StreamResponse]]


class IdpError(Exception):
    """An IdP refusal: HTTP ``status`` and the ``internalErrorCode`` of the error body."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def idp_error(status: int, code: int, message: str) -> web.Response:
    """The IdP's JSON error body."""
    return json_response({"error": {"message": message, "internalErrorCode": code}}, status)


def _guarded(fn: Callable[[Context, web.Request], Awaitable[web.Response]]) -> Handler:
    """Turn :class:`IdpError` (and world refusals) into the IdP's JSON error body."""

    async def handler(ctx: Context, request: web.Request) -> web.StreamResponse:
        try:
            return await fn(ctx, request)
        except IdpError as exc:
            return idp_error(exc.status, exc.code, exc.message)
        except WorldError as exc:
            code = STEP_UP_CONFLICT if exc.status == 409 else exc.status * 10
            return idp_error(exc.status, code, exc.message)

    handler.__name__ = fn.__name__
    handler.__doc__ = fn.__doc__
    return handler


# ---------------------------------------------------------------- request helpers


def _account(ctx: Context, request: web.Request) -> Account:
    account_id = request.match_info["account"]
    acc = ctx.world.accounts.get(account_id)
    if acc is None:
        raise IdpError(404, UNKNOWN_ACCOUNT, f"unknown account {account_id}")
    return acc


async def _body(request: web.Request) -> dict[str, Any]:
    """The JSON object body (``{}`` when empty)."""
    try:
        return await read_json_object(request)
    except NotAJsonObject as exc:
        if exc.decode_error is not None:
            raise IdpError(400, BAD_REQUEST, "request body is not valid JSON") from None
        raise IdpError(400, BAD_REQUEST, "request body must be a JSON object") from None


def _string(body: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise IdpError(400, BAD_REQUEST, f"{name} must be a non-empty string")
    return value


def _token_error(exc: Unauthorized, what: str) -> IdpError:
    # token_issuer.py words expiry as "... expired"; everything else is an invalid token.
    if "expired" in exc.message:
        return IdpError(401, TOKEN_EXPIRED, f"{what} expired")
    return IdpError(401, INVALID_TOKEN, f"{what} is invalid ({exc.message})")


def _unverified_issuer(token: str, what: str) -> str | None:
    """``iss`` read without verification, only to tell which kind of token was sent."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise IdpError(401, INVALID_TOKEN, f"{what} is not a JWT") from None
    iss = claims.get("iss")
    return iss if isinstance(iss, str) else None


# ---------------------------------------------------------------- identities


@dataclass(slots=True)
class Identity:
    """A consumer identity the IdP is about to issue an LP JWT for (nothing stored yet)."""

    consumer_id: str
    kind: str
    ext_sub: str | None = None
    ext_iss: str | None = None
    claims: dict[str, Any] | None = None
    #: The LP JWT's ``lp.ext`` claim (authenticated and mock identities).
    ext: dict[str, Any] | None = None


def _sdes_hash(sdes: list[Any]) -> str:
    return hashlib.sha256(encode(sdes)).hexdigest()[:32]


def _unauthenticated_identity(ctx: Context, acc: Account, id_token: str) -> Identity:
    if _unverified_issuer(id_token, "id_token") != tk.ANON_ISSUER:
        raise IdpError(
            401, WRONG_CONNECTOR_KIND, "an unauthenticated connector needs an anonymous token as id_token"
        )
    try:
        claims = ctx.tokens.verify_anonymous(id_token, acc.account_id)
    except Unauthorized as exc:
        raise _token_error(exc, "id_token") from None
    sub = str(claims["sub"])
    consumer_id = str(uuid.uuid5(_ID_NAMESPACE, f"anonymous|{acc.account_id}|{sub}"))
    return Identity(consumer_id=consumer_id, kind="unauthenticated", ext_sub=sub, ext_iss=tk.ANON_ISSUER)


def _authenticated_identity(connector: Connector, id_token: str) -> Identity:
    if _unverified_issuer(id_token, "id_token") == tk.ANON_ISSUER:
        raise IdpError(
            401,
            WRONG_CONNECTOR_KIND,
            f"connector {connector.connector_id} is authenticated: id_token must be signed by the brand",
        )
    try:
        claims = tk.verify_brand_id_token(connector, id_token)
    except Unauthorized as exc:
        raise _token_error(exc, "id_token") from None
    sub = str(claims["sub"])
    iss = str(claims.get("iss") or connector.issuer or "")
    sdes = as_list(claims.get("lp_sdes"))
    stored: dict[str, Any] = {"iss": iss, "lp_sdes": sdes}
    stored.update({k: claims[k] for k in PROFILE_CLAIMS if k in claims})
    ext: dict[str, Any] = {"sub": sub, "iss": iss}
    if sdes:
        ext["lp_sdes"] = _sdes_hash(sdes)
    return Identity(
        consumer_id=hashlib.sha256(f"{iss}|{sub}".encode()).hexdigest(),
        kind="authenticated",
        ext_sub=sub,
        ext_iss=iss,
        claims=stored,
        ext=ext,
    )


def _mock_identity(name: str) -> Identity:
    sdes = [
        {"type": "ctmrinfo", "info": {"customerId": f"lpTest{name}"}},
        {"type": "personal", "personal": {"firstname": name}},
    ]
    return Identity(
        consumer_id=hashlib.sha256(f"mock|{name}".encode()).hexdigest(),
        kind="mock",
        ext_sub=name,
        ext_iss=MOCK_ISSUER,
        claims={"iss": MOCK_ISSUER, "sub": name, "lp_sdes": sdes},
        ext={"sub": name, "iss": MOCK_ISSUER, "lp_sdes": _sdes_hash(sdes)},
    )


def _step_up_source(ctx: Context, acc: Account, lp_jwt: str) -> str:
    """The consumer id behind a step-up ``lp_jwt`` (which must be anonymous/unauthenticated)."""
    try:
        claims = ctx.tokens.verify_consumer(lp_jwt, acc.account_id)
    except Unauthorized as exc:
        raise IdpError(
            401, INVALID_LP_JWT, f"lp_jwt is not a valid LP consumer JWT ({exc.message})"
        ) from None
    old = acc.consumers.get(str(claims["sub"]))
    if old is None:
        raise IdpError(401, INVALID_LP_JWT, "lp_jwt names an unknown consumer")
    if old.kind not in STEP_UP_SOURCES:
        raise IdpError(401, NOT_STEPPABLE, f"a {old.kind} consumer cannot be stepped up")
    return old.consumer_id


def _issue(ctx: Context, acc: Account, identity: Identity, step_up_from: str | None = None) -> str:
    """Store the identity (taking over ``step_up_from``'s open conversation) and sign its LP JWT."""
    stepping_up = step_up_from is not None and step_up_from != identity.consumer_id
    # Refuse before anything is stored: a half-done step-up would leave a stray consumer.
    if (
        stepping_up
        and step_up_from in acc.open_conversation
        and identity.consumer_id in acc.open_conversation
    ):
        raise IdpError(409, STEP_UP_CONFLICT, "the authenticated consumer already has an open conversation")
    ctx.world.add_consumer(
        acc.account_id,
        identity.kind,
        consumer_id=identity.consumer_id,
        ext_sub=identity.ext_sub,
        ext_iss=identity.ext_iss,
        claims=identity.claims,
    )
    if stepping_up and step_up_from is not None:
        ctx.world.step_up(acc.account_id, step_up_from, identity.consumer_id)
    return ctx.tokens.issue_consumer(
        acc.account_id, identity.consumer_id, ctx.settings.consumer_token_ttl, ext=identity.ext
    )


# ---------------------------------------------------------------- IdP handlers


async def signup(ctx: Context, request: web.Request) -> web.Response:
    """``POST /api/account/{acc}/signup``: a new anonymous consumer, ``{"jwt"}``."""
    acc = _account(ctx, request)
    consumer = ctx.world.add_consumer(acc.account_id, "anonymous")
    token = ctx.tokens.issue_consumer(acc.account_id, consumer.consumer_id, ctx.settings.consumer_token_ttl)
    return json_response({"jwt": token})


async def signup_script(ctx: Context, request: web.Request) -> web.Response:
    """``GET /api/account/{acc}/signup.jsonp?callback=<name>``: :func:`signup` for a web page."""
    try:
        callback = jsonp.callback_name(request, "callback")
    except jsonp.BadCallback as exc:
        raise IdpError(400, BAD_REQUEST, str(exc)) from None
    account_id = request.match_info["account"]
    if account_id not in ctx.world.accounts:
        body = {"error": {"message": f"unknown account {account_id}", "internalErrorCode": UNKNOWN_ACCOUNT}}
        return jsonp.script(callback, body, 404, no_store=True)
    consumer = ctx.world.add_consumer(account_id, "anonymous")
    token = ctx.tokens.issue_consumer(account_id, consumer.consumer_id, ctx.settings.consumer_token_ttl)
    return jsonp.script(callback, {"jwt": token}, no_store=True)


async def anonymous_authorize(ctx: Context, request: web.Request) -> web.Response:
    """``POST anonymous/authorize``: a new anonymous token, or a refreshed one (same ``sub``)."""
    acc = _account(ctx, request)
    body = await _body(request)
    ttl = ctx.settings.anonymous_token_ttl
    old = _string(body, "id_token", required=False)
    if old is None:
        return json_response({"token": ctx.tokens.issue_anonymous(acc.account_id, ttl)})
    try:
        claims = ctx.tokens.verify_anonymous(old, acc.account_id, allow_expired=True)
    except Unauthorized as exc:
        raise _token_error(exc, "id_token") from None
    iat = claims.get("iat")
    if not isinstance(iat, int | float) or ctx.world.clock() - iat > ANONYMOUS_REFRESH_WINDOW:
        raise IdpError(401, REFRESH_TOO_OLD, "the anonymous token is too old to be refreshed")
    return json_response({"token": ctx.tokens.issue_anonymous(acc.account_id, ttl, sub=str(claims["sub"]))})


async def app_authenticate(ctx: Context, request: web.Request) -> web.Response:
    """``POST app/{connectorId}/authenticate``: id_token, mock code and step-up flows."""
    acc = _account(ctx, request)
    body = await _body(request)
    lp_jwt = _string(body, "lp_jwt", required=False)
    if "code" in body and "id_token" not in body:
        identity = _mock_identity(str(_string(body, "code")))
    else:
        connector_id = request.match_info["connector"]
        connector = acc.connectors.get(connector_id)
        if connector is None:
            raise IdpError(404, UNKNOWN_CONNECTOR, f"unknown connector {connector_id}")
        id_token = str(_string(body, "id_token"))
        if connector.kind == "unauthenticated":
            if lp_jwt is not None:
                raise IdpError(
                    401,
                    WRONG_CONNECTOR_KIND,
                    "step-up needs an authenticated connector, not an unauthenticated one",
                )
            identity = _unauthenticated_identity(ctx, acc, id_token)
        elif connector.kind == "authenticated":
            identity = _authenticated_identity(connector, id_token)
        else:
            raise IdpError(
                401, WRONG_CONNECTOR_KIND, f"connector {connector_id} cannot authenticate consumers"
            )
    source = _step_up_source(ctx, acc, lp_jwt) if lp_jwt is not None else None
    return json_response({"token": _issue(ctx, acc, identity, source)})


async def legacy_authenticate(ctx: Context, request: web.Request) -> web.Response:
    """``POST authenticate`` with ``{"authCode": <brand JWT>}`` → ``{"jwt"}`` (implicit flow)."""
    acc = _account(ctx, request)
    body = await _body(request)
    auth_code = str(_string(body, "authCode"))
    connector = next((c for c in acc.connectors.values() if c.kind == "authenticated"), None)
    if connector is None:
        raise IdpError(404, UNKNOWN_CONNECTOR, "the account has no authenticated connector")
    identity = _authenticated_identity(connector, auth_code)
    return json_response({"jwt": _issue(ctx, acc, identity)})


def bearer_value(header: str) -> str:
    """An ``Authorization`` value without its optional ``Bearer `` prefix."""
    value = header.strip()
    if value[:7].lower() == "bearer ":
        value = value[7:].strip()
    return value


def app_client(ctx: Context, acc: Account, app_jwt: str) -> str:
    """The app install (client id) of a valid AppJWT for ``acc``; :class:`Unauthorized` otherwise."""
    claims = ctx.tokens.verify_app_jwt(app_jwt, acc.account_id)
    client_id = str(claims.get("azp") or claims["sub"])
    if client_id not in acc.app_installs:
        raise Unauthorized("the app install of this AppJWT no longer exists")
    return client_id


def connector_consumer_id(account_id: str, client_id: str, ext_consumer_id: str) -> str:
    """The deterministic Send API consumer id of (app, ext_consumer_id): 64 hex digits, as the
    connector API's webhooks examples show a connector's consumer (not a UUID)."""
    return hashlib.sha256(f"connector|{account_id}|{client_id}|{ext_consumer_id}".encode()).hexdigest()


async def connector_consumer(ctx: Context, request: web.Request) -> web.Response:
    """``POST consumer?v=1.0``: a never-expiring ConsumerJWS for an app's external consumer id."""
    acc = _account(ctx, request)
    app_jwt = bearer_value(request.headers.get("Authorization", ""))
    if not app_jwt:
        raise IdpError(401, INVALID_APP_JWT, "AppJWT is missing (Authorization header)")
    try:
        client_id = app_client(ctx, acc, app_jwt)
    except Unauthorized as exc:
        raise IdpError(401, INVALID_APP_JWT, f"AppJWT is invalid ({exc.message})") from None
    body = await _body(request)
    ext_id = str(_string(body, "ext_consumer_id"))
    consumer_id = connector_consumer_id(acc.account_id, client_id, ext_id)
    ctx.world.add_consumer(
        acc.account_id, "connector", consumer_id=consumer_id, ext_sub=ext_id, ext_iss=client_id
    )
    token = ctx.tokens.issue_consumer_jws(acc.account_id, consumer_id, client_id)
    return json_response({"token": token}, 201)


# ---------------------------------------------------------------- sentinel


def _oauth_error(status: int, error: str, description: str) -> web.Response:
    return json_response({"error": error, "error_description": description}, status)


async def sentinel_token(ctx: Context, request: web.Request) -> web.StreamResponse:
    """``POST /sentinel/api/account/{acc}/app/token``: client credentials → AppJWT."""
    account_id = request.match_info["account"]
    acc = ctx.world.accounts.get(account_id)
    if acc is None:
        return _oauth_error(404, "not_found", f"unknown account {account_id}")
    try:
        form = await request.post()
    except ValueError:  # a form body that is not UTF-8 (UnicodeDecodeError) or not a form
        return _oauth_error(400, "invalid_request", "the form body cannot be read")
    params: dict[str, str] = {}
    # Query first, then the form body, which wins: lp-messaging-sdk sends everything in the query.
    for source in (request.query, form):
        for key in ("grant_type", "client_id", "client_secret"):
            value = source.get(key)
            if isinstance(value, str) and value:
                params[key] = value
    grant_type = params.get("grant_type")
    if grant_type is None:
        return _oauth_error(400, "invalid_request", "grant_type is missing")
    if grant_type != "client_credentials":
        return _oauth_error(400, "unsupported_grant_type", "only client_credentials is supported")
    install = acc.app_installs.get(params.get("client_id", ""))
    secret = params.get("client_secret", "")
    if install is None or not hmac.compare_digest(install.client_secret.encode(), secret.encode()):
        return _oauth_error(401, "invalid_client", "client authentication failed")
    ttl = ctx.settings.app_jwt_ttl
    token = ctx.tokens.issue_app_jwt(acc.account_id, install.client_id, ttl)
    return json_response({"access_token": token, "token_type": "Bearer", "expires_in": int(ttl)})


def routes(ctx: Context) -> list[Route]:
    """The IdP and sentinel routes."""
    acc = "/api/account/{account}"
    return [
        ("POST", acc + "/signup", _guarded(signup)),
        ("GET", acc + "/signup.jsonp", _guarded(signup_script)),
        ("POST", acc + "/anonymous/authorize", _guarded(anonymous_authorize)),
        ("POST", acc + "/app/{connector}/authenticate", _guarded(app_authenticate)),
        ("POST", acc + "/authenticate", _guarded(legacy_authenticate)),
        ("POST", acc + "/consumer", _guarded(connector_consumer)),
        ("POST", "/sentinel" + acc + "/app/token", sentinel_token),
    ]
