"""The connection base class: options, the state machine, events and the conversation cache.

Every state change goes through :meth:`Connection._set_state`, which checks it against
:data:`TRANSITIONS` — the one table of legal moves (reference §3.1)::

    INITIAL --open()--> CONNECTING --verified--> CONNECTED
    CONNECTING --error--> FAILED_TO_CONNECT --retry--> CONNECTING
    CONNECTED --socket lost--> DISCONNECTED --retry--> CONNECTING
    CONNECTED --close()--> CLOSING --> CLOSED
    CONNECTING | DISCONNECTED | FAILED_TO_CONNECT --close()--> CLOSED
    DISCONNECTED | FAILED_TO_CONNECT --credentials refused for good--> CLOSED
    NULL (NullConnection) never changes

CONNECTED starts once the new socket is verified and covers the restore of the session that
follows (subscriptions, agent state, missed messages); requests made during the restore are
queued until it is done, which the ``connect`` / ``reconnect`` event marks.  A socket lost during
the restore fails that attempt (DISCONNECTED, then the next attempt) without ``disconnect``.

Connections are async context managers: ``async with lpm.create_connection(...) as conn:``
opens on entry and closes on exit.  ``close()`` on a closed connection is a no-op.
"""

from __future__ import annotations

import logging
import uuid
from types import TracebackType
from typing import Any

from lpm.client.events import EventEmitter
from lpm.client.options import ConnectionOptions
from lpm.enums import ConnectionState
from lpm.errors import InvalidStateError

log = logging.getLogger("lpm.client.connection")

INITIAL = ConnectionState.INITIAL
CONNECTING = ConnectionState.CONNECTING
CONNECTED = ConnectionState.CONNECTED
FAILED_TO_CONNECT = ConnectionState.FAILED_TO_CONNECT
DISCONNECTED = ConnectionState.DISCONNECTED
CLOSING = ConnectionState.CLOSING
CLOSED = ConnectionState.CLOSED
NULL = ConnectionState.NULL

#: Legal state moves; anything else is a bug and raises InvalidStateError.
TRANSITIONS: dict[str, frozenset[str]] = {
    INITIAL: frozenset({CONNECTING, CLOSED}),
    CONNECTING: frozenset({CONNECTED, FAILED_TO_CONNECT, CLOSED}),
    CONNECTED: frozenset({DISCONNECTED, CLOSING}),
    FAILED_TO_CONNECT: frozenset({CONNECTING, CLOSED}),
    DISCONNECTED: frozenset({CONNECTING, CLOSED}),
    CLOSING: frozenset({CLOSED}),
    CLOSED: frozenset(),
    NULL: frozenset(),
}


class Connection(EventEmitter):
    """Base of every connection type (WebSocket, REST, Send API, NULL)."""

    def __init__(self, options: ConnectionOptions, *, initial_state: str = INITIAL) -> None:
        super().__init__()
        #: The validated options (see :func:`lpm.create_connection`).
        self.options = options
        #: The brand's account (site) id.
        self.account_id = options.account_id
        #: A random id of this connection object (in logs).
        self.connection_id = str(uuid.uuid4())
        self._state = initial_state
        self._error_sink = self.report_error
        # Imported lazily: the object model imports the connection's interface, not the reverse.
        from lpm.client.model.cache import ConversationCache

        #: The conversations this connection knows (see :meth:`get_conversation_by_id`).
        self.conversations = ConversationCache(
            self,  # type: ignore[arg-type]  # subclasses implement ConnectionActions
            cache_duration=options.conversations_cache_duration,
            get_all_messages=options.get_all_messages,
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.account_id} {self._state}>"

    # ---------------------------------------------------------------- state

    @property
    def state(self) -> str:
        """The :class:`lpm.ConnectionState` value."""
        return self._state

    def _set_state(self, new: str) -> None:
        if new == self._state:
            return
        if new not in TRANSITIONS[self._state]:
            raise InvalidStateError(f"connection cannot go from {self._state} to {new}")
        log.debug("%s: %s -> %s", self.connection_id, self._state, new)
        self._state = new
        self.emit("state", new)

    # ---------------------------------------------------------------- errors and events

    def report_error(self, error: BaseException) -> None:
        """Emit ``error``; without listeners the error is logged (never raised into a reader)."""
        if not self.emit("error", error):
            # str(exc), not exc: a handler that keeps log records (pytest's capture, a MemoryHandler)
            # would keep the exception, its traceback's frames and the conversations they held.
            log.warning("unhandled connection error: %s", str(error))

    # ---------------------------------------------------------------- conversations

    def load_conversation(self, serialized: str) -> Any:
        """Rebuild a conversation from :meth:`Conversation.serialize` output and cache it
        (stateless bots); release it with ``conversation.unload()``."""
        return self.conversations.load_conversation(serialized)

    def get_conversation_by_id(self, conversation_id: str) -> Any:
        """The cached :class:`~lpm.client.conversation.Conversation`, or None."""
        return self.conversations.get(conversation_id)

    def get_all_known_conversations(self) -> list[Any]:
        """Every conversation this connection currently holds."""
        return list(self.conversations.all())

    async def process_webhooks_notification(self, notification: Any) -> None:
        """Apply one webhook payload (``{"wsNotificationMsg": {"type", "body"}}``, a dict or its JSON
        text) to this connection's objects; see :mod:`lpm.client.subscriptions.webhook_intake`
        (NULL and REST connections)."""
        from lpm.client.subscriptions.webhook_intake import process_webhooks_notification

        await process_webhooks_notification(self, notification)

    # ---------------------------------------------------------------- lifecycle (subclasses)

    async def open(self) -> None:
        """Connect (authenticate, discover, open the transport); ``async with`` calls it."""
        raise NotImplementedError

    async def close(self) -> None:
        """Close the connection for good (a no-op when it is already closed)."""
        raise NotImplementedError

    async def __aenter__(self) -> Connection:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
