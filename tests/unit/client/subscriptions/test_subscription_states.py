"""Subscription life cycles (lpm.client.subscriptions.lifecycle): every legal move of each table is
taken once through the subscriptions' real methods, and every other move is refused."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from lpm.client.state_table import StateTable
from lpm.client.subscriptions.conversations import (
    ChildConversationSubscription,
    ConversationSubscription,
    _ClosedLookup,
)
from lpm.client.subscriptions.lifecycle import (
    CONVERSATION_SUBSCRIPTION,
    ONE_OFF_SUBSCRIPTION,
    ROUTING_SUBSCRIPTION,
    SubscriptionLifecycle,
    SubscriptionTrigger,
)
from lpm.client.subscriptions.routing import RoutingTaskSubscription
from lpm.enums import RoutingSubscriptionState, SubscriptionState
from lpm.errors import ConnectionClosedError, InvalidStateError, RequestError
from tests.unit.client.state_walk import Move, moves, until
from tests.unit.model_harness import AGENT, AGENT_OLD, FakeConnection

S = SubscriptionState
R = RoutingSubscriptionState
T = SubscriptionTrigger


class Gate:
    """A scripted host call that waits until released (with a result or an error)."""

    def __init__(self) -> None:
        self.future: asyncio.Future[Any] | None = None

    def __call__(self, *args: Any) -> asyncio.Future[Any]:
        self.future = asyncio.get_running_loop().create_future()
        return self.future

    async def started(self) -> None:
        await until(lambda: self.future is not None)

    async def release(self, result: Any = None, error: BaseException | None = None) -> None:
        assert self.future is not None
        if error is not None:
            self.future.set_exception(error)
        else:
            self.future.set_result(result)
        for _ in range(5):
            await asyncio.sleep(0)


def fail(*args: Any) -> Any:
    raise RequestError(500, "SubscribeExConversations", "refused")


def brand() -> FakeConnection:
    return FakeConnection(brand=True, user_id=AGENT, agent_id=AGENT_OLD)


async def subscribed(fake: FakeConnection) -> ConversationSubscription:
    sub = ConversationSubscription(fake, {"stage": ["OPEN"]})
    await sub.init(wait_for_first_notification=False)
    assert sub.state == S.SUBSCRIBED
    return sub


# ---------------------------------------------------------------- conversation subscriptions


async def test_conversation_subscription_walk(taken: dict[str, set[Move]]) -> None:
    fake = brand()

    # INITIAL --subscribe failed--> FAILED --socket lost--> = --resubscribe--> RESUBSCRIBING
    #   --subscribed--> SUBSCRIBED
    sub = ConversationSubscription(fake)
    fake.scripts["subscribe_conversations"] = fail
    with pytest.raises(RequestError):
        await sub.init(wait_for_first_notification=False)
    assert sub.state == S.FAILED_TO_SUBSCRIBE and sub.needs_resubscribe
    sub.mark_disconnected()
    assert sub.state == S.FAILED_TO_SUBSCRIBE
    del fake.scripts["subscribe_conversations"]
    await sub.resubscribe()
    assert sub.state == S.SUBSCRIBED and fake.subscriptions[sub.subscription_id or ""] is sub

    # INITIAL --socket lost--> = ; the subscribe in flight then succeeds: INITIAL --subscribed-->
    gate = Gate()
    fake.scripts["subscribe_conversations"] = gate
    sub2 = ConversationSubscription(fake)
    task = asyncio.create_task(sub2.init(wait_for_first_notification=False))
    await gate.started()
    sub2.mark_disconnected()
    assert sub2.state == S.INITIAL
    await gate.release("sub-x")
    await task
    assert sub2.state == S.SUBSCRIBED and sub2.subscription_id == "sub-x"

    # SUBSCRIBED --socket lost--> DISCONNECTED --socket lost--> = --resubscribe--> RESUBSCRIBING
    # --subscribe failed--> FAILED --resubscribe--> RESUBSCRIBING --socket lost--> DISCONNECTED,
    # and the request re-sent on the new socket succeeds: DISCONNECTED --subscribed--> SUBSCRIBED
    sub2.mark_disconnected()
    assert sub2.state == S.DISCONNECTED and sub2.needs_resubscribe
    sub2.mark_disconnected()
    assert sub2.state == S.DISCONNECTED
    fake.scripts["subscribe_conversations"] = fail
    with pytest.raises(RequestError):
        await sub2.resubscribe()
    assert sub2.state == S.FAILED_TO_SUBSCRIBE
    gate = Gate()
    fake.scripts["subscribe_conversations"] = gate
    task = asyncio.create_task(sub2.resubscribe())
    await gate.started()
    assert sub2.state == S.RESUBSCRIBING and not sub2.needs_resubscribe
    sub2.mark_disconnected()
    assert sub2.state == S.DISCONNECTED
    await gate.release("sub-y")
    await task
    assert sub2.state == S.SUBSCRIBED and fake.subscriptions["sub-y"] is sub2

    # ... or fails: DISCONNECTED --subscribe failed--> FAILED
    sub2.mark_disconnected()
    gate = Gate()
    fake.scripts["subscribe_conversations"] = gate
    task = asyncio.create_task(sub2.resubscribe())
    await gate.started()
    sub2.mark_disconnected()
    await gate.release(error=ConnectionClosedError("lost"))
    with pytest.raises(ConnectionClosedError):
        await task
    assert sub2.state == S.FAILED_TO_SUBSCRIBE

    # FAILED --forget--> UNSUBSCRIBED (nothing to tell the server)
    await sub2.unsubscribe()
    assert sub2.state == S.UNSUBSCRIBED
    assert not fake.called("unsubscribe_conversations")

    # DISCONNECTED --forget--> UNSUBSCRIBED --socket lost--> =
    del fake.scripts["subscribe_conversations"]
    sub3 = await subscribed(fake)
    sub3.mark_disconnected()
    await sub3.unsubscribe()
    assert sub3.state == S.UNSUBSCRIBED and sub3.subscription_id not in fake.subscriptions
    sub3.mark_disconnected()
    assert sub3.state == S.UNSUBSCRIBED

    # SUBSCRIBED --unsubscribe--> UNSUBSCRIBING --socket lost--> = --unsubscribe failed--> SUBSCRIBED
    # --unsubscribe--> UNSUBSCRIBING --unsubscribed--> UNSUBSCRIBED
    sub4 = await subscribed(fake)
    gate = Gate()
    fake.scripts["unsubscribe_conversations"] = gate
    task = asyncio.create_task(sub4.unsubscribe())
    await gate.started()
    assert sub4.state == S.UNSUBSCRIBING
    sub4.mark_disconnected()
    assert sub4.state == S.UNSUBSCRIBING
    await gate.release(error=RequestError(500, "x", "no"))
    with pytest.raises(RequestError):
        await task
    assert sub4.state == S.SUBSCRIBED
    del fake.scripts["unsubscribe_conversations"]
    await sub4.unsubscribe()
    assert sub4.state == S.UNSUBSCRIBED

    # A resubscribe answered after unsubscribe(): UNSUBSCRIBED --subscribed / subscribe failed--> =
    for error in (None, RequestError(500, "x", "no")):
        sub5 = await subscribed(fake)
        sub5.mark_disconnected()
        gate = Gate()
        fake.scripts["subscribe_conversations"] = gate
        task = asyncio.create_task(sub5.resubscribe())
        await gate.started()
        sub5.mark_disconnected()
        await sub5.unsubscribe()
        await gate.release("sub-late", error=error)
        if error is None:
            await task
        else:
            with pytest.raises(RequestError):
                await task
        assert sub5.state == S.UNSUBSCRIBED
        assert "sub-late" not in fake.subscriptions  # never routed to an unsubscribed feed
        del fake.scripts["subscribe_conversations"]

    assert taken["conversation subscription"] == moves(CONVERSATION_SUBSCRIPTION)


@pytest.mark.parametrize("state", [S.INITIAL, S.RESUBSCRIBING, S.UNSUBSCRIBING, S.UNSUBSCRIBED])
async def test_conversation_subscription_refuses_unsubscribe(state: SubscriptionState) -> None:
    sub = ConversationSubscription(brand())
    sub._state = state
    with pytest.raises(InvalidStateError, match="not subscribed"):
        await sub.unsubscribe()
    assert sub.state == state


@pytest.mark.parametrize("state", [S.INITIAL, S.SUBSCRIBED, S.RESUBSCRIBING, S.UNSUBSCRIBING, S.UNSUBSCRIBED])
async def test_conversation_subscription_refuses_resubscribe(state: SubscriptionState) -> None:
    sub = ConversationSubscription(brand())
    sub._state = state
    with pytest.raises(InvalidStateError, match="does not need resubscribing"):
        await sub.resubscribe()
    assert sub.state == state


async def test_init_twice_is_refused() -> None:
    sub = await subscribed(brand())
    with pytest.raises(InvalidStateError, match="already initialised"):
        await sub.init()


def test_state_is_read_only() -> None:
    sub = ConversationSubscription(brand())
    with pytest.raises(AttributeError):
        sub.state = S.SUBSCRIBED  # type: ignore[misc]


# ---------------------------------------------------------------- routing subscriptions


async def test_routing_subscription_walk(taken: dict[str, set[Move]]) -> None:
    fake = brand()

    def fail_routing(*args: Any) -> Any:
        raise RequestError(500, "SubscribeRoutingTasks", "refused")

    # INITIAL --subscribe failed--> FAILED --socket lost--> = --forget--> UNSUBSCRIBED
    sub = RoutingTaskSubscription(fake)
    fake.scripts["subscribe_routing_tasks"] = fail_routing
    with pytest.raises(RequestError):
        await sub.init()
    assert sub.state == R.FAILED_TO_SUBSCRIBE and sub.needs_resubscribe
    sub.mark_disconnected()
    assert sub.state == R.FAILED_TO_SUBSCRIBE
    await sub.unsubscribe()
    assert sub.state == R.UNSUBSCRIBED
    sub.mark_disconnected()
    assert sub.state == R.UNSUBSCRIBED

    # INITIAL --socket lost--> = --subscribed--> SUBSCRIBED --socket lost--> DISCONNECTED --socket
    # lost--> = --resubscribe--> RESUBSCRIBING --subscribe failed--> FAILED --resubscribe-->
    # RESUBSCRIBING --subscribed--> SUBSCRIBED --forget--> UNSUBSCRIBED
    gate = Gate()
    fake.scripts["subscribe_routing_tasks"] = gate
    sub = RoutingTaskSubscription(fake)
    task = asyncio.create_task(sub.init())
    await gate.started()
    sub.mark_disconnected()
    assert sub.state == R.INITIAL
    await gate.release("r-1")
    await task
    assert sub.state == R.SUBSCRIBED and fake.routing["r-1"] is sub
    sub.mark_disconnected()
    sub.mark_disconnected()
    assert sub.state == R.DISCONNECTED
    fake.scripts["subscribe_routing_tasks"] = fail_routing
    with pytest.raises(RequestError):
        await sub.resubscribe()
    assert sub.state == R.FAILED_TO_SUBSCRIBE
    del fake.scripts["subscribe_routing_tasks"]
    await sub.resubscribe()
    assert sub.state == R.SUBSCRIBED
    await sub.unsubscribe()
    assert sub.state == R.UNSUBSCRIBED

    # RESUBSCRIBING --socket lost--> DISCONNECTED --subscribed--> SUBSCRIBED (re-sent request),
    # DISCONNECTED --subscribe failed--> FAILED, RESUBSCRIBING --forget--> UNSUBSCRIBED, and an
    # answer after that: UNSUBSCRIBED --subscribed / subscribe failed--> =
    sub = RoutingTaskSubscription(fake)
    await sub.init()
    for error in (None, RequestError(500, "x", "no")):
        sub.mark_disconnected()
        gate = Gate()
        fake.scripts["subscribe_routing_tasks"] = gate
        task = asyncio.create_task(sub.resubscribe())
        await gate.started()
        assert sub.state == R.RESUBSCRIBING
        sub.mark_disconnected()
        await gate.release("r-2", error=error)
        if error is None:
            await task
            assert sub.state == R.SUBSCRIBED
        else:
            with pytest.raises(RequestError):
                await task
            assert sub.state == R.FAILED_TO_SUBSCRIBE
    for error in (None, RequestError(500, "x", "no")):
        sub = RoutingTaskSubscription(fake)
        fake.scripts.pop("subscribe_routing_tasks", None)
        await sub.init()
        sub.mark_disconnected()
        gate = Gate()
        fake.scripts["subscribe_routing_tasks"] = gate
        task = asyncio.create_task(sub.resubscribe())
        await gate.started()
        await sub.unsubscribe()  # RESUBSCRIBING --forget-->
        await gate.release("r-late", error=error)
        if error is None:
            await task
        else:
            with pytest.raises(RequestError):
                await task
        assert sub.state == R.UNSUBSCRIBED and "r-late" not in fake.routing
    # DISCONNECTED --forget-->
    fake.scripts.pop("subscribe_routing_tasks", None)
    sub = RoutingTaskSubscription(fake)
    await sub.init()
    sub.mark_disconnected()
    await sub.unsubscribe()
    assert sub.state == R.UNSUBSCRIBED

    assert taken["routing subscription"] == moves(ROUTING_SUBSCRIPTION)


@pytest.mark.parametrize("state", [R.INITIAL, R.UNSUBSCRIBED])
async def test_routing_subscription_refuses_unsubscribe(state: RoutingSubscriptionState) -> None:
    sub = RoutingTaskSubscription(brand())
    sub._state = state
    with pytest.raises(InvalidStateError, match="cannot unsubscribe"):
        await sub.unsubscribe()


# ---------------------------------------------------------------- one-off subscriptions


async def subscribing_child(
    parent: ConversationSubscription,
) -> tuple[ChildConversationSubscription, asyncio.Task[None]]:
    """A limit-break page subscribed and waiting for its notification."""
    child = ChildConversationSubscription(parent, 1_000)
    task = asyncio.create_task(child.init())
    await until(lambda: child.state == S.SUBSCRIBED)
    return child, task


async def test_one_off_subscription_walk(taken: dict[str, set[Move]]) -> None:
    fake = brand()
    parent = await subscribed(fake)
    parent.first_notification_timeout = 5.0

    # INITIAL --subscribe failed--> FAILED --forget--> UNSUBSCRIBED
    child = ChildConversationSubscription(parent, 1_000)
    fake.scripts["subscribe_conversations"] = fail
    with pytest.raises(RequestError):
        await child.init()
    assert child.state == S.FAILED_TO_SUBSCRIBE
    child.abandon()
    assert child.state == S.UNSUBSCRIBED
    del fake.scripts["subscribe_conversations"]

    # INITIAL --subscribed--> SUBSCRIBED --unsubscribe--> UNSUBSCRIBING --socket lost--> =
    # --unsubscribed--> UNSUBSCRIBED --socket lost--> =
    child, task = await subscribing_child(parent)
    child.handle_notification([])
    await task
    gate = Gate()
    fake.scripts["unsubscribe_conversations"] = gate
    end = asyncio.create_task(child.end())
    await gate.started()
    assert child.state == S.UNSUBSCRIBING
    child.mark_disconnected()
    assert child.state == S.UNSUBSCRIBING
    await gate.release(error=ConnectionClosedError("lost"))  # reported, the page is over anyway
    await end
    assert child.state == S.UNSUBSCRIBED and isinstance(fake.errors[-1], ConnectionClosedError)
    child.mark_disconnected()
    assert child.state == S.UNSUBSCRIBED
    del fake.scripts["unsubscribe_conversations"]

    # SUBSCRIBED --socket lost--> DISCONNECTED --socket lost--> = --forget--> UNSUBSCRIBED
    child, task = await subscribing_child(parent)
    child_id = child.subscription_id
    child.mark_disconnected()
    assert child.state == S.DISCONNECTED and child_id not in fake.subscriptions
    child.mark_disconnected()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    child.abandon()
    assert child.state == S.UNSUBSCRIBED

    # SUBSCRIBED --forget--> UNSUBSCRIBED (the parent stops paging)
    child, task = await subscribing_child(parent)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    child.abandon()
    assert child.state == S.UNSUBSCRIBED and child.subscription_id not in fake.subscriptions

    # The closed-conversation lookup shares the table.
    lookup = _ClosedLookup(fake, {})
    run = asyncio.create_task(lookup.run({"stage": ["CLOSE"]}, 5.0))
    await until(lambda: lookup.state == S.SUBSCRIBED)
    lookup.mark_disconnected()
    with pytest.raises(Exception, match="connection was lost"):
        await run
    assert lookup.state == S.DISCONNECTED
    # ... and is not left registered: the router kept it (and what it looked for) for good.
    assert lookup.subscription_id not in fake.subscriptions

    assert taken["one-off subscription"] == moves(ONE_OFF_SUBSCRIPTION)


# ---------------------------------------------------------------- every illegal move is refused


LIFECYCLES: list[tuple[StateTable[Any, Any], type[Any], Any]] = [
    (CONVERSATION_SUBSCRIPTION, SubscriptionState, lambda: ConversationSubscription(brand())),
    (ROUTING_SUBSCRIPTION, RoutingSubscriptionState, lambda: RoutingTaskSubscription(brand())),
    (ONE_OFF_SUBSCRIPTION, SubscriptionState, lambda: _ClosedLookup(brand(), {})),
]


@pytest.mark.parametrize(("table", "states", "make"), LIFECYCLES, ids=lambda v: getattr(v, "name", ""))
async def test_illegal_moves_are_refused(table: StateTable[Any, Any], states: type[Any], make: Any) -> None:
    obj: SubscriptionLifecycle[Any] = make()
    refused = 0
    for state, trigger in itertools.product(states, SubscriptionTrigger):
        obj._state = state
        if table.allows(state, trigger):
            assert obj._move(trigger) == table.next(state, trigger)
            continue
        refused += 1
        with pytest.raises(InvalidStateError, match=str(trigger)):
            obj._move(trigger)
        assert obj.state == state  # unchanged
    assert refused > 0


def test_tables_name_only_known_states_and_render() -> None:
    for table, states, _ in LIFECYCLES:
        for state, trigger, new in table:
            assert state in set(states) and new in set(states) and trigger in set(SubscriptionTrigger)
        assert len(table.render().splitlines()) == len(table)
    assert CONVERSATION_SUBSCRIPTION.triggers(S.SUBSCRIBED) == {T.SOCKET_LOST, T.UNSUBSCRIBE}
