"""Routing-task subscriptions and rings (brand connections).

While an agent is ONLINE and subscribed, UMS offers it conversations as *rings*.  A
:class:`RoutingTaskSubscription` turns RoutingTaskNotifications into :class:`Ring` objects, one per
ring id (a task may list several rings of this agent, e.g. an expired one and a new one).  A new
ring emits ``ring`` on the subscription and on the connection; a ring's state changes emit
``accepted``, ``rejected``, ``cancelled`` or ``expired`` on the ring.  Only a WAITING ring can be
accepted; once accepted, the conversation arrives through the connection's conversation
subscription.

What the connection does: the subscription registers itself with
``connection.register_routing_subscription(sub, old_id)``; the connection calls
``sub.handle_notification(changes)`` for notifications with its ``subscriptionId`` (decoded by
:func:`lpm.protocol.notifications.decode_routing_tasks`), ``sub.mark_disconnected()`` when the socket
is lost and ``await sub.resubscribe()`` after the reconnect when ``needs_resubscribe``.
Processing is synchronous (nothing here needs I/O).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from lpm.client.actions import ConnectionActions
from lpm.client.events import cancel_and_wait
from lpm.client.subscriptions.lifecycle import (
    ROUTING_SUBSCRIPTION,
    SubscriptionLifecycle,
    SubscriptionTrigger,
)
from lpm.client.typed_events import RingEmitter, RoutingEmitter
from lpm.enums import RingState, RoutingSubscriptionState, coerce
from lpm.errors import ConfigurationError, InvalidStateError
from lpm.protocol.notifications import RingInfo, RoutingTaskInfo

if TYPE_CHECKING:
    from lpm.client.model.conversation import Conversation

__all__ = [
    "Ring",
    "RingEvent",
    "RoutingEvent",
    "RoutingHost",
    "RoutingTaskSubscription",
    "routing_wire_query",
]

log = logging.getLogger("lpm.client.subscriptions.routing")


class RingEvent(enum.StrEnum):
    """The events of a :class:`Ring`, each emitted with the ring."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class RoutingEvent(enum.StrEnum):
    """The events of a :class:`RoutingTaskSubscription` (``ring`` is also emitted on the
    connection, under the same name)."""

    RING = "ring"
    UPSERT = "upsert"
    NOTIFICATION = "notification"


#: Ring state -> event emitted on the ring when it enters that state.
RING_EVENTS: dict[str, RingEvent] = {
    RingState.ACCEPTED: RingEvent.ACCEPTED,
    RingState.REJECTED: RingEvent.REJECTED,
    RingState.CANCELLED: RingEvent.CANCELLED,
    RingState.EXPIRED: RingEvent.EXPIRED,
}
#: How many finished ring ids are remembered (UMS repeats finished rings in later changes).
FINISHED_RINGS_KEPT = 1024

_QUERY_KEYS = {
    "account_id": "brandId",
    "agent_id": "agentId",
    "channel_type": "channelType",
    "skill_id": "skillId",
    "conversation_id": "conversationId",
}


class RoutingHost(ConnectionActions, Protocol):
    """What a routing subscription needs of its connection besides ConnectionActions."""

    def register_routing_subscription(self, subscription: Any, old_id: str | None = None) -> None:
        """Route notifications of ``subscription.subscription_id`` to it (replacing ``old_id``)."""
        ...

    async def wait_for_conversation(self, conversation_id: str) -> Conversation:
        """The conversation once announced (at once if it already is)."""
        ...


def routing_wire_query(query: Mapping[str, Any]) -> dict[str, Any]:
    """The ``SubscribeRoutingTasks`` body of a query in Python names (``account_id`` → ``brandId``,
    ``agent_id`` → ``agentId``, ``channel_type``, ``skill_id``, ``conversation_id``); the connection
    fills in ``channelType``, ``brandId`` and ``agentId`` when they are missing."""
    unknown = sorted(set(query) - set(_QUERY_KEYS))
    if unknown:
        raise ConfigurationError(
            f"unknown routing query key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_QUERY_KEYS))}"
        )
    return {_QUERY_KEYS[k]: str(v) for k, v in query.items() if v is not None}


