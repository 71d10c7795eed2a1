"""One router for UMS notifications, from a socket or from webhooks.

:func:`dispatch_notification` decodes one notification (either dialect) by kind and hands the
typed payload to a :class:`NotificationSink`: the WebSocket connection and the webhooks intake
are two sinks of the same decoding, so a notification means the same thing whichever way it came.

:class:`SubscriptionRouter` is the registry of a connection's live subscriptions by id:

* a conversation or routing notification goes to the subscription its ``subscriptionId`` names;
* UMS sends a subscription's snapshot right behind the subscribe response, and the reader may see
  it before the subscriber has registered the new id: such *orphans* are held and delivered on
  registration, or reported after ``orphan_grace`` seconds;
* ids of subscriptions that were replaced or unsubscribed are *retired*: their late notifications
  are expected, not errors.  Only the most recent ``max_retired`` are remembered (a late
  notification comes right after its subscription died, and a long-lived connection must not
  grow with every reconnect).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from lpm.enums import ConnectionEvent
from lpm.errors import ProtocolError
from lpm.protocol.notifications import (
    decode_agent_states,
    decode_conversation_changes,
    decode_conversation_changes_lazily,
    decode_messaging_events,
    decode_routing_tasks,
)
from lpm.protocol.types import Notif, canonical_notification

if TYPE_CHECKING:
    from lpm.protocol.frames import InboundNotification
    from lpm.protocol.notifications import (
        AgentStateInfo,
        AnyConversationChange,
        ConversationChange,
        MessagingEventInfo,
        NotificationError,
        RoutingTaskInfo,
    )

__all__ = [
    "MAX_RETIRED",
    "ORPHAN_GRACE",
    "RAW_EVENT_NAMES",
    "NotificationSink",
    "Routed",
    "SocketDispatcher",
    "SocketSink",
    "SubscriptionRouter",
    "dispatch_notification",
]

#: The raw event a connection emits for each routed notification kind (Node SDK names).
RAW_EVENT_NAMES = {
    Notif.EX_CONVERSATION_CHANGE: ConnectionEvent.CONVERSATION_NOTIFICATION,
    Notif.MESSAGING_EVENT: ConnectionEvent.MESSAGE_NOTIFICATION,
    Notif.ROUTING_TASK: ConnectionEvent.ROUTING_TASK_NOTIFICATION,
}
#: Seconds a notification for a not-yet-registered subscription is held.
ORPHAN_GRACE = 5.0
#: How many dead subscription ids are remembered.
MAX_RETIRED = 1024
#: How many wire types of notifications this SDK does not route a socket remembers as such.
MAX_NOTIFICATION_TYPES = 64


class NotificationSink(Protocol):
    """Where decoded notifications go (a connection's socket path, or the webhooks intake)."""

    def on_conversation_changes(self, subscription_id: str | None, changes: list[ConversationChange]) -> Any:
        """``ExConversationChangeNotification`` (may return an awaitable; the caller decides)."""
        ...

    def on_messaging_events(self, events: list[MessagingEventInfo]) -> Any:
        """``MessagingEventNotification``."""
        ...

    def on_routing_tasks(self, subscription_id: str | None, tasks: list[tuple[str, RoutingTaskInfo]]) -> Any:
        """``RoutingTaskNotification`` (brand)."""
        ...

    def on_agent_states(self, states: list[AgentStateInfo]) -> Any:
        """``AgentStateNotification`` (brand)."""
        ...


def dispatch_notification(
    type_: str,
    body: Any,
    *,
    brand: bool,
    sink: NotificationSink,
    before_route: Callable[[Notif, Any], None] | None = None,
    on_invalid_event: Callable[[NotificationError], None] | None = None,
) -> tuple[Notif | None, Any]:
    """Decode a notification of wire type ``type_`` and hand it to ``sink``.

    ``before_route(kind, body)`` runs once the body decoded, before the sink sees it (the socket
    path emits its raw ``*Notification`` events there).  Returns the notification's kind (None: a
    type this SDK does not route) and what the sink returned.  Raises
    :class:`lpm.protocol.notifications.NotificationError` for a body that is not the documented
    shape (nothing is routed then).  ``on_invalid_event``: a messaging event that is not the
    documented shape is handed to it and the notification's other events are still routed.
    """
    kind = canonical_notification(type_)
    if kind is Notif.EX_CONVERSATION_CHANGE:
        if isinstance(sink, SocketSink):
            # Its subscriptions apply the changes one after the other: a snapshot's thousands
            # are decoded as they are applied, not all at once (see ConversationChanges).
            sub_id, lazy = decode_conversation_changes_lazily(body, brand=brand)
            if before_route is not None:
                before_route(kind, body)
            sink.on_conversation_changes(sub_id, lazy)
            return kind, None
        sub_id, changes = decode_conversation_changes(body, brand=brand)
        if before_route is not None:
            before_route(kind, body)
        return kind, sink.on_conversation_changes(sub_id, changes)
    if kind is Notif.MESSAGING_EVENT:
        events = decode_messaging_events(body, brand=brand, on_invalid=on_invalid_event)
        if before_route is not None:
            before_route(kind, body)
        return kind, sink.on_messaging_events(events)
    if kind is Notif.ROUTING_TASK:
        sub_id, tasks = decode_routing_tasks(body)
        if before_route is not None:
            before_route(kind, body)
        return kind, sink.on_routing_tasks(sub_id, tasks)
    if kind is Notif.AGENT_STATE:
        _, states = decode_agent_states(body)
        if before_route is not None:
            before_route(kind, body)
        return kind, sink.on_agent_states(states)
    return None, None


class SocketSink:
    """A socket connection's sink: subscription-bound notifications (conversation changes, routing
    tasks) go to the :class:`SubscriptionRouter`; messaging events and agent states to callbacks."""

    __slots__ = ("_on_agent_state", "_on_messaging_events", "_router")

    def __init__(
        self,
        router: SubscriptionRouter,
        *,
        on_messaging_events: Callable[[list[MessagingEventInfo]], object],
        on_agent_state: Callable[[AgentStateInfo], object],
    ) -> None:
        self._router = router
        self._on_messaging_events = on_messaging_events
        self._on_agent_state = on_agent_state

    def on_conversation_changes(
        self, subscription_id: str | None, changes: Sequence[AnyConversationChange]
    ) -> None:
        self._router.route_conversation_changes(subscription_id, changes)

    def on_messaging_events(self, events: list[MessagingEventInfo]) -> None:
        self._on_messaging_events(events)

    def on_routing_tasks(self, subscription_id: str | None, tasks: list[tuple[str, RoutingTaskInfo]]) -> None:
        self._router.route_routing_tasks(subscription_id, tasks)

    def on_agent_states(self, states: list[AgentStateInfo]) -> None:
        for state in states:
            self._on_agent_state(state)


class SocketDispatcher:
    """:func:`dispatch_notification` for one socket connection (a :class:`SocketSink`'s
    decoding and routing, the same decoders), without the per-notification work of the general
    function: the kind of a wire type is looked up once, and each notification goes straight to
    the handler of its kind (this runs for every notification a socket receives: each message
    and the conversation change that comes with it).

    ``emit_raw(kind, frame)`` runs once the body decoded, before it is routed, when the caller
    says someone listens to the raw events (``raw_listened``).
    """

    __slots__ = (
        "_brand",
        "_by_type",
        "_emit_raw",
        "_on_agent_state",
        "_on_invalid_event",
        "_on_messaging_events",
        "_router",
    )

    def __init__(
        self,
        router: SubscriptionRouter,
        *,
        brand: bool,
        on_messaging_events: Callable[[list[MessagingEventInfo]], object],
        on_agent_state: Callable[[AgentStateInfo], object],
        emit_raw: Callable[[Notif, InboundNotification], None],
        on_invalid_event: Callable[[NotificationError], None],
    ) -> None:
        self._router = router
        self._brand = brand
        self._on_messaging_events = on_messaging_events
        self._on_agent_state = on_agent_state
        self._emit_raw = emit_raw
        self._on_invalid_event = on_invalid_event
        self._by_type: dict[str, Callable[[InboundNotification, bool], None]] = {}

    def dispatch(self, frame: InboundNotification, raw_listened: bool) -> None:
        """Decode and route one notification (raises :class:`NotificationError` for a body that
        is not the documented shape, nothing routed, as :func:`dispatch_notification`)."""
        handler = self._by_type.get(frame.type)
        if handler is None:
            handler = self._handler_of(frame.type)
        handler(frame, raw_listened)

    def _handler_of(self, type_: str) -> Callable[[InboundNotification, bool], None]:
        kind = canonical_notification(type_)
        routes: dict[Notif | None, Callable[[InboundNotification, bool], None]] = {
            Notif.EX_CONVERSATION_CHANGE: self._conversations,
            Notif.MESSAGING_EVENT: self._messaging_events,
            Notif.ROUTING_TASK: self._routing_tasks,
            Notif.AGENT_STATE: self._agent_states,
        }
        handler = routes.get(kind, _ignore)
        if kind is not None or len(self._by_type) < MAX_NOTIFICATION_TYPES:
            self._by_type[type_] = handler  # (types this SDK does not route: a bounded few)
        return handler

    def _conversations(self, frame: InboundNotification, raw_listened: bool) -> None:
        # Its subscriptions apply the changes one after the other: a snapshot's thousands are
        # decoded as they are applied, not all at once (see ConversationChanges).
        sub_id, changes = decode_conversation_changes_lazily(frame.raw, brand=self._brand)
        if raw_listened:
            self._emit_raw(Notif.EX_CONVERSATION_CHANGE, frame)
        self._router.route_conversation_changes(sub_id, changes)

    def _messaging_events(self, frame: InboundNotification, raw_listened: bool) -> None:
        events = decode_messaging_events(frame.raw, brand=self._brand, on_invalid=self._on_invalid_event)
        if raw_listened:
            self._emit_raw(Notif.MESSAGING_EVENT, frame)
        self._on_messaging_events(events)

    def _routing_tasks(self, frame: InboundNotification, raw_listened: bool) -> None:
        sub_id, tasks = decode_routing_tasks(frame.raw)
        if raw_listened:
            self._emit_raw(Notif.ROUTING_TASK, frame)
        self._router.route_routing_tasks(sub_id, tasks)

    def _agent_states(self, frame: InboundNotification, raw_listened: bool) -> None:
        _, states = decode_agent_states(frame.raw)
        if raw_listened:
            self._emit_raw(Notif.AGENT_STATE, frame)
        for state in states:
            self._on_agent_state(state)


def _ignore(_frame: InboundNotification, _raw_listened: bool) -> None:
    """A notification type this SDK does not route."""


class Routed(Protocol):
    """A subscription the router can feed."""

    @property
    def subscription_id(self) -> str | None: ...

    def handle_notification(self, payload: Any) -> Any: ...


class Timer(Protocol):
    def cancel(self) -> None: ...


class SubscriptionRouter:
    """Live subscriptions by id, orphans and retired ids (see the module docstring).

    ``call_later(seconds, callback, *args)`` schedules the orphan deadline (the event loop's, in
    production; a fake in unit tests); ``report_error`` receives an orphan nobody claimed.
    """

    def __init__(
        self,
        *,
        call_later: Callable[..., Timer],
        report_error: Callable[[BaseException], None],
        orphan_grace: float = ORPHAN_GRACE,
        max_retired: int = MAX_RETIRED,
    ) -> None:
        self._call_later = call_later
        self._report_error = report_error
        self.orphan_grace = orphan_grace
        self.max_retired = max_retired
        self._conversations: dict[str, Routed] = {}
        self._routing: dict[str, Routed] = {}
        self._retired: dict[str, None] = {}
        self._orphans: dict[str, list[Any]] = {}
        self._orphan_timers: dict[str, Timer] = {}

    # ------------------------------------------------------------------ registry

    def conversation_subscriptions(self) -> list[Routed]:
        """Live conversation subscriptions, in registration order."""
        return list(self._conversations.values())

    def routing_subscriptions(self) -> list[Routed]:
        """Live routing subscriptions, in registration order."""
        return list(self._routing.values())

    def register_conversation_subscription(self, subscription: Routed, old_id: str | None = None) -> None:
        """Route ``subscription.subscription_id`` to it (re-keyed from ``old_id`` on resubscribe)."""
        self._register(self._conversations, subscription, old_id)

    def unregister_conversation_subscription(self, subscription_id: str) -> None:
        self.retire(subscription_id)
        self._conversations.pop(subscription_id, None)

    def register_routing_subscription(self, subscription: Routed, old_id: str | None = None) -> None:
        self._register(self._routing, subscription, old_id)

    def unregister_routing_subscription(self, subscription_id: str) -> None:
        self.retire(subscription_id)
        self._routing.pop(subscription_id, None)

    def _register(self, table: dict[str, Routed], subscription: Routed, old_id: str | None) -> None:
        if old_id is not None:
            table.pop(old_id, None)
            self.retire(old_id)
        sub_id = subscription.subscription_id
        if sub_id is None:
            return
        table[sub_id] = subscription
        timer = self._orphan_timers.pop(sub_id, None)
        if timer is not None:
            timer.cancel()
        for payload in self._orphans.pop(sub_id, []):
            subscription.handle_notification(payload)

    def retire(self, subscription_id: str) -> None:
        """Remember a dead id (bounded: the most recent :attr:`max_retired`)."""
        retired = self._retired
        retired[subscription_id] = None
        while len(retired) > self.max_retired:
            del retired[next(iter(retired))]

    def is_retired(self, subscription_id: str) -> bool:
        return subscription_id in self._retired

    # ------------------------------------------------------------------ routing

    def route_conversation_changes(
        self, subscription_id: str | None, changes: Sequence[AnyConversationChange]
    ) -> None:
        self._route(self._conversations, subscription_id, changes)

    def route_routing_tasks(
        self, subscription_id: str | None, tasks: list[tuple[str, RoutingTaskInfo]]
    ) -> None:
        self._route(self._routing, subscription_id, tasks)

    def _route(self, table: dict[str, Routed], subscription_id: str | None, payload: Any) -> None:
        key = subscription_id or ""
        subscription = table.get(key)
        if subscription is not None:
            subscription.handle_notification(payload)
        elif key not in self._retired:
            self._hold_orphan(key, payload)

    def _hold_orphan(self, subscription_id: str, payload: Any) -> None:
        held = self._orphans.get(subscription_id)
        if held is None:
            held = self._orphans[subscription_id] = []
            self._orphan_timers[subscription_id] = self._call_later(
                self.orphan_grace, self._drop_orphans, subscription_id
            )
        held.append(payload)

    def _drop_orphans(self, subscription_id: str) -> None:
        self._orphan_timers.pop(subscription_id, None)
        if self._orphans.pop(subscription_id, None) is not None and subscription_id not in self._retired:
            self._report_error(ProtocolError(f"notification for unknown subscription {subscription_id}"))

    @property
    def orphan_count(self) -> int:
        """Subscription ids with held notifications."""
        return len(self._orphans)

    def close(self) -> None:
        """Drop held orphans and their timers (the connection is closing)."""
        for timer in self._orphan_timers.values():
            timer.cancel()
        self._orphan_timers.clear()
        self._orphans.clear()
