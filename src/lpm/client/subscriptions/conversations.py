"""Conversation subscriptions (``SubscribeExConversations``) and limit-break paging.

What the connection does (the subscription registers itself, the connection keeps the map):

* a subscription calls ``connection.register_conversation_subscription(sub, old_id)`` once it has a
  subscription id (``old_id`` is the id it replaces after a reconnect) and
  ``connection.unregister_conversation_subscription(id)`` when an id dies without an unsubscribe
  request; ``connection.unsubscribe_conversations(id)`` unregisters as well;
* the connection calls ``sub.handle_notification(changes)`` (decoded
  :class:`~lpm.protocol.notifications.ConversationChange` list) for every ExConversation
  notification whose ``subscriptionId`` is mapped to ``sub``;
* on socket loss it calls ``sub.mark_disconnected()`` on every mapped subscription, and after the
  reconnect ``await sub.resubscribe()`` for those whose ``needs_resubscribe`` is true.

Processing model: a notification is applied **synchronously** when ``handle_notification`` is
called — the conversation objects and the cache reflect it before the next frame is read, so a
messaging event that follows can always find its conversation.  Only the announcement of a
conversation new to the connection may need I/O first (a consumer subscribes to its messaging
events; a brand with ``get_all_messages`` loads its history); announcements and consumer
messaging subscriptions run in order on a task owned by the subscription, and the ``conversation``
event is emitted after that preparation.  Announcements that need no I/O are emitted at once
when nothing is queued ahead of them, so the order of ``conversation`` events is the order of
the notifications.

The first notification after a (re)subscribe is a snapshot: conversations of this feed missing
from it are dropped with ``conversation-deleted``, the others are diffed, so what changed while
offline is emitted as ordinary change events.  UMS caps a snapshot at about 1000 conversations:
with ``limit_break_enabled``, a snapshot of 900 or more changes makes the subscription page
backwards through older conversations with short-lived child subscriptions (``last_update_before``
= oldest update + 10 s), each page processed as ordinary updates, until a page is smaller than
900; the snapshot's deletions are decided only once every page has arrived.

A socket's notification of many changes (a snapshot) comes as
:class:`~lpm.protocol.notifications.ConversationChanges`: each change is decoded as it is applied
and dropped afterwards (a snapshot of thousands is never all built at once), and a change
repeating the state its conversation holds is ignored without being decoded (a resubscribe's
snapshot repeats every conversation that did not change).  A change that cannot be decoded is
reported and dropped, the others applied -- unless ``notification`` listeners want the whole
list: then every change is decoded first, and a bad one refuses the notification.

Subscription events: ``conversation`` ``(conversation)`` (new to the connection, also emitted on
the connection), ``upsert`` / ``delete`` ``(conversation)``, ``conversation-deleted``
``(conversation)``, ``notification`` ``(changes)``, ``limit-break`` ``(LimitBreak)`` (also on the
connection).

Why one module (about 850 lines): the subscription, its limit-break paging and the lookup
of conversations that left the feed share the snapshot state (what was announced, what is
still loading); they are steps of one feed.
"""

from __future__ import annotations

import asyncio
import contextvars
import enum
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from lpm.client.actions import ConnectionActions
from lpm.client.events import cancel_and_wait
from lpm.client.model.cache import HistoryLoad, _retrying
from lpm.client.model.conversation import ConversationEvent
from lpm.client.subscriptions.lifecycle import (
    CONVERSATION_SUBSCRIPTION,
    ONE_OFF_SUBSCRIPTION,
    SubscriptionLifecycle,
    SubscriptionTrigger,
)
from lpm.client.typed_events import SubscriptionEmitter
from lpm.enums import ConversationState, ParticipantState, SubscriptionState
from lpm.errors import (
    ConfigurationError,
    InvalidStateError,
    LimitExceededError,
    LpmError,
    ProtocolError,
    RequestTimeoutError,
)
from lpm.protocol.notifications import ConversationChange, ConversationChanges, NotificationError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from lpm.client.model.cache import ConversationCache
    from lpm.client.model.conversation import Conversation
    from lpm.client.model.dialog import Dialog
    from lpm.protocol.notifications import AnyConversationChange, ConversationInfo

__all__ = [
    "CONVERSATION_LIMIT_THRESHOLD",
    "ChildConversationSubscription",
    "ConversationFeed",
    "ConversationSubscription",
    "LimitBreak",
    "SubscriptionEvent",
    "SubscriptionHost",
    "wire_query",
]

log = logging.getLogger("lpm.client.subscriptions.conversations")

#: A snapshot this large may be truncated by UMS (its cap is 1001; 900 because of a UMS bug).
CONVERSATION_LIMIT_THRESHOLD = 900
#: Conversations prepared (history loaded, messaging subscribed) at once before their announcement.
PREPARE_CONCURRENCY = 32
#: Overlap between limit-break pages (ms).
PAGE_OVERLAP_MS = 10_000
#: Seconds a DELETEd conversation stays in the feed (late notifications still find it).
CLEAR_CONVERSATION_TIMEOUT = 5.0
#: Seconds ``init`` waits for the first notification.
FIRST_NOTIFICATION_TIMEOUT = 600.0
SUBSCRIBE_REQUEST = "SubscribeExConversations"


