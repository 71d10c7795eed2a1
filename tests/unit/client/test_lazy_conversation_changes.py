"""Notifications of many conversation changes (snapshots) decoded one change at a time
(``decode_conversation_changes_lazily``, what a socket's subscriptions get), and what that saves:
a change repeating the state last applied is ignored without being decoded."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from lpm.client.subscriptions.conversations import ConversationSubscription
from lpm.emulator.entities import Actor
from lpm.errors import ProtocolError
from lpm.protocol import notifications as n
from lpm.protocol.notifications import (
    REMEMBERED_UP_TO_CHANGES,
    ConversationChanges,
    LazyConversationChange,
    LiveConversationChange,
    decode_conversation_changes,
    decode_conversation_changes_lazily,
)
from tests.unit.model_harness import (
    ACC,
    AGENT,
    AGENT_OLD,
    Events,
    FakeConnection,
    Link,
    accept,
    agent,
    make_world,
    new_consumer,
    online,
    open_conv,
    pid,
    snapshot,
    text,
    wire_to_world,
)


class LazyFake(FakeConnection):
    """A fake connection whose reader decodes conversation notifications as a socket's does."""

    def deliver_conversations(self, body: dict[str, Any]) -> None:
        sub_id, changes = decode_conversation_changes_lazily(
            msgspec.Raw(msgspec.json.encode(body)), brand=True
        )
        sub = self.subscriptions.get(sub_id or "")
        if sub is not None:
            sub.handle_notification(changes)


def _online_agent() -> tuple[Any, Any, LazyFake, Link]:
    """A world with the agent online, served to a connection that decodes as a socket does."""
    world, sched = make_world()
    fake = LazyFake(brand=True, user_id=pid(world, AGENT), agent_id=AGENT_OLD)
    link = Link(world, fake)
    link.serve()
    wire_to_world(fake, world, agent())
    online(world, AGENT)
    return world, sched, fake, link


def _body(count: int) -> dict[str, Any]:
    world, _ = make_world()
    fake = FakeConnection(brand=True, user_id=pid(world, AGENT), agent_id=AGENT_OLD)
    for _ in range(count):
        open_conv(world, new_consumer(world))
    return snapshot(world, fake, "sub-1")


def test_few_changes_are_decoded_at_once_many_on_reading() -> None:
    few = _body(REMEMBERED_UP_TO_CHANGES)
    _, eager = decode_conversation_changes(few, brand=True)
    _, lazy = decode_conversation_changes_lazily(few, brand=True)
    # The same details again: live changes, which build the same conversations when read.
    assert all(isinstance(change, LiveConversationChange) for change in lazy)
    assert [c.materialize() if isinstance(c, LiveConversationChange) else c for c in lazy] == eager

    many = _body(REMEMBERED_UP_TO_CHANGES + 3)
    sub_id, eager = decode_conversation_changes(many, brand=True)
    lazy_sub_id, changes = decode_conversation_changes_lazily(many, brand=True)
    assert isinstance(changes, ConversationChanges) and lazy_sub_id == sub_id == "sub-1"
    assert len(changes) == len(eager)
    assert changes.materialize() == eager
    for change, expected in zip(changes, eager, strict=True):
        assert isinstance(change, LazyConversationChange)
        assert change.type == expected.type
        assert change.conversation_id == expected.conversation_id
        assert change.last_update_ts == expected.last_update_ts
        assert change.digest() == expected.digest()
        assert change.conversation == expected.conversation
    assert changes[-1].conversation == eager[-1].conversation
    assert [c.conversation_id for c in changes[1:3]] == [c.conversation_id for c in eager[1:3]]


def test_a_bad_change_of_many_fails_when_read() -> None:
    many = _body(REMEMBERED_UP_TO_CHANGES + 2)
    del many["changes"][2]["result"]["conversationDetails"]
    with pytest.raises(n.NotificationError):
        decode_conversation_changes(many, brand=True)
    _, changes = decode_conversation_changes_lazily(many, brand=True)
    assert changes[0].conversation is not None
    with pytest.raises(n.NotificationError, match="conversationDetails"):
        _ = changes[2].conversation
    many["changes"][3]["result"]["convId"] = 7  # the head cannot be read: the whole says why
    with pytest.raises(n.NotificationError, match=r"\$\.changes\[3\]\.result"):
        _ = decode_conversation_changes_lazily(many, brand=True)[1][3].conversation_id


async def test_snapshot_of_many_applies_each_and_reports_a_bad_one() -> None:
    world, _ = make_world()
    fake = LazyFake(brand=True, user_id=pid(world, AGENT), agent_id=AGENT_OLD)
    Link(world, fake).serve()
    convs = [open_conv(world, new_consumer(world)) for _ in range(REMEMBERED_UP_TO_CHANGES + 3)]
    sub = ConversationSubscription(fake, {"stage": "OPEN"})
    seen = Events()
    seen.watch(sub, "notification")
    await sub.init()
    assert {c.conversation_id for c in sub.conversations} == {c.conv_id for c in convs}
    assert sub.loaded and not fake.errors
    # Listeners of the notification event get it as ever: a list of decoded changes.
    [(changes,)] = seen.args("notification")
    assert type(changes) is list and len(changes) == len(convs)
    assert all(isinstance(c, n.ConversationChange) for c in changes)
    assert {c.conversation.conversation_id for c in changes} == {c.conv_id for c in convs}

    # A snapshot with an unreadable change: the others are applied, the bad one is reported.
    body = snapshot(world, fake, sub.subscription_id or "")
    body["changes"][1]["result"]["conversationDetails"]["dialogs"] = "nope"
    # With notification listeners every change is decoded first: a bad one refuses the whole
    # notification before anything is applied (the reader reports it), as a notification
    # decoded in one piece always did.
    with pytest.raises(n.NotificationError, match="dialogs"):
        fake.deliver_conversations(body)
    assert len(seen.args("notification")) == 1
    # Without, the changes are applied one by one: the bad one is reported, the others applied.
    sub.off("notification")
    fake.deliver_conversations(body)
    assert len(fake.errors) == 1 and isinstance(fake.errors[0], ProtocolError)
    assert "dialogs" in str(fake.errors[0])


