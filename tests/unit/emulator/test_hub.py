"""The hub driven without sockets: sessions are plain objects with what ``SocketSession`` asks."""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from lpm.emulator.entities import Actor
from lpm.emulator.hub import AgentStateSubscription, ConversationSubscription, Hub, RoutingSubscription
from lpm.emulator.world import World
from lpm.protocol import requests as pm
from lpm.protocol.types import Notif
from tests.worldkit import make_world

ACC = "12345678"
AGENT = "1001"
BOT = "2001"


@dataclass(eq=False)
class FakeSession:
    actor: Actor | None
    brand: bool = False
    expires_at: Callable[[], float | None] = lambda: None
    conv_subs: dict[str, ConversationSubscription] = field(default_factory=dict)
    dialog_subs: set[str] = field(default_factory=set)
    routing_subs: dict[str, RoutingSubscription] = field(default_factory=dict)
    agent_state_subs: dict[str, AgentStateSubscription] = field(default_factory=dict)
    sent: list[tuple[Notif, Any]] = field(default_factory=list)
    closed: tuple[int, str] | None = None

    def notify(self, notif: Notif, body: Any) -> None:
        self.sent.append((notif, body))

    def close_with(self, code: int, reason: str = "") -> None:
        self.closed = (code, reason)

    def auth_close_code(self) -> int:
        return 4401 if self.brand else 4407

    def of(self, notif: Notif) -> list[Any]:
        return [body for kind, body in self.sent if kind is notif]


def setup() -> tuple[World, Hub[FakeSession]]:
    world, _ = make_world()
    hub: Hub[FakeSession] = Hub(world)
    world.sinks.append(hub)
    return world, hub


def agent_session(hub: Hub[FakeSession], user_id: str) -> FakeSession:
    session = FakeSession(Actor(ACC, "agent", user_id), brand=True)
    hub.attach(session)
    return session


def test_messaging_events_reach_the_subscribed_consumer_and_participating_agents_only() -> None:
    world, hub = setup()
    consumer = world.add_consumer(ACC, "anonymous")
    who = Actor(ACC, "consumer", consumer.consumer_id)
    mine = FakeSession(who)
    hub.attach(mine)
    participant = agent_session(hub, AGENT)
    bystander = agent_session(hub, BOT)
    conv = world.request_conversation(who, pm.ConsumerRequestConversationBody(skillId="11"))
    world.update_fields(
        Actor(ACC, "agent", AGENT),
        conv.conv_id,
        [pm.ParticipantsChangeField(type="ADD", role="ASSIGNED_AGENT")],
    )
    mine.dialog_subs.add(conv.conv_id)
    world.publish(who, pm.PublishEventBody(dialogId=conv.conv_id, event=pm.ContentEvent(message="hi")))
    [consumer_body] = mine.of(Notif.MESSAGING_EVENT)
    # As published: the body has only ``changes``; each change names its dialog.
    assert [c["dialogId"] for c in consumer_body["changes"]] == [conv.conv_id]
    assert len(participant.of(Notif.MESSAGING_EVENT)) == 1
    assert bystander.of(Notif.MESSAGING_EVENT) == []


def test_conversation_subscriptions_get_a_snapshot_then_changes() -> None:
    world, hub = setup()
    manager = agent_session(hub, AGENT)
    sub = hub.subscribe_conversations(manager, pm.SubscribeExConversationsBody(convState=["OPEN"]))
    hub.snapshot(manager, sub, limit=10)
    assert manager.of(Notif.EX_CONVERSATION_CHANGE)[-1]["changes"] == []
    consumer = world.add_consumer(ACC, "anonymous")
    conv = world.request_conversation(
        Actor(ACC, "consumer", consumer.consumer_id), pm.ConsumerRequestConversationBody(skillId="11")
    )
    [change] = manager.of(Notif.EX_CONVERSATION_CHANGE)[-1]["changes"]
    assert change["type"] == "UPSERT" and change["result"]["convId"] == conv.conv_id


def test_a_snapshot_is_rendered_with_the_collector_paused_and_leaves_it_as_it_was() -> None:
    """The snapshot's thousands of short-lived dicts set off no collection of the whole world;
    the collector is as it was afterwards (on, or off when the application had turned it off)."""
    world, hub = setup()
    consumer = world.add_consumer(ACC, "anonymous")
    world.request_conversation(
        Actor(ACC, "consumer", consumer.consumer_id), pm.ConsumerRequestConversationBody(skillId="11")
    )
    seen: list[bool] = []

    class Watching(FakeSession):
        def notify(self, notif: Notif, body: Any) -> None:
            seen.append(gc.isenabled())
            super().notify(notif, body)

    manager = Watching(Actor(ACC, "agent", AGENT), brand=True)
    hub.attach(manager)
    sub = hub.subscribe_conversations(manager, pm.SubscribeExConversationsBody(convState=["OPEN"]))
    was = gc.isenabled()
    try:
        for enabled in (True, False):
            gc.enable() if enabled else gc.disable()
            seen.clear()
            hub.snapshot(manager, sub, limit=10)
            assert seen == [False] and gc.isenabled() is enabled
            assert len(manager.of(Notif.EX_CONVERSATION_CHANGE)[-1]["changes"]) == 1

        def failing(notif: Notif, body: Any) -> None:
            raise RuntimeError("socket gone")

        gc.enable()
        manager.notify = failing  # type: ignore[method-assign]
        with pytest.raises(RuntimeError):
            hub.snapshot(manager, sub, limit=10)
        assert gc.isenabled()
    finally:
        gc.enable() if was else gc.disable()


def test_detach_drops_the_session_and_its_routing_subscriptions() -> None:
    world, hub = setup()
    session = agent_session(hub, AGENT)
    session.routing_subs["r"] = RoutingSubscription("r")
    world.routing_subscription(ACC, AGENT, +1)
    hub.detach(session)
    assert session not in hub.sessions
    assert world.accounts[ACC].routing_listeners == {}
    assert list(hub.sessions_of_account(ACC)) == []


def test_close_expired_closes_only_expired_identities() -> None:
    world, hub = setup()
    now = world.clock()
    expired = agent_session(hub, AGENT)
    expired.expires_at = lambda: now - 1
    fresh = agent_session(hub, BOT)
    fresh.expires_at = lambda: now + 60
    assert hub.close_expired(ACC) == 1
    assert expired.closed == (4401, "token expired") and fresh.closed is None
