"""Consumer connection over the connector Send API (``connection_type=ConnectionType.SEND_API``;
protocol §2.5, §7.1).

A server-to-server connector acts for one of its consumers: :class:`ConsumerSendApiConnection`
needs the app install's credentials and the consumer's external id, given as
``auth_data={"client_id": ..., "client_secret": ..., "ext_consumer_id": ...}`` (checked before
any I/O).  ``open()`` obtains

* an AppJWT from ``sentinel`` (OAuth 2 client credentials), sent raw in ``Authorization``;
* a ConsumerJWS for ``ext_consumer_id`` from ``idp`` (it never expires), sent in
  ``X-LP-ON-BEHALF``; its ``sub`` is the consumer id (``connection.user_id``).

Requests go to ``{scheme}://{asyncMessagingEnt}/api/account/{acc}/messaging/consumer/conversation``:

================================  ==============================================================
create_conversation               CONVERSATION (``...?v=3``): ``[userprofile.SetUserProfile {},
                                  cm.ConsumerRequestConversation {...}]``
publish (text, rich, accept /     SEND (``.../send?v=3``): ``ms.PublishEvent``
read, chat state, file)
close, CSAT, TTR                  SEND: ``cm.UpdateConversationField``
set / get user profile            SEND: ``userprofile.SetUserProfile`` / ``GetUserProfile``
upload / download URLs            SEND: ``ms.GenerateURLForUploadFile`` / ``...DownloadFile``
================================  ==============================================================

The Send API pushes nothing: agent replies and conversation changes arrive by webhooks
(:mod:`lpm.webhooks`, or ``await conn.process_webhooks_notification(payload)``).  An app
install's webhooks carry every conversation of the account: this connection keeps only its own
consumer's conversations and their events and drops the rest silently.  History queries, subscriptions
and rings raise :class:`~lpm.errors.UnsupportedActionError` (an
:class:`~lpm.errors.InvalidStateError`) before any I/O.

Errors: the request-level envelope ``{"kind": "resp", "code", "type": ".ReqBody$ErrorResp",
"body": {"title", "details", "errorCode"}}`` with HTTP 401 raises
:class:`~lpm.errors.AuthenticationError` (``status=401``, the ``errorCode`` in the message); an
invalid AppJWT (40102, e.g. expired after its hour) is first regenerated and the request sent
once more.  Other refusals (the envelope's 400 codes 40000 / 40001, a refused frame's
``{"reqId", "code": <status>, "body": <message>}``) raise :class:`~lpm.errors.RequestError` with
the HTTP status as ``code``, a ``request_type`` such as ``"Send API ms.PublishEvent"`` and the
error body.  Tokens and secrets never appear in messages.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from lpm.client.auth import idp
from lpm.client.auth.csds import ServiceName
from lpm.client.auth.http import HttpResponse
from lpm.client.connection import not_connected
from lpm.client.model.cache import ConversationCache
from lpm.client.model.conversation import Conversation
from lpm.client.options import ConnectionOptions
from lpm.client.subscriptions.webhook_intake import WebhooksIntake
from lpm.client.transport.base import Publish, RequestConnection, call_any_status, sequence_of
from lpm.client.transport.bodies import (
    PROFILE_OK,
    as_json,
    publish_request,
    user_profile_body,
)
from lpm.client.transport.consumer_actions import ConsumerConversations
from lpm.enums import AuthType, ParticipantRole
from lpm.errors import (
    AuthenticationError,
    ConfigurationError,
    ProtocolError,
    RequestError,
    UnexpectedResponseError,
)
from lpm.protocol.notifications import ConversationChange, ConversationInfo, MessagingEventInfo
from lpm.protocol.requests import ConsumerRequestConversationBody
from lpm.protocol.types import Req

__all__ = ["ConsumerSendApiConnection", "send_api_error"]

log = logging.getLogger("lpm.client.transport.send_api")

#: The ``auth_data`` keys a Send API connection needs.
AUTH_DATA_KEYS = ("client_id", "client_secret", "ext_consumer_id")
#: ``errorCode`` of an invalid (e.g. expired) AppJWT: regenerate it and retry once.
INVALID_APP_JWT = 40102
CONVERSATION_PATH = "/api/account/{accountId}/messaging/consumer/conversation"
SEND_PATH = CONVERSATION_PATH + "/send"


def _credentials(auth_data: Mapping[str, Any] | None) -> tuple[str, str, str]:
    """``(client_id, client_secret, ext_consumer_id)`` from ``auth_data``, or ConfigurationError."""
    if not isinstance(auth_data, Mapping):
        raise ConfigurationError(
            "a Send API connection needs auth_data={'client_id', 'client_secret', 'ext_consumer_id'}"
        )
    missing = [k for k in AUTH_DATA_KEYS if not isinstance(auth_data.get(k), str) or not auth_data.get(k)]
    if missing:
        raise ConfigurationError(
            f"auth_data is missing {', '.join(missing)} (non-empty strings) for a Send API connection"
        )
    return str(auth_data["client_id"]), str(auth_data["client_secret"]), str(auth_data["ext_consumer_id"])


def send_api_error(status: int, request_type: str, body: Any) -> AuthenticationError | RequestError:
    """The exception of a refused Send API request (see the module docstring)."""
    envelope = body.get("body") if isinstance(body, Mapping) else None
    if status == 401:
        if isinstance(envelope, Mapping):
            title = envelope.get("title") or "unauthorized"
            detail = f": {envelope['details']}" if envelope.get("details") else ""
            message = f"{request_type} refused: {title}{detail} (errorCode {envelope.get('errorCode')})"
        else:
            message = f"{request_type} refused with HTTP 401"
        return AuthenticationError(message, status=401)
    # The envelope's ``body`` ({"title", "details", "errorCode"}), or a refused frame's message.
    return RequestError(
        status, request_type, body.get("body") if isinstance(body, Mapping) and "body" in body else body
    )


class _OwnConversationsCache(ConversationCache):
    """The cache of a Send API consumer: messaging events of conversations it does not hold (the
    rest of the account's webhook traffic) are dropped silently instead of reported."""

    __slots__ = ()

    def handle_messaging_events(self, events: list[MessagingEventInfo]) -> None:
        kept = [
            e
            for e in events
            if (e.conversation_id is not None and self.get(e.conversation_id) is not None)
            or self.find_by_dialog(e.dialog_id) is not None
        ]
        if len(kept) < len(events):
            log.debug("%d messaging event(s) of other consumers ignored", len(events) - len(kept))
        if kept:
            super().handle_messaging_events(kept)


class _OwnConversationsIntake(WebhooksIntake):
    """The webhook feed of a Send API consumer: only changes of its own conversations."""

    def __init__(self, connection: ConsumerSendApiConnection) -> None:
        super().__init__(connection)
        self._consumer = connection

    async def handle(self, changes: list[ConversationChange]) -> None:
        kept = [c for c in changes if self._consumer.concerns(c.conversation)]
        if len(kept) < len(changes):
            log.debug("%d conversation change(s) of other consumers ignored", len(changes) - len(kept))
        if kept:
            await super().handle(kept)


class ConsumerSendApiConnection(ConsumerConversations, RequestConnection):
    """A connector's consumer over the Send API (``connection_type=ConnectionType.SEND_API``).

    ``open()`` obtains the AppJWT and ConsumerJWS (CONNECTING → CONNECTED); ``close()`` releases
    the webhook feed and the HTTP session (→ CLOSED).  See the module docstring.
    """

    transport_name = "a Send API connection"
    unsupported_hint = (
        "the Send API has no request for it and pushes nothing (notifications come by webhooks); "
        "use a consumer WebSocket connection"
    )

    def __init__(self, options: ConnectionOptions) -> None:
        self._client_id, self._client_secret, self.ext_consumer_id = _credentials(options.auth_data)
        super().__init__(options)
        #: :class:`lpm.AuthType`: NONE until opened, then CONSUMER_UNDETERMINED (a connector's consumer).
        self.auth_type: AuthType = AuthType.NONE
        self.client_properties: dict[str, Any] = dict(options.client_properties or {})
        self._app_jwt: str | None = None
        self._consumer_jws: str | None = None
        self._user_id: str | None = None
        self._ids = itertools.count(1)
        self._app_jwt_lock = asyncio.Lock()

    # Webhooks of an app install carry every conversation of the account: this consumer's cache
    # and webhook feed keep only its own (whichever way the payloads are fed).

    def _new_conversation_cache(self) -> ConversationCache:
        return _OwnConversationsCache(
            self,
            cache_duration=self.options.conversations_cache_duration,
            get_all_messages=self.options.get_all_messages,
        )

    def _new_webhooks_intake(self) -> WebhooksIntake:
        return _OwnConversationsIntake(self)

    # ---------------------------------------------------------------- identity

    @property
    def user_id(self) -> str | None:
        """The consumer id (the ConsumerJWS ``sub``) once opened."""
        return self._user_id

    async def _new_app_jwt(self) -> str:
        host = await self.lookup_service(ServiceName.SENTINEL)
        return await idp.sentinel_app_jwt(
            self.http, host, self.account_id, self._client_id, self._client_secret
        )

    async def _refresh_app_jwt(self, refused: str) -> None:
        """Replace a refused AppJWT (concurrent refusals of the same token share one request)."""
        async with self._app_jwt_lock:
            if self._app_jwt == refused:
                self._app_jwt = await self._new_app_jwt()

    # ---------------------------------------------------------------- lifecycle

    async def _establish(self) -> Callable[[], None]:
        app_jwt = await self._new_app_jwt()
        idp_host = await self.lookup_service(ServiceName.IDP)
        jws = await idp.connector_consumer_jws(
            self.http, idp_host, self.account_id, app_jwt, self.ext_consumer_id
        )
        user_id = idp.decode_consumer_id(jws)

        def commit() -> None:
            self._app_jwt, self._consumer_jws, self._user_id = app_jwt, jws, user_id
            self.auth_type = AuthType.CONSUMER_UNDETERMINED

        return commit

    async def _shutdown(self) -> None:
        self._app_jwt = self._consumer_jws = None

    # ---------------------------------------------------------------- HTTP

    def _frame(self, req: Req, body: Any, metadata: list[Any] | None = None) -> dict[str, Any]:
        frame: dict[str, Any] = {"kind": "req", "id": str(next(self._ids)), "type": req.value, "body": body}
        if metadata:
            frame["metadata"] = list(metadata)
        return frame

    async def _post(self, template: str, body: Any, request_type: str) -> HttpResponse:
        """One Send API POST; a refused AppJWT is regenerated and the request sent once more.
        Returns a 200 response; anything else raises (see :func:`send_api_error`)."""
        self._require_connected(request_type)
        if self._consumer_jws is None:
            raise not_connected(request_type, self.state)
        host = await self.lookup_service(ServiceName.ASYNC_MESSAGING_ENT)
        url = self.http.base_url(host) + template.format(accountId=self.account_id)
        for attempt in range(2):
            app_jwt, jws = self._app_jwt or "", self._consumer_jws
            headers = {"Authorization": app_jwt, "X-LP-ON-BEHALF": jws}
            if self.client_properties:
                headers["Client-Properties"] = json.dumps(
                    {"type": ".ClientProperties", **self.client_properties}, separators=(",", ":")
                )
            response = await call_any_status(
                self.http,
                "POST",
                url,
                request_type=request_type,
                headers=headers,
                json=body,
                params={"v": "3"},
                secrets=(app_jwt, jws, self._client_secret),
            )
            if response.status == 401 and attempt == 0 and _error_code(response.body) == INVALID_APP_JWT:
                log.info("%s: the AppJWT was refused; regenerating it", request_type)
                await self._refresh_app_jwt(app_jwt)
                continue
            if response.status != 200:
                raise send_api_error(response.status, request_type, response.body)
            return response
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    async def _send(self, req: Req, body: Any, metadata: list[Any] | None = None) -> Any:
        """SEND one request frame; returns its result body."""
        request_type = f"Send API {req.value}"
        response = await self._post(SEND_PATH, self._frame(req, body, metadata), request_type)
        result = response.body
        if not isinstance(result, Mapping) or result.get("code") != "OK":
            code = result.get("code") if isinstance(result, Mapping) else None
            status = code if isinstance(code, int) and not isinstance(code, bool) else 200
            raise UnexpectedResponseError(status, request_type, result)
        return result.get("body")

    # ---------------------------------------------------------------- consumer actions

    async def _request_conversation(self, request: ConsumerRequestConversationBody) -> Conversation:
        """CONVERSATION: set the (empty) user profile and request the conversation in one post."""
        frames = [
            self._frame(Req.SET_USER_PROFILE, {}),
            self._frame(Req.CONSUMER_REQUEST_CONVERSATION, as_json(request)),
        ]
        request_type = f"Send API {Req.CONSUMER_REQUEST_CONVERSATION.value}"
        response = await self._post(CONVERSATION_PATH, frames, request_type)
        results = response.body
        if not isinstance(results, list) or len(results) != len(frames):
            raise UnexpectedResponseError(200, request_type, results)
        for frame, result in zip(frames, results, strict=True):
            if not isinstance(result, Mapping) or result.get("code") != "OK":
                code = result.get("code") if isinstance(result, Mapping) else None
                status = code if isinstance(code, int) and not isinstance(code, bool) else 400
                body = result.get("body") if isinstance(result, Mapping) else result
                raise RequestError(status, f"Send API {frame['type']}", body)
        created = results[1].get("body")
        if not isinstance(created, Mapping) or not created.get("conversationId"):
            raise UnexpectedResponseError(200, request_type, created)
        return self.conversations.create_local(str(created["conversationId"]))

    async def set_user_profile(self, **profile: Any) -> None:
        """``userprofile.SetUserProfile`` (``first_name``, ``last_name``, ``nick_name``, or wire names)."""
        result = await self._send(Req.SET_USER_PROFILE, user_profile_body(profile))
        if not isinstance(result, Mapping) or result.get("msg") != PROFILE_OK:
            raise UnexpectedResponseError(200, f"Send API {Req.SET_USER_PROFILE.value}", result)

    # ---------------------------------------------------------------- webhooks

    def concerns(self, info: ConversationInfo) -> bool:
        """Whether a webhook's conversation is this consumer's: already cached, or with this
        consumer as its CONSUMER participant."""
        if self.conversations.get(info.conversation_id) is not None:
            return True
        return self._user_id is not None and any(
            p.user_id == self._user_id and p.role == ParticipantRole.CONSUMER for p in info.participants
        )

    # ---------------------------------------------------------------- ConnectionActions

    async def _publish(self, publish: Publish) -> int:
        """SEND ``ms.PublishEvent``; returns the event's sequence (0 for chat states)."""
        body = as_json(
            publish_request(publish.conversation_id, publish.dialog_id, publish.event, publish.audience)
        )
        try:
            result = await self._send(Req.PUBLISH_EVENT, body, publish.metadata)
        except RequestError as exc:
            exc.conversation_id, exc.dialog_id = publish.conversation_id, publish.dialog_id
            raise
        return sequence_of(result) or 0

    async def update_conversation_field(
        self, conversation_id: str, fields: list[dict[str, Any]], *, metadata: list[Any] | None = None
    ) -> Any:
        """SEND ``cm.UpdateConversationField``; returns the server's text (``"OK Conversation
        resolved successfully"`` for a close), as a socket would."""
        body = {"conversationId": conversation_id, "conversationField": fields}
        try:
            result = await self._send(Req.UPDATE_CONVERSATION_FIELD, body, metadata)
        except RequestError as exc:
            exc.conversation_id = conversation_id
            raise
        return result.get("msg", result) if isinstance(result, Mapping) else result

    async def get_user_profile(self, user_id: str | None = None) -> Any:
        """SEND ``userprofile.GetUserProfile`` (default: this consumer)."""
        return await self._send(Req.GET_USER_PROFILE, {"userId": user_id} if user_id else {})

    async def generate_upload_url(self, file_size: int, file_type: str) -> dict[str, Any]:
        """SEND ``ms.GenerateURLForUploadFile`` → ``{relativePath, queryParams}``."""
        result = await self._send(Req.GENERATE_UPLOAD_URL, {"fileSize": file_size, "fileType": file_type})
        if not isinstance(result, Mapping):
            raise ProtocolError("GenerateURLForUploadFile answered without an object", frame=result)
        return dict(result)

    async def generate_download_url(self, relative_path: str) -> dict[str, Any]:
        """SEND ``ms.GenerateURLForDownloadFile`` → ``{relativePath, queryParams}``."""
        result = await self._send(Req.GENERATE_DOWNLOAD_URL, {"relativePath": relative_path})
        if not isinstance(result, Mapping):
            raise ProtocolError("GenerateURLForDownloadFile answered without an object", frame=result)
        return dict(result)

    async def subscribe_messaging_events(self, conversation_id: str, dialog_id: str, from_seq: int) -> None:
        """Nothing to subscribe to: the dialog's events come by webhooks."""


def _error_code(body: Any) -> Any:
    envelope = body.get("body") if isinstance(body, Mapping) else None
    return envelope.get("errorCode") if isinstance(envelope, Mapping) else None