async def test_a_resubscribe_snapshot_repeating_states_decodes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world, sched, fake, link = _online_agent()
    convs = [open_conv(world, new_consumer(world)) for _ in range(REMEMBERED_UP_TO_CHANGES + 3)]
    for conv in convs:
        accept(world, conv)
    sub = ConversationSubscription(fake, {"stage": "OPEN"})
    await sub.init()
    await link.flush()
    objects = {c.conv_id: fake.conversations.get(c.conv_id) for c in convs}
    ignored = {cid: c.notification_ignored_count for cid, c in objects.items() if c is not None}

    fake.drop_socket()
    sched.now += 10
    changed = convs[0]
    text(world, Actor(ACC, "consumer", changed.consumer_id), changed.conv_id, "hi")
    link.pending.clear()

    decoded: list[Any] = []
    real = n._decode_result

    def counting(raw: msgspec.Raw, brand: bool, index: int | None, remember: bool) -> Any:
        decoded.append(index)
        return real(raw, brand, index, remember)

    monkeypatch.setattr(n, "_decode_result", counting)
    seen = Events()
    conv_changed = objects[changed.conv_id]
    assert conv_changed is not None
    seen.watch(conv_changed, "notification-ignored")
    await sub.resubscribe(wait_for_first_notification=True)
    # Only the conversation that changed offline was decoded; the others were ignored as
    # duplicates (counted), the changed one applied.
    assert len(decoded) == 1
    for cid, conversation in objects.items():
        assert conversation is not None and fake.conversations.get(cid) is conversation
        bump = 0 if cid == changed.conv_id else 1
        assert conversation.notification_ignored_count == ignored[cid] + bump
    assert seen.names == []
    assert not fake.errors


def test_messages_stay_in_sequence_order_whatever_the_arrival() -> None:
    from lpm.client.model.conversation import Conversation

    fake = FakeConnection(brand=True, user_id="me", agent_id=AGENT_OLD)
    conversation = Conversation(fake.conversations, "c1")
    dialog = conversation.main_dialog

    def event(seq: int | None) -> n.MessagingEventInfo:
        body = {"type": "ContentEvent", "contentType": "text/plain", "message": f"m{seq}"}
        return n.MessagingEventInfo("c1", body, "consumer", sequence=seq, conversation_id="c1")

    for seq in (0, 2, None, 1, 4, 3, 1):
        dialog.apply_event(event(seq))
    assert [m.sequence for m in dialog.messages] == [0, 1, 2, 3, 4, None]
    assert dialog.last_contiguous_sequence == 4


async def test_a_live_update_of_the_details_applied_last_builds_no_conversation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A message's state notification repeats the details the conversation applied last: it is
    applied from what it changes (times, unread counts, TTR, last event), with no conversation
    built unless a listener asks for one, and an older one is still refused as out of order."""
    world, sched, fake, link = _online_agent()
    conv = open_conv(world, new_consumer(world))
    accept(world, conv)
    sub = ConversationSubscription(fake, {"stage": "OPEN"})
    await sub.init()
    await link.flush()
    conversation = fake.conversations.get(conv.conv_id)
    assert conversation is not None
    consumer = Actor(ACC, "consumer", conv.consumer_id)

    built: list[str] = []
    real = n.LiveConversationChange.conversation

    def building(change: n.LiveConversationChange) -> n.ConversationInfo:
        built.append(change.conversation_id)
        info: n.ConversationInfo = real.__get__(change)
        return info

    monkeypatch.setattr(n.LiveConversationChange, "conversation", property(building))
    sched.now += 1
    text(world, consumer, conv.conv_id, "zero")
    await link.flush()
    # (The first message may find the conversation on other details: a notification older than
    # the snapshot may have been decoded meanwhile.  From then on, the same details.)
    built.clear()
    count = conversation.notification_count
    sched.now += 1
    text(world, consumer, conv.conv_id, "one")
    await link.flush()
    older = snapshot(world, fake, sub.subscription_id or "")
    assert conversation.notification_count == count + 1 and built == []
    assert conversation.update_time == conv.last_update_ts
    assert [m.body for m in conversation.main_dialog.messages][-1:] == ["one"]

    # A listener of the conversation's notifications gets the whole conversation, as ever.
    seen = Events()
    seen.watch(conversation, "notification", "notification-out-of-order")
    sched.now += 1
    text(world, consumer, conv.conv_id, "two")
    await link.flush()
    assert built == [conv.conv_id] and seen.names == ["notification"]
    [(info,)] = seen.args("notification")
    assert isinstance(info, n.ConversationInfo) and info.last_update_ts == conversation.update_time
    assert info.unread == conversation.number_of_unread_messages
    assert [m.body for m in conversation.main_dialog.messages][-2:] == ["one", "two"]

    # The state before, again: the same details, older: out of order, nothing applied.
    update_time = conversation.update_time
    fake.deliver_conversations(older)
    assert seen.names == ["notification", "notification-out-of-order"]
    assert built == [conv.conv_id] * 2  # (a live change: built for the listener only)
    assert conversation.update_time == update_time and not fake.errors
