"""Subscription life cycles: the triggers and the tables of legal moves.

Every state change of a subscription goes through its table (:class:`~lpm.client.state_table.
StateTable`): an illegal move is a bug and raises :class:`~lpm.errors.InvalidStateError`.
``needs_resubscribe`` is not a flag but a reading of the state (DISCONNECTED or
FAILED_TO_SUBSCRIBE).  States are the public :class:`lpm.SubscriptionState` /
:class:`lpm.RoutingSubscriptionState` values; triggers are :class:`SubscriptionTrigger`.

Conversation subscriptions (:data:`CONVERSATION_SUBSCRIPTION`; ``=`` marks a trigger that
leaves the state as it is, any move not listed is illegal)::

    INITIAL              --subscribed-->          SUBSCRIBED
                         --subscribe failed-->    FAILED_TO_SUBSCRIBE
                         --socket lost-->         =
    SUBSCRIBED           --socket lost-->         DISCONNECTED
                         --unsubscribe-->         UNSUBSCRIBING
    UNSUBSCRIBING        --unsubscribed-->        UNSUBSCRIBED
                         --unsubscribe failed-->  SUBSCRIBED
                         --socket lost-->         =
    RESUBSCRIBING        --subscribed-->          SUBSCRIBED
                         --subscribe failed-->    FAILED_TO_SUBSCRIBE
                         --socket lost-->         DISCONNECTED
    DISCONNECTED         --resubscribe-->         RESUBSCRIBING
                         --forget-->              UNSUBSCRIBED
                         --subscribed-->          SUBSCRIBED
                         --subscribe failed-->    FAILED_TO_SUBSCRIBE
                         --socket lost-->         =
    FAILED_TO_SUBSCRIBE  --resubscribe-->         RESUBSCRIBING
                         --forget-->              UNSUBSCRIBED
                         --socket lost-->         =
    UNSUBSCRIBED         --subscribed | subscribe failed | socket lost-->  =

A subscribe request that was in flight when the socket died is re-sent on the next socket, so
its answer may still arrive in DISCONNECTED; one that arrives after ``unsubscribe()`` leaves the
subscription UNSUBSCRIBED (and is not registered).

Routing-task subscriptions (:data:`ROUTING_SUBSCRIPTION`) are the same without UNSUBSCRIBING: UMS
has no routing unsubscribe request, so ``unsubscribe()`` is ``forget`` from SUBSCRIBED,
RESUBSCRIBING, DISCONNECTED or FAILED_TO_SUBSCRIBE.

One-off subscriptions (:data:`ONE_OFF_SUBSCRIPTION`: a limit-break page, a closed-conversation
lookup) are never resubscribed::

    INITIAL              --subscribed-->          SUBSCRIBED
                         --subscribe failed-->    FAILED_TO_SUBSCRIBE
    SUBSCRIBED           --unsubscribe-->         UNSUBSCRIBING
                         --socket lost-->         DISCONNECTED
                         --forget-->              UNSUBSCRIBED   (abandoned: the parent stops)
    UNSUBSCRIBING        --unsubscribed-->        UNSUBSCRIBED   (whatever the answer; a failure is reported)
                         --socket lost-->         =
    DISCONNECTED         --forget-->              UNSUBSCRIBED
                         --socket lost-->         =
    FAILED_TO_SUBSCRIBE  --forget-->              UNSUBSCRIBED
    UNSUBSCRIBED         --socket lost-->         =
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable
from typing import Any, ClassVar, Generic, TypeVar

from lpm.client.state_table import StateTable
from lpm.enums import SubscriptionState

__all__ = [
    "CONVERSATION_SUBSCRIPTION",
    "ONE_OFF_SUBSCRIPTION",
    "ROUTING_SUBSCRIPTION",
    "SubscriptionLifecycle",
    "SubscriptionTrigger",
]

log = logging.getLogger("lpm.client.subscriptions.lifecycle")

S = TypeVar("S", bound=str)


class SubscriptionTrigger(enum.StrEnum):
    """What moves a subscription from one state to another."""

    #: The subscribe request succeeded (a subscription id).
    SUBSCRIBED = "subscribed"
    #: The subscribe request failed (or was cancelled).
    SUBSCRIBE_FAILED = "subscribe failed"
    #: The socket is gone: the server forgot the subscription.
    SOCKET_LOST = "socket lost"
    #: ``resubscribe()``: a new subscribe request after a reconnect or a failure.
    RESUBSCRIBE = "resubscribe"
    #: ``unsubscribe()`` sent the unsubscribe request.
    UNSUBSCRIBE = "unsubscribe"
    #: The unsubscribe request is over (succeeded; for one-off subscriptions: whatever its answer).
    UNSUBSCRIBED = "unsubscribed"
    #: The unsubscribe request failed: the server still holds the subscription.
    UNSUBSCRIBE_FAILED = "unsubscribe failed"
    #: Ended without a request (nothing to tell the server, or no request exists).
    FORGET = "forget"


_T = SubscriptionTrigger
_S = SubscriptionState
Rows = dict[SubscriptionState, dict[SubscriptionTrigger, SubscriptionState]]


def _resubscribable(**extra: dict[SubscriptionTrigger, SubscriptionState]) -> Rows:
    """The moves conversation and routing subscriptions share, plus ``extra`` moves by state name."""
    rows: Rows = {
        _S.INITIAL: {
            _T.SUBSCRIBED: _S.SUBSCRIBED,
            _T.SUBSCRIBE_FAILED: _S.FAILED_TO_SUBSCRIBE,
            _T.SOCKET_LOST: _S.INITIAL,
        },
        _S.SUBSCRIBED: {_T.SOCKET_LOST: _S.DISCONNECTED},
        _S.RESUBSCRIBING: {
            _T.SUBSCRIBED: _S.SUBSCRIBED,
            _T.SUBSCRIBE_FAILED: _S.FAILED_TO_SUBSCRIBE,
            _T.SOCKET_LOST: _S.DISCONNECTED,
        },
        # A subscribe request in flight when the socket died is re-sent: its answer may come here.
        _S.DISCONNECTED: {
            _T.SUBSCRIBED: _S.SUBSCRIBED,
            _T.SUBSCRIBE_FAILED: _S.FAILED_TO_SUBSCRIBE,
            _T.SOCKET_LOST: _S.DISCONNECTED,
            _T.RESUBSCRIBE: _S.RESUBSCRIBING,
            _T.FORGET: _S.UNSUBSCRIBED,
        },
        _S.FAILED_TO_SUBSCRIBE: {
            _T.SOCKET_LOST: _S.FAILED_TO_SUBSCRIBE,
            _T.RESUBSCRIBE: _S.RESUBSCRIBING,
            _T.FORGET: _S.UNSUBSCRIBED,
        },
        # An answer that arrives after unsubscribe() leaves it ended.
        _S.UNSUBSCRIBED: {
            _T.SUBSCRIBED: _S.UNSUBSCRIBED,
            _T.SUBSCRIBE_FAILED: _S.UNSUBSCRIBED,
            _T.SOCKET_LOST: _S.UNSUBSCRIBED,
        },
    }
    for name, moves in extra.items():
        rows.setdefault(SubscriptionState[name], {}).update(moves)
    return rows


#: The life cycle of a :class:`~lpm.client.subscriptions.conversations.ConversationSubscription`:
#: the shared moves, and an unsubscribe request while SUBSCRIBED.
CONVERSATION_SUBSCRIPTION: StateTable[SubscriptionState, SubscriptionTrigger] = StateTable.by_state(
    "conversation subscription",
    _resubscribable(
        SUBSCRIBED={_T.UNSUBSCRIBE: _S.UNSUBSCRIBING},
        UNSUBSCRIBING={
            _T.UNSUBSCRIBED: _S.UNSUBSCRIBED,
            _T.UNSUBSCRIBE_FAILED: _S.SUBSCRIBED,
            _T.SOCKET_LOST: _S.UNSUBSCRIBING,
        },
    ),
)

#: The life cycle of a :class:`~lpm.client.subscriptions.routing.RoutingTaskSubscription`: the
#: shared moves, and ``forget`` while SUBSCRIBED or RESUBSCRIBING too (UMS has no routing
#: unsubscribe request).
ROUTING_SUBSCRIPTION: StateTable[SubscriptionState, SubscriptionTrigger] = StateTable.by_state(
    "routing subscription",
    _resubscribable(SUBSCRIBED={_T.FORGET: _S.UNSUBSCRIBED}, RESUBSCRIBING={_T.FORGET: _S.UNSUBSCRIBED}),
)

#: The life cycle of a one-off subscription (limit-break page, closed-conversation lookup).
ONE_OFF_SUBSCRIPTION: StateTable[SubscriptionState, SubscriptionTrigger] = StateTable.by_state(
    "one-off subscription",
    {
        _S.INITIAL: {_T.SUBSCRIBED: _S.SUBSCRIBED, _T.SUBSCRIBE_FAILED: _S.FAILED_TO_SUBSCRIBE},
        _S.SUBSCRIBED: {
            _T.UNSUBSCRIBE: _S.UNSUBSCRIBING,
            _T.SOCKET_LOST: _S.DISCONNECTED,
            _T.FORGET: _S.UNSUBSCRIBED,
        },
        _S.UNSUBSCRIBING: {_T.UNSUBSCRIBED: _S.UNSUBSCRIBED, _T.SOCKET_LOST: _S.UNSUBSCRIBING},
        _S.DISCONNECTED: {_T.SOCKET_LOST: _S.DISCONNECTED, _T.FORGET: _S.UNSUBSCRIBED},
        _S.FAILED_TO_SUBSCRIBE: {_T.FORGET: _S.UNSUBSCRIBED},
        _S.UNSUBSCRIBED: {_T.SOCKET_LOST: _S.UNSUBSCRIBED},
    },
)


class SubscriptionLifecycle(Generic[S]):
    """Mixin: a read-only ``state`` that changes only through :meth:`_move` and the class's table."""

    __slots__ = ()

    #: The table of legal moves of the class.
    _lifecycle: ClassVar[StateTable[Any, SubscriptionTrigger]]
    _state: S

    @property
    def state(self) -> S:
        """The subscription's state (see :mod:`lpm.client.subscriptions.lifecycle`)."""
        return self._state

    def _move(self, trigger: SubscriptionTrigger) -> S:
        """Take ``trigger``: the new state, or :class:`~lpm.errors.InvalidStateError` (a bug)."""
        new: S = self._lifecycle.next(self._state, trigger)
        if new != self._state:
            # repr(self), not self: a handler that keeps log records (pytest's capture, a
            # MemoryHandler) would keep the subscription and every conversation it holds.
            log.debug("%s: %s --%s--> %s", repr(self), self._state, trigger, new)
            # Each subclass declares the ``_state`` slot (a mixin with slots of its own could
            # not be combined with EventEmitter's).
            self._state = new  # type: ignore[misc]
        return new

    async def _subscribed(self, request: Awaitable[str]) -> str | None:
        """Await a subscribe ``request`` and take its answer: ``subscribed`` (returns the id, or
        None when the answer came after ``unsubscribe()``: the subscription stays UNSUBSCRIBED)
        or ``subscribe failed`` (the error is raised)."""
        try:
            subscription_id = await request
        except BaseException:
            self._move(SubscriptionTrigger.SUBSCRIBE_FAILED)
            raise
        if self._move(SubscriptionTrigger.SUBSCRIBED) != SubscriptionState.SUBSCRIBED:
            log.debug("%s: subscription %s arrived after unsubscribe(); ignored", repr(self), subscription_id)
            return None
        return subscription_id
