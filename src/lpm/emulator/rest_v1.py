"""UMS REST v1, brand side (``BrandRestConnection`` / ``lpm.rest``; node SDK reference §6.4).

Served on the emulator host (the ``asyncMessagingEnt`` service).  Every request carries
``Brand-ID: <accountId>`` and ``Authorization: Bearer <token>`` (the ``Bearer`` prefix is
optional), where the token is either

* an agentVep bearer (login session): the caller is that agent, or
* an AppJWT from sentinel (server-to-server): the caller is the app install; when publishing it
  names the participant it speaks for (see below).

A missing or mismatched ``Brand-ID`` (not the token's account, or not the ``{accountId}`` of a
``/v1/brands/...`` path) is refused with 400; a missing, unknown or expired token with 401.

Endpoints (``{cid}`` conversation id, ``{did}`` dialog id; the MAIN dialog's id is ``{cid}``):

======  =====================================================  =====================================
method  path                                                   success
======  =====================================================  =====================================
GET     /v1/conversations/{cid}                                200 conversation, ``ETag``
PATCH   /v1/conversations/{cid}                                200 conversation, ``ETag``
GET     /v1/conversations/{cid}/dialogs/{did}                  200 dialog, ``ETag``
PATCH   /v1/conversations/{cid}/dialogs/{did}                  200 dialog, ``ETag``
POST    /v1/conversations/{cid}/dialogs/{did}/participants     201 participant, ``ETag``
GET     /v1/conversations/{cid}/dialogs/{did}/participants/{agentId}   200 participant, ``ETag``
DELETE  /v1/conversations/{cid}/dialogs/{did}/participants/{agentId}   204
POST    /v1/conversations/{cid}/dialogs/{did}/messages         201 ``{"sequence": N}``
GET     /v1/conversations/{cid}/dialogs/{did}/messages         200 ``{"data": [...], "links": {...}}``
POST    /v1/brands/{accountId}/file-upload-path                200 ``{relativePath, queryParams}``
POST    /v1/brands/{accountId}/file-download-path              200 ``{relativePath, queryParams}``
======  =====================================================  =====================================

Shapes (the public v3 shapes in the brand's view, as webhooks show them: agents are named by
their PID; see :mod:`lpm.emulator.render`):

* conversation: the ``result`` of a ``cqm.ExConversationChangeNotification`` UPSERT
  (``convId``, ``effectiveTTR``, ``conversationDetails``, ``lastContentEventNotification``) plus a
  compact ``dialogs: [{id, dialogType, channelType, state}]`` (the form third-party Messaging REST
  clients read);
* dialog: one element of ``conversationDetails.dialogs``;
* participant: ``{id, role, state}``; ``{agentId}`` may be the PID, the old id ``acc.userId``,
  the numeric user id, or the consumer id.

Writes go through the same world operations as ``cm.UpdateConversationField`` and
``ms.PublishEvent`` on the sockets, so REST and WebSocket behave alike:

* join: ``POST .../participants`` ``{id, role, state}`` with ``state`` ``ACTIVE`` (ParticipantsChange
  ADD; ``SUGGESTED`` makes it a SUGGEST).  Only the conversation's current open dialog can be joined.
* leave: ``DELETE .../participants/{agentId}`` (REMOVE of that participant's role).  With the query
  ``transferToSkillId`` and/or ``transferToAgentId`` it is a transfer of the ASSIGNED_AGENT: Skill
  UPDATE and/or ParticipantsChange SUGGEST, then REMOVE, in one atomic update, which re-rings.
* close dialog: ``PATCH .../dialogs/{did}`` ``{"state": "CLOSE", "closeReason"}``; a closeReason of
  AGENT/CONSUMER/SYSTEM/TIMEOUT sets ``closedBy``, any other text is kept as ``closedCause``.
* conversation fields: ``PATCH /v1/conversations/{cid}`` with any of ``{"stage": "CLOSE"}``,
  ``{"type": <ttrType>, "value": <seconds>}`` (TTR) and ``{"manualETTR": <epoch ms> | null}``,
  applied atomically.

Publishing, ``POST .../messages`` with a body of one of these forms::

    {"type": "PLAIN_TEXT", "content": {"text": "..."}, "quickReplies"?: {...}}
    {"type": "RICH_CONTENT", "content": {...structured content...}, "quickReplies"?: {...}}
    {"type": "HOSTED_FILE", "content": {"relativePath", "fileType", "caption"?, "preview"?}}
    {"type": "ACKNOWLEDGEMENT", "content": {"sequenceList": [..], "status": "READ"}}
    {"type": "CHAT_STATE", "content": {"chatState": "COMPOSING"}}

each optionally with ``metadata`` (array) and ``messageAudience`` (``ALL`` or
``AGENTS_AND_MANAGERS``).  The answer is ``201 {"sequence": N}`` (0 for chat states, which are
not stored).  **Server JWT publishing (our documented choice; the platform's shape is not
public):** with an AppJWT the body must also carry ``originatorId`` (an agent's PID, old id or user
id, or the consumer id) and ``originatorRole`` (ASSIGNED_AGENT, MANAGER, AGENT, CONTROLLER or
CONSUMER); the originator must be an active participant of the dialog in that role.  With an
agent bearer both fields are ignored: the publisher is the logged-in agent.

Reading, ``GET .../messages?limit&newerThanSequence&olderThanSequence&offset``: the dialog's
stored events with ``newerThanSequence < sequence < olderThanSequence`` in ascending order
(``newerThanSequence=0`` means "from the start", as QueryMessages), then ``offset`` skipped and
at most ``limit`` (default 100, at most 1000) returned.  Each item is ``{sequence, dialogId,
conversationId, originator: {id, role}, type, content, messageAudience, metadata?, quickReplies?,
createdTs}`` where ``type`` is PLAIN_TEXT (``content.text``), HOSTED_FILE (the file message),
RICH_CONTENT (the structured content), ACKNOWLEDGEMENT (``{sequenceList, status}``) or, for other
content types, the content type in upper case with ``/`` and ``-`` as ``_`` (``content``
``{contentType, message}``).  ``links.self`` is this page; ``links.next`` (absent on the last page)
is the next page's URL (same query, ``offset`` advanced).  As lp-messaging-sdk's ``getMessages``
puts the dialog id in both slots (``/v1/conversations/{did}/dialogs/{did}/messages``), that form
is accepted for any dialog, POST_SURVEY included.

ETags are strong: a hash of the resource's rendered representation (and, for a conversation,
its last update time).  PATCH and DELETE need ``If-Match`` with the ETag of a preceding GET of the
same resource (``*`` matches anything): a missing ``If-Match`` answers 428, a stale one 412.  Note
that a conversation's ETag changes with every update of the conversation, messages included.

Errors are JSON ``{"code": <HTTP status>, "message": "<why>"}``: 400 malformed JSON or body, bad
query, Brand-ID problems, refused operations (e.g. a closed dialog); 401 authentication; 403 not a
participant / not allowed; 404 unknown conversation, dialog or participant; 412/428 as above; 413
file too large.

The module is one piece (over 600 lines, a sixth of them this reference): it is one face whose
handlers share the authentication, Brand-ID, ETag and error helpers, and each handler is a thin
mapping onto one world operation.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import jwt
import msgspec
from aiohttp import web

from lpm.emulator import entities as m
from lpm.emulator import files, render
from lpm.emulator.entities import Account, Actor, Conversation, Dialog, EventRecord, Participant
from lpm.emulator.http_common import decode_body, json_response, query_int
from lpm.emulator.world_errors import BadRequest, NotFound, Unauthorized, WorldError
from lpm.protocol import requests as pm
from lpm.protocol.frames import FrameError, encode

if TYPE_CHECKING:
    from lpm.emulator.context import Context
    from lpm.emulator.extensions import Route

Handler = Callable[["Context", web.Request], Awaitable[web.StreamResponse]]

#: Roles an AppJWT caller may publish as.
ORIGINATOR_ROLES = frozenset({m.ASSIGNED_AGENT, m.MANAGER, m.AGENT, m.CONTROLLER, m.CONSUMER})
#: ``closeReason`` values that name who closed a dialog (anything else is a free-text cause).
CLOSERS = frozenset({"AGENT", "CONSUMER", "SYSTEM", "TIMEOUT"})
DEFAULT_PAGE = 100
MAX_PAGE = 1000


class PreconditionFailed(WorldError):
    """``If-Match`` names another version of the resource."""

    status = 412


class PreconditionRequired(WorldError):
    """A conditional write came without ``If-Match``."""

    status = 428


def error_response(status: int, message: str) -> web.Response:
    """The REST face's error body."""
    return json_response({"code": status, "message": message}, status)


