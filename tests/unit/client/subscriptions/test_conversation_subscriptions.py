"""Conversation subscriptions, limit break and the conversation cache, fed with the emulator
world's real notification bodies (see ``model_harness``)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from lpm.client.model.cache import ConversationCache
from lpm.client.subscriptions.conversations import ConversationSubscription, LimitBreak, wire_query
from lpm.enums import SubscriptionState
from lpm.errors import ConfigurationError, InvalidStateError, ProtocolError, RequestError, RequestTimeoutError
from lpm.protocol.notifications import MessagingEventInfo
from tests.unit.model_harness import (
    ACC,
    AGENT,
    AGENT_OLD,
    BOT,
    CLOSE,
    SURVEY_BOT,
    Events,
    FakeConnection,
    Link,
    accept,
    agent,
    event_infos,
    field_update,
    make_world,
    new_consumer,
    online,
    open_conv,
    pid,
    settle,
    text,
    wire_to_world,
)


def brand(world: Any, **kwargs: Any) -> FakeConnection:
    return FakeConnection(brand=True, user_id=pid(world, AGENT), agent_id=AGENT_OLD, **kwargs)


# ---------------------------------------------------------------- queries


def test_query_uses_python_names() -> None:
    query = {
        "state": "OPEN",
        "stage": ["OPEN", "CLOSE"],
        "agent_ids": [AGENT_OLD],
        "consumer_id": "c1",
        "conversation_id": "conv",
        "last_update_after": 0,
        "last_update_before": 1_700_000_000_000,
        "account_id": ACC,
        "dialog_types": "MAIN",
    }
    assert wire_query(query) == {
        "convState": ["OPEN"],
        "stage": ["OPEN", "CLOSE"],
        "agentIds": [AGENT_OLD],
        "consumerId": "c1",
        "conversationId": "conv",
        "minLastUpdatedTime": 0,
        "maxLastUpdatedTime": 1_700_000_000_000,
        "brandId": ACC,
        "dialogTypes": ["MAIN"],
    }
    with pytest.raises(ConfigurationError, match="skill_id"):
        wire_query({"skill_id": "11"})
    with pytest.raises(ConfigurationError, match="convState"):
        ConversationSubscription(FakeConnection(brand=True, user_id="u"), {"convState": ["OPEN"]})
    with pytest.raises(ConfigurationError):
        wire_query({"last_update_after": "yesterday"})
    with pytest.raises(ConfigurationError):
        wire_query({"stage": [1]})


async def test_subscribe_failure_and_states() -> None:
    fake = FakeConnection(brand=True, user_id="u")

    def refuse(query: dict[str, Any]) -> str:
        raise RequestError(500, "SubscribeExConversations", "boom")

    fake.scripts["subscribe_conversations"] = refuse
    sub = ConversationSubscription(fake, {"stage": "OPEN"})
    assert sub.state == SubscriptionState.INITIAL
    with pytest.raises(RequestError):
        await sub.init()
    assert sub.state == SubscriptionState.FAILED_TO_SUBSCRIBE and fake.subscriptions == {}
    with pytest.raises(InvalidStateError):
        await sub.init()


# ---------------------------------------------------------------- snapshots and reconnects


async def test_snapshot_announces_new_conversations_once() -> None:
    world, _ = make_world()
    fake = brand(world)
    link = Link(world, fake)
    link.serve()
    first = ConversationSubscription(fake, {"stage": "OPEN"})
    second = ConversationSubscription(fake, {"stage": ["OPEN", "CLOSE"]})
    seen = Events()
    seen.watch(fake, "conversation", prefix="connection:")
    seen.watch(first, "conversation", prefix="first:")
    seen.watch(second, "conversation", prefix="second:")
    await first.init()
    await second.init()
    wconv = open_conv(world, new_consumer(world))
    await link.flush()
    # new to the connection: announced by the first feed that saw it, on it and the connection
    assert seen.names == ["first:conversation", "connection:conversation"]
    conversation = fake.conversations.get(wconv.conv_id)
    assert conversation is not None
    assert first.get(wconv.conv_id) is conversation is second.get(wconv.conv_id)
    assert fake.conversations.ref_count(conversation) == 2
    assert first.loaded and second.loaded


async def test_resubscribe_reconciles_what_changed_while_offline() -> None:
    world, sched = make_world()
    fake = brand(world, cache_duration=0.05)
    link = Link(world, fake)
    link.serve()
    wire_to_world(fake, world, agent())
    sub = ConversationSubscription(fake, {"stage": ["OPEN"]})
    await sub.init()
    online(world, AGENT)
    alice, bob = new_consumer(world), new_consumer(world)
    kept, closed = open_conv(world, alice), open_conv(world, bob)
    accept(world, kept)
    accept(world, closed)
    await link.flush()
    conv_kept = fake.conversations.get(kept.conv_id)
    conv_closed = fake.conversations.get(closed.conv_id)
    assert conv_kept is not None and conv_closed is not None
    old_id = sub.subscription_id

    fake.drop_socket()
    assert sub.state == SubscriptionState.DISCONNECTED and sub.needs_resubscribe
    sched.now += 10
    text(world, alice, kept.conv_id, "are you there?")
    field_update(world, agent(BOT), kept, {"field": "ParticipantsChange", "type": "ADD", "role": "READER"})
    field_update(world, bob, closed, CLOSE)
    newcomer = open_conv(world, new_consumer(world))
    link.pending.clear()  # what happened offline never reached the old socket

    seen = Events()
    seen.watch(conv_kept, "participant-added", "message")
    seen.watch(sub, "conversation", "conversation-deleted")
    await sub.resubscribe(wait_for_first_notification=True)
    assert sub.subscription_id != old_id and sub.state == SubscriptionState.SUBSCRIBED
    assert old_id in fake.retired
    # The closed one is looked up beside the feed's steps (a one-off subscription), then gone.
    await settle()
    assert set(fake.subscriptions) == {sub.subscription_id}
    assert conv_closed.stage == "CLOSE"
    assert sorted(seen.names) == ["conversation", "conversation-deleted", "message", "participant-added"]
    assert seen.args("conversation-deleted") == [(conv_closed,)]
    assert seen.args("message")[0][0].body == "are you there?"
    assert seen.args("participant-added")[0][0].user_id == pid(world, BOT)
    assert seen.args("conversation")[0][0].conversation_id == newcomer.conv_id
    assert {c.conversation_id for c in sub.conversations} == {kept.conv_id, newcomer.conv_id}
    # the dropped conversation expires from the cache once nobody holds it
    assert fake.conversations.ref_count(conv_closed) == 0 and closed.conv_id in fake.conversations
    await asyncio.sleep(0.1)
    assert closed.conv_id not in fake.conversations and kept.conv_id in fake.conversations


async def test_delete_keeps_the_conversation_for_a_grace_period() -> None:
    world, _ = make_world()
    fake = brand(world, cache_duration=0)
    link = Link(world, fake)
    link.serve()
    sub = ConversationSubscription(fake, {"stage": "OPEN"}, clear_conversation_timeout=0.05)
    await sub.init()
    who = new_consumer(world)
    wconv = open_conv(world, who)
    await link.flush()
    conversation = fake.conversations.get(wconv.conv_id)
    assert conversation is not None
    seen = Events()
    seen.watch(sub, "delete")
    seen.watch(conversation, "close")
    field_update(world, who, wconv, CLOSE)
    await link.flush()
    assert seen.names == ["close", "delete"]  # the DELETE carries the final state
    assert sub.get(wconv.conv_id) is conversation
    redundant = {
        "subscriptionId": sub.subscription_id,
        "changes": [{"type": "DELETE", "result": {"convId": wconv.conv_id, "conversationDetails": {}}}],
    }
    fake.deliver_conversations(redundant)
    assert "second DELETE" in str(fake.errors[-1])
    await asyncio.sleep(0.1)
    assert sub.get(wconv.conv_id) is None and wconv.conv_id not in fake.conversations
    unknown = dict(
        redundant, changes=[{"type": "DELETE", "result": {"convId": "nope", "conversationDetails": {}}}]
    )
    fake.deliver_conversations(unknown)
    assert isinstance(fake.errors[-1], ProtocolError) and "unknown conversation nope" in str(fake.errors[-1])


async def test_unsubscribe_releases_conversations_and_ignores_late_notifications() -> None:
    world, _ = make_world()
    fake = brand(world, cache_duration=0)
    link = Link(world, fake)
    link.serve()
    sub = ConversationSubscription(fake, {"stage": "OPEN"})
    await sub.init()
    wconv = open_conv(world, new_consumer(world))
    await link.flush()
    old_id = sub.subscription_id
    await sub.unsubscribe()
    assert sub.state == SubscriptionState.UNSUBSCRIBED and sub.conversations == []
    assert [c.args for c in fake.called("unsubscribe_conversations")] == [(old_id,)]
    assert wconv.conv_id not in fake.conversations
    with pytest.raises(InvalidStateError):
        await sub.unsubscribe()
    sub.handle_notification([])  # ignored
    assert fake.errors == []


# ---------------------------------------------------------------- processing model


async def gated_history() -> tuple[Any, FakeConnection, Link, asyncio.Event]:
    """A brand with ``get_all_messages`` and an OPEN conversation subscription whose history
    loads wait until the returned event is set (announcements wait with them)."""
    world, _ = make_world()
    fake = brand(world)
    fake.conversations.get_all_messages = True
    link = Link(world, fake)
    link.serve()
    wire_to_world(fake, world, agent())
    gate = asyncio.Event()
    real_query = fake.scripts["query_messages"]

    async def slow_history(*args: Any, **kwargs: Any) -> list[MessagingEventInfo]:
        await gate.wait()
        result: list[MessagingEventInfo] = real_query(*args, **kwargs)
        return result

    fake.scripts["query_messages"] = slow_history
    await ConversationSubscription(fake, {"stage": "OPEN"}).init()
    return world, fake, link, gate


async def test_announcements_wait_for_preparation_but_state_is_applied_at_once() -> None:
    world, fake, link, gate = await gated_history()
    seen = Events()
    seen.watch(fake, "conversation")
    alice, bob = new_consumer(world), new_consumer(world)
    first = open_conv(world, alice)
    text(world, alice, first.conv_id, "history")
    second = open_conv(world, bob)
    await link.flush()
    # both are cached and up to date, but announced only once their history is loaded, in order
    conversation = fake.conversations.get(first.conv_id)
    assert conversation is not None and second.conv_id in fake.conversations
    assert seen.names == []
    field_update(world, agent(), first, {"field": "ParticipantsChange", "type": "ADD", "role": "MANAGER"})
    await link.flush()
    assert conversation.main_dialog.get_self_participant() is not None
    gate.set()
    await settle()
    assert [a[0].conversation_id for a in seen.args("conversation")] == [first.conv_id, second.conv_id]
    assert [m.body for m in conversation.main_dialog.messages] == ["history"]


async def test_no_event_of_a_conversation_comes_before_its_announcement() -> None:
    """A participant joins and a message arrives while the announcement waits for the history:
    both are applied at once, but their events follow the ``conversation`` event (issue 12)."""
    world, fake, link, gate = await gated_history()
    order: list[str] = []
    fake.on("conversation", lambda conversation: order.append("conversation"))
    fake.on("conversation:participant-added", lambda conversation, *args: order.append("participant-added"))
    alice = new_consumer(world)
    wconv = open_conv(world, alice)
    await link.flush()
    conversation = fake.conversations.get(wconv.conv_id)
    assert conversation is not None and not conversation.announced
    field_update(world, agent(), wconv, {"field": "ParticipantsChange", "type": "ADD", "role": "MANAGER"})
    await link.flush()
    assert conversation.main_dialog.get_self_participant() is not None  # applied at once
    assert order == []  # ... but not announced before the conversation
    gate.set()
    await settle()
    assert order == ["conversation", "participant-added"]
    assert conversation.announced


async def test_consumer_subscribes_to_messages_before_announcing() -> None:
    world, _ = make_world()
    who = new_consumer(world)
    fake = FakeConnection(brand=False, user_id=who.id)
    link = Link(world, fake, consumer_id=who.id)
    link.serve()
    gate = asyncio.Event()

    async def subscribe_messaging_events(cid: str, did: str, from_seq: int) -> None:
        link.replay(did, from_seq)
        await gate.wait()

    fake.scripts["subscribe_messaging_events"] = subscribe_messaging_events
    wconv = open_conv(world, who)
    text(world, who, wconv.conv_id, "first")
    text(world, who, wconv.conv_id, "second")  # the snapshot's last content event: 1 seen, 0 missing
    link.pending.clear()
    sub = ConversationSubscription(fake, {"stage": ["OPEN", "CLOSE"], "consumer_id": who.id})
    seen = Events()
    seen.watch(sub, "conversation")
    init = asyncio.ensure_future(sub.init())
    await settle()
    assert [c.args for c in fake.called("subscribe_messaging_events")] == [(wconv.conv_id, wconv.conv_id, 0)]
    assert seen.names == [] and not init.done()
    await link.flush()  # the history replay arrives while the subscribe request is still pending
    conversation = fake.conversations.get(wconv.conv_id)
    assert conversation is not None
    assert [m.body for m in conversation.main_dialog.messages] == ["first", "second"]
    gate.set()
    await init
    assert seen.args("conversation") == [(conversation,)]
    # a conversation created by this consumer is not announced again, nor subscribed twice
    assert fake.conversations.create_local(wconv.conv_id) is conversation
    await conversation.subscribe_messaging()
    assert len(fake.called("subscribe_messaging_events")) == 1


async def test_consumer_subscribes_new_dialogs_of_known_conversations() -> None:
    world, _ = make_world()
    who = new_consumer(world)
    fake = FakeConnection(brand=False, user_id=who.id)
    link = Link(world, fake, consumer_id=who.id)
    link.serve()
    fake.scripts["subscribe_messaging_events"] = lambda cid, did, from_seq: link.replay(did, from_seq)
    sub = ConversationSubscription(fake, {"stage": ["OPEN", "CLOSE"]})
    await sub.init()
    online(world, AGENT)
    wconv = open_conv(world, who, skill="12", features=("MULTI_DIALOG",))
    link.pending.clear()
    conversation = fake.conversations.create_local(wconv.conv_id)
    await conversation.subscribe_messaging()
    accept(world, wconv)
    field_update(world, agent(), wconv, CLOSE)
    survey = wconv.dialogs[1].dialog_id
    text(world, agent(SURVEY_BOT), survey, "How did we do?")
    await link.flush()
    assert [c.args for c in fake.called("subscribe_messaging_events")] == [
        (wconv.conv_id, wconv.conv_id, 0),
        (wconv.conv_id, survey, 0),
    ]
    await link.flush()
    assert [m.body for m in conversation.open_dialog.messages] == ["How did we do?"]  # type: ignore[union-attr]


# ---------------------------------------------------------------- messaging across reconnects


async def test_consumer_messaging_resubscribes_from_the_last_contiguous_sequence() -> None:
    world, _ = make_world()
    who = new_consumer(world)
    fake = FakeConnection(brand=False, user_id=who.id)
    link = Link(world, fake, consumer_id=who.id)
    fake.scripts["subscribe_messaging_events"] = lambda cid, did, from_seq: link.replay(did, from_seq)
    online(world, AGENT)
    wconv = open_conv(world, who)
    accept(world, wconv)
    link.pending.clear()
    conversation = fake.conversations.create_local(wconv.conv_id)
    await conversation.subscribe_messaging()
    received: list[str] = []
    conversation.on("message", lambda m: received.append(m.body))
    for i in range(5):
        text(world, agent(), wconv.conv_id, f"m{i}")
    # the socket dies: m3 never arrives, m4 does (it was already on its way)
    link.pending = [item for item in link.pending if item[0] != "event" or item[1].sequence != 3]
    await link.flush()
    main = conversation.main_dialog
    assert received == ["m0", "m1", "m2", "m4"] and main.last_contiguous_sequence == 2

    await fake.conversations.resubscribe_messaging()
    assert fake.called("subscribe_messaging_events")[-1].args == (wconv.conv_id, wconv.conv_id, 3)
    await link.flush()  # the server replays 3 and 4
    assert received == ["m0", "m1", "m2", "m4", "m3"]  # nothing lost, nothing twice
    assert [m.body for m in main.messages] == ["m0", "m1", "m2", "m3", "m4"]
    assert main.last_contiguous_sequence == 4

    # a dialog closed since the last reconnect is replayed once (it may have missed messages
    # sent before its close), then never again; brands never subscribe
    field_update(world, who, wconv, CLOSE)
    await link.flush()
    conversation.apply(_info(world, wconv, brand=False))
    before = len(fake.called("subscribe_messaging_events"))
    await fake.conversations.resubscribe_messaging()
    assert len(fake.called("subscribe_messaging_events")) == before + 1
    assert fake.called("subscribe_messaging_events")[-1].args == (wconv.conv_id, wconv.conv_id, 5)
    await link.flush()
    assert received == ["m0", "m1", "m2", "m4", "m3"]
    fake.conversations.session_restored()  # the connection: the restore is over, its replay applied
    await fake.conversations.resubscribe_messaging()
    assert len(fake.called("subscribe_messaging_events")) == before + 1
    brand_cache = ConversationCache(brand(world))
    brand_cache.create_local("x")
    await brand_cache.resubscribe_messaging()


def _info(world: Any, wconv: Any, *, brand: bool) -> Any:
    from lpm.protocol.notifications import decode_conversation_changes
    from tests.unit.model_harness import conversation_body

    return decode_conversation_changes(
        conversation_body(world, "s", [("UPSERT", wconv)], brand=brand), brand=brand
    )[1][0].conversation


async def test_a_dialog_whose_resubscribe_failed_is_replayed_after_it_closed() -> None:
    """The long chaos run lost a conversation's last messages: a restore's resubscribe of the
    open dialog failed (the request timed out), the agent answered and closed before the next
    restore, and that restore skipped the now closed dialog -- the failed request had cleared
    its mark.  Likewise when a replay was answered but the socket was lost before the restore
    ended (the replayed events are held until then).  A dialog is replayed until a restore that
    replayed it completes, whatever its state then."""
    world, _ = make_world()
    who = new_consumer(world)
    fake = FakeConnection(brand=False, user_id=who.id)
    link = Link(world, fake, consumer_id=who.id)
    fake.scripts["subscribe_messaging_events"] = lambda cid, did, from_seq: link.replay(did, from_seq)
    online(world, AGENT)
    wconv = open_conv(world, who)
    accept(world, wconv)
    link.pending.clear()
    conversation = fake.conversations.create_local(wconv.conv_id)
    await conversation.subscribe_messaging()
    received: list[str] = []
    conversation.on("message", lambda m: received.append(m.body))
    text(world, agent(), wconv.conv_id, "before")
    await link.flush()
    # The socket dies; the next restore's resubscribe fails.
    link.pending.clear()

    def refused(cid: str, did: str, from_seq: int) -> None:
        raise RequestTimeoutError("ms.SubscribeMessagingEvents", 5.0)

    fake.scripts["subscribe_messaging_events"] = refused
    with pytest.raises(RequestTimeoutError):
        await fake.conversations.resubscribe_messaging()
    # Meanwhile the agent answers twice and closes; the consumer learns of the close first.
    text(world, agent(), wconv.conv_id, "second")
    text(world, agent(), wconv.conv_id, "last")
    field_update(world, who, wconv, CLOSE)
    link.pending.clear()
    conversation.apply(_info(world, wconv, brand=False))
    assert conversation.main_dialog.state == "CLOSE"
    fake.scripts["subscribe_messaging_events"] = lambda cid, did, from_seq: link.replay(did, from_seq)
    # This restore's replay is answered, but the session is lost before the restore ends: the
    # replayed events, held until then, are dropped with the socket.  Still to catch up.
    await fake.conversations.resubscribe_messaging()
    link.pending.clear()
    fake.conversations.session_lost()
    await fake.conversations.resubscribe_messaging()
    await link.flush()
    fake.conversations.session_restored()
    assert received == ["before", "second", "last"]
    # Caught up now: the next restore leaves the closed dialog alone.
    calls = len(fake.called("subscribe_messaging_events"))
    await fake.conversations.resubscribe_messaging()
    assert len(fake.called("subscribe_messaging_events")) == calls


async def test_resubscribe_messaging_raises_the_first_failure_after_trying_all() -> None:
    fake = FakeConnection(brand=False, user_id="c")
    fake.conversations.create_local("a")
    fake.conversations.create_local("b")
    attempts: list[str] = []

    def fail_first(cid: str, did: str, from_seq: int) -> None:
        attempts.append(cid)
        if cid == "a":
            raise RequestError(500, "ms.SubscribeMessagingEvents", "no")

    fake.scripts["subscribe_messaging_events"] = fail_first
    with pytest.raises(RequestError):
        await fake.conversations.resubscribe_messaging()
    assert attempts == ["a", "b"]


async def test_events_for_unknown_conversations() -> None:
    world, _ = make_world()
    who = new_consumer(world)
    online(world, AGENT)
    wconv = open_conv(world, who)
    accept(world, wconv)
    text(world, who, wconv.conv_id, "hi")
    typing_body = {"type": "ChatStateEvent", "chatState": "COMPOSING"}
    fake = brand(world)
    events = event_infos(world, world.accounts[ACC].events[wconv.conv_id], brand=True)
    accept_status = MessagingEventInfo(
        dialog_id="d",
        event={"type": "AcceptStatusEvent", "status": "READ", "sequenceList": [0]},
        originator_id="x",
    )
    chat_state = MessagingEventInfo(dialog_id="d", event=typing_body, originator_id="x")
    fake.conversations.handle_messaging_events([accept_status, chat_state])
    assert fake.errors == []
    fake.conversations.handle_messaging_events(events)
    assert len(fake.errors) == 1 and isinstance(fake.errors[0], ProtocolError)
    assert "ContentEvent received for conversation not in cache" in str(fake.errors[0])
    assert wconv.conv_id in str(fake.errors[0])


# ---------------------------------------------------------------- cache


async def test_cache_reference_counting_and_expiry() -> None:
    fake = FakeConnection(brand=True, user_id="u", cache_duration=0.05)
    cache = fake.conversations
    conversation = cache.create_local("c1")
    assert cache.ref_count(conversation) == 0 and cache.get("c1") is conversation
    cache.adopt(conversation)
    cache.adopt(conversation)
    cache.release(conversation)
    await asyncio.sleep(0.08)
    assert "c1" in cache  # still referenced once
    cache.release(conversation)
    cache.adopt(conversation)  # a new reference cancels the expiry
    await asyncio.sleep(0.08)
    assert "c1" in cache
    cache.release(conversation)
    await asyncio.sleep(0.08)
    assert "c1" not in cache and cache.find_by_dialog("c1") is None
    other = cache.create_local("c2")
    cache.adopt(other)
    cache.release(other)
    cache.close()  # timers cancelled: nothing fires after close
    await asyncio.sleep(0.08)
    assert cache.all() == [other] and list(cache) == [other] and len(cache) == 1
    assert cache.skill("11") is cache.skill("11")


# ---------------------------------------------------------------- limit break


def crowded_world(count: int) -> Any:
    world, sched = make_world()
    for _ in range(count):
        sched.now += 1  # one second between conversations: distinct lastUpdateTs
        open_conv(world, new_consumer(world))
    return world, sched


async def test_limit_break_pages_backwards_until_a_small_page() -> None:
    world, sched = crowded_world(2000)
    fake = brand(world)
    link = Link(world, fake)
    link.serve(cap=1000)
    sub = ConversationSubscription(fake, {"stage": ["OPEN"]})
    breaks: list[LimitBreak] = []
    fake.on("limit-break", breaks.append)
    sub_breaks = Events()
    sub_breaks.watch(sub, "limit-break", "conversation-deleted")
    announced: list[Any] = []
    fake.on("conversation", announced.append)
    await sub.init()
    assert [(b.creating_child_sub, b.notification_change_count) for b in breaks] == [
        (True, 1000),
        (True, 1000),
        (False, 22),
    ]
    assert [a[0] for a in sub_breaks.args("limit-break")] == breaks
    times = sorted(c.last_update_ts for c in world.accounts[ACC].conversations.values())
    assert breaks[0].min_last_update_time == times[1000] and breaks[1].min_last_update_time == times[11]
    child_queries = [c.args[0] for c in fake.called("subscribe_conversations")[1:]]
    assert child_queries == [
        {"stage": ["OPEN"], "maxLastUpdatedTime": times[1000] + 10_000, "minLastUpdatedTime": 0},
        {"stage": ["OPEN"], "maxLastUpdatedTime": times[11] + 10_000, "minLastUpdatedTime": 0},
    ]
    assert len(fake.called("unsubscribe_conversations")) == 2
    assert len(sub.conversations) == 2000 and len(announced) == 2000
    assert len({c.conversation_id for c in announced}) == 2000
    assert sub.loaded and fake.errors == [] and list(fake.subscriptions) == [sub.subscription_id]

    # after a reconnect the snapshot holds only the newest 1000 again: older ones are not deleted
    fake.drop_socket()
    sched.now += 60
    await sub.resubscribe(wait_for_first_notification=True)
    assert sub_breaks.args("conversation-deleted") == [] and len(sub.conversations) == 2000
    assert len(announced) == 2000


async def test_limit_break_can_be_disabled() -> None:
    world, _ = crowded_world(950)
    fake = brand(world)
    Link(world, fake).serve(cap=1000)
    sub = ConversationSubscription(fake, {"stage": ["OPEN"]}, limit_break_enabled=False)
    breaks: list[LimitBreak] = []
    sub.on("limit-break", breaks.append)
    await sub.init()
    assert [(b.creating_child_sub, b.notification_change_count) for b in breaks] == [(False, 950)]
    assert len(fake.called("subscribe_conversations")) == 1


async def test_disconnect_during_limit_break_stops_paging() -> None:
    world, _ = crowded_world(1200)
    fake = brand(world)
    link = Link(world, fake)
    link.serve(cap=1000)
    serve = fake.scripts["subscribe_conversations"]
    hold = asyncio.Event()

    async def slow_children(query: dict[str, Any]) -> str:
        if "maxLastUpdatedTime" in query:
            await hold.wait()
        return str(serve(query))

    fake.scripts["subscribe_conversations"] = slow_children
    sub = ConversationSubscription(fake, {"stage": ["OPEN"]})
    init = asyncio.ensure_future(sub.init())
    await settle()
    assert len(sub.conversations) == 1000 and not sub.loaded
    fake.drop_socket()
    await settle()
    assert sub.state == SubscriptionState.DISCONNECTED
    await sub.close()
    init.cancel()
    with pytest.raises(asyncio.CancelledError):
        await init
