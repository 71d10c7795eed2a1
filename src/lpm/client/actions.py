"""The one small interface between the object model and a connection.

Conversations, dialogs, messages, subscriptions and rings never build frames or touch a socket:
they call these methods on their connection, which implements them over its transport
(WebSocket v2.1 for brands, v3 for consumers, UMS REST v1, Send API, or none for NULL).  Every
method raises :class:`lpm.errors.RequestError` (or another :class:`lpm.errors.LpmError`) on failure,
and :class:`lpm.errors.UnsupportedActionError` before any I/O when the transport cannot do it at
all (see :class:`lpm.client.transport.base.TransportConnection`).
Bodies are the public wire shapes (``conversationField`` objects, publish ``event`` objects,
``SubscribeExConversations`` queries); the connection translates names into its own dialect.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from lpm.client.subscriptions.conversations import ConversationSubscription
    from lpm.client.subscriptions.routing import RoutingTaskSubscription
    from lpm.protocol.notifications import MessagingEventInfo


class ConnectionActions(Protocol):
    """What the object model may ask of its connection."""

    #: The brand account id.
    account_id: str

    @property
    def is_brand(self) -> bool:
        """True for brand (agent/bot/manager) connections, False for consumers."""
        ...

    @property
    def agent_id(self) -> str | None:
        """Brand: the agent's old-style id ``{account}.{userId}`` (None for consumers)."""
        ...

    @property
    def user_id(self) -> str | None:
        """Brand: the agent's PID; consumer: the consumer id (the JWT ``sub``)."""
        ...

    def emit(self, name: str, *args: Any) -> bool:
        """Emit a connection event (used for bubbling ``conversation:*`` events)."""
        ...

    def has_listeners(self, name: str) -> bool: ...

    def report_error(self, error: BaseException) -> None:
        """Report a background error on the connection's ``"error"`` event."""
        ...

    async def publish_event(
        self,
        conversation_id: str,
        dialog_id: str,
        event: dict[str, Any],
        *,
        audience: str = "ALL",
        metadata: list[Any] | None = None,
    ) -> int:
        """``ms.PublishEvent``; returns the event's sequence (0 for chat states)."""
        ...

    async def update_conversation_field(
        self, conversation_id: str, fields: list[dict[str, Any]], *, metadata: list[Any] | None = None
    ) -> Any:
        """``cm.UpdateConversationField`` with one or more fields; returns the response body."""
        ...

    async def query_messages(
        self,
        conversation_id: str,
        dialog_id: str,
        *,
        max_quantity: int | None = None,
        newer_than: int | None = None,
        older_than: int | None = None,
    ) -> list[MessagingEventInfo]:
        """Stored events of a dialog (brand ``QueryMessages`` / REST ``getMessages``)."""
        ...

    async def subscribe_messaging_events(self, conversation_id: str, dialog_id: str, from_seq: int) -> None:
        """Consumer ``ms.SubscribeMessagingEvents`` (events then arrive as notifications)."""
        ...

    async def subscribe_conversations(self, query: dict[str, Any]) -> str:
        """``SubscribeExConversations`` with a wire query body; returns the subscription id.

        The subscription's notifications are routed by the connection to the subscription object
        registered with :meth:`register_conversation_subscription`."""
        ...

    async def unsubscribe_conversations(self, subscription_id: str) -> None: ...

    async def subscribe_routing_tasks(self, query: dict[str, Any]) -> str: ...

    async def unsubscribe_routing_tasks(self, subscription_id: str) -> None:
        """Stop a routing-task subscription (the server stops ringing through it)."""
        ...

    def register_conversation_subscription(
        self, subscription: ConversationSubscription, old_id: str | None = None
    ) -> None:
        """Route notifications of ``subscription.subscription_id`` to the subscription (and stop
        routing ``old_id``, its previous id)."""
        ...

    def unregister_conversation_subscription(self, subscription_id: str) -> None: ...

    def register_routing_subscription(
        self, subscription: RoutingTaskSubscription, old_id: str | None = None
    ) -> None:
        """Route ring notifications of ``subscription.subscription_id`` to the subscription (and
        stop routing ``old_id``)."""
        ...

    async def update_ring_state(self, ring_id: str, ring_state: str) -> None: ...

    async def get_user_profile(self, user_id: str | None) -> Any: ...

    async def generate_upload_url(self, file_size: int, file_type: str) -> dict[str, Any]: ...

    async def generate_download_url(self, relative_path: str) -> dict[str, Any]: ...

    async def put_file(self, relative_path: str, query: dict[str, str], data: bytes) -> None:
        """Upload bytes to the ``swift`` storage with a temp URL."""
        ...

    async def get_file(self, relative_path: str, query: dict[str, str]) -> bytes: ...