class SubscriptionEvent(enum.StrEnum):
    """The events of a conversation subscription (``conversation`` and ``limit-break`` are also
    emitted on the connection, under the same names)."""

    CONVERSATION = "conversation"
    UPSERT = "upsert"
    DELETE = "delete"
    CONVERSATION_DELETED = "conversation-deleted"
    NOTIFICATION = "notification"
    LIMIT_BREAK = "limit-break"


# Looked up once (this module's hot path compares and emits them for every notification).
_NOTIFICATION = SubscriptionEvent.NOTIFICATION
_SUBSCRIBED = SubscriptionState.SUBSCRIBED


class SubscriptionHost(ConnectionActions, Protocol):
    """What a conversation subscription needs of its connection besides ConnectionActions."""

    @property
    def conversations(self) -> ConversationCache:
        """The connection's conversation cache."""
        ...

    def register_conversation_subscription(self, subscription: Any, old_id: str | None = None) -> None:
        """Route notifications of ``subscription.subscription_id`` to it (replacing ``old_id``)."""
        ...

    def unregister_conversation_subscription(self, subscription_id: str) -> None:
        """Stop routing ``subscription_id`` (late notifications for it are expected, not errors)."""
        ...


@dataclass(frozen=True, slots=True)
class LimitBreak:
    """Payload of ``limit-break``: emitted after every snapshot (and limit-break page)."""

    #: True when a child subscription is being created for the next (older) page.
    creating_child_sub: bool
    conversation_limit_threshold: int
    #: Number of changes of the snapshot / page.
    notification_change_count: int
    #: Oldest ``last_update_ts`` (epoch ms) of the snapshot / page, if any.
    min_last_update_time: int | None


# ---------------------------------------------------------------- query mapping

_LIST_KEYS = {"state": "convState", "stage": "stage", "agent_ids": "agentIds", "dialog_types": "dialogTypes"}
_STR_KEYS = {"consumer_id": "consumerId", "conversation_id": "conversationId", "account_id": "brandId"}
_TIME_KEYS = {"last_update_after": "minLastUpdatedTime", "last_update_before": "maxLastUpdatedTime"}
QUERY_KEYS = frozenset(_LIST_KEYS) | frozenset(_STR_KEYS) | frozenset(_TIME_KEYS)


def wire_query(query: Mapping[str, Any]) -> dict[str, Any]:
    """The ``SubscribeExConversations`` body of a query in Python names.

    ``state`` → ``convState``, ``stage``, ``agent_ids`` → ``agentIds``, ``dialog_types`` →
    ``dialogTypes`` (a string or a list of strings each); ``consumer_id``, ``conversation_id``,
    ``account_id`` → ``brandId`` (strings); ``last_update_after`` → ``minLastUpdatedTime`` and
    ``last_update_before`` → ``maxLastUpdatedTime`` (epoch ms).  None values are left out; any
    other key raises :class:`~lpm.errors.ConfigurationError`.
    """
    unknown = sorted(set(query) - QUERY_KEYS)
    if unknown:
        allowed = ", ".join(sorted(QUERY_KEYS))
        raise ConfigurationError(
            f"unknown subscription query key(s) {', '.join(unknown)}; allowed: {allowed}"
        )
    body: dict[str, Any] = {}
    for key, value in query.items():
        if value is None:
            continue
        if key in _LIST_KEYS:
            items = [value] if isinstance(value, str) else value
            if not isinstance(items, list | tuple | set | frozenset) or not all(
                isinstance(v, str) for v in items
            ):
                raise ConfigurationError(f"subscription query {key} must be a string or a list of strings")
            body[_LIST_KEYS[key]] = [str(v) for v in items]
        elif key in _STR_KEYS:
            if not isinstance(value, str) or not value:
                raise ConfigurationError(f"subscription query {key} must be a non-empty string")
            body[_STR_KEYS[key]] = value
        else:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigurationError(f"subscription query {key} must be an epoch time in milliseconds")
            body[_TIME_KEYS[key]] = value
    return body


def _min_update(changes: Sequence[AnyConversationChange]) -> int | None:
    """The oldest update time (epoch ms) of the changes (one that cannot be read has none)."""
    oldest: int | None = None
    for change in changes:
        try:
            stamp = change.last_update_ts
        except NotificationError:
            continue
        if stamp is not None and (oldest is None or stamp < oldest):
            oldest = stamp
    return oldest


def _listed(changes: Sequence[AnyConversationChange]) -> list[ConversationChange]:
    """The changes as the ``notification`` event hands them: a list of
    :class:`~lpm.protocol.notifications.ConversationChange`, every one decoded (one that cannot
    be was reported when it was applied)."""
    listed: list[ConversationChange] = []
    for change in changes:
        if isinstance(change, ConversationChange):
            listed.append(change)
            continue
        try:
            listed.append(change.materialize())
        except NotificationError:
            continue
    return listed


def _decoded_for(
    emitter: SubscriptionEmitter, changes: Sequence[AnyConversationChange]
) -> Sequence[AnyConversationChange]:
    """``changes``, every one decoded now if ``emitter`` has ``notification`` listeners (they get
    them all, as a list).  A change that is not the documented shape then raises
    :class:`~lpm.protocol.notifications.NotificationError` before any is applied, as for a
    notification decoded in one piece."""
    if isinstance(changes, ConversationChanges) and emitter.has_listeners(SubscriptionEvent.NOTIFICATION):
        return changes.materialize()
    return changes


