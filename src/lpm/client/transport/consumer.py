"""Consumer connection over the UMS WebSocket API v3.

Identity (``connection.auth_type``):

* ``token`` given: the caller's JWT is used as is (``CONSUMER_UNDETERMINED``); if the server refuses
  it (401 at the upgrade or to ``InitConnection``, 4401/4407 close) the SDK reports one
  :class:`~lpm.errors.TokenExpiredError` on ``"error"`` and stops (state CLOSED, ``close``
  event): it never swaps in another identity silently;
* ``auth_data={"use_mock_auth": True, "customer_name": ...}``: mock authentication (test accounts);
* ``auth_connector_id`` with ``id_token`` (a brand-signed JWT) or ``jwt_claims_set`` +
  ``jwt_signing_key``: an authenticated consumer (re-signed with fresh ``iat``/``exp`` when the
  token must be renewed, so the consumer keeps its identity);
* ``unauth_connector_id``: anonymous authorize + connector authenticate (the anonymous token is
  refreshed, not replaced, so the consumer keeps its identity and conversations);
* otherwise: the legacy IdP ``signup`` (anonymous).

:meth:`ConsumerWebsocketConnection.step_up` turns an anonymous or unauthenticated consumer into an
authenticated (or mock-authenticated) one: the new identity takes over the open conversation, the
connection reconnects with the new token, and from then on it renews the *authenticated* identity
(never the one it stepped up from).

The JWT is sent in ``InitConnection`` (not in the URL).  After every (re)connect the session is
restored before queued requests run: the user profile is read (``user_id``), conversation
subscriptions are recreated and every open dialog's messaging subscription is re-issued from the
last sequence the dialog has seen, so no message is lost or delivered twice.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from lpm.client.auth import idp
from lpm.client.connection import CONNECTED
from lpm.client.model.conversation import Conversation
from lpm.client.options import ConnectionOptions
from lpm.client.transport.bodies import PROFILE_OK, user_profile_body
from lpm.client.transport.consumer_actions import ConsumerConversations
from lpm.client.transport.tracking import tracking_query
from lpm.client.transport.websocket import AUTH_CLOSE_CODES, WebsocketConnection
from lpm.enums import AuthType
from lpm.errors import (
    ConfigurationError,
    ConnectionClosedError,
    InvalidStateError,
    RequestError,
    TokenExpiredError,
    UnexpectedResponseError,
)
from lpm.protocol.requests import (
    ConsumerRequestConversationBody,
    GetUserProfileBody,
    SubscribeMessagingEventsBody,
)
from lpm.protocol.types import HEADER_CLIENT_PROPERTIES, HEADER_CONSUMER_AUTH, Dialect, Req

#: Lifetime given to claims signed by the SDK when the caller's claims set has no ``exp``.
SIGNED_CLAIMS_TTL = 3600


class ConsumerWebsocketConnection(ConsumerConversations, WebsocketConnection):
    """A consumer's WebSocket connection (``user_type=UserType.CONSUMER``)."""

    dialect = Dialect.CONSUMER_V3
    transport_name = "a consumer connection"
    unsupported_hint = "only brand connections can"

    def __init__(self, options: ConnectionOptions) -> None:
        super().__init__(options)
        auth = options.auth_data or {}
        self._mock = bool(auth.get("use_mock_auth") or auth.get("useMockAuth"))
        self._customer_name = auth.get("customer_name") or auth.get("customerName")
        if self._mock and not self._customer_name:
            raise ConfigurationError("mock authentication needs auth_data['customer_name']")
        if options.auth_connector_id and not (options.id_token or options.jwt_claims_set):
            raise ConfigurationError(
                "auth_connector_id needs id_token or jwt_claims_set (with jwt_signing_key)"
            )
        if options.jwt_claims_set and not options.jwt_signing_key and not options.id_token:
            raise ConfigurationError("jwt_claims_set needs jwt_signing_key to be signed")
        self.token: str | None = options.token
        self._callers_token = options.token is not None
        self.auth_type: AuthType = AuthType.CONSUMER_UNDETERMINED if self._callers_token else AuthType.NONE
        self._anonymous_token: str | None = None
        # The authenticated identity's credentials: from the options, replaced by a step-up, and
        # used again whenever the token must be renewed (so the identity is never downgraded).
        self._auth_connector_id: str | None = options.auth_connector_id
        self._jwt_claims_set: dict[str, Any] | None = options.jwt_claims_set
        self._jwt_signing_key: str | Path | None = options.jwt_signing_key
        self._id_token: str | None = options.id_token
        self.client_properties: dict[str, Any] = dict(options.client_properties or {})
        #: The raw GetUserProfile body read after each connect.
        self.user_profile: Any = None
        self._user_id: str | None = None

    # ---------------------------------------------------------------- identity

    @property
    def user_id(self) -> str | None:
        """The consumer id (the JWT ``sub``)."""
        return self._user_id

    async def get_token(self) -> str | None:
        """The current consumer JWT (None before the first connect)."""
        return self.token

    async def _idp_host(self) -> str:
        return await self.lookup_service("idp")

    async def _obtain_token(self) -> None:
        host = await self._idp_host()
        opts = self.options
        if self._mock:
            self.token = await idp.mock_authenticate(
                self.http, host, self.account_id, str(self._customer_name)
            )
            self.auth_type = AuthType.CONSUMER_MOCK_AUTHENTICATED
        elif self._auth_connector_id:
            id_token = self._signed_id_token()
            self.token = await idp.authenticate_with_id_token(
                self.http, host, self.account_id, self._auth_connector_id, id_token
            )
            self.auth_type = AuthType.CONSUMER_AUTHENTICATED
        elif opts.unauth_connector_id:
            if self._anonymous_token is None:
                self._anonymous_token = await idp.anonymous_authorize(self.http, host, self.account_id)
            else:
                self._anonymous_token = await idp.refresh_anonymous(
                    self.http, host, self.account_id, self._anonymous_token
                )
            self.token = await idp.authenticate_unauthenticated(
                self.http, host, self.account_id, opts.unauth_connector_id, self._anonymous_token
            )
            self.auth_type = AuthType.CONSUMER_UNAUTHENTICATED
        else:
            self.token = await idp.signup(self.http, host, self.account_id)
            self.auth_type = AuthType.CONSUMER_ANONYMOUS

    def _signed_id_token(self, claims: dict[str, Any] | None = None, key: str | Path | None = None) -> str:
        """The id_token for the authenticated connector: ``claims`` (default: the identity's
        claims set) signed now, or the ready id_token when there are no claims."""
        claims = claims if claims is not None else self._jwt_claims_set
        if claims is None:
            if self._id_token is None:
                raise ConfigurationError("no id_token or jwt_claims_set to authenticate with")
            return self._id_token
        now = int(time.time())
        fresh = dict(claims)
        # Re-signing with a fresh iat/exp keeps the same identity (same iss + sub) while renewing.
        lifetime = (
            int(fresh["exp"]) - int(fresh["iat"]) if "exp" in fresh and "iat" in fresh else SIGNED_CLAIMS_TTL
        )
        fresh["iat"] = now
        fresh["exp"] = now + max(60, lifetime)
        signing_key = key if key is not None else self._jwt_signing_key
        if signing_key is None:
            raise ConfigurationError("jwt_signing_key is required to sign jwt_claims_set")
        return idp.sign_jwt_claims(fresh, signing_key, self.options.jwt_algorithm)

    async def _prepare_identity(self) -> None:
        if self.token is None:
            if self._callers_token:
                raise TokenExpiredError("the consumer token given to the connection was refused")
            start = time.time()
            self.emit("getConsumerToken#request", {"start": start})
            await self._obtain_token()
            self.emit("getConsumerToken#response", {"start": start, "end": time.time()})

    async def _socket_target(self) -> tuple[str, dict[str, str]]:
        host = await self.lookup_service("asyncMessagingEnt")
        app_id = self.options.app_id or self.client_properties.get("appId")
        app_version = self.options.app_version or self.client_properties.get("appVersion")
        query = tracking_query(app_id, app_version)
        return f"{self.http.ws_url(host)}/ws_api/account/{self.account_id}/messaging/consumer?v=3&{query}", {}

    async def _verify(self) -> None:
        headers: list[dict[str, Any]] = [
            {"type": HEADER_CLIENT_PROPERTIES, **self.client_properties},
            {"type": HEADER_CONSUMER_AUTH, "jwt": self.token},
        ]
        try:
            await self.request(Req.INIT_CONNECTION, {}, headers=headers)
        except RequestError as exc:
            # UMS answers InitConnection with 401 (then closes 4401/4407) for a refused JWT:
            # that is an authentication failure, not a transient one worth retrying as is.
            if exc.code == 401:
                raise self._refusal() from exc
            raise
        except ConnectionClosedError as exc:
            if exc.code in AUTH_CLOSE_CODES:
                raise self._refusal() from exc
            raise

    async def _on_upgrade_unauthorized(self) -> None:
        # Raised from the upgrade handler: the connect loop gives up on a caller's token and
        # retries (with a new token) otherwise.
        raise self._refusal() from None

    async def _on_auth_close(self, code: int) -> bool:
        error = self._refusal()
        if self._callers_token:
            self.report_error(error)
            return False
        return True

    def _refusal(self) -> TokenExpiredError:
        """The server refused the current token: forget it unless the caller supplied it (a
        caller's token is never replaced by another identity), and describe the failure."""
        if self._callers_token:
            return TokenExpiredError("the consumer token given to the connection was refused or expired")
        self.token = None  # obtained again (same identity where the flow allows) on the next attempt
        return TokenExpiredError("the consumer token was refused or expired; a new one will be obtained")

    async def _continue_after_auth_failure(self) -> bool:
        return not self._callers_token

    async def _restore(self, first: bool) -> None:
        self.user_profile = await self.request(Req.GET_USER_PROFILE, GetUserProfileBody())
        if isinstance(self.user_profile, dict) and self.user_profile.get("userId"):
            self._user_id = str(self.user_profile["userId"])
        else:
            self._user_id = idp.decode_consumer_id(self.token or "")
        await self._restore_subscriptions(first)
        if not first:
            await self.conversations.resubscribe_messaging()

    # ---------------------------------------------------------------- consumer actions

    def _conversation_client_properties(self) -> dict[str, Any] | None:
        return self.client_properties

    async def _request_conversation(self, body: ConsumerRequestConversationBody) -> Conversation:
        result = await self.request(Req.CONSUMER_REQUEST_CONVERSATION, body)
        if not isinstance(result, dict) or "conversationId" not in result:
            raise UnexpectedResponseError(200, Req.CONSUMER_REQUEST_CONVERSATION.value, result)
        conversation = self.conversations.create_local(str(result["conversationId"]))
        await conversation.subscribe_messaging()
        return conversation

    async def set_user_profile(self, **profile: Any) -> None:
        """``userprofile.SetUserProfile`` (``first_name``, ``last_name``, ``nick_name``, or wire names)."""
        result = await self.request(Req.SET_USER_PROFILE, user_profile_body(profile))
        if result != PROFILE_OK:
            raise UnexpectedResponseError(200, Req.SET_USER_PROFILE.value, result)

    async def get_user_profile(self, user_id: str | None = None) -> Any:
        """The raw profile of ``user_id`` (default: this consumer)."""
        return await self.request(Req.GET_USER_PROFILE, GetUserProfileBody(userId=user_id or None))

    async def step_up(
        self,
        auth_connector_id: str,
        *,
        id_token: str | None = None,
        jwt_claims_set: dict[str, Any] | None = None,
        jwt_signing_key: str | Path | None = None,
        customer_name: str | None = None,
    ) -> str:
        """Turn this anonymous or unauthenticated consumer into an authenticated one.

        Give ``id_token`` (a brand-signed JWT), or ``jwt_claims_set`` with ``jwt_signing_key``
        (signed here, and signed again whenever the token must be renewed), or
        ``customer_name`` for mock authentication (test accounts).  The IdP issues the
        authenticated identity, which takes over this consumer's open conversation; the
        connection then reconnects with the new token (subscriptions and messaging
        subscriptions are restored as after any reconnect, and the same Conversation objects go
        on).  From then on the connection renews the authenticated identity, never the old one.
        Returns the new consumer id.

        Raises :class:`~lpm.errors.ConfigurationError` (before any I/O) for missing credentials,
        :class:`~lpm.errors.InvalidStateError` when the connection is not connected, and the
        IdP's :class:`~lpm.errors.AuthenticationError` / :class:`~lpm.errors.HttpError`.
        """
        if not isinstance(auth_connector_id, str) or not auth_connector_id:
            raise ConfigurationError("auth_connector_id must be a non-empty string")
        if customer_name is None and id_token is None and (jwt_claims_set is None or jwt_signing_key is None):
            raise ConfigurationError(
                "step_up needs id_token, jwt_claims_set with jwt_signing_key, or customer_name"
            )
        if self.token is None or self.state != CONNECTED:
            raise InvalidStateError(f"step_up needs a connected consumer (the connection is {self.state})")
        host = await self._idp_host()
        if customer_name is not None:
            token = await idp.mock_step_up(
                self.http, host, self.account_id, auth_connector_id, self.token, customer_name
            )
            auth_type = AuthType.CONSUMER_MOCK_AUTHENTICATED
            # Mock step-up and mock authentication of one name yield the same consumer.
            self._mock, self._customer_name = True, customer_name
        else:
            signed = (
                id_token if id_token is not None else self._signed_id_token(jwt_claims_set, jwt_signing_key)
            )
            token = await idp.authenticate_with_id_token(
                self.http, host, self.account_id, auth_connector_id, signed, lp_jwt=self.token
            )
            auth_type = AuthType.CONSUMER_AUTHENTICATED
            self._mock = False
            self._auth_connector_id = auth_connector_id
            self._jwt_claims_set = jwt_claims_set if id_token is None else None
            self._jwt_signing_key = jwt_signing_key if id_token is None else None
            self._id_token = id_token
        self.token = token
        self.auth_type = auth_type
        self._callers_token = False
        # The server has moved the conversation; reconnect so the socket speaks for the new identity.
        await self.reconnect()
        return str(self.user_id)

    async def subscribe_messaging_events(self, conversation_id: str, dialog_id: str, from_seq: int) -> None:
        body = SubscribeMessagingEventsBody(
            dialogId=dialog_id, conversationId=conversation_id, fromSeq=from_seq
        )
        await self.request(Req.SUBSCRIBE_MESSAGING_EVENTS, body)
