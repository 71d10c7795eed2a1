"""RoutingTaskSubscription and Ring, fed with the emulator world's RoutingTaskNotifications."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from lpm.client.subscriptions.conversations import ConversationSubscription
from lpm.client.subscriptions.routing import Ring, RoutingTaskSubscription, routing_wire_query
from lpm.enums import RingState, RoutingSubscriptionState
from lpm.errors import ConfigurationError, InvalidStateError
from tests.unit.model_harness import (
    ACC,
    AGENT,
    AGENT_OLD,
    CLOSE,
    FakeConnection,
    Link,
    agent,
    field_update,
    make_world,
    new_consumer,
    online,
    open_conv,
    pid,
    settle,
    wire_to_world,
)


async def setup(
    *extra_online: str,
) -> tuple[Any, Any, FakeConnection, Link, RoutingTaskSubscription, list[Ring]]:
    world, sched = make_world()
    fake = FakeConnection(brand=True, user_id=pid(world, AGENT), agent_id=AGENT_OLD)
    link = Link(world, fake)
    wire_to_world(fake, world, agent())
    sub = RoutingTaskSubscription(fake)
    await sub.init()
    online(world, AGENT)
    for user_id in extra_online:
        online(world, user_id)
    rings: list[Ring] = []
    fake.on("ring", rings.append)
    return world, sched, fake, link, sub, rings


def test_routing_query_names() -> None:
    assert routing_wire_query({"skill_id": 11, "agent_id": AGENT_OLD, "account_id": ACC}) == {
        "skillId": "11",
        "agentId": AGENT_OLD,
        "brandId": ACC,
    }
    with pytest.raises(ConfigurationError):
        routing_wire_query({"skills": "11"})


async def test_new_ring_is_announced_and_accepted() -> None:
    world, _, fake, link, sub, rings = await setup()
    assert fake.called("subscribe_routing_tasks")[0].args == ({},)
    assert fake.routing == {sub.subscription_id: sub} and sub.state == RoutingSubscriptionState.SUBSCRIBED
    on_sub: list[Ring] = []
    sub.on("ring", on_sub.append)
    wconv = open_conv(world, new_consumer(world))
    await link.flush()
    assert len(rings) == 1 and on_sub == rings
    ring = rings[0]
    assert ring.state == RingState.WAITING and ring.is_waiting
    assert (ring.conversation_id, ring.consumer_id, ring.skill_id) == (wconv.conv_id, wconv.consumer_id, "11")
    assert ring.expiration == 72_000 and ring.expiration_ts == world.now_ms() + 72_000
    assert sub.get_ring(ring.ring_id) is ring
    accepted: list[Ring] = []
    ring.on("accepted", accepted.append)
    # accept() returns once the conversation is announced (by a conversation subscription).
    link.serve()
    feed = ConversationSubscription(fake, {"stage": "OPEN"})
    await feed.init()
    accepting = asyncio.ensure_future(ring.accept())
    await settle()
    assert fake.called("update_ring_state")[-1].args == (ring.ring_id, "ACCEPTED")
    await link.flush()
    conversation = await asyncio.wait_for(accepting, 5)
    assert conversation.conversation_id == wconv.conv_id and conversation.announced
    assert accepted == [ring] and ring.state == RingState.ACCEPTED
    assert sub.get_ring(ring.ring_id) is None  # finished rings are forgotten
    assert [(p.id, p.role) for p in wconv.main.participants][-1] == (AGENT, "ASSIGNED_AGENT")


async def test_rejected_expired_and_cancelled_rings() -> None:
    world, sched, _, link, _, rings = await setup()
    open_conv(world, new_consumer(world))
    await link.flush()
    events: list[str] = []
    rings[0].on("rejected", lambda r: events.append("rejected"))
    await rings[0].reject()
    await link.flush()
    assert events == ["rejected"] and rings[0].state == RingState.REJECTED

    second = open_conv(world, new_consumer(world))
    await link.flush()
    ring = rings[-1]
    assert ring.conversation_id == second.conv_id
    ring.on("expired", lambda r: events.append("expired"))
    sched.advance(73)
    await link.flush()
    assert events[-1] == "expired" and ring.state == RingState.EXPIRED

    who = new_consumer(world)
    third = open_conv(world, who)
    await link.flush()
    ring = rings[-1]
    assert ring.conversation_id == third.conv_id
    ring.on("cancelled", lambda r: events.append("cancelled"))
    field_update(world, who, third, CLOSE)
    await link.flush()
    assert events == ["rejected", "expired", "cancelled"]
    assert len(rings) == 3  # finished rings listed again by later changes are not re-announced


async def test_several_ring_details_are_kept_by_id() -> None:
    _, _, fake, _, sub, rings = await setup()
    task: dict[str, Any] = {
        "conversationId": "conv-1",
        "consumerId": "consumer-1",
        "skillId": "11",
        "brandId": ACC,
        "ringsDetails": [
            {"ringId": "r-old", "ringState": "EXPIRED", "ringExpiration": 72000, "ringExpirationTs": 1},
            {"ringId": "r-1", "ringState": "WAITING", "ringExpiration": 72000, "ringExpirationTs": 2},
            {
                "ringId": "r-2",
                "ringState": "WAITING",
                "ringExpiration": 72000,
                "ringExpirationTs": 3,
                "weight": 5,
            },
        ],
    }
    fake.deliver_routing(
        {"subscriptionId": sub.subscription_id, "changes": [{"type": "UPSERT", "result": task}]}
    )
    assert [r.ring_id for r in rings] == ["r-1", "r-2"] and rings[1].weight == 5
    task["ringsDetails"][1]["ringState"] = "CANCELLED"
    task["ringsDetails"][2]["ringExpirationTs"] = 4
    fake.deliver_routing(
        {"subscriptionId": sub.subscription_id, "changes": [{"type": "UPSERT", "result": task}]}
    )
    assert [r.ring_id for r in rings] == ["r-1", "r-2"]
    assert rings[0].state == "CANCELLED" and rings[1].expiration_ts == 4
    assert list(sub.rings) == ["r-2"]


async def test_resubscribe_and_unsubscribe() -> None:
    world, _, fake, link, sub, rings = await setup()
    old_id = sub.subscription_id
    fake.drop_socket()
    assert sub.state == RoutingSubscriptionState.DISCONNECTED and sub.needs_resubscribe
    with pytest.raises(InvalidStateError):
        await sub.init()
    await sub.resubscribe()
    assert sub.subscription_id != old_id and list(fake.routing) == [sub.subscription_id]
    open_conv(world, new_consumer(world))
    await link.flush()
    assert len(rings) == 1
    await sub.unsubscribe()
    assert sub.state == RoutingSubscriptionState.UNSUBSCRIBED and sub.rings == {}
    sub.handle_notification([])  # ignored once unsubscribed
    with pytest.raises(InvalidStateError):
        await sub.unsubscribe()
    with pytest.raises(InvalidStateError):
        await sub.resubscribe()
