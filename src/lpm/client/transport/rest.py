"""Brand connection over UMS REST v1 (``connection_type=ConnectionType.REST``; reference §2.5, §6.4).

:class:`BrandRestConnection` implements :class:`~lpm.client.actions.ConnectionActions` with plain
HTTP calls to ``{scheme}://{asyncMessagingEnt}/v1/...``, so the same
:class:`~lpm.client.model.conversation.Conversation` and :class:`~lpm.client.model.dialog.Dialog`
objects work on it as on a WebSocket connection.  There is no push over REST: notifications arrive through
webhooks (:mod:`lpm.webhooks`), and :meth:`BrandRestConnection.get_conversation_by_id` reads a
conversation's current state on demand.

Every request carries ``Brand-ID: <account>`` and ``Authorization: Bearer <token>``; the token
comes from the same :class:`~lpm.client.auth.tokens.TokenMaintainer` as the brand WebSocket
connection (or is the ``token`` option, served by a
:class:`~lpm.client.auth.tokens.StaticTokenMaintainer`).  A 401 makes the maintainer regenerate
the token and the request is sent once more.

How the object model's requests map onto REST:

================================  ==============================================================
publish (text, private, rich,     ``POST /v1/conversations/{cid}/dialogs/{did}/messages`` with a
accept/read, chat state, file)    ``PLAIN_TEXT``, ``RICH_CONTENT``, ``HOSTED_FILE``,
                                  ``ACKNOWLEDGEMENT`` or ``CHAT_STATE`` body
stage CLOSE, TTR, manual ETTR     one ``PATCH /v1/conversations/{cid}`` (fields merged)
close dialog                      ``PATCH /v1/conversations/{cid}/dialogs/{did}``
join / suggest                    ``POST .../dialogs/{did}/participants``
leave                             ``DELETE .../participants/{agentId}``
transfer                          ``DELETE .../participants/{assigned}?transferToSkillId&transferToAgentId``
query messages                    ``GET .../dialogs/{did}/messages`` (paged with ``offset``)
upload / download URLs            ``POST /v1/brands/{acc}/file-upload-path`` / ``file-download-path``
================================  ==============================================================

PATCH and DELETE are conditional: the resource is read with a GET right before, and its ``ETag``
is sent in ``If-Match``.  When the resource changed in between (412) it is read and written once
more; a second 412 is raised.  Conversation bodies the server returns anyway (those GETs and the
PATCH answers) refresh the cached conversation, so e.g. ``conversation.stage`` is ``CLOSE`` as
soon as :meth:`~lpm.client.model.conversation.Conversation.close` returns.

Conversation fields REST has no endpoint for (note, CSAT, delay, a skill change without an
assigned agent to transfer) and subscriptions, rings, agent state and user profiles raise
:class:`~lpm.errors.UnsupportedActionError` (an :class:`~lpm.errors.InvalidStateError`) before
any I/O.  Failed requests raise
:class:`~lpm.errors.RequestError` with the HTTP status as ``code``, a ``request_type`` such as
``"REST POST /v1/conversations/{cid}/dialogs/{did}/messages"`` (the path template), the error body
and the ``conversation_id`` / ``dialog_id`` concerned.

Why one module (about 650 lines): the REST connection and the planning of conversation
fields into REST calls (:func:`plan_fields`) are one mapping of the object model onto UMS
REST v1; the HTTP helpers they share live in :mod:`lpm.client.transport.base`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from lpm.client.auth.brand_identity import BrandIdentity
from lpm.client.auth.csds import ServiceName
from lpm.client.auth.http import HttpResponse, HttpSettings
from lpm.client.auth.tokens import (
    StaticTokenMaintainer,
    TokenMaintainer,
    brand_token_maintainer,
    strip_bearer,
)
from lpm.client.history_search import SEARCH_PATH, HistoryQuery, HistorySearch
from lpm.client.model.conversation import CLOSE_OK, Conversation
from lpm.client.options import ConnectionOptions
from lpm.client.shift_status import ShiftStatusPoller
from lpm.client.transport.base import (
    MessagesQuery,
    Publish,
    RequestConnection,
    call_any_status,
    sequence_of,
)
from lpm.enums import ParticipantRole
from lpm.errors import (
    ConfigurationError,
    InvalidStateError,
    ProtocolError,
    RequestError,
    UnsupportedActionError,
)
from lpm.protocol.notifications import (
    ConversationInfo,
    MessagingEventInfo,
    NotificationError,
    decode_conversation_changes,
)

__all__ = [
    "BrandRestConnection",
    "RestTarget",
    "RestWrite",
    "conversation_info",
    "event_from_rest_item",
    "path_segment",
    "plan_fields",
    "request_error",
    "rest_message_body",
    "rest_request",
    "strip_bearer",
]

log = logging.getLogger("lpm.client.transport.rest")

#: How error messages name a REST connection, and what to use for what it cannot do.
TRANSPORT_NAME = "a REST connection (UMS REST v1)"
UNSUPPORTED_HINT = (
    "UMS REST v1 has no endpoint for it and pushes nothing (notifications come by webhooks: feed "
    "them with lpm.webhooks.create_app or process_webhooks_notification); use a WebSocket connection"
)
#: Items asked for per ``GET .../messages`` page (the server's maximum).
MAX_PAGE = 1000
#: Safety stop for message paging.
MAX_PAGES = 10_000

CONVERSATION = "/v1/conversations/{cid}"
DIALOG = CONVERSATION + "/dialogs/{did}"
PARTICIPANTS = DIALOG + "/participants"
PARTICIPANT = PARTICIPANTS + "/{agentId}"
MESSAGES = DIALOG + "/messages"
UPLOAD_PATH = "/v1/brands/{accountId}/file-upload-path"
DOWNLOAD_PATH = "/v1/brands/{accountId}/file-download-path"

_CONVERSATION_FIELDS = frozenset({"ConversationStateField", "TTRField", "ManualETTR"})


# ---------------------------------------------------------------- shared helpers (also lpm.publish)


def request_error(
    status: int, request_type: str, body: Any, conversation_id: str | None, dialog_id: str | None
) -> RequestError:
    """The :class:`RequestError` of a refused REST call."""
    error = RequestError(status, request_type, body)
    error.conversation_id = conversation_id
    error.dialog_id = dialog_id
    return error


async def rest_request(
    http: HttpSettings,
    url: str,
    *,
    method: str,
    request_type: str,
    account_id: str,
    token: str,
    json: Any = None,
    params: Mapping[str, str] | None = None,
    if_match: str | None = None,
) -> HttpResponse:
    """One UMS REST v1 call with the ``Brand-ID`` and bearer headers; returns the response whatever
    its status (the caller decides), except that a 429 still refused after
    :class:`~lpm.client.auth.http.RetryPolicy`'s retries raises :class:`RequestError`.

    Transport failures raise :class:`~lpm.errors.HttpError`; the token never appears in messages.
    """
    headers = {"Brand-ID": account_id, "Authorization": f"Bearer {token}"}
    if if_match is not None:
        headers["If-Match"] = if_match
    return await call_any_status(
        http,
        method,
        url,
        request_type=request_type,
        headers=headers,
        json=json,
        params=params,
        secrets=(token,),
    )


def rest_message_body(
    event: Mapping[str, Any], *, audience: str = "ALL", metadata: list[Any] | None = None
) -> dict[str, Any]:
    """The ``POST .../messages`` body of a UMS publish ``event`` (ContentEvent, RichContentEvent,
    AcceptStatusEvent or ChatStateEvent).

    Raises :class:`ConfigurationError` for events REST cannot carry (another content type).
    """
    kind = event.get("type")
    body: dict[str, Any]
    if kind == "ContentEvent":
        content_type = event.get("contentType") or "text/plain"
        if content_type == "text/plain":
            body = {"type": "PLAIN_TEXT", "content": {"text": event.get("message")}}
        elif content_type == "hosted/file":
            body = {"type": "HOSTED_FILE", "content": event.get("message")}
        else:
            raise ConfigurationError(f"content type {content_type!r} cannot be published over UMS REST v1")
    elif kind == "RichContentEvent":
        body = {"type": "RICH_CONTENT", "content": event.get("content")}
    elif kind == "AcceptStatusEvent":
        body = {
            "type": "ACKNOWLEDGEMENT",
            "content": {"sequenceList": event.get("sequenceList"), "status": event.get("status")},
        }
    elif kind == "ChatStateEvent":
        body = {"type": "CHAT_STATE", "content": {"chatState": event.get("chatState")}}
    else:
        raise ConfigurationError(f"event type {kind!r} cannot be published over UMS REST v1")
    if event.get("quickReplies") is not None:
        body["quickReplies"] = event["quickReplies"]
    if metadata:
        body["metadata"] = list(metadata)
    if audience != "ALL":
        body["messageAudience"] = str(audience)
    return body


def event_from_rest_item(item: Mapping[str, Any]) -> MessagingEventInfo:
    """A ``GET .../messages`` item as the messaging event the object model merges.

    The item types map back to the UMS events they were published as (``PLAIN_TEXT`` →
    ContentEvent ``text/plain``, ``HOSTED_FILE`` → ContentEvent ``hosted/file``, ``RICH_CONTENT`` →
    RichContentEvent, ``ACKNOWLEDGEMENT`` → AcceptStatusEvent); any other type whose content is
    ``{contentType, message}`` is a ContentEvent of that content type.
    """
    kind = str(item.get("type") or "")
    content = item.get("content")
    event: dict[str, Any]
    if kind == "PLAIN_TEXT":
        text = content.get("text") if isinstance(content, Mapping) else content
        event = {"type": "ContentEvent", "contentType": "text/plain", "message": text}
    elif kind == "HOSTED_FILE":
        event = {"type": "ContentEvent", "contentType": "hosted/file", "message": content}
    elif kind == "RICH_CONTENT":
        event = {"type": "RichContentEvent", "content": content}
    elif kind == "ACKNOWLEDGEMENT" and isinstance(content, Mapping):
        event = {
            "type": "AcceptStatusEvent",
            "status": content.get("status"),
            "sequenceList": content.get("sequenceList"),
        }
    elif isinstance(content, Mapping) and "contentType" in content:
        event = {
            "type": "ContentEvent",
            "contentType": content["contentType"],
            "message": content.get("message"),
        }
    else:
        event = {"type": kind, **(dict(content) if isinstance(content, Mapping) else {})}
    if item.get("quickReplies") is not None:
        event["quickReplies"] = item["quickReplies"]
    originator = item.get("originator")
    originator = originator if isinstance(originator, Mapping) else {}
    sequence = item.get("sequence")
    created = item.get("createdTs")
    metadata = item.get("metadata")
    return MessagingEventInfo(
        dialog_id=str(item.get("dialogId") or ""),
        event=event,
        originator_id=_opt_str(originator.get("id")),
        originator_role=_opt_str(originator.get("role")),
        sequence=sequence if isinstance(sequence, int) and not isinstance(sequence, bool) else None,
        conversation_id=_opt_str(item.get("conversationId")),
        server_ts=created if isinstance(created, int) else None,
        audience=str(item.get("messageAudience") or "ALL"),
        metadata=list(metadata) if isinstance(metadata, list) else None,
    )


def conversation_info(body: Any) -> ConversationInfo:
    """The conversation of a ``GET/PATCH /v1/conversations/{cid}`` body (the ``result`` shape of
    a conversation notification); :class:`ProtocolError` when it is not one."""
    try:
        _, changes = decode_conversation_changes(
            {"changes": [{"type": "UPSERT", "result": body}]}, brand=False
        )
    except NotificationError as exc:
        raise ProtocolError(f"unexpected conversation body from UMS REST: {exc}", frame=body) from None
    return changes[0].conversation


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


def path_segment(value: str) -> str:
    """A path segment (ids are URL-safe in practice; quoting keeps a stray ``/`` from escaping)."""
    return quote(value, safe="")


@dataclass(frozen=True, slots=True)
class RestTarget:
    """A REST resource: its path template (placeholders ``{cid}``, ``{did}``, ``{agentId}``,
    ``{accountId}``) and the ids that fill it."""

    template: str
    conversation_id: str | None = None
    dialog_id: str | None = None
    agent_id: str | None = None

    def path(self, account_id: str) -> str:
        """The path of the resource in ``account_id``."""
        return self.template.format(
            cid=path_segment(self.conversation_id or ""),
            did=path_segment(self.dialog_id or ""),
            agentId=path_segment(self.agent_id or ""),
            accountId=path_segment(account_id),
        )


# ---------------------------------------------------------------- conversation fields → REST


@dataclass(slots=True)
class RestWrite:
    """One REST write planned from a ``conversationField`` list."""

    #: ``conversation`` (PATCH), ``dialog`` (PATCH), ``add`` (POST), ``remove`` / ``transfer`` (DELETE)
    kind: str
    body: dict[str, Any] = field(default_factory=dict)
    user_id: str = ""
    dialog_id: str = ""
    params: dict[str, str] = field(default_factory=dict)


def _unsupported(what: str) -> UnsupportedActionError:
    return UnsupportedActionError(f"change {what}", TRANSPORT_NAME, UNSUPPORTED_HINT)


def plan_fields(fields: list[dict[str, Any]]) -> list[RestWrite]:
    """The REST writes equivalent to a ``cm.UpdateConversationField`` field list, in order.

    Stage, TTR and manual ETTR merge into one conversation PATCH (atomic on the server, as one
    UpdateConversationField is).  A REMOVE of the ASSIGNED_AGENT together with a ``Skill``
    UPDATE and/or a SUGGEST of an ASSIGNED_AGENT is a transfer (one DELETE with
    ``transferToSkillId`` / ``transferToAgentId``).  Raises :class:`InvalidStateError` before any
    I/O for anything REST cannot express.
    """
    changes = [f for f in fields if f.get("field") == "ParticipantsChange"]
    skills = [str(f.get("skill")) for f in fields if f.get("field") == "Skill"]
    suggested = [
        str(f.get("userId"))
        for f in changes
        if f.get("type") == "SUGGEST" and f.get("role") == ParticipantRole.ASSIGNED_AGENT
    ]
    removes_assigned = [
        f for f in changes if f.get("type") == "REMOVE" and f.get("role") == ParticipantRole.ASSIGNED_AGENT
    ]
    transfer = bool(removes_assigned) and bool(skills or suggested)
    if skills and not transfer:
        raise _unsupported("the skill of a conversation without an assigned agent to transfer")
    ops: list[RestWrite] = []
    conversation_op: RestWrite | None = None
    for f in fields:
        name = f.get("field")
        if name in _CONVERSATION_FIELDS:
            if conversation_op is None:
                conversation_op = RestWrite("conversation")
                ops.append(conversation_op)
            if name == "ConversationStateField":
                conversation_op.body["stage"] = f.get("conversationState")
            elif name == "TTRField":
                conversation_op.body["type"] = f.get("ttrType")
                conversation_op.body["value"] = f.get("value") or 0
            else:
                conversation_op.body["manualETTR"] = f.get("time")
        elif name == "DialogChange":
            spec = f.get("dialog") or {}
            if f.get("type") != "UPDATE" or spec.get("state") != "CLOSE" or not spec.get("dialogId"):
                raise _unsupported("a dialog other than by closing it")
            body: dict[str, Any] = {"state": "CLOSE"}
            # REST has one closeReason: who closed it (AGENT, CONSUMER...) wins over a free-text cause.
            reason = spec.get("closedBy") or spec.get("closedCause")
            if reason:
                body["closeReason"] = str(reason)
            ops.append(RestWrite("dialog", body, dialog_id=str(spec["dialogId"])))
        elif name == "ParticipantsChange":
            kind, user_id, role = f.get("type"), str(f.get("userId") or ""), f.get("role")
            if not user_id:
                raise ConfigurationError("ParticipantsChange needs a userId over UMS REST v1")
            if kind == "REMOVE" and transfer and f is removes_assigned[0]:
                params = {"transferToSkillId": skills[-1]} if skills else {}
                if suggested:
                    params["transferToAgentId"] = suggested[-1]
                ops.append(RestWrite("transfer", user_id=user_id, params=params))
            elif kind == "SUGGEST" and transfer:
                continue  # carried by the transfer DELETE
            elif kind in ("ADD", "SUGGEST"):
                state = "ACTIVE" if kind == "ADD" else "SUGGESTED"
                ops.append(RestWrite("add", {"id": user_id, "role": role, "state": state}, user_id=user_id))
            elif kind == "REMOVE":
                ops.append(RestWrite("remove", user_id=user_id))
            else:
                raise _unsupported(f"a participant with a {kind} change")
        elif name == "Skill":
            continue  # carried by the transfer DELETE (checked above)
        else:
            raise _unsupported(f"the {name} field" if name else "a field without a name")
    return ops


# ---------------------------------------------------------------- the connection


class BrandRestConnection(BrandIdentity, RequestConnection):
    """A brand user's connection over UMS REST v1 (``connection_type=ConnectionType.REST``).

    ``open()`` obtains the token (CONNECTING → CONNECTED); ``close()`` stops the token
    maintainer (→ CLOSED).  See the module docstring for what each action sends.
    """

    transport_name = TRANSPORT_NAME
    unsupported_hint = UNSUPPORTED_HINT

    def __init__(self, options: ConnectionOptions) -> None:
        super().__init__(options)
        self.token_maintainer: Any = options.token_maintainer or brand_token_maintainer(options, self.http)
        if callable(getattr(self.token_maintainer, "on", None)):
            # Login failures the maintainer retries on its own are background errors of the
            # connection (and the cause open() names when it gives up).
            self.token_maintainer.on("error", self.report_error)
        #: The skill shift-status poller (``poll_shift_status=True``; lpm.client.shift_status).
        self.shift_status_poller = ShiftStatusPoller(self) if options.poll_shift_status else None

    # ---------------------------------------------------------------- lifecycle

    async def _establish(self) -> Callable[[], None]:
        await self.token_maintainer.start()
        await self.token_maintainer.get_token()
        poller = self.shift_status_poller
        return poller.start if poller is not None else lambda: None

    async def _shutdown(self) -> None:
        if self.shift_status_poller is not None:
            await self.shift_status_poller.stop()
        await self.token_maintainer.stop()

    # ---------------------------------------------------------------- HTTP

    async def _request(
        self,
        method: str,
        target: RestTarget,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        expected: tuple[int, ...] = (200,),
        conditional: bool = False,
    ) -> HttpResponse:
        """One REST call; any status outside ``expected`` raises :class:`RequestError`.

        ``conditional`` (PATCH, DELETE): sent with the ETag of a GET of the same resource right
        before; on 412 (the resource changed in between) read and write once more."""
        request_type = f"REST {method} {target.template}"
        self._require_connected(request_type)
        path = target.path(self.account_id)
        host = await self.lookup_service(ServiceName.ASYNC_MESSAGING_ENT)
        url = self.http.base_url(host) + path
        for attempt in range(2):
            if_match = await self._etag(target) if conditional else None
            response = await self._authorized(method, url, request_type, json, params, if_match)
            if response.status in expected:
                return response
            if response.status == 412 and conditional and not attempt:
                log.debug("%s %s: the resource changed since its GET; retrying once", method, target.template)
                continue
            raise request_error(
                response.status, request_type, response.body, target.conversation_id, target.dialog_id
            )
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    async def _authorized(
        self, method: str, url: str, request_type: str, json: Any, params: Any, if_match: str | None
    ) -> HttpResponse:
        """:func:`rest_request` with the current token; a 401 regenerates the token and is sent
        once more (the answer is returned whatever its status)."""
        for attempt in range(2):
            token = await self.get_token()
            response = await rest_request(
                self.http,
                url,
                method=method,
                request_type=request_type,
                account_id=self.account_id,
                token=token,
                json=json,
                params=params,
                if_match=if_match,
            )
            if response.status != 401 or attempt:
                return response
            log.info("%s answered 401: regenerating the token", request_type)
            await self._token_invalid(token)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns

    async def _token_invalid(self, token: str) -> None:
        maintainer = self.token_maintainer
        if isinstance(maintainer, TokenMaintainer | StaticTokenMaintainer):
            # Naming the refused token lets concurrent 401s share one regeneration.
            await maintainer.on_token_invalid("rest-401", token)
        else:
            await maintainer.on_token_invalid("rest-401")

    async def _etag(self, target: RestTarget) -> str:
        """The ETag of a GET of ``target`` (a conversation's body also refreshes its cache entry)."""
        current = await self._request("GET", target)
        if target.template == CONVERSATION:
            self._refresh(current.body)
        etag = _header(current.headers, "ETag")
        if not etag:
            raise ProtocolError(f"REST GET {target.template} answered without an ETag", frame=current.body)
        return etag

    # ---------------------------------------------------------------- conversations

    def _ingest(self, body: Any) -> Conversation:
        """Cache (or update) the conversation of a ``GET/PATCH /v1/conversations/{cid}`` body."""
        info = conversation_info(body)
        cache = self.conversations
        conversation = cache.get(info.conversation_id)
        if conversation is None:
            conversation = cache.from_info(info)
        else:
            conversation.apply(info)
        # Held by nobody: it stays cached ``conversations_cache_duration`` seconds after its last
        # read (adopt cancels a pending expiry, release starts a new one when no feed holds it).
        cache.adopt(conversation)
        cache.release(conversation)
        return conversation

    def _refresh(self, body: Any) -> None:
        """Update a cached conversation with a body the server returned anyway (never caches a
        new one; a body that cannot be read is reported, not raised: the write succeeded)."""
        cid = body.get("convId") if isinstance(body, Mapping) else None
        conversation = self.conversations.get(cid) if isinstance(cid, str) else None
        if conversation is None:
            return
        try:
            info = conversation_info(body)
        except ProtocolError as exc:
            self.report_error(exc)
            return
        conversation.apply(info)

    # A coroutine, unlike Connection's cache lookup: over REST the server is read (see below).
    async def get_conversation_by_id(self, conversation_id: str) -> Conversation:  # type: ignore[override]
        """``GET /v1/conversations/{cid}``: the conversation's current state, cached (or the
        cached object updated) and returned — how a stateless bot acts on a conversation it only
        knows by id.

        Unlike the WebSocket connections' synchronous cache lookup this reads the server, so it
        is a coroutine; ``conn.conversations.get(cid)`` is the cache lookup.  A conversation no
        feed holds stays cached ``conversations_cache_duration`` seconds after its last read.
        Raises :class:`RequestError` (404 unknown, 403 not a participant and not a manager).
        """
        if not isinstance(conversation_id, str) or not conversation_id:
            raise ConfigurationError("conversation_id must be a non-empty string")
        response = await self._request("GET", RestTarget(CONVERSATION, conversation_id))
        return self._ingest(response.body)

    async def _participant_dialog(self, conversation_id: str) -> str:
        """The dialog participants join and leave: the conversation's open dialog."""
        conversation = self.conversations.get(conversation_id)
        if conversation is None:
            conversation = await self.get_conversation_by_id(conversation_id)
        dialog = conversation.open_dialog
        if dialog is None:
            raise InvalidStateError(f"conversation {conversation_id} has no open dialog")
        return dialog.dialog_id

    # ---------------------------------------------------------------- ConnectionActions

    async def _publish(self, publish: Publish) -> int:
        """``POST .../messages``; returns the event's sequence (0 for chat states)."""
        body = rest_message_body(publish.event, audience=publish.audience, metadata=publish.metadata)
        target = RestTarget(MESSAGES, publish.conversation_id, publish.dialog_id)
        response = await self._request("POST", target, json=body, expected=(200, 201))
        return sequence_of(response.body) or 0

    async def update_conversation_field(
        self, conversation_id: str, fields: list[dict[str, Any]], *, metadata: list[Any] | None = None
    ) -> Any:
        """The REST writes equivalent to the fields (see :func:`plan_fields`), in order.

        Returns ``"OK Conversation resolved successfully"`` when the stage was set to CLOSE (the
        answer :meth:`Conversation.close` expects from UMS), else the last response body.
        ``metadata`` has no place in these requests and is ignored.
        """
        del metadata
        result: Any = None
        for op in plan_fields(fields):
            result = await self._apply_op(conversation_id, op)
        return result

    async def _apply_op(self, cid: str, op: RestWrite) -> Any:
        if op.kind == "conversation":
            response = await self._request(
                "PATCH", RestTarget(CONVERSATION, cid), json=op.body, conditional=True
            )
            self._refresh(response.body)
            return CLOSE_OK if op.body.get("stage") == "CLOSE" else response.body
        if op.kind == "dialog":
            response = await self._request(
                "PATCH", RestTarget(DIALOG, cid, op.dialog_id), json=op.body, conditional=True
            )
            return response.body
        did = await self._participant_dialog(cid)
        if op.kind == "add":
            target = RestTarget(PARTICIPANTS, cid, did)
            response = await self._request("POST", target, json=op.body, expected=(200, 201))
            return response.body
        # remove / transfer
        target = RestTarget(PARTICIPANT, cid, did, op.user_id)
        response = await self._request(
            "DELETE", target, params=op.params or None, expected=(200, 204), conditional=True
        )
        return response.body

    async def _query_messages(self, query: MessagesQuery) -> list[MessagingEventInfo]:
        """``GET .../messages``: events with ``newer_than < sequence < older_than``, oldest first,
        at most ``max_quantity`` (all of them when None, page by page)."""
        wanted = query.max_quantity if query.max_quantity is not None and query.max_quantity >= 0 else None
        params: dict[str, str] = {}
        if query.newer_than is not None:
            params["newerThanSequence"] = str(query.newer_than)
        if query.older_than is not None:
            params["olderThanSequence"] = str(query.older_than)
        messages = RestTarget(MESSAGES, query.conversation_id, query.dialog_id)
        items: list[Any] = []
        for _ in range(MAX_PAGES):
            limit = MAX_PAGE if wanted is None else min(MAX_PAGE, wanted - len(items))
            if limit <= 0:
                break
            page_params = {**params, "limit": str(limit), "offset": str(len(items))}
            response = await self._request("GET", messages, params=page_params)
            data = response.body.get("data") if isinstance(response.body, Mapping) else None
            if not isinstance(data, list):
                raise ProtocolError("REST GET messages answered without a data list", frame=response.body)
            items.extend(data)
            links = response.body.get("links") if isinstance(response.body, Mapping) else None
            if len(data) < limit or not (isinstance(links, Mapping) and links.get("next")):
                break
        return [event_from_rest_item(i) for i in items if isinstance(i, Mapping)]

    async def subscribe_messaging_events(self, conversation_id: str, dialog_id: str, from_seq: int) -> None:
        """Brands need no messaging subscription (and REST has none): nothing to do."""

    # ---------------------------------------------------------------- history

    def search_conversations(self, query: HistoryQuery, *, page_size: int = 50) -> HistorySearch:
        """Search the account's conversations, open and closed (Messaging Interactions API,
        ``msgHist``): ``async for page in conn.search_conversations(HistoryQuery(...))`` yields
        :class:`~lpm.client.history_search.HistoryPage` objects of typed records, ``page_size``
        (1 to 100) conversations each; ``.records()`` yields the records one by one.  Each page is
        one ``POST .../conversations/search`` with the connection's bearer (an agent sees the
        conversations it took part in, a manager all).  See :mod:`lpm.client.history_search`;
        refusals raise :class:`RequestError` (400 bad filters, 401, 403).
        """
        return HistorySearch(self._search_page, query, page_size=page_size)

    async def _search_page(self, body: dict[str, Any], params: dict[str, str]) -> Any:
        request_type = f"REST POST {SEARCH_PATH}"
        self._require_connected(request_type)
        host = await self.lookup_service(ServiceName.MSG_HIST)
        url = self.http.base_url(host) + SEARCH_PATH.format(accountId=path_segment(self.account_id))
        response = await self._authorized("POST", url, request_type, body, params, None)
        if response.status != 200:
            raise request_error(response.status, request_type, response.body, None, None)
        return response.body

    async def generate_upload_url(self, file_size: int, file_type: str) -> dict[str, Any]:
        """``POST /v1/brands/{acc}/file-upload-path`` → ``{relativePath, queryParams}``."""
        response = await self._request(
            "POST", RestTarget(UPLOAD_PATH), json={"fileSize": file_size, "fileType": file_type}
        )
        if not isinstance(response.body, Mapping):
            raise ProtocolError("REST file-upload-path answered without an object", frame=response.body)
        return dict(response.body)

    async def generate_download_url(self, relative_path: str) -> dict[str, Any]:
        """``POST /v1/brands/{acc}/file-download-path`` → ``{relativePath, queryParams}``."""
        response = await self._request(
            "POST", RestTarget(DOWNLOAD_PATH), json={"relativePath": relative_path}
        )
        if not isinstance(response.body, Mapping):
            raise ProtocolError("REST file-download-path answered without an object", frame=response.body)
        return dict(response.body)
