"""The NULL connection: no transport at all (``connection_type=ConnectionType.NULL``; reference §2.6).

A :class:`NullConnection` (any user type) never connects: its state is
:attr:`lpm.ConnectionState.NULL` for its whole life, ``open()`` and ``close()`` change nothing.
Its conversations are fed only by webhook notifications (:mod:`lpm.webhooks`, or
:func:`lpm.client.webhooks.process_webhooks_notification`), so they can be read, listened to,
serialized and handed to a connection that can act (a REST connection, ``lpm.publish_message``).

Every action raises :class:`~lpm.errors.InvalidStateError` naming what was attempted: a NULL
connection has nothing to send it with.
"""

from __future__ import annotations

from typing import Any, NoReturn

from lpm.client import connection as cs
from lpm.client.connection import Connection
from lpm.client.options import ConnectionOptions
from lpm.errors import InvalidStateError
from lpm.protocol.notifications import MessagingEventInfo

__all__ = ["NullConnection"]


def _no_transport(action: str) -> NoReturn:
    raise InvalidStateError(
        f"cannot {action}: a NULL connection has no transport (its conversations are fed by webhooks); "
        "act through a REST connection or lpm.publish_message"
    )


class NullConnection(Connection):
    """A connection without transport whose conversations come from webhooks."""

    def __init__(self, options: ConnectionOptions) -> None:
        super().__init__(options, initial_state=cs.NULL)
        self._closed = False

    # ---------------------------------------------------------------- identity

    @property
    def is_brand(self) -> bool:
        return self.options.user_type == "brand"

    @property
    def agent_id(self) -> str | None:
        """The ``agent_id`` option (``{account}.{userId}``), if given: it lets
        ``dialog.get_self_participant()`` find this user."""
        return self.options.agent_id

    @property
    def user_id(self) -> str | None:
        return None

    # ---------------------------------------------------------------- lifecycle

    async def open(self) -> None:
        """Nothing to open: the state stays ``null``."""

    async def close(self) -> None:
        """Release the webhook feed, cache timers and event-handler tasks (the state stays
        ``null``); idempotent."""
        if self._closed:
            return
        self._closed = True
        from lpm.client.subscriptions.webhook_intake import close_webhooks_intake

        await close_webhooks_intake(self)
        self.conversations.close()
        await self.close_events()

    # ---------------------------------------------------------------- ConnectionActions: all refused

    async def publish_event(
        self,
        conversation_id: str,
        dialog_id: str,
        event: dict[str, Any],
        *,
        audience: str = "ALL",
        metadata: list[Any] | None = None,
    ) -> int:
        _no_transport(f"publish a {event.get('type', 'messaging event')}")

    async def update_conversation_field(
        self, conversation_id: str, fields: list[dict[str, Any]], *, metadata: list[Any] | None = None
    ) -> Any:
        names = ", ".join(str(f.get("field")) for f in fields) or "nothing"
        _no_transport(f"update conversation fields ({names})")

    async def query_messages(
        self,
        conversation_id: str,
        dialog_id: str,
        *,
        max_quantity: int | None = None,
        newer_than: int | None = None,
        older_than: int | None = None,
    ) -> list[MessagingEventInfo]:
        _no_transport("query messages")

    async def subscribe_messaging_events(self, conversation_id: str, dialog_id: str, from_seq: int) -> None:
        _no_transport("subscribe to messaging events")

    async def subscribe_conversations(self, query: dict[str, Any]) -> str:
        _no_transport("subscribe to conversations")

    async def unsubscribe_conversations(self, subscription_id: str) -> None:
        _no_transport("unsubscribe from conversations")

    async def subscribe_routing_tasks(self, query: dict[str, Any]) -> str:
        _no_transport("subscribe to routing tasks")

    async def unsubscribe_routing_tasks(self, subscription_id: str) -> None:
        _no_transport("unsubscribe from routing tasks")

    def register_conversation_subscription(self, subscription: Any, old_id: str | None = None) -> None:
        _no_transport("register a conversation subscription")

    def unregister_conversation_subscription(self, subscription_id: str) -> None:
        _no_transport("unregister a conversation subscription")

    def register_routing_subscription(self, subscription: Any, old_id: str | None = None) -> None:
        _no_transport("register a routing-task subscription")

    async def update_ring_state(self, ring_id: str, ring_state: str) -> None:
        _no_transport("answer a ring")

    async def get_user_profile(self, user_id: str | None) -> Any:
        _no_transport("get a user profile")

    async def generate_upload_url(self, file_size: int, file_type: str) -> dict[str, Any]:
        _no_transport("upload a file")

    async def generate_download_url(self, relative_path: str) -> dict[str, Any]:
        _no_transport("download a file")

    async def put_file(self, relative_path: str, query: dict[str, str], data: bytes) -> None:
        _no_transport("upload a file")

    async def get_file(self, relative_path: str, query: dict[str, str]) -> bytes:
        _no_transport("download a file")