# ---------------------------------------------------------------- the subscription


class ConversationFeed:
    """Mixin: reading the conversations a feed (a subscription, the webhooks intake) holds."""

    __slots__ = ()

    _feed: dict[str, Conversation]

    @property
    def conversations(self) -> list[Conversation]:
        """The conversations this feed currently holds."""
        return list(self._feed.values())

    def get(self, conversation_id: str) -> Conversation | None:
        """The conversation ``conversation_id`` if this feed holds it, else None."""
        return self._feed.get(conversation_id)


class ConversationSubscription(
    ConversationFeed, SubscriptionEmitter, SubscriptionLifecycle[SubscriptionState]
):
    """One ``SubscribeExConversations`` of a connection: a feed of conversations matching
    ``query`` (Python names, see :func:`wire_query`).  See the module docstring.

    ``state`` is a :class:`lpm.SubscriptionState`; it changes only as
    :data:`~lpm.client.subscriptions.lifecycle.CONVERSATION_SUBSCRIPTION` allows.
    """

    _lifecycle = CONVERSATION_SUBSCRIPTION

    __slots__ = (
        "_awaiting_snapshot",
        "_context",
        "_delete_timers",
        "_departed",
        "_feed",
        "_history_loads",
        "_host",
        "_join_loads",
        "_last_page_before",
        "_load_cycle",
        "_loaded",
        "_page_ids",
        "_paging",
        "_prepare_queue",
        "_preparers",
        "_settle_again",
        "_settling",
        "_state",
        "_steps",
        "_stopped",
        "_worker",
        "clear_conversation_timeout",
        "first_notification_timeout",
        "limit_break_enabled",
        "query",
        "subscription_id",
        "wire_query",
    )

    def __init__(
        self,
        connection: SubscriptionHost,
        query: Mapping[str, Any] | None = None,
        *,
        limit_break_enabled: bool = True,
        clear_conversation_timeout: float = CLEAR_CONVERSATION_TIMEOUT,
        first_notification_timeout: float = FIRST_NOTIFICATION_TIMEOUT,
    ) -> None:
        super().__init__(connection.report_error)
        self._host = connection
        #: The query in Python names, as given.
        self.query: dict[str, Any] = dict(query or {})
        #: The wire body (validated at construction: a bad key fails before any I/O).
        self.wire_query = wire_query(self.query)
        #: Page past UMS's snapshot cap with child subscriptions (see the module docstring).
        self.limit_break_enabled = limit_break_enabled
        self.clear_conversation_timeout = clear_conversation_timeout
        self.first_notification_timeout = first_notification_timeout
        #: None until subscribed; changes after every resubscribe.
        self.subscription_id: str | None = None
        self._state = SubscriptionState.INITIAL
        self._feed: dict[str, Conversation] = {}
        self._awaiting_snapshot = False
        # Set once the current snapshot is processed.  One Event for the subscription's whole
        # life, cleared on every (re)subscribe, so a waiter (the connection's "ready") started
        # before a reconnect is woken by the next snapshot instead of waiting on a dead Event.
        self._loaded = asyncio.Event()
        #: Counts (re)subscribes: a snapshot finishing after a newer subscribe must not mark it loaded.
        self._load_cycle = 0
        self._steps: deque[Callable[[], Awaitable[None]]] = deque()
        self._worker: asyncio.Task[None] | None = None
        self._paging: asyncio.Task[None] | None = None
        self._stopped: set[asyncio.Task[None]] = set()
        self._page_ids: set[str] | None = None
        self._last_page_before: int | None = None
        self._delete_timers: dict[str, asyncio.TimerHandle] = {}
        self._context: contextvars.Context | None = None
        #: Conversations that left the feed at a snapshot while still open here (see _settle_departed).
        self._departed: dict[str, Conversation] = {}
        #: The task looking them up (see _settle_soon), and whether a snapshot added more meanwhile.
        self._settling: asyncio.Task[None] | None = None
        self._settle_again = False
        #: History loads decided but not over (their dialogs hold ``message`` events until then).
        self._history_loads: set[HistoryLoad] = set()
        #: Tasks preparing conversations (messaging subscriptions, history loads), before their
        #: announcement or after a join.
        self._join_loads: set[asyncio.Task[None]] = set()
        #: Conversations waiting for a preparation worker, and how many workers run (at most
        #: PREPARE_CONCURRENCY).
        self._prepare_queue: deque[tuple[list[Dialog], HistoryLoad | None, asyncio.Future[None]]] = deque()
        self._preparers = 0

    def __repr__(self) -> str:
        return f"<ConversationSubscription {self.subscription_id} {self.state}>"

    # ---------------------------------------------------------------- reading

    @property
    def needs_resubscribe(self) -> bool:
        """True when the server no longer holds this subscription (socket lost, or a
        resubscribe failed): the connection should call :meth:`resubscribe` after reconnecting."""
        return self.state in (SubscriptionState.DISCONNECTED, SubscriptionState.FAILED_TO_SUBSCRIBE)

    @property
    def loaded(self) -> bool:
        """True once the current snapshot (with every limit-break page) has been processed and
        its conversations announced."""
        return self._loaded.is_set()

    @property
    def _cache(self) -> ConversationCache:
        return self._host.conversations

    # ---------------------------------------------------------------- lifecycle

    async def init(self, wait_for_first_notification: bool = True) -> None:
        """Subscribe; with ``wait_for_first_notification``, return once the snapshot (every
        limit-break page included) has been processed and its new conversations announced.

        Raises the request's error (state FAILED_TO_SUBSCRIBE), or
        :class:`~lpm.errors.RequestTimeoutError` when no snapshot arrives in time.
        """
        if self.state != SubscriptionState.INITIAL:
            raise InvalidStateError(f"subscription already initialised (state {self.state})")
        await self._subscribe(None)
        if wait_for_first_notification:
            await self._wait_first()

    async def _subscribe(self, old_id: str | None) -> None:
        # Background work of this subscription runs in the context of the code that subscribed
        # (a connection restoring its session sends those requests on the new socket at once).
        self._context = contextvars.copy_context()
        subscription_id = await self._subscribed(self._host.subscribe_conversations(self.wire_query))
        if subscription_id is None:
            return
        self.subscription_id = subscription_id
        self._awaiting_snapshot = True
        self._load_cycle += 1
        self._loaded.clear()
        self._host.register_conversation_subscription(self, old_id)

    async def wait_loaded(self) -> None:
        """Wait until :attr:`loaded` (wrap in ``asyncio.timeout`` to bound the wait)."""
        await self._loaded.wait()

    async def _wait_first(self) -> None:
        timeout = self.first_notification_timeout
        try:
            async with asyncio.timeout(timeout):
                await self._loaded.wait()
        except TimeoutError:
            raise RequestTimeoutError(f"{SUBSCRIBE_REQUEST} (first notification)", timeout) from None

    def mark_disconnected(self) -> None:
        """The socket is gone and the server forgot the subscription."""
        self._move(SubscriptionTrigger.SOCKET_LOST)
        self._awaiting_snapshot = False
        self._stop_paging()  # its child subscriptions died with the socket

    async def resubscribe(self, wait_for_first_notification: bool = False) -> None:
        """Subscribe again with the same query (new subscription id).  The next notification is
        a snapshot that reconciles the feed (see the module docstring)."""
        if not self.needs_resubscribe:
            raise InvalidStateError(f"subscription does not need resubscribing (state {self.state})")
        self._move(SubscriptionTrigger.RESUBSCRIBE)
        await self._subscribe(self.subscription_id)
        if wait_for_first_notification:
            await self._wait_first()

    async def unsubscribe(self) -> None:
        """Stop the subscription and release its conversations.  While disconnected there is
        nothing to tell the server: the subscription just ends."""
        if self.needs_resubscribe:
            if self.subscription_id is not None:
                self._host.unregister_conversation_subscription(self.subscription_id)
            self._move(SubscriptionTrigger.FORGET)
        elif self.state == SubscriptionState.SUBSCRIBED and self.subscription_id is not None:
            self._move(SubscriptionTrigger.UNSUBSCRIBE)
            try:
                await self._host.unsubscribe_conversations(self.subscription_id)
            except BaseException:
                self._move(SubscriptionTrigger.UNSUBSCRIBE_FAILED)
                raise
            self._move(SubscriptionTrigger.UNSUBSCRIBED)
        else:
            raise InvalidStateError(
                f"cannot unsubscribe from subscription that is not subscribed ({self.state})"
            )
        await self._shutdown()

    async def close(self) -> None:
        """Cancel this subscription's tasks and timers and release its conversations (the
        connection is closing; nothing is sent)."""
        await self._shutdown()
        await self.close_events()

    async def _shutdown(self) -> None:
        self._stop_paging()
        for timer in self._delete_timers.values():
            timer.cancel()
        self._delete_timers.clear()
        self._steps.clear()
        for _, _, preparing in self._prepare_queue:
            preparing.cancel()
        self._prepare_queue.clear()
        for load in self._history_loads:
            load.release()  # it will not run now: its dialog must not hold its events for good
        self._history_loads.clear()
        tasks = [
            t for t in (self._worker, self._settling, *self._stopped, *self._join_loads) if t is not None
        ]
        self._worker = self._settling = None
        await cancel_and_wait(tasks)
        for conversation in self._feed.values():
            self._cache.release(conversation)
        self._feed.clear()

    # ---------------------------------------------------------------- notifications

    def handle_notification(self, changes: Sequence[AnyConversationChange]) -> None:
        """Apply one notification of this subscription (see the module docstring)."""
        if self._state != _SUBSCRIBED:
            log.debug(
                "notification for subscription %s in state %s ignored", self.subscription_id, self.state
            )
            return
        changes = _decoded_for(self, changes)
        snapshot = self._awaiting_snapshot
        self._awaiting_snapshot = False
        self._process(changes, snapshot=snapshot)

    def _process_page(self, changes: Sequence[AnyConversationChange]) -> None:
        """A limit-break page: ordinary updates of this feed."""
        if self.state == SubscriptionState.SUBSCRIBED:
            self._process(_decoded_for(self, changes), snapshot=False)

    def _process(self, changes: Sequence[AnyConversationChange], *, snapshot: bool) -> None:
        # Which conversations a notification named, and its oldest stamp, matter only to a
        # snapshot and to the pages of a limit break (not to the usual live update).
        present: set[str] | None = set() if snapshot or self._page_ids is not None else None
        over_limit: list[str] | None = None
        oldest: int | None = None
        for change in changes:
            # A snapshot's changes come one at a time (ConversationChanges): each is decoded
            # when read here, and dropped once applied.
            try:
                cid = change.conversation_id
                stamp = change.last_update_ts
            except NotificationError as exc:
                self._host.report_error(ProtocolError(f"{exc} (the change was dropped)"))
                continue
            if present is not None:
                present.add(cid)
                if stamp is not None and (oldest is None or stamp < oldest):
                    oldest = stamp
            try:
                if change.type == "DELETE":
                    self._on_delete(change.conversation)
                else:
                    self._on_upsert(change)
            except LimitExceededError:
                if over_limit is None:
                    over_limit = []
                over_limit.append(cid)
            except NotificationError as exc:
                self._host.report_error(ProtocolError(f"{exc} (the change was dropped)"))
            except Exception as exc:  # one bad change must not stop the others
                self._host.report_error(exc)
        if over_limit:
            # Once per notification, not per conversation: a hostile snapshot of a million
            # conversations must not become a million error events.
            self._host.report_error(
                LimitExceededError(
                    f"{len(over_limit)} conversation(s) of subscription {self.subscription_id} not "
                    f"cached: the cache holds max_conversations ({self._cache.max_conversations}); "
                    f"first: {over_limit[0]}",
                    limit="max_conversations",
                )
            )
        if self._page_ids is not None and present is not None:
            self._page_ids |= present
        if self._handlers.get(_NOTIFICATION):
            self.emit(_NOTIFICATION, _listed(changes))
        if snapshot and present is not None:
            self._after_snapshot(len(changes), oldest, present)

    def _on_upsert(self, change: AnyConversationChange) -> None:
        cid = change.conversation_id
        conversation = self._feed.get(cid)
        if conversation is None:
            conversation = self._cache.get(cid)
            if conversation is None:
                # New to the connection: cached and referenced now, announced once prepared.
                conversation = self._cache.from_info(change.conversation, change.details_token)
                conversation._hold_until_announced()
                self._cache.adopt(conversation)
                # Keyed by the conversation's own id string (one string object for both).
                self._feed[conversation.conversation_id] = conversation
                self.emit(SubscriptionEvent.UPSERT, conversation)
                self._announce(conversation)
                return
            self._cache.adopt(conversation)
            self._feed[cid] = conversation
        digest = change.digest()
        joined = False
        if conversation._repeats_state(digest):
            # The state applied last, again (a resubscribe's snapshot repeats every unchanged
            # conversation): ignored, and not even decoded unless someone listens.
            listened = conversation.has_listeners(ConversationEvent.NOTIFICATION_IGNORED)
            conversation._ignore(change.conversation if listened else None)
        else:
            # Only a brand loading whole histories acts on a join (see below): nobody else needs to know.
            cache = self._cache
            watch_join = cache.get_all_messages and cache.actions.is_brand
            was_member = _takes_part(conversation) if watch_join else True
            if conversation._apply_change(change, digest):
                timer = self._delete_timers.pop(cid, None)
                if timer is not None:
                    timer.cancel()  # it matches again (a stale or duplicate state would not count)
            joined = not was_member and _takes_part(conversation)
        if self._handlers:
            self.emit(SubscriptionEvent.UPSERT, conversation)
        dialogs = self._cache._reserve_messaging(conversation)
        if dialogs:
            self._enqueue(lambda: self._cache._subscribe_dialogs(dialogs))
        if joined and self._cache._needs_history(conversation):
            # Joined (e.g. accepted its ring) after it was announced: its history could not be
            # read then (not a participant), and the messages sent before the join would only
            # turn up at some later reconnect's catch-up, out of order.  They are new to the
            # application: emitted as ``message`` events, with the live ones held meanwhile.
            load = self._begin_history(conversation, notify=True)

            async def load_history() -> None:
                try:
                    await load.load()
                finally:
                    self._end_history(load)

            # Not a step of the ordered queue: it announces nothing, and a load that waits
            # out a lost socket or dropped requests (with retries) would hold up every
            # announcement and closed-conversation lookup queued behind it.
            task = self._spawn(load_history())
            self._join_loads.add(task)
            task.add_done_callback(self._join_loads.discard)

    def _on_delete(self, info: ConversationInfo) -> None:
        cid = info.conversation_id
        conversation = self._feed.get(cid)
        if conversation is None:
            raise ProtocolError(f"DELETE notification received for unknown conversation {cid}")
        if cid in self._delete_timers:
            raise ProtocolError(f"second DELETE notification received for conversation {cid}")
        conversation.apply(info)
        self.emit(SubscriptionEvent.DELETE, conversation)
        self._delete_timers[cid] = asyncio.get_running_loop().call_later(
            self.clear_conversation_timeout, self._drop, cid
        )

    def _drop(self, conversation_id: str) -> None:
        self._delete_timers.pop(conversation_id, None)
        conversation = self._feed.pop(conversation_id, None)
        if conversation is not None:
            self._cache.release(conversation)

    def _announce(self, conversation: Conversation) -> None:
        dialogs = self._cache._reserve_messaging(conversation)
        history: HistoryLoad | None = None
        if self._cache._needs_history(conversation):
            history = self._begin_history(conversation, notify=False)
        if not dialogs and history is None:
            self._after_steps(lambda: self._emit_conversation(conversation))
            return

        # Preparations run side by side (a snapshot of thousands of conversations is thousands
        # of history loads: one at a time, their round trips add up), PREPARE_CONCURRENCY at a
        # time, by as many workers: a queue entry and a future per conversation rather than a
        # task each (a task, its coroutine and its context for every conversation of a snapshot,
        # all at once).  The announcements still come out in order, from the ordered queue below.
        preparing: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._prepare_queue.append((dialogs, history, preparing))
        if self._preparers < PREPARE_CONCURRENCY:
            self._preparers += 1
            worker = self._spawn(self._prepare_worker())
            self._join_loads.add(worker)
            worker.add_done_callback(self._join_loads.discard)

        async def announce_when_prepared() -> None:
            try:
                await asyncio.shield(preparing)
                self._emit_conversation(conversation)
            finally:
                # Live messages received meanwhile come out after the announcement, in order.
                if history is not None:
                    self._end_history(history)

        self._enqueue(announce_when_prepared)

    async def _prepare_worker(self) -> None:
        """Prepare queued conversations (see :meth:`_announce`) until the queue is empty."""
        queue = self._prepare_queue
        try:
            while queue:
                dialogs, history, done = queue.popleft()
                if done.done():
                    continue
                try:
                    if dialogs:
                        await self._cache._subscribe_dialogs(dialogs)
                    if history is not None:
                        await history.load()
                except asyncio.CancelledError:
                    done.cancel()
                    raise
                except BaseException as exc:  # for its announcement to raise, as a task's would
                    done.set_exception(exc)
                else:
                    done.set_result(None)
        finally:
            self._preparers -= 1

    def _begin_history(self, conversation: Conversation, *, notify: bool) -> HistoryLoad:
        """Decide a history load now (its dialog holds ``message`` events from now on)."""
        load = self._cache._history_load(conversation, notify=notify)
        self._history_loads.add(load)
        return load

    def _end_history(self, load: HistoryLoad) -> None:
        self._history_loads.discard(load)
        load.release()

    def _emit_conversation(self, conversation: Conversation) -> None:
        if self._feed.get(conversation.conversation_id) is not conversation:
            # Dropped while it was being prepared: not announced, but what it held is not lost.
            conversation._release_announced()
            return
        self.emit(SubscriptionEvent.CONVERSATION, conversation)
        self._host.emit(SubscriptionEvent.CONVERSATION, conversation)
        conversation._release_announced()

    # ---------------------------------------------------------------- snapshots and limit break

    def _after_snapshot(self, count: int, oldest: int | None, present: set[str]) -> None:
        if self.limit_break_enabled and count >= CONVERSATION_LIMIT_THRESHOLD and oldest is not None:
            self._page_ids = set(present)
            self._last_page_before = None
            self._paging = self._spawn(self._page_backwards(count, oldest))
            return
        self._emit_limit_break(False, count, oldest)
        self._finish_snapshot(present)

    def _finish_snapshot(self, present: set[str]) -> None:
        for cid in [c for c in self._feed if c not in present]:
            conversation = self._feed.pop(cid)
            timer = self._delete_timers.pop(cid, None)
            if timer is not None:
                timer.cancel()
            self._cache.release(conversation)
            if conversation.stage != ConversationState.CLOSE and self._hides_closed():
                self._departed[cid] = conversation
            self.emit(SubscriptionEvent.CONVERSATION_DELETED, conversation)
        if self._departed:
            self._settle_soon()
        cycle = self._load_cycle

        def mark_loaded() -> None:
            if cycle == self._load_cycle:
                self._loaded.set()

        self._after_steps(mark_loaded)

    def _emit_limit_break(self, creating: bool, count: int, oldest: int | None) -> None:
        info = LimitBreak(creating, CONVERSATION_LIMIT_THRESHOLD, count, oldest)
        self.emit(SubscriptionEvent.LIMIT_BREAK, info)
        self._host.emit(SubscriptionEvent.LIMIT_BREAK, info)

    def _hides_closed(self) -> bool:
        """Whether this feed's query leaves closed conversations out (e.g. the brand's default
        ``stage: OPEN``): then a conversation missing from a snapshot may simply have closed."""
        stages, states = self.wire_query.get("stage"), self.wire_query.get("convState")
        return (stages is not None and "CLOSE" not in stages) or (
            states is not None and "CLOSE" not in states
        )

    def _settle_soon(self) -> None:
        """Look the departed conversations up in a task of their own, beside the ordered steps.

        Not a step of the ordered queue: a lookup that meets dropped requests or a lost socket
        is retried for several seconds (and then left for the next snapshot), and every
        announcement queued behind it would wait as long -- a ring's ``accept()`` waits for
        one.  The departed conversations have left the feed: nothing queued concerns them.
        One lookup task at a time; a snapshot that departs more meanwhile has them looked up
        when it is done.
        """
        if self._settling is not None:
            self._settle_again = True
            return

        async def settle() -> None:
            try:
                while True:
                    self._settle_again = False
                    await self._settle_departed()
                    if not (self._settle_again and self._departed):
                        return
            except Exception as exc:
                self._host.report_error(exc)
            finally:
                if self._settling is asyncio.current_task():
                    self._settling = None

        self._settling = self._spawn(settle())

    async def _settle_departed(self) -> None:
        """Apply the close of conversations that left the feed while the connection was offline.

        A conversation that closed while the socket was down is simply absent from the next
        snapshot of a feed that hides closed ones: without this its object would stay OPEN for
        good.  A one-off subscription to the closed conversations updated since then (the feed's
        other filters kept) applies each one's final state, with the usual events; the others it
        returns are ignored.  Those not found are not closed and are forgotten; if the lookup
        keeps failing (the socket died again), they are looked up after the next snapshot.
        """
        # One lookup per consumer (a filter UMS supports): a handful of conversations each, so
        # the snapshot cap of ~1000 can never hide the ones looked for on a busy account.
        groups: dict[str | None, dict[str, Conversation]] = {}
        for cid, conversation in self._departed.items():
            consumer = conversation.consumer
            groups.setdefault(consumer.user_id if consumer is not None else None, {})[cid] = conversation
        base = {k: v for k, v in self.wire_query.items() if k not in ("convState", "maxLastUpdatedTime")}
        for consumer_id, departed in groups.items():
            since = min((c.update_time or c.start_time or 0) for c in departed.values())
            query = {**base, "stage": ["CLOSE"], "minLastUpdatedTime": max(0, int(since))}
            if consumer_id is not None:
                query["consumerId"] = consumer_id

            async def look_up(
                query: dict[str, Any] = query, departed: dict[str, Conversation] = departed
            ) -> None:
                await _ClosedLookup(self._host, departed).run(query, self.first_notification_timeout)

            try:
                await _retrying(look_up)  # a refused or unanswered lookup is tried again
            except (LpmError, TimeoutError) as exc:
                # str(exc), not exc: a handler that keeps log records (pytest's capture, a MemoryHandler)
                # would keep the exception, its traceback's frames and the conversations they held.
                log.debug("closed-conversation lookup failed (retried after the next snapshot): %s", str(exc))
                return
            for cid in departed:
                self._departed.pop(cid, None)

    async def _page_backwards(self, count: int, oldest: int) -> None:
        """Fetch older pages with child subscriptions until one is below the threshold."""
        page_count: int = count
        page_oldest: int | None = oldest
        try:
            while True:
                creating = page_count >= CONVERSATION_LIMIT_THRESHOLD and page_oldest is not None
                self._emit_limit_break(creating, page_count, page_oldest)
                if not creating or page_oldest is None:
                    break
                before = page_oldest + PAGE_OVERLAP_MS
                if self._last_page_before is not None and before >= self._last_page_before:
                    self._host.report_error(
                        ProtocolError(f"limit break stopped: page before {before} does not go back in time")
                    )
                    break
                self._last_page_before = before
                child = ChildConversationSubscription(self, before)
                try:
                    await child.init()
                except asyncio.CancelledError:
                    child.abandon()  # disconnected or shutting down: no request can be sent now
                    raise
                except LpmError:
                    await child.end()
                    raise
                page_count, page_oldest = child.page_count, child.page_oldest
                await child.end()
        except LpmError as exc:
            self._host.report_error(exc)
        present = self._page_ids or set()
        self._page_ids = None
        self._paging = None
        self._finish_snapshot(present)

    def _stop_paging(self) -> None:
        paging, self._paging = self._paging, None
        if paging is not None:
            paging.cancel()
            # Kept until it has finished unwinding, so _shutdown can await it.
            self._stopped.add(paging)
            paging.add_done_callback(self._stopped.discard)
        self._page_ids = None

    # ---------------------------------------------------------------- ordered background steps

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        context = self._context.copy() if self._context is not None else None
        return asyncio.get_running_loop().create_task(coro, context=context)

    def _enqueue(self, step: Callable[[], Awaitable[None]]) -> None:
        self._steps.append(step)
        if self._worker is None:
            self._worker = self._spawn(self._run_steps())

    def _after_steps(self, action: Callable[[], None]) -> None:
        """Run ``action`` now if nothing is queued, else after what is queued."""
        if self._worker is None and not self._steps:
            action()
            return

        async def step() -> None:
            action()

        self._enqueue(step)

    async def _run_steps(self) -> None:
        try:
            while self._steps:
                step = self._steps.popleft()
                try:
                    await step()
                except Exception as exc:
                    self._host.report_error(exc)
        finally:
            self._worker = None


