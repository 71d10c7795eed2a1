"""The one small interface between the object model and a connection.

Conversations, dialogs, messages, subscriptions and rings never build frames or touch a socket:
they call these methods on their connection, which implements them over its transport
(WebSocket v2.1 for brands, v3 for consumers, UMS REST v1, Send API, or none for NULL).  Every
method raises :class:`lpm.errors.RequestError` (or another :class:`lpm.errors.LpmError`) on failure,
and :class:`lpm.errors.UnsupportedActionError` before any I/O when the transport cannot do it at
all.

The interface is written once, here: an action's default refuses (:func:`refuse`), so a
connection that subclasses :class:`ConnectionActions` (every transport does, through
:class:`lpm.client.transport.base.TransportConnection`) overrides only what it supports, and a
stand-in that does not subclass it (a test double) is checked against it structurally.  The two
actions with many arguments, :meth:`~ConnectionActions.publish_event` and
:meth:`~ConnectionActions.query_messages`, pack their arguments into one value
(:class:`Publish`, :class:`MessagesQuery`) and hand it to a hook a transport overrides
(:meth:`~ConnectionActions._publish`, :meth:`~ConnectionActions._query_messages`).
Bodies are the public wire shapes (``conversationField`` objects, publish ``event`` objects,
``SubscribeExConversations`` queries); the connection translates names into its own dialect.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from lpm.errors import UnsupportedActionError

if TYPE_CHECKING:
    from lpm.client.subscriptions.conversations import ConversationSubscription
    from lpm.client.subscriptions.routing import RoutingTaskSubscription
    from lpm.protocol.notifications import MessagingEventInfo


def refuse(connection: object, action: str) -> NoReturn:
    """Refuse ``action`` (``"query messages"``): ``connection`` cannot do it at all.

    The error names the connection by its ``transport_name`` and ends with its
    ``unsupported_hint`` (what to use instead), when it has them."""
    transport = getattr(connection, "transport_name", "this connection")
    raise UnsupportedActionError(action, transport, getattr(connection, "unsupported_hint", ""))


@dataclass(frozen=True, slots=True)
class Publish:
    """The arguments of :meth:`~ConnectionActions.publish_event`, as one value."""

    conversation_id: str
    dialog_id: str
    #: The publish ``event`` object (``{"type": "ContentEvent", ...}``).
    event: dict[str, Any]
    audience: str = "ALL"
    metadata: list[Any] | None = None


@dataclass(frozen=True, slots=True)
class MessagesQuery:
    """The arguments of :meth:`~ConnectionActions.query_messages`, as one value: at most
    ``max_quantity`` events with ``newer_than < sequence < older_than`` (None: no bound)."""

    conversation_id: str
    dialog_id: str
    max_quantity: int | None = None
    newer_than: int | None = None
    older_than: int | None = None


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

    def has_listeners(self, name: str) -> bool:
        """Whether any handler listens to the connection event ``name``."""
        ...

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
        """Publish one messaging event to a dialog (``ms.PublishEvent``) and return its sequence.

        ``event`` is the wire event object: ``{"type": "ContentEvent", "contentType":
        "text/plain", "message": ...}``, an ``AcceptStatusEvent`` (``status`` ``ACCEPT`` or
        ``READ`` with a ``sequenceList``), a ``ChatStateEvent``, a ``RichContentEvent``...
        ``audience`` is ``ALL`` or ``AGENTS_AND_MANAGERS`` (a private message); ``metadata`` is
        the request's metadata list (``[{"type": "ExternalId", "id": ...}]``).  The sequence is
        0 for events that get none (chat states).  Conversations and dialogs call it for you
        (``send_message``, ``set_chat_state``, ``message.read()``); call it directly to send an
        event they have no method for."""
        return await self._publish(Publish(conversation_id, dialog_id, event, audience, metadata))

    async def _publish(self, publish: Publish) -> int:
        """The transport's :meth:`publish_event`."""
        refuse(self, f"publish a {publish.event.get('type', 'messaging event')}")

    async def update_conversation_field(
        self, conversation_id: str, fields: list[dict[str, Any]], *, metadata: list[Any] | None = None
    ) -> Any:
        """Change a conversation (``cm.UpdateConversationField``) and return the response body.

        ``fields`` are the wire ``conversationField`` objects, applied together: for example
        ``{"field": "ConversationStateField", "conversationState": "CLOSE"}`` closes the
        conversation, ``{"field": "ParticipantsChange", "type": "ADD", "role": "MANAGER"}`` joins
        it, ``{"field": "Skill", "type": "UPDATE", "skill": "12"}`` transfers it.  The object
        model's methods (``conversation.close()``, ``transfer()``, ``join()``, ``set_ttr()``,
        ``dialog.close()``...) build these for you."""
        names = ", ".join(str(f.get("field")) for f in fields) or "nothing"
        refuse(self, f"update conversation fields ({names})")

    async def query_messages(
        self,
        conversation_id: str,
        dialog_id: str,
        *,
        max_quantity: int | None = None,
        newer_than: int | None = None,
        older_than: int | None = None,
    ) -> list[MessagingEventInfo]:
        """The stored messaging events of a dialog, oldest first (brand ``ms.QueryMessages``; REST
        ``GET .../messages``).

        ``max_quantity`` caps how many come back; ``newer_than`` / ``older_than`` take only the
        events after / before that sequence.  Conversations load their history with it
        (``conversation.query_messages()``), so a bot rarely needs it directly."""
        query = MessagesQuery(conversation_id, dialog_id, max_quantity, newer_than, older_than)
        return await self._query_messages(query)

    async def _query_messages(self, query: MessagesQuery) -> list[MessagingEventInfo]:
        """The transport's :meth:`query_messages`."""
        refuse(self, "query messages")

    async def subscribe_messaging_events(self, conversation_id: str, dialog_id: str, from_seq: int) -> None:
        """Consumer ``ms.SubscribeMessagingEvents`` (events then arrive as notifications)."""
        refuse(self, "subscribe to messaging events")

    async def subscribe_conversations(self, query: dict[str, Any]) -> str:
        """``SubscribeExConversations`` with a wire query body; returns the subscription id.

        The subscription's notifications are routed by the connection to the subscription object
        registered with :meth:`register_conversation_subscription`."""
        refuse(self, "subscribe to conversations")

    async def unsubscribe_conversations(self, subscription_id: str) -> None:
        """End a conversation subscription (``cqm.UnsubscribeExConversations``) by its id."""
        refuse(self, "unsubscribe from conversations")

    async def subscribe_routing_tasks(self, query: dict[str, Any]) -> str:
        """Subscribe to this agent's routing tasks (``routing.SubscribeRoutingTasks``, rings) with a
        wire query body; returns the subscription id.  ``create_routing_task_subscription()``
        wraps it in an object with ``ring`` events."""
        refuse(self, "subscribe to routing tasks")

    async def unsubscribe_routing_tasks(self, subscription_id: str) -> None:
        """Stop a routing-task subscription (the server stops ringing through it)."""
        refuse(self, "unsubscribe from routing tasks")

    def register_conversation_subscription(
        self, subscription: ConversationSubscription, old_id: str | None = None
    ) -> None:
        """Route notifications of ``subscription.subscription_id`` to the subscription (and stop
        routing ``old_id``, its previous id)."""
        refuse(self, "register a conversation subscription")

    def unregister_conversation_subscription(self, subscription_id: str) -> None:
        """Stop routing notifications of ``subscription_id`` (the subscription ended)."""
        refuse(self, "unregister a conversation subscription")

    def register_routing_subscription(
        self, subscription: RoutingTaskSubscription, old_id: str | None = None
    ) -> None:
        """Route ring notifications of ``subscription.subscription_id`` to the subscription (and
        stop routing ``old_id``)."""
        refuse(self, "register a routing-task subscription")

    async def update_ring_state(self, ring_id: str, ring_state: str) -> None:
        """Answer a ring (``routing.UpdateRingState``): ``ring_state`` is ``ACCEPTED`` or
        ``REJECTED``.  ``ring.accept()`` and ``ring.reject()`` call it for you."""
        refuse(self, "answer a ring")

    async def get_user_profile(self, user_id: str | None) -> Any:
        """A user's profile (``userprofile.GetUserProfile``) as the platform returns it (for a
        consumer, a list of SDEs); this connection's own user when ``user_id`` is None."""
        refuse(self, "get a user profile")

    async def generate_upload_url(self, file_size: int, file_type: str) -> dict[str, Any]:
        """A temporary upload location for a file to share (``ms.GenerateURLForUploadFile``):
        ``{"relativePath", "queryParams"}``.  ``conversation.upload_file()`` does the whole
        upload."""
        refuse(self, "upload a file")

    async def generate_download_url(self, relative_path: str) -> dict[str, Any]:
        """A temporary download location for a shared file (``ms.GenerateURLForDownloadFile``):
        ``{"relativePath", "queryParams"}``.  ``conversation.download_file()`` does the whole
        download."""
        refuse(self, "download a file")

    async def put_file(self, relative_path: str, query: dict[str, str], data: bytes) -> None:
        """Upload bytes to the ``swift`` storage with a temp URL."""
        refuse(self, "upload a file")

    async def get_file(self, relative_path: str, query: dict[str, str]) -> bytes:
        """Download bytes from the ``swift`` storage with a temp URL."""
        refuse(self, "download a file")