def guard(fn: Handler) -> Handler:
    """Turn world refusals and invalid bodies into the JSON error body ``{code, message}`` (the
    REST face's; the history face answers in the same shape)."""

    @functools.wraps(fn)
    async def handler(ctx: Context, request: web.Request) -> web.StreamResponse:
        try:
            return await fn(ctx, request)
        except WorldError as exc:
            return error_response(exc.status, exc.message)
        except pm.BodyError as exc:
            return error_response(400, f"invalid body: {exc}")

    return handler


# ---------------------------------------------------------------- request helpers


def _token(request: web.Request) -> str:
    value = request.headers.get("Authorization", "").strip()
    if value[:7].lower() == "bearer ":
        value = value[7:].strip()
    if not value:
        raise Unauthorized("Authorization header with a bearer token is required")
    return value


def _unverified_audience(token: str) -> str | None:
    """``aud`` read without verification, only to word a Brand-ID mismatch as such."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    aud = claims.get("aud")
    return aud if isinstance(aud, str) else None


def authenticate(ctx: Context, request: web.Request, path_account: str | None = None) -> Actor:
    """The caller: ``Actor(acc, "agent", user id)`` or ``Actor(acc, "app", client id)``."""
    token = _token(request)
    brand_id = request.headers.get("Brand-ID", "").strip()
    if not brand_id:
        raise BadRequest("Brand-ID header is required")
    if path_account is not None and path_account != brand_id:
        raise BadRequest(f"Brand-ID {brand_id} does not match account {path_account} of the path")
    acc = ctx.world.accounts.get(brand_id)
    if acc is None:
        raise BadRequest(f"unknown Brand-ID {brand_id}")
    session = ctx.world.session(token)
    if session is not None:
        if session.account_id != brand_id:
            raise BadRequest(f"Brand-ID {brand_id} does not match the account of the bearer token")
        return Actor(brand_id, "agent", session.user_id)
    aud = _unverified_audience(token)
    if aud is None:
        raise Unauthorized("invalid or expired bearer token")
    if aud.startswith("le") and aud != f"le{brand_id}":
        raise BadRequest(f"Brand-ID {brand_id} does not match the account of the AppJWT")
    claims = ctx.tokens.verify_app_jwt(token, brand_id)
    client_id = str(claims.get("azp") or claims["sub"])
    if client_id not in acc.app_installs:
        raise Unauthorized("the app install of this AppJWT no longer exists")
    return Actor(brand_id, "app", client_id)


async def _json_body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw.strip():
        raise BadRequest("a JSON body is required")
    try:
        return decode_body(raw)
    except FrameError as exc:
        raise BadRequest(f"malformed JSON: {exc}") from None


def _check_if_match(request: web.Request, current: str, what: str) -> None:
    raw = request.headers.get("If-Match")
    if raw is None or not raw.strip():
        raise PreconditionRequired(f"If-Match header with the {what}'s ETag is required")
    for candidate in (c.strip() for c in raw.split(",")):
        # Unquoted tags are tolerated: clients copying the header value by hand drop the quotes.
        if candidate in ("*", current) or f'"{candidate}"' == current:
            return
    raise PreconditionFailed(f"the {what} has changed: If-Match does not match its current ETag")


def _etag(*parts: Any) -> str:
    return '"' + hashlib.sha256(encode(list(parts))).hexdigest()[:32] + '"'


# ---------------------------------------------------------------- resources


def _conversation(ctx: Context, actor: Actor, cid: str) -> Conversation:
    """The conversation (404) readable by ``actor`` (403)."""
    conv = ctx.world.conversation(actor.account_id, cid)
    ctx.world.check_dialog_read(actor, conv.main.dialog_id, conv.conv_id)
    return conv


def _dialog_target(
    ctx: Context, request: web.Request, *, read: bool = True
) -> tuple[Actor, Account, Conversation, Dialog]:
    """Who calls, their account, and the ``{cid}`` / ``{did}`` of the path.  ``read``: the caller
    must be allowed to read the conversation (off where the world authorizes the change itself)."""
    actor = authenticate(ctx, request)
    acc = ctx.world.account(actor.account_id)
    cid = request.match_info["cid"]
    conv = _conversation(ctx, actor, cid) if read else ctx.world.conversation(actor.account_id, cid)
    return actor, acc, conv, _dialog(conv, request.match_info["did"])


def _dialog(conv: Conversation, did: str) -> Dialog:
    dialog = conv.dialog(did)
    if dialog is None:
        raise NotFound(f"dialog {did} not found in conversation {conv.conv_id}")
    return dialog


def _conversation_view(ctx: Context, conv: Conversation) -> tuple[dict[str, Any], str]:
    body = render.conversation_result(ctx.world, conv, public=True)
    body["dialogs"] = [
        {"id": d.dialog_id, "dialogType": d.dialog_type, "channelType": d.channel_type, "state": d.state}
        for d in conv.dialogs
    ]
    return body, _etag("conversation", conv.last_update_ts, body)


def _dialog_view(ctx: Context, conv: Conversation, did: str) -> tuple[dict[str, Any], str]:
    result = render.conversation_result(ctx.world, conv, public=True)
    for dialog in result["conversationDetails"]["dialogs"]:
        if dialog["dialogId"] == did:
            return dialog, _etag("dialog", conv.conv_id, dialog)
    raise NotFound(f"dialog {did} not found in conversation {conv.conv_id}")


def _participant_key(acc: Account, any_id: str) -> tuple[str, str]:
    """(world id, public id) of a participant named by any of its ids."""
    user = acc.resolve_user(any_id)
    if user is not None:
        return user.user_id, user.pid
    return any_id, any_id


def _find_participant(acc: Account, dialog: Dialog, any_id: str) -> Participant:
    key, _ = _participant_key(acc, any_id)
    found = [p for p in dialog.participants if p.id == key]
    if not found:
        raise NotFound(f"{any_id} is not a participant of dialog {dialog.dialog_id}")
    # An agent may be listed twice (e.g. SUGGESTED and another role); the active entry wins.
    return next((p for p in found if p.state == m.ACTIVE), found[0])


def _participant_view(
    acc: Account, conv: Conversation, dialog: Dialog, p: Participant
) -> tuple[dict[str, Any], str]:
    public = p.id if p.role == m.CONSUMER else _participant_key(acc, p.id)[1]
    body = {"id": public, "role": p.role, "state": p.state}
    return body, _etag("participant", conv.conv_id, dialog.dialog_id, body)


def _resource(body: Any, etag: str, status: int = 200) -> web.Response:
    return json_response(body, status, headers={"ETag": etag})


# ---------------------------------------------------------------- conversations and dialogs


async def get_conversation(ctx: Context, request: web.Request) -> web.StreamResponse:
    """``GET /v1/conversations/{cid}``."""
    actor = authenticate(ctx, request)
    conv = _conversation(ctx, actor, request.match_info["cid"])
    return _resource(*_conversation_view(ctx, conv))


class _ConversationPatch(msgspec.Struct):
    stage: str | None = None
    type: str | None = None
    value: int | None = None
    manualETTR: int | msgspec.UnsetType | None = msgspec.UNSET


async def patch_conversation(ctx: Context, request: web.Request) -> web.StreamResponse:
    """``PATCH /v1/conversations/{cid}``: stage, TTR and manual ETTR."""
    actor = authenticate(ctx, request)
    conv = _conversation(ctx, actor, request.match_info["cid"])
    _check_if_match(request, _conversation_view(ctx, conv)[1], "conversation")
    patch = pm.parse_body(_ConversationPatch, await _json_body(request))
    fields: list[pm.ConversationField] = []
    if patch.type is not None:
        fields.append(pm.TTRField(ttrType=patch.type, value=patch.value or 0))
    elif patch.value is not None:
        raise BadRequest("a TTR update needs both type and value")
    if patch.manualETTR is not msgspec.UNSET:
        fields.append(pm.ManualETTRField(time=patch.manualETTR))
    if patch.stage is not None:
        # Last, so a body that also sets TTR updates the conversation before closing it.
        fields.append(pm.StageField(conversationState=patch.stage))
    if not fields:
        raise BadRequest("nothing to update: send stage, type and value (TTR), or manualETTR")
    ctx.world.update_fields(actor, conv.conv_id, fields)
    return _resource(*_conversation_view(ctx, conv))


async def get_dialog(ctx: Context, request: web.Request) -> web.StreamResponse:
    """``GET /v1/conversations/{cid}/dialogs/{did}``."""
    actor = authenticate(ctx, request)
    conv = _conversation(ctx, actor, request.match_info["cid"])
    return _resource(*_dialog_view(ctx, conv, request.match_info["did"]))


class _DialogPatch(msgspec.Struct):
    state: str
    closeReason: str | None = None


async def patch_dialog(ctx: Context, request: web.Request) -> web.StreamResponse:
    """``PATCH /v1/conversations/{cid}/dialogs/{did}``: close the dialog."""
    actor = authenticate(ctx, request)
    conv = _conversation(ctx, actor, request.match_info["cid"])
    did = request.match_info["did"]
    _check_if_match(request, _dialog_view(ctx, conv, did)[1], "dialog")
    patch = pm.parse_body(_DialogPatch, await _json_body(request))
    spec = pm.DialogSpec(dialogId=did, state=patch.state)
    if patch.closeReason in CLOSERS:
        spec.closedBy = patch.closeReason
    elif patch.closeReason:
        spec.closedCause = patch.closeReason
    ctx.world.update_fields(actor, conv.conv_id, [pm.DialogChangeField(type="UPDATE", dialog=spec)])
    return _resource(*_dialog_view(ctx, conv, did))


# ---------------------------------------------------------------- participants


async def get_participant(ctx: Context, request: web.Request) -> web.StreamResponse:
    """``GET .../dialogs/{did}/participants/{agentId}``."""
    _, acc, conv, dialog = _dialog_target(ctx, request)
    participant = _find_participant(acc, dialog, request.match_info["agent"])
    return _resource(*_participant_view(acc, conv, dialog, participant))


class _JoinBody(msgspec.Struct):
    id: str
    role: str
    state: str = m.ACTIVE


async def add_participant(ctx: Context, request: web.Request) -> web.StreamResponse:
    """``POST .../dialogs/{did}/participants``: join (ADD) or suggest (SUGGEST) an agent."""
    # No read check here: an agent joining a conversation is not a participant yet; the world
    # authorizes the change itself (self-join, or a participant / manager adding someone).
    actor, acc, conv, dialog = _dialog_target(ctx, request, read=False)
    body = pm.parse_body(_JoinBody, await _json_body(request))
    kinds = {m.ACTIVE: "ADD", m.SUGGESTED: "SUGGEST"}
    if body.state not in kinds:
        raise BadRequest(f"state must be ACTIVE or SUGGESTED, not {body.state}")
    current = conv.open_dialog()
    if current is None or current.dialog_id != dialog.dialog_id:
        open_id = current.dialog_id if current else None
        raise BadRequest(
            f"dialog {dialog.dialog_id} cannot be joined: the conversation's open dialog is {open_id}"
        )
    field = pm.ParticipantsChangeField(type=kinds[body.state], role=body.role, userId=body.id)
    ctx.world.update_fields(actor, conv.conv_id, [field])
    participant = _find_participant(acc, dialog, body.id)
    return _resource(*_participant_view(acc, conv, dialog, participant), status=201)


async def remove_participant(ctx: Context, request: web.Request) -> web.StreamResponse:
    """``DELETE .../participants/{agentId}``: leave, or transfer with ``transferToSkillId`` /
    ``transferToAgentId``."""
    actor, acc, conv, dialog = _dialog_target(ctx, request)
    any_id = request.match_info["agent"]
    participant = _find_participant(acc, dialog, any_id)
    _check_if_match(request, _participant_view(acc, conv, dialog, participant)[1], "participant")
    if participant.role == m.CONSUMER:
        raise BadRequest("the consumer cannot be removed from a dialog")
    to_skill = request.query.get("transferToSkillId") or None
    to_agent = request.query.get("transferToAgentId") or None
    fields: list[pm.ConversationField] = []
    if to_skill or to_agent:
        if participant.role != m.ASSIGNED_AGENT:
            raise BadRequest(f"only the ASSIGNED_AGENT can be transferred, {any_id} is {participant.role}")
        # Skill and SUGGEST first: they need the caller to still be a participant when the
        # caller transfers itself, and the REMOVE at the end is what triggers re-routing.
        if to_skill:
            fields.append(pm.SkillField(skill=to_skill))
        if to_agent:
            fields.append(pm.ParticipantsChangeField(type="SUGGEST", role=m.ASSIGNED_AGENT, userId=to_agent))
    fields.append(pm.ParticipantsChangeField(type="REMOVE", role=participant.role, userId=participant.id))
    ctx.world.update_fields(actor, conv.conv_id, fields)
    return web.Response(status=204)


# ---------------------------------------------------------------- messages


class _MessageBody(msgspec.Struct):
    type: str
    content: Any = None
    metadata: list[Any] | None = None
    messageAudience: str | None = None
    quickReplies: Any = None
    originatorId: str | None = None
    originatorRole: str | None = None


def _content(body: _MessageBody, *keys: str) -> dict[str, Any]:
    content = body.content
    if not isinstance(content, dict) or any(k not in content for k in keys):
        raise BadRequest(f"a {body.type} message needs content with {', '.join(keys)}")
    return content


def _event(body: _MessageBody) -> dict[str, Any]:
    """The UMS messaging event of a REST message body."""
    event: dict[str, Any]
    if body.type == "PLAIN_TEXT":
        event = {
            "type": "ContentEvent",
            "contentType": "text/plain",
            "message": _content(body, "text")["text"],
        }
    elif body.type == "HOSTED_FILE":
        message = _content(body, "relativePath", "fileType")
        event = {"type": "ContentEvent", "contentType": "hosted/file", "message": message}
    elif body.type == "RICH_CONTENT":
        event = {"type": "RichContentEvent", "content": _content(body)}
    elif body.type == "ACKNOWLEDGEMENT":
        content = _content(body, "sequenceList", "status")
        event = {
            "type": "AcceptStatusEvent",
            "status": content["status"],
            "sequenceList": content["sequenceList"],
        }
    elif body.type == "CHAT_STATE":
        event = {"type": "ChatStateEvent", "chatState": _content(body, "chatState")["chatState"]}
    else:
        raise BadRequest(
            f"unknown message type {body.type} "
            "(PLAIN_TEXT, RICH_CONTENT, HOSTED_FILE, ACKNOWLEDGEMENT or CHAT_STATE)"
        )
    if body.quickReplies is not None and event["type"] in ("ContentEvent", "RichContentEvent"):
        event["quickReplies"] = body.quickReplies
    return event


def _publisher(acc: Account, actor: Actor, body: _MessageBody) -> Actor:
    """Who publishes: the agent of a bearer, or the originator an AppJWT caller names."""
    if actor.kind != "app":
        return actor
    if not body.originatorRole:
        raise BadRequest(
            "originatorRole is required when publishing with a server JWT (AppJWT): "
            f"one of {', '.join(sorted(ORIGINATOR_ROLES))}"
        )
    if body.originatorRole not in ORIGINATOR_ROLES:
        raise BadRequest(
            f"originatorRole {body.originatorRole} is not one of {', '.join(sorted(ORIGINATOR_ROLES))}"
        )
    if not body.originatorId:
        raise BadRequest("originatorId is required when publishing with a server JWT (AppJWT)")
    originator = body.originatorId
    if body.originatorRole != m.CONSUMER:
        # The world records the originator by numeric user id; a PID or old id would be kept
        # verbatim and then rendered wrongly on the brand dialect.
        originator = _participant_key(acc, originator)[0]
    return Actor(acc.account_id, "app", originator, role=body.originatorRole)


async def publish_message(ctx: Context, request: web.Request) -> web.StreamResponse:
    """``POST .../dialogs/{did}/messages`` (also ``lpm.publish_message``)."""
    actor, acc, conv, dialog = _dialog_target(ctx, request, read=False)
    body = pm.parse_body(_MessageBody, await _json_body(request))
    raw: dict[str, Any] = {
        "dialogId": dialog.dialog_id,
        "conversationId": conv.conv_id,
        "event": _event(body),
    }
    if body.messageAudience is not None:
        raw["messageAudience"] = body.messageAudience
    publish = pm.parse_body(pm.PublishEventBody, raw)
    sequence = ctx.world.publish(_publisher(acc, actor, body), publish, body.metadata or None)
    return json_response({"sequence": sequence}, 201)


def _message_item(acc: Account, record: EventRecord) -> dict[str, Any]:
    change = render.event_change(acc, record, public=True)
    event = record.event
    kind = event.get("type")
    content: Any
    if kind == "ContentEvent":
        content_type = str(event.get("contentType") or "text/plain")
        if content_type == "text/plain":
            type_, content = "PLAIN_TEXT", {"text": event.get("message")}
        elif content_type == "hosted/file":
            type_, content = "HOSTED_FILE", event.get("message")
        else:
            type_ = content_type.upper().replace("/", "_").replace("-", "_")
            content = {"contentType": content_type, "message": event.get("message")}
    elif kind == "RichContentEvent":
        type_, content = "RICH_CONTENT", event.get("content")
    elif kind == "AcceptStatusEvent":
        type_ = "ACKNOWLEDGEMENT"
        content = {"sequenceList": event.get("sequenceList"), "status": event.get("status")}
    else:
        type_, content = str(kind), {k: v for k, v in event.items() if k != "type"}
    item: dict[str, Any] = {
        "sequence": record.sequence,
        "dialogId": record.dialog_id,
        "conversationId": record.conversation_id,
        "originator": {"id": change["originatorId"], "role": record.originator_role},
        "type": type_,
        "content": content,
        "messageAudience": record.audience,
    }
    if record.metadata:
        item["metadata"] = record.metadata
    if event.get("quickReplies") is not None:
        item["quickReplies"] = event["quickReplies"]
    item["createdTs"] = record.server_ts
    return item


async def get_messages(ctx: Context, request: web.Request) -> web.StreamResponse:
    """``GET .../dialogs/{did}/messages``: one page of the dialog's stored events."""
    actor = authenticate(ctx, request)
    acc = ctx.world.account(actor.account_id)
    cid, did = request.match_info["cid"], request.match_info["did"]
    if cid == did and cid not in acc.conversations:
        # lp-messaging-sdk's getMessages puts the dialog id in the conversation slot too; for a
        # POST_SURVEY dialog that is not a conversation id, so find the dialog's conversation.
        conv = ctx.world.conversation_of_dialog(actor.account_id, did)
    else:
        conv = ctx.world.conversation(actor.account_id, cid)
    dialog = _dialog(conv, did)
    limit = query_int(request, "limit", DEFAULT_PAGE, 0)
    offset = query_int(request, "offset", 0, 0)
    assert limit is not None and offset is not None
    limit = min(limit, MAX_PAGE)
    _, records = ctx.world.events(
        actor,
        dialog.dialog_id,
        newer_than=query_int(request, "newerThanSequence", None, -1),
        older_than=query_int(request, "olderThanSequence", None, 0),
        conversation_id=conv.conv_id,
    )
    page = records[offset : offset + limit]
    links: dict[str, str] = {"self": str(request.url)}
    if offset + limit < len(records) and limit > 0:
        links["next"] = str(request.url.update_query(offset=str(offset + limit)))
    return json_response({"data": [_message_item(acc, r) for r in page], "links": links})


