"""The NULL connection: no transport at all (``connection_type=ConnectionType.NULL``; reference §2.6).

A :class:`NullConnection` (any user type) never connects: its state is
:attr:`lpm.ConnectionState.NULL` for its whole life, ``open()`` and ``close()`` change nothing.
Its conversations are fed only by webhook notifications (:mod:`lpm.webhooks`, or
:meth:`~lpm.Connection.process_webhooks_notification`), so they can be read, listened to,
serialized and handed to a connection that can act (a REST connection, ``lpm.publish_message``).

Every action raises :class:`~lpm.errors.UnsupportedActionError` (an
:class:`~lpm.errors.InvalidStateError`) naming what was attempted: a NULL connection has nothing
to send it with.  For the same reason its cache never loads a conversation's history
(``get_all_messages`` has no effect).
"""

from __future__ import annotations

from lpm.client import connection as cs
from lpm.client.model.cache import ConversationCache
from lpm.client.options import ConnectionOptions
from lpm.client.transport.base import TransportConnection

__all__ = ["NullConnection"]


class NullConnection(TransportConnection):
    """A connection without transport whose conversations come from webhooks."""

    transport_name = "a NULL connection"
    unsupported_hint = (
        "it has no transport (its conversations are fed by webhooks); "
        "act through a REST connection or lpm.publish_message"
    )

    def __init__(self, options: ConnectionOptions) -> None:
        super().__init__(options, initial_state=cs.NULL)
        self._closed = False

    def _new_conversation_cache(self) -> ConversationCache:
        cache = super()._new_conversation_cache()
        cache.get_all_messages = False  # nothing to load a history with
        return cache

    @property
    def agent_id(self) -> str | None:
        """The ``agent_id`` option (``{account}.{userId}``), if given: it lets
        ``dialog.get_self_participant()`` find this user."""
        return self.options.agent_id

    # ---------------------------------------------------------------- lifecycle

    async def open(self) -> None:
        """Nothing to open: the state stays ``null``."""

    async def close(self) -> None:
        """Release the webhook feed, cache timers and event-handler tasks (the state stays
        ``null``); idempotent."""
        if self._closed:
            return
        self._closed = True
        await self._release_conversations()
        await self.close_events()
