"""The object model's small objects share what they can (docs/performance.md, memory): a message
or participant nobody listens to has no handler table of its own, a message no status was
reported for no delivery table, every object of a connection the same error sink, and the ids
and roles that repeat in every message of a dialog one string object.  Sharing never leaks: a
handler registered on one message is that message's only."""

from __future__ import annotations

from tests.unit.client.model.test_object_model import assigned, brand_env
from tests.unit.model_harness import status, text


async def test_messages_share_what_nobody_changed_and_keep_their_own_once_changed() -> None:
    env = await brand_env()
    who, wconv, conversation = await assigned(env)
    for i in range(3):
        text(env.world, who, wconv.conv_id, f"message {i}")
    await env.link.flush()
    first, second, third = conversation.main_dialog.messages[-3:]
    assert first._handlers is second._handlers and not first._handlers
    assert first._delivery is second._delivery and not first._delivery
    assert first._error_sink is second._error_sink is conversation.main_dialog._error_sink
    assert first._error_sink is conversation._error_sink
    participant = conversation.main_dialog.participants[0]
    assert participant._handlers is first._handlers and participant._error_sink is first._error_sink
    assert first.originator_id is second.originator_id and first.originator_role is second.originator_role

    heard: list[object] = []
    first.on("anything", heard.append)
    assert not second._handlers and second.emit("anything", 1) is False
    assert first.emit("anything", 1) is True and heard == [1]
    first.off("anything")
    second.remove_all_listeners()
    assert not third._handlers

    status(env.world, who, wconv.conv_id, "READ", [second.sequence])  # type: ignore[list-item]
    await env.link.flush()
    assert second.read_by and not first.read_by and not third.read_by
    assert first._delivery is third._delivery and second._delivery is not first._delivery


async def test_a_dialog_without_gaps_keeps_no_set_of_sequences() -> None:
    env = await brand_env()
    who, wconv, conversation = await assigned(env)
    for i in range(3):
        text(env.world, who, wconv.conv_id, f"message {i}")
    await env.link.flush()
    main = conversation.main_dialog
    assert not main._seen and not isinstance(main._seen, set)
    top = main.last_contiguous_sequence
    main._mark_seen(top + 2)  # a gap: now it needs one
    assert isinstance(main._seen, set) and main.has_seen(top + 2) and not main.has_seen(top + 1)
    main._mark_seen(top + 1)
    assert main.last_contiguous_sequence == top + 2 and not main._seen
    assert main.max_seen_sequence == top + 2