# ---------------------------------------------------------------- files


async def file_upload_path(ctx: Context, request: web.Request) -> web.StreamResponse:
    """``POST /v1/brands/{acc}/file-upload-path`` ``{fileSize, fileType}``."""
    actor = authenticate(ctx, request, request.match_info["account"])
    body = pm.parse_body(pm.GenerateUploadURLBody, await _json_body(request))
    return json_response(files.upload_url(ctx, actor, body.fileSize, body.fileType))


async def file_download_path(ctx: Context, request: web.Request) -> web.StreamResponse:
    """``POST /v1/brands/{acc}/file-download-path`` ``{relativePath}``."""
    actor = authenticate(ctx, request, request.match_info["account"])
    body = pm.parse_body(pm.GenerateDownloadURLBody, await _json_body(request))
    return json_response(files.download_url(ctx, actor, body.relativePath))


def routes(ctx: Context) -> list[Route]:
    """The UMS REST v1 routes."""
    conv = "/v1/conversations/{cid}"
    dialog = conv + "/dialogs/{did}"
    return [
        ("GET", conv, guard(get_conversation)),
        ("PATCH", conv, guard(patch_conversation)),
        ("GET", dialog, guard(get_dialog)),
        ("PATCH", dialog, guard(patch_dialog)),
        ("POST", dialog + "/participants", guard(add_participant)),
        ("GET", dialog + "/participants/{agent}", guard(get_participant)),
        ("DELETE", dialog + "/participants/{agent}", guard(remove_participant)),
        ("POST", dialog + "/messages", guard(publish_message)),
        ("GET", dialog + "/messages", guard(get_messages)),
        ("POST", "/v1/brands/{account}/file-upload-path", guard(file_upload_path)),
        ("POST", "/v1/brands/{account}/file-download-path", guard(file_download_path)),
    ]
