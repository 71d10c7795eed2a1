"""Receivers of the world's committed changes: :class:`WorldSink` and the store interface.

The world announces a change *after* an operation has succeeded, first to its store, then to
each sink (the :class:`~lpm.emulator.hub.Hub` for sockets, the webhook dispatcher), so none of
them ever sees a refused request.  :class:`NullStore` is the store interface and its in-memory
default; :class:`~lpm.emulator.persistence.SqliteStore` keeps a copy on disk.

Durability: a store may accept a write before it is on disk (:attr:`NullStore.pending` counts
those).  Whatever leaves the emulator (a socket frame, an HTTP response, a webhook) first awaits
:meth:`NullStore.durable`, so nothing is acknowledged or shown to anyone before the writes made
until then are committed: a crash can lose only what nobody was told.
"""

from __future__ import annotations

from typing import Protocol

from lpm.emulator.entities import (
    AgentSession,
    AgentState,
    AppInstall,
    Consumer,
    Conversation,
    EventRecord,
    RoutingTask,
)


class WorldSink(Protocol):
    """Receives every committed change of the world."""

    def conversation_changed(self, conv: Conversation) -> None: ...

    def messaging_event(self, conv: Conversation, record: EventRecord) -> None: ...

    def routing_task_changed(self, account_id: str, task: RoutingTask) -> None: ...

    def agent_state_changed(self, account_id: str, user_id: str, state: AgentState) -> None: ...

    def consumer_changed(self, account_id: str, consumer: Consumer) -> None: ...


class NullStore:
    """Store interface; the in-memory default persists nothing."""

    @property
    def pending(self) -> int:
        """Writes accepted but not yet durable (the in-memory store has none)."""
        return 0

    async def durable(self) -> None:
        """Return once every write made before the call is durable (at once: nothing to write)."""

    def conversation_changed(self, conv: Conversation) -> None:
        """Persist the conversation (without its events)."""

    def messaging_event(self, conv: Conversation, record: EventRecord) -> None:
        """Persist one stored event."""

    def routing_task_changed(self, account_id: str, task: RoutingTask) -> None:
        """Routing is transient: rings are not persisted."""

    def agent_state_changed(self, account_id: str, user_id: str, state: AgentState) -> None:
        """Persist an agent's state."""

    def consumer_changed(self, account_id: str, consumer: Consumer) -> None:
        """Persist a consumer identity and profile."""

    def session_changed(self, session: AgentSession | None, bearer: str) -> None:
        """Persist (or, with ``None``, forget) an agent login session."""

    def app_install_changed(self, account_id: str, install: AppInstall) -> None:
        """Persist an app install."""

    def app_install_removed(self, account_id: str, client_id: str) -> None:
        """Forget a persisted app install (configured ones come back with the config)."""
