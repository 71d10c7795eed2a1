"""Conversation.serialize / ConversationCache.load_conversation (stateless bots, reference §3.11)."""

from __future__ import annotations

import hashlib
import json

import pytest

from lpm.client.subscriptions.conversations import ConversationSubscription
from lpm.errors import ConfigurationError, InvalidStateError
from tests.unit.model_harness import (
    AGENT,
    AGENT_OLD,
    BOT,
    Events,
    FakeConnection,
    Link,
    accept,
    agent,
    field_update,
    make_world,
    new_consumer,
    online,
    open_conv,
    pid,
    status,
    text,
    wire_to_world,
)

CARD = {"type": "vertical", "elements": [{"type": "text", "text": "Prix : 5 €"}]}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def test_serialize_hashes_bodies_and_load_round_trips() -> None:
    world, _ = make_world()
    fake = FakeConnection(brand=True, user_id=pid(world, AGENT), agent_id=AGENT_OLD)
    link = Link(world, fake)
    link.serve()
    wire_to_world(fake, world, agent())
    sub = ConversationSubscription(fake, {"stage": "OPEN"})
    await sub.init()
    who = new_consumer(world)
    online(world, AGENT)
    wconv = open_conv(world, who)
    accept(world, wconv)
    text(world, who, wconv.conv_id, "my card number is 4111")
    await link.flush()
    conversation = fake.conversations.get(wconv.conv_id)
    assert conversation is not None
    await conversation.send_rich_text(CARD)
    status(world, who, wconv.conv_id, "READ", [1])
    field_update(world, agent(BOT), wconv, {"field": "ParticipantsChange", "type": "ADD", "role": "READER"})
    field_update(
        world, agent(BOT), wconv, {"field": "ParticipantsChange", "type": "REMOVE", "role": "READER"}
    )
    await link.flush()

    text_form = conversation.serialize()
    assert "4111" not in text_form and "Prix" not in text_form
    data = json.loads(text_form)
    # The state digest is kept as bytes but stored as the 32 hex digits earlier versions wrote.
    assert isinstance(data["hash"], str) and len(bytes.fromhex(data["hash"])) == 16
    bodies = [m["body"] for m in data["dialogs"][0]["messages"]]
    assert bodies == [
        sha("my card number is 4111"),
        sha(json.dumps(CARD, separators=(",", ":"), ensure_ascii=False)),
    ]
    assert data["dialogs"][0]["seen"] == [[0, 2]]

    # a stateless bot: a fresh connection loads the state and carries on
    other = FakeConnection(brand=True, user_id=pid(world, AGENT), agent_id=AGENT_OLD)
    loaded = other.conversations.load_conversation(text_form)
    assert other.conversations.get(wconv.conv_id) is loaded and other.conversations.ref_count(loaded) == 1
    assert other.conversations.find_by_dialog(wconv.conv_id) is loaded
    assert loaded.skill is other.conversations.skill("11")
    for name in (
        "stage",
        "state",
        "start_time",
        "update_time",
        "ttr_type",
        "ttr_value",
        "context",
        "account_id",
    ):
        assert getattr(loaded, name) == getattr(conversation, name), name
    original, copy = conversation.main_dialog, loaded.main_dialog
    assert [(p.user_id, p.agent_id, p.role, p.state) for p in copy.participants] == [
        (p.user_id, p.agent_id, p.role, p.state) for p in original.participants
    ]
    assert [p.user_id for p in copy.removed_participants] == [pid(world, BOT)]
    assert [(m.sequence, m.content_type, m.time, m.originator_id) for m in copy.messages] == [
        (m.sequence, m.content_type, m.time, m.originator_id) for m in original.messages
    ]
    assert copy.messages[1].has_consumer_read() and copy.messages[1].sent_by_current_user()
    assert not copy.messages[0].sent_by_current_user()
    assert copy.messages[0].participant is loaded.consumer
    assert copy.last_contiguous_sequence == 2

    # the same state again is a duplicate; a newer one is diffed against the loaded state
    seen = Events()
    seen.watch(loaded, "notification-ignored", "participant-added", "message")
    resync = ConversationSubscription(other, {"stage": "OPEN"})
    other_link = Link(world, other)
    other_link.serve()
    await resync.init()
    assert seen.names == ["notification-ignored"]
    field_update(world, agent(BOT), wconv, {"field": "ParticipantsChange", "type": "ADD", "role": "READER"})
    text(world, who, wconv.conv_id, "again")
    await other_link.flush()
    assert seen.names[1:] == ["participant-added", "message"]
    assert copy.get_participant(pid(world, BOT)) is copy.messages[-1].dialog.get_participant(pid(world, BOT))
    assert [m.sequence for m in copy.messages] == [0, 1, 3]


async def test_load_existing_unload_and_bad_input() -> None:
    fake = FakeConnection(brand=False, user_id="c", cache_duration=600)
    conversation = fake.conversations.create_local("c1", skill_id="11")
    state = conversation.serialize()
    with pytest.raises(InvalidStateError):
        conversation.unload()  # not loaded
    assert fake.conversations.load_conversation(state) is conversation  # already cached: same object
    assert fake.conversations.ref_count(conversation) == 1
    conversation.unload()
    assert "c1" not in fake.conversations  # released at once, no expiry wait

    loaded = fake.conversations.load_conversation(state)
    fake.conversations.adopt(loaded)  # a subscription holds it too
    loaded.unload()
    assert fake.conversations.get("c1") is loaded
    for bad in ("not json", "[]", json.dumps({"version": 99, "conversation_id": "x"})):
        with pytest.raises(ConfigurationError):
            fake.conversations.load_conversation(bad)


def test_an_unreadable_stored_digest_is_no_digest() -> None:
    # A corrupted "hash" must not fail the load: the next notification is then simply applied.
    fake = FakeConnection(brand=False, user_id="c", cache_duration=600)
    state = json.loads(fake.conversations.create_local("c1", skill_id="11").serialize())
    fake.conversations.remove(fake.conversations.get("c1"))
    for bad in ("zz", 7, None):
        state["hash"] = bad
        other = FakeConnection(brand=False, user_id="c", cache_duration=600)
        loaded = other.conversations.load_conversation(json.dumps(state))
        assert loaded._hash is None