class ChildConversationSubscription(SubscriptionEmitter, SubscriptionLifecycle[SubscriptionState]):
    """A short-lived subscription fetching one limit-break page for its parent: its first
    notification is handed to the parent as ordinary updates, then it unsubscribes.

    ``state`` changes as :data:`~lpm.client.subscriptions.lifecycle.ONE_OFF_SUBSCRIPTION` allows.
    """

    _lifecycle = ONE_OFF_SUBSCRIPTION

    __slots__ = (
        "_first",
        "_host",
        "_state",
        "page_count",
        "page_oldest",
        "parent",
        "query",
        "subscription_id",
    )

    def __init__(self, parent: ConversationSubscription, last_update_before: int) -> None:
        super().__init__(parent._host.report_error)
        self._host = parent._host
        self.parent = parent
        self.query = {**parent.query, "last_update_before": last_update_before, "last_update_after": 0}
        self.subscription_id: str | None = None
        self._state = SubscriptionState.INITIAL
        #: Size and oldest update (epoch ms) of the page, once it arrived.
        self.page_count = 0
        self.page_oldest: int | None = None
        self._first = asyncio.Event()

    def __repr__(self) -> str:
        return f"<ChildConversationSubscription {self.subscription_id} {self.state}>"

    @property
    def needs_resubscribe(self) -> bool:
        """Never: a page lost with the socket is fetched again by the parent's next snapshot."""
        return False

    async def init(self) -> None:
        """Subscribe and wait for the page (as long as the parent waits for a snapshot)."""
        timeout = self.parent.first_notification_timeout
        self.subscription_id = await self._subscribed(
            self._host.subscribe_conversations(wire_query(self.query))
        )
        self._host.register_conversation_subscription(self, None)
        try:
            async with asyncio.timeout(timeout):
                await self._first.wait()
        except TimeoutError:
            raise RequestTimeoutError(f"{SUBSCRIBE_REQUEST} (limit-break page)", timeout) from None

    def handle_notification(self, changes: Sequence[AnyConversationChange]) -> None:
        """The first notification is the page; later ones are the parent's business."""
        if self.state != SubscriptionState.SUBSCRIBED or self._first.is_set():
            return
        changes = _decoded_for(self, changes)
        self.page_count = len(changes)
        self.page_oldest = _min_update(changes)
        self.parent._process_page(changes)
        self._first.set()
        if self.has_listeners(SubscriptionEvent.NOTIFICATION):
            self.emit(SubscriptionEvent.NOTIFICATION, _listed(changes))

    def mark_disconnected(self) -> None:
        """The page died with the socket."""
        if self.state == SubscriptionState.SUBSCRIBED and self.subscription_id is not None:
            self._host.unregister_conversation_subscription(self.subscription_id)
        self._move(SubscriptionTrigger.SOCKET_LOST)

    async def resubscribe(self) -> None:
        raise InvalidStateError("limit-break pages are not resubscribed")

    def abandon(self) -> None:
        """Stop routing the page without a request (the socket is gone or the parent stops)."""
        if self.state == SubscriptionState.SUBSCRIBED and self.subscription_id is not None:
            self._host.unregister_conversation_subscription(self.subscription_id)
        self._move(SubscriptionTrigger.FORGET)

    async def end(self) -> None:
        """Unsubscribe (errors are reported, not raised: the page is done either way)."""
        if self.state != SubscriptionState.SUBSCRIBED or self.subscription_id is None:
            return
        self._move(SubscriptionTrigger.UNSUBSCRIBE)
        try:
            await self._host.unsubscribe_conversations(self.subscription_id)
        except LpmError as exc:
            self._host.report_error(exc)
        self._move(SubscriptionTrigger.UNSUBSCRIBED)