class Ring(RingEmitter):
    """An offer of a conversation to this agent.

    ``expiration_ts`` is the epoch ms at which it expires, ``expiration`` its lifetime in ms.
    Events: ``accepted``, ``rejected``, ``cancelled``, ``expired`` — each with the ring.
    """

    __slots__ = (
        "account_id",
        "consumer_id",
        "conversation_id",
        "expiration",
        "expiration_ts",
        "ring_id",
        "skill_id",
        "state",
        "subscription",
        "weight",
    )

    def __init__(self, subscription: RoutingTaskSubscription, info: RingInfo, task: RoutingTaskInfo) -> None:
        super().__init__(subscription._host.report_error)
        #: The subscription that received the ring.
        self.subscription = subscription
        self.ring_id = info.ring_id
        #: :class:`lpm.RingState` (unknown states stay plain strings).
        self.state: str = coerce(RingState, info.state)
        self.expiration_ts = info.expiration_ts
        self.expiration = info.expiration_ms
        self.weight = info.weight
        self.conversation_id = task.conversation_id
        self.consumer_id = task.consumer_id
        self.skill_id = task.skill_id
        self.account_id = task.account_id

    def __repr__(self) -> str:
        return f"<Ring {self.ring_id} {self.state}>"

    @property
    def is_waiting(self) -> bool:
        """True while the ring can still be accepted or rejected."""
        return self.state == RingState.WAITING

    async def accept(self) -> Conversation:
        """Take the conversation (``UpdateRingState`` ACCEPTED) and return it once the connection
        has announced it (its ``conversation`` event), so a bot can talk at once.

        Waits up to ``ring_conversation_timeout`` seconds (30) for the announcement, then raises
        :class:`~lpm.errors.WaitTimeoutError` (the ring stays accepted; the conversation arrives
        through a conversation subscription, which the default one provides).
        """
        host = self.subscription._host
        announced = asyncio.ensure_future(host.wait_for_conversation(self.conversation_id))
        try:
            await host.update_ring_state(self.ring_id, RingState.ACCEPTED)
        except BaseException:
            await cancel_and_wait([announced])
            raise
        return await announced

    async def reject(self) -> None:
        """Decline the conversation (``UpdateRingState`` REJECTED); routing offers it elsewhere."""
        await self.subscription._host.update_ring_state(self.ring_id, RingState.REJECTED)

    def _update(self, info: RingInfo, task: RoutingTaskInfo) -> None:
        if info.expiration_ts is not None:
            self.expiration_ts = info.expiration_ts
        if info.expiration_ms is not None:
            self.expiration = info.expiration_ms
        if info.weight is not None:
            self.weight = info.weight
        if task.skill_id is not None:
            self.skill_id = task.skill_id
        if info.state != self.state:
            self.state = coerce(RingState, info.state)
            event = RING_EVENTS.get(self.state)
            if event is not None:  # back to WAITING has no event
                self.emit(event, self)


