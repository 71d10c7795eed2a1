"""The connection base class: options, the state machine, events and the conversation cache.

Every state change goes through :meth:`Connection._move`, which looks the trigger up in
:data:`CONNECTION_STATES` — the one table of legal moves and what triggers them (reference §3.1)::

    INITIAL --open--> CONNECTING --verified--> CONNECTED
    CONNECTING --connect failed--> FAILED_TO_CONNECT --retry (or open)--> CONNECTING
    CONNECTED --socket lost--> DISCONNECTED --retry--> CONNECTING
    CONNECTED --close--> CLOSING --closed--> CLOSED
    INITIAL | CONNECTING | DISCONNECTED | FAILED_TO_CONNECT --close--> CLOSED
    CONNECTING | DISCONNECTED | FAILED_TO_CONNECT --give up (credentials refused for good)--> CLOSED
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
from collections.abc import Awaitable, Callable
from enum import StrEnum
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, cast

from lpm.client.events import log_handler_error
from lpm.client.model.cache import ConversationCache
from lpm.client.opening import first_open
from lpm.client.options import ConnectionOptions
from lpm.client.state_table import StateTable
from lpm.client.subscriptions.webhook_intake import WebhooksIntake, process_webhooks_notification
from lpm.client.typed_events import ConnectionEmitter
from lpm.enums import ConnectionEvent, ConnectionState
from lpm.errors import HandlerError, NotConnectedError

if TYPE_CHECKING:
    from lpm.client.actions import ConnectionActions
    from lpm.client.model.conversation import Conversation

log = logging.getLogger("lpm.client.connection")

INITIAL = ConnectionState.INITIAL
CONNECTING = ConnectionState.CONNECTING
CONNECTED = ConnectionState.CONNECTED
FAILED_TO_CONNECT = ConnectionState.FAILED_TO_CONNECT
DISCONNECTED = ConnectionState.DISCONNECTED
CLOSING = ConnectionState.CLOSING
CLOSED = ConnectionState.CLOSED
NULL = ConnectionState.NULL


class ConnectionTrigger(StrEnum):
    """What moves a connection from one :class:`~lpm.ConnectionState` to another."""

    OPEN = "open"
    #: A connect attempt starts (the maintainer's, or the first one of ``open()``).
    RETRY = "retry"
    #: The transport confirmed the session (a verified socket; REST/Send API credentials).
    VERIFIED = "verified"
    CONNECT_FAILED = "connect failed"
    SOCKET_LOST = "socket lost"
    CLOSE = "close"
    #: ``close()`` finished releasing what the connection held.
    CLOSED = "closed"
    #: The credentials were refused and nothing can replace them: maintenance stops.
    GIVE_UP = "give up"


_T = ConnectionTrigger

#: The connection's legal moves; anything else is a bug and raises InvalidStateError.
CONNECTION_STATES: StateTable[str, ConnectionTrigger] = StateTable.by_state(
    "connection",
    {
        INITIAL: {_T.OPEN: CONNECTING, _T.CLOSE: CLOSED},
        # RETRY: open()'s first attempt finds the connection CONNECTING already.
        CONNECTING: {
            _T.RETRY: CONNECTING,
            _T.VERIFIED: CONNECTED,
            _T.CONNECT_FAILED: FAILED_TO_CONNECT,
            _T.CLOSE: CLOSED,
            _T.GIVE_UP: CLOSED,
        },
        CONNECTED: {_T.SOCKET_LOST: DISCONNECTED, _T.CLOSE: CLOSING},
        # OPEN: a REST / Send API connection may be opened again after a failure.
        FAILED_TO_CONNECT: {_T.OPEN: CONNECTING, _T.RETRY: CONNECTING, _T.CLOSE: CLOSED, _T.GIVE_UP: CLOSED},
        DISCONNECTED: {_T.RETRY: CONNECTING, _T.CLOSE: CLOSED, _T.GIVE_UP: CLOSED},
        CLOSING: {_T.CLOSED: CLOSED},
    },
)

#: The states each state may move to (derived from :data:`CONNECTION_STATES`).
TRANSITIONS: dict[str, frozenset[str]] = {
    state: frozenset(n for s, _, n in CONNECTION_STATES if s == state and n != state)
    for state in (INITIAL, CONNECTING, CONNECTED, FAILED_TO_CONNECT, DISCONNECTED, CLOSING, CLOSED, NULL)
}


def not_connected(request_type: str, state: str) -> NotConnectedError:
    """The error of a request that cannot be sent in ``state``, in plain words."""
    if state == ConnectionState.INITIAL:
        reason = "the connection was never opened: call open() first"
    elif state in (ConnectionState.CLOSED, ConnectionState.CLOSING):
        reason = "the connection is closed"
    elif state == ConnectionState.FAILED_TO_CONNECT:
        reason = "the connection failed to connect"
    else:
        reason = f"the connection is {state}"
    return NotConnectedError(f"unable to send {request_type}: {reason}")


class Connection(ConnectionEmitter):
    """Base of every connection type (WebSocket, REST, Send API, NULL):
    :func:`lpm.create_connection` returns one of its subclasses.

    What every connection has: its state, the conversations it knows (a cache), the webhooks
    intake, ``open()`` / ``close()`` (or ``async with``), and its events.  What a connection can
    ask of the platform depends on its transport; an action it cannot do at all raises
    :class:`~lpm.errors.UnsupportedActionError` before any I/O.  (Internally, the object model's
    interface, :class:`~lpm.client.actions.ConnectionActions`, is implemented by the transports.)
    """

    def __init__(self, options: ConnectionOptions, *, initial_state: str = INITIAL) -> None:
        super().__init__(self.report_error)
        #: The validated options (see :func:`lpm.create_connection`).
        self.options = options
        #: The brand's account (site) id.
        self.account_id = options.account_id
        #: A random id of this connection object (in logs).
        self.connection_id = str(uuid.uuid4())
        self._state = initial_state
        #: The conversations this connection knows (see :meth:`get_conversation_by_id`).
        self.conversations: ConversationCache = self._new_conversation_cache()
        self._webhooks_intake: WebhooksIntake | None = None
        #: The last error reported while the first open() runs (the cause it names when it gives
        #: up); None otherwise: an error's traceback holds the frames it went through, and so the
        #: conversations they worked on -- the last error kept for good kept them for good.
        self._last_error: BaseException | None = None
        self._opening = False

    def _new_conversation_cache(self) -> ConversationCache:
        """The cache :attr:`conversations` starts with (a subclass may filter what it keeps)."""
        return ConversationCache(
            # Every concrete connection implements the object model's interface.
            cast("ConnectionActions", self),
            cache_duration=self.options.conversations_cache_duration,
            get_all_messages=self.options.get_all_messages,
            max_conversations=self.options.max_conversations,
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.account_id} {self._state}>"

    # ---------------------------------------------------------------- state

    @property
    def state(self) -> str:
        """The :class:`lpm.ConnectionState` value."""
        return self._state

    def _move(self, trigger: ConnectionTrigger) -> None:
        """Take the move ``trigger`` makes from the current state (``state`` event when the state
        changes); an illegal move raises :class:`~lpm.errors.InvalidStateError`."""
        new = CONNECTION_STATES.next(self._state, trigger)
        if new == self._state:
            return
        log.debug("%s: %s --%s--> %s", self.connection_id, self._state, trigger, new)
        self._state = new
        self.emit(ConnectionEvent.STATE, new)

    # ---------------------------------------------------------------- errors and events

    def report_error(self, error: BaseException) -> None:
        """Emit ``error``; without listeners the error is logged (never raised into a reader)."""
        if self._opening:
            self._last_error = error
        if not self.emit(ConnectionEvent.ERROR, error):
            if isinstance(error, HandlerError):
                log_handler_error(error)  # the application's bug: its own logger, full traceback
                return
            # str(exc), not exc: a handler that keeps log records (pytest's capture, a MemoryHandler)
            # would keep the exception, its traceback's frames and the conversations they held.
            log.warning("unhandled connection error: %s", str(error))

    async def _first_open(
        self,
        attempt: Callable[[], Awaitable[None]],
        on_retry: Callable[[BaseException, int, float], None],
    ) -> None:
        """:func:`~lpm.client.opening.first_open` with this connection's ``open_timeout`` and
        back-off; the errors reported meanwhile are remembered (the last is the cause named if it
        gives up), and only meanwhile."""
        self._opening = True
        self._last_error = None
        try:
            await first_open(
                attempt,
                timeout=self.options.open_timeout,
                backoff=self.options.reconnect_backoff(),
                on_retry=on_retry,
                last_reported=lambda: self._last_error,
            )
        finally:
            self._opening = False
            self._last_error = None

    # ---------------------------------------------------------------- conversations

    def load_conversation(self, serialized: str) -> Conversation:
        """Rebuild a conversation from :meth:`Conversation.serialize` output and cache it
        (stateless bots); release it with ``conversation.unload()``."""
        return self.conversations.load_conversation(serialized)

    def get_conversation_by_id(self, conversation_id: str) -> Conversation | None:
        """The cached :class:`~lpm.client.model.conversation.Conversation`, or None."""
        return self.conversations.get(conversation_id)

    async def wait_for_conversation(self, conversation_id: str, timeout: float | None = None) -> Conversation:
        """The conversation ``conversation_id`` once this connection has announced it (its
        ``conversation`` event); at once if it already has.  ``timeout`` defaults to the
        ``ring_conversation_timeout`` option; then :class:`~lpm.errors.WaitTimeoutError`."""
        known = self.conversations.get(conversation_id)
        if known is not None and known.announced:
            return known
        found: Conversation = await self.wait_for(
            ConnectionEvent.CONVERSATION,
            lambda conversation: conversation.conversation_id == conversation_id,
            timeout=self.options.ring_conversation_timeout if timeout is None else timeout,
        )
        return found

    def get_all_known_conversations(self) -> list[Conversation]:
        """Every conversation this connection currently holds."""
        return list(self.conversations.all())

    # ---------------------------------------------------------------- webhooks

    @property
    def webhooks_intake(self) -> WebhooksIntake:
        """The feed of this connection's ``cqm.ExConversationChangeNotification`` webhooks
        (created on first use; see :mod:`lpm.client.subscriptions.webhook_intake`)."""
        if self._webhooks_intake is None:
            self._webhooks_intake = self._new_webhooks_intake()
        return self._webhooks_intake

    def _new_webhooks_intake(self) -> WebhooksIntake:
        """The intake :attr:`webhooks_intake` creates (a subclass may filter what it takes)."""
        return WebhooksIntake(self)

    async def process_webhooks_notification(self, notification: Any) -> None:
        """Apply one webhook payload (the notification ``{"kind", "type", "body"}`` as LivePerson
        POSTs it, or ``{"wsNotificationMsg": {"type", "body"}}``; a dict or its JSON text) to this
        connection's objects; see :mod:`lpm.client.subscriptions.webhook_intake`
        (NULL, REST and Send API connections)."""
        await process_webhooks_notification(self, notification)

    async def _release_conversations(self) -> None:
        """Close the webhooks intake (if it was created) and the cache's expiry timers."""
        if self._webhooks_intake is not None:
            await self._webhooks_intake.close()
        self.conversations.close()

    # ---------------------------------------------------------------- lifecycle (subclasses)

    async def open(self) -> None:
        """Connect (authenticate, discover, open the transport); ``async with`` calls it."""
        raise NotImplementedError

    async def close(self) -> None:
        """Close the connection for good (a no-op when it is already closed)."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