def _takes_part(conversation: Conversation) -> bool:
    """Whether this connection's user is an active participant of the conversation's open dialog."""
    dialog = conversation.open_dialog
    me = dialog.get_self_participant() if dialog is not None else None
    return me is not None and me.state == ParticipantState.ACTIVE


class _ClosedLookup(SubscriptionLifecycle[SubscriptionState]):
    """A one-off ``SubscribeExConversations`` whose snapshot settles ``wanted`` conversations
    (see :meth:`ConversationSubscription._settle_departed`); it unsubscribes once it arrived."""

    _lifecycle = ONE_OFF_SUBSCRIPTION

    __slots__ = ("_first", "_host", "_state", "subscription_id", "wanted")

    def __init__(self, host: SubscriptionHost, wanted: dict[str, Conversation]) -> None:
        self._host = host
        self.wanted = wanted
        self.subscription_id: str | None = None
        self._state = SubscriptionState.INITIAL
        self._first = asyncio.Event()

    @property
    def needs_resubscribe(self) -> bool:
        return False

    async def run(self, query: dict[str, Any], timeout: float) -> None:
        self.subscription_id = await self._subscribed(self._host.subscribe_conversations(query))
        self._host.register_conversation_subscription(self, None)
        try:
            async with asyncio.timeout(timeout):
                await self._first.wait()
        finally:
            # Whatever happened: a lookup left registered after its socket was lost stayed in
            # the router for good, and with it the conversations it looked for.
            self._unregister()
        if self.state == SubscriptionState.DISCONNECTED:
            raise LpmError("the connection was lost before the closed conversations arrived")
        if self.subscription_id is None:  # never: a one-off has no unsubscribe() to race with
            return
        try:
            await self._host.unsubscribe_conversations(self.subscription_id)
        except LpmError as exc:
            log.debug("unsubscribing the closed-conversation lookup failed: %s", str(exc))  # (str: see above)

    def handle_notification(self, changes: Sequence[AnyConversationChange]) -> None:
        if self._first.is_set():
            return
        for change in changes:
            try:
                conversation = self.wanted.get(change.conversation_id)
                if conversation is not None and change.type != "DELETE":
                    conversation.apply(change.conversation)
            except Exception as exc:  # one bad change must not stop the others
                self._host.report_error(exc)
        self._first.set()

    def mark_disconnected(self) -> None:
        self._move(SubscriptionTrigger.SOCKET_LOST)
        self._first.set()

    async def resubscribe(self) -> None:
        raise InvalidStateError("a closed-conversation lookup is not resubscribed")

    def _unregister(self) -> None:
        if self.subscription_id is not None:
            self._host.unregister_conversation_subscription(self.subscription_id)