class RoutingTaskSubscription(RoutingEmitter, SubscriptionLifecycle[RoutingSubscriptionState]):
    """``SubscribeRoutingTasks`` for this agent; see the module docstring.

    Events: ``ring`` ``(ring)`` (also on the connection), ``upsert`` ``(routing_task_info)``,
    ``notification`` ``(changes)``.  ``state`` is a :class:`lpm.RoutingSubscriptionState`; it
    changes only as :data:`~lpm.client.subscriptions.lifecycle.ROUTING_SUBSCRIPTION` allows.
    """

    _lifecycle = ROUTING_SUBSCRIPTION

    __slots__ = ("_finished", "_host", "_state", "query", "rings", "subscription_id", "wire_query")

    def __init__(self, connection: RoutingHost, query: Mapping[str, Any] | None = None) -> None:
        super().__init__(connection.report_error)
        self._host = connection
        #: The query in Python names, as given.
        self.query: dict[str, Any] = dict(query or {})
        self.wire_query = routing_wire_query(self.query)
        self.subscription_id: str | None = None
        self._state = RoutingSubscriptionState.INITIAL
        #: Rings still in play, by ring id.
        self.rings: dict[str, Ring] = {}
        self._finished: dict[str, None] = {}

    def __repr__(self) -> str:
        return f"<RoutingTaskSubscription {self.subscription_id} {self.state}>"

    @property
    def needs_resubscribe(self) -> bool:
        """True when the server no longer holds this subscription."""
        return self.state in (
            RoutingSubscriptionState.DISCONNECTED,
            RoutingSubscriptionState.FAILED_TO_SUBSCRIBE,
        )

    def get_ring(self, ring_id: str) -> Ring | None:
        """The ring ``ring_id`` this subscription holds (still waiting or answered), or None."""
        return self.rings.get(ring_id)

    async def _subscribe(self, old_id: str | None) -> None:
        subscription_id = await self._subscribed(self._host.subscribe_routing_tasks(self.wire_query))
        if subscription_id is None:
            return
        self.subscription_id = subscription_id
        self._host.register_routing_subscription(self, old_id)

    async def init(self) -> None:
        """Subscribe (state FAILED_TO_SUBSCRIBE and the error raised on failure)."""
        if self.state != RoutingSubscriptionState.INITIAL:
            raise InvalidStateError(f"routing subscription already initialised (state {self.state})")
        await self._subscribe(None)

    def mark_disconnected(self) -> None:
        """The socket is gone and the server forgot the subscription."""
        self._move(SubscriptionTrigger.SOCKET_LOST)

    async def resubscribe(self) -> None:
        """Subscribe again (new subscription id); rings still offered arrive again and update
        the known :class:`Ring` objects."""
        if not self.needs_resubscribe:
            raise InvalidStateError(f"routing subscription does not need resubscribing (state {self.state})")
        self._move(SubscriptionTrigger.RESUBSCRIBE)
        await self._subscribe(self.subscription_id)

    async def unsubscribe(self) -> None:
        """Stop handling this subscription's notifications.

        UMS's routing API has no unsubscribe request the connection offers, so the server keeps
        the subscription until the socket closes; its notifications are ignored from now on.
        """
        if not self._lifecycle.allows(self._state, SubscriptionTrigger.FORGET):
            raise InvalidStateError(f"cannot unsubscribe from routing subscription in state {self.state}")
        self._move(SubscriptionTrigger.FORGET)
        self.rings.clear()

    def handle_notification(self, changes: list[tuple[str, RoutingTaskInfo]]) -> None:
        """Apply one RoutingTaskNotification of this subscription."""
        if self.state != RoutingSubscriptionState.SUBSCRIBED:
            log.debug("routing notification in state %s ignored", self.state)
            return
        for _change_type, task in changes:
            self.emit(RoutingEvent.UPSERT, task)
            for info in task.rings:
                try:
                    self._apply_ring(info, task)
                except Exception as exc:  # one bad ring must not stop the others
                    self._host.report_error(exc)
        self.emit(RoutingEvent.NOTIFICATION, changes)

    def _apply_ring(self, info: RingInfo, task: RoutingTaskInfo) -> None:
        if info.ring_id in self._finished:
            return  # UMS keeps listing rings that already ended
        ring = self.rings.get(info.ring_id)
        if ring is None:
            ring = Ring(self, info, task)
            if ring.state in RING_EVENTS:
                self._finish(ring)  # first seen already over: nothing to offer
                return
            self.rings[ring.ring_id] = ring
            self.emit(RoutingEvent.RING, ring)
            self._host.emit(RoutingEvent.RING, ring)
            return
        ring._update(info, task)
        if ring.state in RING_EVENTS:
            self._finish(ring)

    def _finish(self, ring: Ring) -> None:
        self.rings.pop(ring.ring_id, None)
        self._finished[ring.ring_id] = None
        while len(self._finished) > FINISHED_RINGS_KEPT:
            del self._finished[next(iter(self._finished))]
