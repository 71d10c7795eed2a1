"""The connector Send API (protocol §7.1): consumer requests over REST, on ``asyncMessagingEnt``.

A server-to-server connector acts for one of its consumers: ``Authorization: <AppJWT>`` (from
sentinel; a ``Bearer `` prefix is tolerated) names the app, ``X-LP-ON-BEHALF: <ConsumerJWS>``
(from ``idp .../consumer?v=1.0``, issued to that same app) names the consumer.  An optional
``Client-Properties`` JSON header declares ``features`` for new conversations.

* ``POST /api/account/{acc}/messaging/consumer/conversation?v=3`` (CONVERSATION): a JSON array of
  consumer request frames, typically ``userprofile.SetUserProfile`` then
  ``cm.ConsumerRequestConversation``, run in order.  200 with an array in the same order of
  ``{"reqId", "code": "OK", "body"}``; a frame that fails fills its slot with
  ``{"reqId", "code": <int status>, "body": <message>}`` and the frames after it still run
  (each frame is independent, as on a socket).
* ``POST .../messaging/consumer/conversation/send?v=3`` (SEND): one request frame
  (``ms.PublishEvent``, ``cm.UpdateConversationField``, ``userprofile.SetUserProfile``,
  ``ms.GenerateURLForUploadFile`` / ``ms.GenerateURLForDownloadFile``...) → 200
  ``{"reqId", "code": "OK", "body"}``; a refused request answers its HTTP status (400, 403, 404,
  409, 413) with ``{"reqId", "code": <status>, "body": <message>}``.

Bodies of successful frames: SetUserProfile and UpdateConversationField (whose socket response
is a bare string) ``{"msg": <text>}``; ConsumerRequestConversation ``{"conversationId"}``;
PublishEvent ``{"sequence"}``; GenerateURL* ``{"relativePath", "queryParams"}``; GetUserProfile
the profile; GetClock ``{"currentTime"}``.  Brand-only request types and consumer requests that
need a socket (subscriptions, InitConnection...) are refused with 400.

Request-level errors use the platform's error envelope
``{"kind": "resp", "code": <status>, "type": ".ReqBody$ErrorResp", "body": {"title", "details",
"errorCode"}}``, checked in this order; the first three digits of ``errorCode`` are the HTTP
status:

=====  =========  =========================================================================
HTTP   errorCode  meaning
=====  =========  =========================================================================
400    40001      Brand Id unknown, or a ``Brand-ID`` header that does not match the path
401    40105      AppJWT is missing (no ``Authorization`` header)
400    40001      AppJWT with a bad ``iss`` claim (validly signed; protocol §7.1)
401    40102      invalid AppJWT: bad signature, tampered, expired, other account, removed app
401    40104      ConsumerJWS is missing (no ``X-LP-ON-BEHALF`` header)
401    40103      invalid ConsumerJWS: bad signature, other account or app, unknown consumer
400    40000      malformed JSON body or ``Client-Properties`` header, wrong body shape
=====  =========  =========================================================================

Error details never echo tokens.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

from lpm.emulator import files
from lpm.emulator.context import Context
from lpm.emulator.entities import Account, Actor
from lpm.emulator.extensions import Route
from lpm.emulator.http_common import decode_body, json_response
from lpm.emulator.http_idp import app_client, bearer_value
from lpm.emulator.token_issuer import WrongIssuer
from lpm.emulator.world_errors import Unauthorized, WorldError
from lpm.protocol import requests as pm
from lpm.protocol.frames import FrameError
from lpm.protocol.types import CLIENT_PROPERTIES_TYPE, CONSUMER_REQUESTS, Req, canonical_request

log = logging.getLogger(__name__)

ERROR_TYPE = ".ReqBody$ErrorResp"
BAD_BODY = 40000
BRAND_ID = 40001
INVALID_APP_JWT = 40102
INVALID_CONSUMER_JWS = 40103
CONSUMER_JWS_MISSING = 40104
APP_JWT_MISSING = 40105

#: Header carrying the ConsumerJWS (aiohttp header lookup is case-insensitive).
ON_BEHALF = "X-LP-ON-BEHALF"


class SendApiError(Exception):
    """A request refused as a whole (the ``.ReqBody$ErrorResp`` envelope)."""

    def __init__(self, status: int, error_code: int, title: str, details: str) -> None:
        super().__init__(title)
        self.status = status
        self.error_code = error_code
        self.title = title
        self.details = details

    def response(self) -> web.Response:
        body = {"title": self.title, "details": self.details, "errorCode": self.error_code}
        return json_response(
            {"kind": "resp", "code": self.status, "type": ERROR_TYPE, "body": body}, self.status
        )


class FrameFailure(Exception):
    """One request frame refused: its slot gets ``{"reqId", "code": status, "body": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# ---------------------------------------------------------------- authentication


def _account(ctx: Context, request: web.Request) -> Account:
    account_id = request.match_info["account"]
    acc = ctx.world.accounts.get(account_id)
    if acc is None:
        raise SendApiError(400, BRAND_ID, "Brand Id is invalid", f"unknown brand id {account_id}")
    brand_header = request.headers.get("Brand-ID")
    if brand_header is not None and brand_header != account_id:
        raise SendApiError(400, BRAND_ID, "Brand Id is invalid", "Brand-ID header does not match the path")
    return acc


def _client_properties(request: web.Request) -> tuple[dict[str, Any] | None, list[str]]:
    raw = request.headers.get("Client-Properties")
    if not raw:
        return None, []
    try:
        value = decode_body(raw)
    except FrameError:
        value = None
    if not isinstance(value, dict):
        raise SendApiError(400, BAD_BODY, "Bad request", "Client-Properties header must be a JSON object")
    # Stored on events like a socket's properties: the canonical type first.
    props = {"type": CLIENT_PROPERTIES_TYPE, **{k: v for k, v in value.items() if k != "type"}}
    features = value.get("features")
    return props, [str(f) for f in features] if isinstance(features, list) else []


def _authenticate(ctx: Context, request: web.Request) -> tuple[Actor, list[str]]:
    """The consumer actor the request acts for, and its declared features."""
    acc = _account(ctx, request)
    app_jwt = bearer_value(request.headers.get("Authorization", ""))
    if not app_jwt:
        raise SendApiError(401, APP_JWT_MISSING, "AppJWT is missing", "AUTHORIZATION header is not present")
    try:
        client_id = app_client(ctx, acc, app_jwt)
    except WrongIssuer:
        raise SendApiError(
            400, BRAND_ID, "Invalid AppJWT issuer", "the AppJWT iss claim is not Sentinel"
        ) from None
    except Unauthorized as exc:
        raise SendApiError(401, INVALID_APP_JWT, "Invalid AppJWT", exc.message) from None
    jws = request.headers.get(ON_BEHALF, "").strip()
    if not jws:
        raise SendApiError(
            401, CONSUMER_JWS_MISSING, "ConsumerJWS is missing", "X-LP-ON-BEHALF header is not present"
        )
    try:
        claims = ctx.tokens.verify_consumer(jws, acc.account_id)
    except Unauthorized as exc:
        raise SendApiError(401, INVALID_CONSUMER_JWS, "Invalid ConsumerJWS", exc.message) from None
    # A ConsumerJWS is bound to the app it was issued to (an LP consumer JWT has no azp at all).
    if claims.get("azp") != client_id:
        raise SendApiError(
            401, INVALID_CONSUMER_JWS, "Invalid ConsumerJWS", "the ConsumerJWS was not issued to this app"
        )
    consumer_id = str(claims["sub"])
    if consumer_id not in acc.consumers:
        raise SendApiError(401, INVALID_CONSUMER_JWS, "Invalid ConsumerJWS", "unknown consumer")
    props, features = _client_properties(request)
    return Actor(acc.account_id, "consumer", consumer_id, client_properties=props), features


async def _json_body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw.strip():
        raise SendApiError(400, BAD_BODY, "Bad request", "request body is required")
    try:
        return decode_body(raw)
    except FrameError:
        raise SendApiError(400, BAD_BODY, "Bad request", "request body is not valid JSON") from None


# ---------------------------------------------------------------- request frames

Action = Callable[[Context, Actor, dict[str, Any], list[str]], Any]


def _set_user_profile(ctx: Context, actor: Actor, frame: dict[str, Any], features: list[str]) -> Any:
    body = pm.parse_body(pm.SetUserProfileBody, frame.get("body"))
    return {"msg": ctx.world.set_user_profile(actor, body)}


def _get_user_profile(ctx: Context, actor: Actor, frame: dict[str, Any], features: list[str]) -> Any:
    return ctx.world.get_user_profile(actor, pm.parse_user_profile_target(frame.get("body")))


def _request_conversation(ctx: Context, actor: Actor, frame: dict[str, Any], features: list[str]) -> Any:
    body = pm.parse_body(pm.ConsumerRequestConversationBody, frame.get("body"))
    conv = ctx.world.request_conversation(actor, body, features=features)
    return {"conversationId": conv.conv_id}


def _publish_event(ctx: Context, actor: Actor, frame: dict[str, Any], features: list[str]) -> Any:
    body = pm.parse_body(pm.PublishEventBody, frame.get("body"))
    metadata = frame.get("metadata")
    return {"sequence": ctx.world.publish(actor, body, metadata if isinstance(metadata, list) else None)}


def _update_conversation_field(ctx: Context, actor: Actor, frame: dict[str, Any], features: list[str]) -> Any:
    body = pm.parse_update_conversation_field(frame.get("body"))
    return {"msg": ctx.world.update_fields(actor, body.conversationId, body.conversationField)}


def _upload_url(ctx: Context, actor: Actor, frame: dict[str, Any], features: list[str]) -> Any:
    body = pm.parse_body(pm.GenerateUploadURLBody, frame.get("body"))
    return files.upload_url(ctx, actor, body.fileSize, body.fileType)


def _download_url(ctx: Context, actor: Actor, frame: dict[str, Any], features: list[str]) -> Any:
    body = pm.parse_body(pm.GenerateDownloadURLBody, frame.get("body"))
    return files.download_url(ctx, actor, body.relativePath)


def _get_clock(ctx: Context, actor: Actor, frame: dict[str, Any], features: list[str]) -> Any:
    return {"currentTime": ctx.world.now_ms()}


#: Consumer requests that make sense without a socket; the others need one (subscriptions).
ACTIONS: dict[Req, Action] = {
    Req.SET_USER_PROFILE: _set_user_profile,
    Req.GET_USER_PROFILE: _get_user_profile,
    Req.CONSUMER_REQUEST_CONVERSATION: _request_conversation,
    Req.PUBLISH_EVENT: _publish_event,
    Req.UPDATE_CONVERSATION_FIELD: _update_conversation_field,
    Req.GENERATE_UPLOAD_URL: _upload_url,
    Req.GENERATE_DOWNLOAD_URL: _download_url,
    Req.GET_CLOCK: _get_clock,
}


def _req_id(frame: Any) -> str | None:
    value = frame.get("id") if isinstance(frame, dict) else None
    # Ids are echoed as strings, as on the sockets (clients send numbers too).
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return str(value)
    return None


def _run(ctx: Context, actor: Actor, frame: Any, features: list[str]) -> Any:
    """Execute one request frame; its result body, or :class:`FrameFailure`."""
    if not isinstance(frame, dict):
        raise FrameFailure(400, "a request frame must be a JSON object")
    type_ = frame.get("type")
    if not isinstance(type_, str) or not type_:
        raise FrameFailure(400, "request type is missing")
    canonical = canonical_request(type_)
    if canonical is None:
        raise FrameFailure(400, f"unknown request type {type_}")
    if canonical not in CONSUMER_REQUESTS:
        raise FrameFailure(400, f"{type_} is not a consumer request")
    action = ACTIONS.get(canonical)
    if action is None:
        raise FrameFailure(400, f"{type_} is not supported on the Send API")
    try:
        return action(ctx, actor, frame, features)
    except WorldError as exc:
        raise FrameFailure(exc.status, exc.message) from None
    except pm.BodyError as exc:
        raise FrameFailure(400, f"invalid {type_} body: {exc}") from None
    except Exception:
        log.exception("internal error handling Send API %s", type_)
        raise FrameFailure(500, "internal emulator error") from None


# ---------------------------------------------------------------- handlers


async def conversation(ctx: Context, request: web.Request) -> web.StreamResponse:
    """CONVERSATION: run an array of request frames in order, one result per frame."""
    try:
        actor, features = _authenticate(ctx, request)
        body = pm.as_list(await _json_body(request))
        if not body:
            raise SendApiError(400, BAD_BODY, "Bad request", "the body must be a non-empty array of requests")
    except SendApiError as exc:
        return exc.response()
    results: list[dict[str, Any]] = []
    for frame in body:
        req_id = _req_id(frame)
        try:
            result = _run(ctx, actor, frame, features)
        except FrameFailure as exc:
            results.append({"reqId": req_id, "code": exc.status, "body": exc.message})
        else:
            results.append({"reqId": req_id, "code": "OK", "body": result})
    return json_response(results)


async def send(ctx: Context, request: web.Request) -> web.StreamResponse:
    """SEND: one request frame; a refused request answers its own HTTP status."""
    try:
        actor, features = _authenticate(ctx, request)
        frame = await _json_body(request)
        # Protocol rule: a one-element array may stand for the element itself (and vice versa).
        if isinstance(frame, list) and len(frame) == 1:
            frame = frame[0]
        if not isinstance(frame, dict):
            raise SendApiError(
                400, BAD_BODY, "Bad request", "the body must be one request frame (a JSON object)"
            )
    except SendApiError as exc:
        return exc.response()
    req_id = _req_id(frame)
    try:
        result = _run(ctx, actor, frame, features)
    except FrameFailure as exc:
        return json_response({"reqId": req_id, "code": exc.status, "body": exc.message}, exc.status)
    return json_response({"reqId": req_id, "code": "OK", "body": result})


def routes(ctx: Context) -> list[Route]:
    """The Send API routes."""
    base = "/api/account/{account}/messaging/consumer/conversation"
    return [("POST", base, conversation), ("POST", base + "/send", send)]
