"""The SDK object model (Conversation, Dialog, Message, Participant) fed with real notification
bodies of the emulator's world (see ``model_harness``)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import pytest

from lpm.client.model.conversation import CLOSE_OK, MAX_UPLOAD_SIZE, Conversation
from lpm.client.subscriptions.conversations import ConversationSubscription
from lpm.emulator.entities import Actor
from lpm.emulator.entities import Conversation as WorldConversation
from lpm.emulator.world import World
from lpm.enums import ConversationState, DialogType, ParticipantRole, ParticipantState
from lpm.errors import (
    ConfigurationError,
    InvalidStateError,
    NoOpenDialogError,
    RequestError,
    UnexpectedResponseError,
)
from lpm.protocol.notifications import decode_conversation_changes
from tests.unit.model_harness import (
    ACC,
    AGENT,
    AGENT_OLD,
    BOT,
    BOT_OLD,
    CLOSE,
    SURVEY_BOT,
    Events,
    FakeConnection,
    FakeScheduler,
    Link,
    accept,
    agent,
    conversation_body,
    event_infos,
    field_update,
    make_world,
    new_consumer,
    online,
    open_conv,
    pid,
    status,
    text,
    typing,
    wire_to_world,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64
GIF = b"GIF89a" + b"\x00" * 64


@dataclass
class Env:
    world: World
    sched: FakeScheduler
    fake: FakeConnection
    link: Link
    sub: ConversationSubscription


async def brand_env(query: dict[str, Any] | None = None) -> Env:
    """The agent 1001's brand connection with one conversation subscription."""
    world, sched = make_world()
    fake = FakeConnection(brand=True, user_id=pid(world, AGENT), agent_id=AGENT_OLD)
    link = Link(world, fake)
    link.serve()
    wire_to_world(fake, world, agent())
    sub = ConversationSubscription(fake, query if query is not None else {"stage": ["OPEN", "CLOSE"]})
    await sub.init()
    return Env(world, sched, fake, link, sub)


async def assigned(env: Env, skill: str = "11") -> tuple[Actor, WorldConversation, Conversation]:
    """A consumer's conversation assigned to the agent, delivered to the SDK."""
    who = new_consumer(env.world)
    online(env.world, AGENT)
    wconv = open_conv(env.world, who, skill=skill)
    accept(env.world, wconv)
    await env.link.flush()
    conversation = env.fake.conversations.get(wconv.conv_id)
    assert conversation is not None
    return who, wconv, conversation


# ---------------------------------------------------------------- construction


async def test_conversation_built_from_a_snapshot_without_change_events() -> None:
    world, _ = make_world()
    who = new_consumer(world)
    online(world, AGENT)
    wconv = open_conv(world, who)
    accept(world, wconv)
    text(world, who, wconv.conv_id, "hello")
    fake = FakeConnection(brand=True, user_id=pid(world, AGENT), agent_id=AGENT_OLD)
    Link(world, fake).serve()
    announced = Events()
    announced.watch(fake, "conversation", "conversation:participant-added", "conversation:message")
    sub = ConversationSubscription(fake, {"stage": ["OPEN"]})
    announced.watch(sub, "conversation")
    await sub.init()

    conversation = fake.conversations.get(wconv.conv_id)
    assert conversation is not None
    # announced once on the feed and once on the connection, and no diff events for its contents
    assert announced.names == ["conversation", "conversation"]
    assert conversation.skill_id == "11" and conversation.skill is fake.conversations.skill("11")
    assert conversation.stage == ConversationState.OPEN and conversation.state == "OPEN"
    assert conversation.account_id == ACC and conversation.start_time == wconv.start_ts
    assert conversation.update_time == wconv.last_update_ts
    main = conversation.main_dialog
    assert main.dialog_id == conversation.conversation_id and main.dialog_type == DialogType.MAIN
    assert conversation.open_dialog is main and conversation.dialogs == [main]
    assigned_agent = conversation.assigned_agent
    assert assigned_agent is not None
    assert (assigned_agent.user_id, assigned_agent.agent_id) == (pid(world, AGENT), AGENT_OLD)
    assert conversation.consumer is not None and conversation.consumer.user_id == who.id
    # the lastContentEventNotification became the first message
    assert [(m.sequence, m.body) for m in main.messages] == [(0, "hello")]
    assert main.messages[0].participant is conversation.consumer
    assert main.get_self_participant() is assigned_agent
    assert fake.errors == []


async def test_main_dialog_exists_before_any_notification() -> None:
    fake = FakeConnection(brand=False, user_id="consumer-1")
    conversation = fake.conversations.create_local("conv-1", skill_id="11")
    assert conversation.main_dialog.dialog_id == "conv-1"
    assert conversation.open_dialog is conversation.main_dialog
    assert fake.conversations.find_by_dialog("conv-1") is conversation
    assert await conversation.send_message("hi") == 0
    call = fake.called("publish_event")[0]
    assert call.args == (
        "conv-1",
        "conv-1",
        {"type": "ContentEvent", "contentType": "text/plain", "message": "hi"},
    )
    assert call.kwargs == {"audience": "ALL", "metadata": None}


# ---------------------------------------------------------------- participants and bubbling


async def test_participant_events_bubble_to_every_level_innermost_first() -> None:
    env = await brand_env()
    _, wconv, conversation = await assigned(env)
    main = conversation.main_dialog
    seen = Events()
    seen.watch(env.fake, "conversation:participant-added", prefix="connection:")
    seen.watch(conversation, "participant-added", prefix="conversation:")
    seen.watch(main, "participant-added", prefix="dialog:")

    field_update(
        env.world, agent(BOT), wconv, {"field": "ParticipantsChange", "type": "ADD", "role": "READER"}
    )
    await env.link.flush()
    assert seen.names == [
        "dialog:participant-added",
        "conversation:participant-added",
        "connection:conversation:participant-added",
    ]
    participant, previously_suggested = seen.seen[0][1]
    assert seen.seen[1][1] == (participant, previously_suggested)
    conv_arg, *rest = seen.seen[2][1]
    assert conv_arg is conversation and rest == [participant, False]
    assert (participant.user_id, participant.agent_id, participant.role) == (
        pid(env.world, BOT),
        BOT_OLD,
        "READER",
    )

    # A listener removed at one level leaves the others as they were.
    env.fake.off("conversation:participant-added")
    field_update(
        env.world, agent(BOT), wconv, {"field": "ParticipantsChange", "type": "REMOVE", "role": "READER"}
    )
    field_update(
        env.world, agent(BOT), wconv, {"field": "ParticipantsChange", "type": "ADD", "role": "MANAGER"}
    )
    await env.link.flush()
    assert seen.names[3:] == ["dialog:participant-added", "conversation:participant-added"]
    # the removed participant's object comes back when the user is added again
    assert seen.seen[3][1][0] is participant and participant.role == "MANAGER"


async def test_participant_removed_and_back_to_queue() -> None:
    env = await brand_env()
    _, wconv, conversation = await assigned(env)
    seen = Events()
    seen.watch(conversation, "participant-removed", "back-to-queue", "transfer-skill", "skill-change")
    agent_participant = conversation.assigned_agent
    field_update(
        env.world, agent(), wconv, {"field": "ParticipantsChange", "type": "REMOVE", "role": "ASSIGNED_AGENT"}
    )
    await env.link.flush()
    assert seen.names == ["participant-removed", "back-to-queue"]
    assert seen.args("participant-removed") == [(agent_participant,)]
    assert agent_participant is not None
    assert agent_participant.state == ParticipantState.REMOVED and agent_participant.chat_state == "REMOVED"
    assert conversation.assigned_agent is None
    assert conversation.main_dialog.get_removed_participant(pid(env.world, AGENT)) is agent_participant


async def test_skill_transfer_fields_and_events() -> None:
    env = await brand_env()
    _, wconv, conversation = await assigned(env)
    seen = Events()
    seen.watch(conversation, "skill-change", "participant-removed", "back-to-queue", "transfer-skill")
    await conversation.transfer(skill_id="12")
    assert env.fake.called("update_conversation_field")[-1].args[1] == [
        {"field": "Skill", "type": "UPDATE", "skill": "12"},
        {"field": "ParticipantsChange", "type": "REMOVE", "userId": AGENT_OLD, "role": "ASSIGNED_AGENT"},
    ]
    await env.link.flush()
    assert wconv.skill_id == "12"
    # skill-change is (previous, new) -- not swapped like lp-messaging-sdk 1.5.4
    assert seen.seen == [
        ("skill-change", ("11", "12")),
        ("participant-removed", (seen.seen[1][1][0],)),
        ("transfer-skill", ("12",)),
    ]
    assert conversation.skill_id == "12"


async def test_agent_transfer_suggests_then_accepted() -> None:
    env = await brand_env()
    _, wconv, conversation = await assigned(env)
    online(env.world, BOT)
    seen = Events()
    seen.watch(
        conversation,
        "participant-removed",
        "participant-suggested",
        "transfer-agent",
        "participant-added",
        "participant-suggested-removed",
        "back-to-queue",
    )
    await conversation.transfer(agent_id=BOT)  # numeric user id
    assert env.fake.called("update_conversation_field")[-1].args[1] == [
        {"field": "ParticipantsChange", "type": "SUGGEST", "userId": BOT_OLD, "role": "ASSIGNED_AGENT"},
        {"field": "ParticipantsChange", "type": "REMOVE", "userId": AGENT_OLD, "role": "ASSIGNED_AGENT"},
    ]
    await env.link.flush()
    assert seen.names == ["participant-suggested", "transfer-agent", "participant-removed"]
    suggested = seen.args("participant-suggested")[0][0]
    assert (suggested.agent_id, suggested.state) == (BOT_OLD, ParticipantState.SUGGESTED)
    assert conversation.assigned_agent is None  # suggested is not assigned yet

    accept(env.world, wconv)  # the bot accepts its ring
    await env.link.flush()
    assert seen.names[3:] == ["participant-added"]
    assert seen.args("participant-added") == [(suggested, True)]
    assigned_now = conversation.main_dialog.assigned_agent
    assert assigned_now is suggested and assigned_now.state == ParticipantState.ACTIVE


async def test_transfer_agent_id_normalisation_and_validation() -> None:
    env = await brand_env()
    _, wconv, conversation = await assigned(env)
    field_update(
        env.world, agent(BOT), wconv, {"field": "ParticipantsChange", "type": "ADD", "role": "READER"}
    )
    await env.link.flush()
    calls = len(env.fake.calls)
    for same in (AGENT, AGENT_OLD, pid(env.world, AGENT)):
        with pytest.raises(ConfigurationError, match="same agent"):
            await conversation.transfer(agent_id=same)
    with pytest.raises(ConfigurationError, match="agent_id or skill_id"):
        await conversation.transfer()
    assert len(env.fake.calls) == calls  # validation happens before any I/O

    stranger = "5f0c2a76-0000-4000-8000-000000000000"
    performing = env.fake.scripts.get("update_conversation_field")
    env.fake.scripts["update_conversation_field"] = lambda *a, **k: "OK"  # recorded, not performed
    await conversation.transfer(agent_id=stranger)  # an unknown agent's PID is sent as given
    assert {
        "field": "ParticipantsChange",
        "type": "SUGGEST",
        "userId": stranger,
        "role": "ASSIGNED_AGENT",
    } in (env.fake.called("update_conversation_field")[-1].args[1])
    if performing is None:
        del env.fake.scripts["update_conversation_field"]
    else:
        env.fake.scripts["update_conversation_field"] = performing

    online(env.world, BOT)
    await conversation.transfer(agent_id=pid(env.world, BOT), skill_id="11")  # a participant's PID
    assert env.fake.called("update_conversation_field")[-1].args[1] == [
        {"field": "Skill", "type": "UPDATE", "skill": "11"},
        {"field": "ParticipantsChange", "type": "REMOVE", "userId": BOT_OLD, "role": "READER"},
        {"field": "ParticipantsChange", "type": "SUGGEST", "userId": BOT_OLD, "role": "ASSIGNED_AGENT"},
        {"field": "ParticipantsChange", "type": "REMOVE", "userId": AGENT_OLD, "role": "ASSIGNED_AGENT"},
    ]
    suggested = [p for p in wconv.main.participants if p.state == "SUGGESTED"]
    assert [(p.id, p.role) for p in suggested] == [(BOT, "ASSIGNED_AGENT")]


async def test_join_and_leave_send_the_agents_old_id() -> None:
    env = await brand_env()
    who = new_consumer(env.world)
    wconv = open_conv(env.world, who)
    await env.link.flush()
    conversation = env.fake.conversations.get(wconv.conv_id)
    assert conversation is not None
    await conversation.join(ParticipantRole.MANAGER)
    await env.link.flush()
    me = conversation.main_dialog.get_self_participant()
    assert me is not None and me.role == "MANAGER"
    await conversation.leave()
    assert [c.args[1] for c in env.fake.called("update_conversation_field")] == [
        [{"field": "ParticipantsChange", "type": "ADD", "userId": AGENT_OLD, "role": "MANAGER"}],
        [{"field": "ParticipantsChange", "type": "REMOVE", "userId": AGENT_OLD, "role": "MANAGER"}],
    ]
    await env.link.flush()
    assert conversation.main_dialog.get_self_participant() is None
    with pytest.raises(InvalidStateError):
        await conversation.leave()


# ---------------------------------------------------------------- conversation field events


async def test_group_ttr_manual_ettr_note_and_csat_fields() -> None:
    env = await brand_env()
    who, wconv, conversation = await assigned(env)
    seen = Events()
    env.fake.on("conversation:ttr-change", lambda conv, *args: seen.seen.append(("ttr", args)))
    seen.watch(conversation, "ttr-change", "manual-ettr-change", "group-change")
    field_update(env.world, who, wconv, {"field": "TTRField", "ttrType": "CUSTOM", "value": 1800})
    await env.link.flush()
    field_update(env.world, agent(), wconv, {"field": "ManualETTR", "time": 1_800_000_000_000})
    await env.link.flush()
    field_update(env.world, agent(), wconv, {"field": "Note", "note": "vip"})
    await env.link.flush()
    # Every level hears it, innermost first: the conversation, then the connection.
    assert seen.seen[:2] == [
        ("ttr-change", ("CUSTOM", 1800, -1)),
        ("ttr", ("CUSTOM", 1800, -1)),
    ]
    assert seen.names[2:] == ["manual-ettr-change"]
    assert seen.args("manual-ettr-change") == [(1_800_000_000_000, 1_800_000_000_000)]
    assert (conversation.ttr_type, conversation.ttr_value) == ("CUSTOM", 1800)
    assert conversation.ttr_effective_manual == conversation.ttr_effective == 1_800_000_000_000
    assert conversation.note == "vip" and conversation.group_id == "-1"


async def test_close_is_closing_until_the_notification_confirms_it() -> None:
    env = await brand_env()
    _, wconv, conversation = await assigned(env)
    seen = Events()
    seen.watch(conversation, "close", "dialog:close")
    await conversation.close()
    assert env.fake.called("update_conversation_field")[-1].args[1] == [CLOSE]
    assert conversation.stage == ConversationState.CLOSING
    assert conversation.open_dialog is None
    with pytest.raises(NoOpenDialogError):
        await conversation.send_message("too late")
    with pytest.raises(InvalidStateError):
        await conversation.close()
    await env.link.flush()
    assert conversation.stage == ConversationState.CLOSE and conversation.state == "CLOSE"
    assert conversation.close_reason == "AGENT" and conversation.close_time == wconv.end_ts
    assert seen.names == ["close", "dialog:close"]
    assert seen.args("dialog:close") == [(conversation.main_dialog,)]
    assert conversation.main_dialog.closed_by == "AGENT"
    assert conversation.assigned_agent is None and conversation.consumer is None


async def test_a_message_while_a_close_is_in_progress_leaves_it_closing() -> None:
    # The message's state repeats the details applied last (only its times, unread counts and
    # last event are new): applied as such, the close in progress is not undone.
    env = await brand_env()
    who, wconv, conversation = await assigned(env)
    env.fake.scripts["update_conversation_field"] = lambda cid, fields, metadata=None: CLOSE_OK
    seen = Events()
    seen.watch(conversation, "message", "close")
    await conversation.close()  # answered, but not applied by the server yet
    count = conversation.notification_count
    text(env.world, who, wconv.conv_id, "one more thing")
    await env.link.flush()
    assert conversation.notification_count > count
    assert conversation.stage == ConversationState.CLOSING and conversation.open_dialog is None
    assert [m.body for (m,) in seen.args("message")] == ["one more thing"]
    assert conversation.update_time == wconv.last_update_ts
    field_update(env.world, agent(), wconv, CLOSE)  # the close reaches the server
    await env.link.flush()
    assert conversation.stage == ConversationState.CLOSE and seen.names[-1] == "close"


async def test_close_failures_restore_the_stage() -> None:
    env = await brand_env()
    _, _, conversation = await assigned(env)
    env.fake.scripts["update_conversation_field"] = lambda cid, fields, metadata=None: "not what UMS says"
    with pytest.raises(UnexpectedResponseError):
        await conversation.close()
    assert conversation.stage == ConversationState.OPEN

    def refuse(cid: str, fields: Any, metadata: Any = None) -> None:
        raise RequestError(400, "cm.UpdateConversationField", "no")

    env.fake.scripts["update_conversation_field"] = refuse
    with pytest.raises(RequestError):
        await conversation.close()
    assert conversation.stage == ConversationState.OPEN and conversation.open_dialog is not None


async def test_post_survey_dialog_close_bubbles_and_new_dialog_event() -> None:
    env = await brand_env()
    who = new_consumer(env.world)
    online(env.world, AGENT)
    wconv = open_conv(env.world, who, skill="12", features=("MULTI_DIALOG",))
    accept(env.world, wconv)
    await env.link.flush()
    conversation = env.fake.conversations.get(wconv.conv_id)
    assert conversation is not None
    seen = Events()
    env.fake.on(
        "conversation:dialog:close", lambda conv, dialog: seen.seen.append(("connection", (conv, dialog)))
    )
    seen.watch(conversation, "dialog", "close", "dialog:close")
    field_update(env.world, agent(), wconv, CLOSE)
    await env.link.flush()
    survey = conversation.get_dialog(DialogType.POST_SURVEY)
    assert survey is not None and survey.dialog_id == wconv.dialogs[1].dialog_id
    main = conversation.main_dialog
    assert seen.seen == [
        ("dialog:close", (main,)),
        ("connection", (conversation, main)),
        ("dialog", (survey,)),
    ]
    assert conversation.stage == ConversationState.OPEN and conversation.state == "CLOSE"
    assert conversation.open_dialog is survey
    assert env.fake.conversations.find_by_dialog(survey.dialog_id) is conversation
    roles = {(p.user_id, p.role) for p in survey.participants}
    assert roles == {
        (who.id, "CONSUMER"),
        (pid(env.world, SURVEY_BOT), "AGENT"),
        (pid(env.world, AGENT), "READER"),
    }


async def test_dialog_close_request_and_states() -> None:
    env = await brand_env()
    _, _, conversation = await assigned(env)
    main = conversation.main_dialog
    await main.close("AGENT", "done")
    assert env.fake.called("update_conversation_field")[-1].args[1] == [
        {
            "field": "DialogChange",
            "type": "UPDATE",
            "dialog": {
                "dialogId": main.dialog_id,
                "state": "CLOSE",
                "closedBy": "AGENT",
                "closedCause": "done",
            },
        }
    ]
    assert main.closing
    with pytest.raises(InvalidStateError, match="begun closing"):
        await main.close()
    await env.link.flush()
    assert main.state == "CLOSE" and main.closed_cause == "done" and not main.closing
    with pytest.raises(InvalidStateError, match="already closed"):
        await main.close()


# ---------------------------------------------------------------- notifications: duplicates and order


async def test_duplicate_and_out_of_order_notifications_are_ignored() -> None:
    env = await brand_env()
    _, wconv, conversation = await assigned(env)
    older = conversation_body(env.world, env.sub.subscription_id or "", [("UPSERT", wconv)], brand=True)
    env.sched.now += 5
    field_update(env.world, agent(), wconv, {"field": "Note", "note": "newer"})
    newer = conversation_body(env.world, env.sub.subscription_id or "", [("UPSERT", wconv)], brand=True)
    env.link.pending.clear()
    seen = Events()
    seen.watch(conversation, "notification", "notification-ignored", "notification-out-of-order")
    env.fake.deliver_conversations(newer)
    env.fake.deliver_conversations(newer)
    env.fake.deliver_conversations(older)
    assert seen.names == ["notification", "notification-ignored", "notification-out-of-order"]
    assert conversation.note == "newer"
    assert conversation.notification_ignored_count == 1 and conversation.notification_out_of_order_count == 1


async def test_conversation_apply_returns_whether_it_was_applied() -> None:
    world, _ = make_world()
    wconv = open_conv(world, new_consumer(world))
    _, changes = decode_conversation_changes(
        conversation_body(world, "s", [("UPSERT", wconv)], brand=False), brand=False
    )
    fake = FakeConnection(brand=False, user_id=wconv.consumer_id)
    conversation = fake.conversations.from_info(changes[0].conversation)
    assert conversation.notification_count == 1
    assert conversation.apply(changes[0].conversation) is False


# ---------------------------------------------------------------- messages


async def test_messages_are_deduplicated_and_sorted_by_sequence() -> None:
    env = await brand_env()
    who, wconv, conversation = await assigned(env)
    main = conversation.main_dialog
    for i in range(4):
        text(env.world, who, wconv.conv_id, f"m{i}")
    env.link.pending.clear()  # deliver by hand, out of order and twice
    records = env.world.accounts[ACC].events[wconv.conv_id]
    seen = Events()
    seen.watch(conversation, "message")
    for index in (2, 0, 2, 1, 0, 3):
        env.fake.deliver_events(event_infos(env.world, [records[index]], brand=True))
    # brand: m0 and m1, older than the m2 already announced, join the dialog as history (an
    # event now would come out of order; a brand's gaps are from before it took part)
    assert [args[0].body for args in seen.args("message")] == ["m2", "m3"]
    assert [m.sequence for m in main.messages] == [0, 1, 2, 3]
    assert main.last_contiguous_sequence == 3 and main.max_seen_sequence == 3
    # the conversation notification's lastContentEventNotification is not a new message either
    field_update(env.world, agent(), wconv, {"field": "Note", "note": "x"})
    await env.link.flush()
    assert len(seen.args("message")) == 2 and len(main.messages) == 4


async def test_message_fields_and_current_user() -> None:
    env = await brand_env()
    who, wconv, conversation = await assigned(env)
    sequence = await conversation.send_message("hi there", metadata=[{"type": "ExternalId", "id": "x1"}])
    text(env.world, who, wconv.conv_id, "hello")
    await env.link.flush()
    mine, theirs = conversation.main_dialog.messages
    assert (mine.sequence, mine.body, mine.content_type, mine.audience) == (
        sequence,
        "hi there",
        "text/plain",
        "ALL",
    )
    assert mine.metadata == [{"type": "ExternalId", "id": "x1"}]
    assert mine.sent_by_current_user() and not theirs.sent_by_current_user()
    assert mine.participant is conversation.assigned_agent
    assert theirs.participant is conversation.consumer and theirs.time == env.world.now_ms()
    assert conversation.get_latest_consumer_message() is theirs
    with pytest.raises(ConfigurationError, match="Empty message text"):
        await conversation.send_message("")


async def test_private_and_rich_messages() -> None:
    env = await brand_env()
    _, _, conversation = await assigned(env)
    card = {"type": "vertical", "elements": [{"type": "text", "text": "Product"}]}
    await conversation.send_private_message("internal")
    await conversation.send_rich_text(card, quick_replies={"type": "quickReplies", "replies": []})
    await env.link.flush()
    private, rich = conversation.main_dialog.messages
    assert private.audience == "AGENTS_AND_MANAGERS"
    assert (rich.content_type, rich.body) == ("RichContentEvent", card)
    assert rich.quick_replies == {"type": "quickReplies", "replies": []}
    consumer_side = FakeConnection(brand=False, user_id="c")
    local = consumer_side.conversations.create_local("c1")
    with pytest.raises(InvalidStateError):
        await local.send_private_message("nope")
    with pytest.raises(ConfigurationError):
        await local.send_rich_text({})


async def test_unknown_sender_is_a_removed_participant_until_known() -> None:
    env = await brand_env()
    who = new_consumer(env.world)
    wconv = open_conv(env.world, who)
    await env.link.flush()
    conversation = env.fake.conversations.get(wconv.conv_id)
    assert conversation is not None
    field_update(env.world, agent(), wconv, {"field": "ParticipantsChange", "type": "ADD", "role": "MANAGER"})
    text(env.world, agent(), wconv.conv_id, "hi from a manager")
    join_change, event, content_change = env.link.pending
    env.link.pending = [join_change, content_change]
    # the message overtakes the notification that adds its sender
    env.fake.deliver_events(event_infos(env.world, [event[1]], brand=True))
    message = conversation.main_dialog.messages[0]
    assert message.body == "hi from a manager"
    assert (message.participant.state, message.participant.role) == ("REMOVED", "MANAGER")
    await env.link.flush()
    me = conversation.main_dialog.get_self_participant()
    assert me is not None and message.participant is me
    env.link.pending.clear()
    # a sender that never was a participant is synthesized as REMOVED with the event's role
    stray = event_infos(env.world, [env.world.accounts[ACC].events[wconv.conv_id][0]], brand=True)[0]
    stray.originator_id, stray.sequence = "someone-else", 99
    conversation.apply_event(stray)
    ghost = conversation.main_dialog.get_message(99)
    assert ghost is not None
    assert (ghost.participant.state, ghost.participant.role) == ("REMOVED", "MANAGER")
    assert ghost.participant is ghost.participant  # stable object


async def test_delivery_statuses() -> None:
    env = await brand_env()
    who, wconv, conversation = await assigned(env)
    first = await conversation.send_message("one")
    second = await conversation.send_message("two")
    await env.link.flush()
    seen = Events()
    seen.watch(conversation, "message-delivery-event")
    status(env.world, who, wconv.conv_id, "ACCEPT", [first, second])
    status(env.world, who, wconv.conv_id, "READ", [second])  # READ without ACCEPT counts too
    status(env.world, who, wconv.conv_id, "READ", [second])  # a repeat: ignored
    await env.link.flush()
    one, two = conversation.main_dialog.messages
    assert [[m.body for m in args[0]] for args in seen.args("message-delivery-event")] == [
        ["one", "two"],
        ["two"],
    ]
    assert set(one.accepted_by) == {who.id} and one.accepted_by[who.id].participant_role == "CONSUMER"
    assert not one.has_consumer_read() and two.has_consumer_read() and not two.has_assigned_agent_read()
    assert two.read_by[who.id].status_sequence == 3


async def test_accept_and_read_publish_statuses() -> None:
    env = await brand_env()
    who, wconv, conversation = await assigned(env)
    text(env.world, who, wconv.conv_id, "hello")
    await env.link.flush()
    message = conversation.main_dialog.messages[0]
    await message.accept()
    await message.read()
    await conversation.main_dialog.send_read_status([])  # nothing to send
    events = [c.args[2] for c in env.fake.called("publish_event")]
    assert events == [
        {"type": "AcceptStatusEvent", "status": "ACCEPT", "sequenceList": [0]},
        {"type": "AcceptStatusEvent", "status": "READ", "sequenceList": [0]},
    ]
    await env.link.flush()
    assert message.has_assigned_agent_read()


async def test_chat_state_updates_the_participant() -> None:
    env = await brand_env()
    who, wconv, conversation = await assigned(env)
    consumer = conversation.consumer
    assert consumer is not None
    states: list[str] = []
    consumer.on("chat-state-change", states.append)
    typing(env.world, who, wconv.conv_id, "COMPOSING")
    typing(env.world, who, wconv.conv_id, "ACTIVE")
    await env.link.flush()
    assert states == ["COMPOSING", "ACTIVE"] and consumer.chat_state == "ACTIVE"
    await conversation.main_dialog.set_chat_state("COMPOSING")
    assert env.fake.called("publish_event")[-1].args[2] == {
        "type": "ChatStateEvent",
        "chatState": "COMPOSING",
    }


async def test_history_is_merged_without_message_events() -> None:
    env = await brand_env()
    who, wconv, conversation = await assigned(env)
    env.link.pending.clear()
    for i in range(5):
        text(env.world, who, wconv.conv_id, f"m{i}")
    status(env.world, who, wconv.conv_id, "READ", [1])
    env.fake.deliver_events(
        event_infos(env.world, [env.world.accounts[ACC].events[wconv.conv_id][3]], brand=True)
    )
    known = conversation.main_dialog.get_message(3)
    seen = Events()
    seen.watch(conversation, "message", "message-delivery-event")
    page = await conversation.query_messages(max_quantity=2, sequence_min=1)
    assert [m.sequence for m in page] == [2, 3] and page[1] is known
    everything = await conversation.get_all_publish_events()
    assert [m.body for m in everything] == ["m0", "m1", "m2", "m3", "m4"]
    assert everything[3] is known and everything[1].has_consumer_read()
    assert seen.names == []
    assert conversation.main_dialog.last_contiguous_sequence == 5
    newer_than = [c.kwargs["newer_than"] for c in env.fake.called("query_messages")]
    assert newer_than == [1, -1, 5]  # from the first unseen sequence, then until nothing is newer


async def test_events_of_an_unknown_dialog_wait_for_the_dialog() -> None:
    env = await brand_env()
    who = new_consumer(env.world)
    online(env.world, AGENT)
    wconv = open_conv(env.world, who, skill="12", features=("MULTI_DIALOG",))
    accept(env.world, wconv)
    await env.link.flush()
    conversation = env.fake.conversations.get(wconv.conv_id)
    assert conversation is not None
    field_update(env.world, agent(), wconv, CLOSE)
    survey_id = wconv.dialogs[1].dialog_id
    text(env.world, agent(SURVEY_BOT), survey_id, "How did we do?")
    close_change, event, content_change = env.link.pending
    env.fake.deliver_events(event_infos(env.world, [event[1]], brand=True))
    assert env.fake.errors == [] and conversation.get_dialog(DialogType.POST_SURVEY) is None
    env.link.pending = [close_change, content_change]
    await env.link.flush()
    survey = conversation.get_dialog(DialogType.POST_SURVEY)
    assert survey is not None and [m.body for m in survey.messages] == ["How did we do?"]


# ---------------------------------------------------------------- consumer actions


async def consumer_env() -> tuple[World, Actor, WorldConversation, FakeConnection, Link, Conversation]:
    world, _ = make_world()
    who = new_consumer(world)
    fake = FakeConnection(brand=False, user_id=who.id)
    link = Link(world, fake, consumer_id=who.id)
    wire_to_world(fake, world, who)
    fake.scripts["subscribe_messaging_events"] = lambda cid, did, from_seq: link.replay(did, from_seq)
    wconv = open_conv(world, who)
    link.pending.clear()
    conversation = fake.conversations.create_local(wconv.conv_id, skill_id="11")
    await conversation.subscribe_messaging()
    return world, who, wconv, fake, link, conversation


async def test_csat_validation_and_field() -> None:
    world, who, wconv, fake, _, conversation = await consumer_env()
    for bad in (0, 6, "5", True, 3.0, None):
        with pytest.raises(ConfigurationError, match="csat rate"):
            await conversation.set_csat(bad, True)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="csat status"):
        await conversation.set_csat(4, True, "GREAT")
    assert fake.called("update_conversation_field") == []
    field_update(world, who, wconv, CLOSE)
    await conversation.set_csat(5, True)
    assert fake.called("update_conversation_field")[-1].args[1] == [
        {"field": "CSATRate", "csatRate": 5, "csatResolutionConfirmation": True, "status": "FILLED"}
    ]
    assert wconv.csat == {"csatRate": 5, "csatResolutionConfirmation": True, "status": "FILLED"}


async def test_ttr_and_manual_ettr_validation() -> None:
    _, _, wconv, fake, _, conversation = await consumer_env()
    with pytest.raises(ConfigurationError):
        await conversation.set_ttr("SOON")
    with pytest.raises(ConfigurationError):
        await conversation.set_ttr("CUSTOM", -1)
    await conversation.set_ttr("URGENT")
    assert wconv.ttr_type == "URGENT"
    with pytest.raises(ConfigurationError):
        await conversation.set_manual_ettr(-5)
    assert fake.called("update_conversation_field")[-1].args[1] == [
        {"field": "TTRField", "ttrType": "URGENT", "value": 0}
    ]


async def test_upload_size_limit_and_type_sniffing() -> None:
    _, _, _, fake, link, conversation = await consumer_env()
    with pytest.raises(ConfigurationError, match="3 MB"):
        await conversation.upload_file(b"\x89PNG\r\n\x1a\n" + b"\x00" * MAX_UPLOAD_SIZE)
    with pytest.raises(ConfigurationError, match="unknown file type"):
        await conversation.upload_file(b"plain text, not an image")
    with pytest.raises(ConfigurationError, match="file_type"):
        await conversation.upload_file(PNG, file_type="EXE")
    with pytest.raises(ConfigurationError, match="empty"):
        await conversation.upload_file(b"")
    assert [c.name for c in fake.calls] == ["subscribe_messaging_events"]  # no I/O for any of these

    sequence = await conversation.upload_file(PNG, caption="logo")
    upload, put, publish = fake.calls[-3:]
    assert (upload.name, upload.args) == ("generate_upload_url", (len(PNG), "PNG"))
    assert (put.name, put.args[0], put.args[2]) == (
        "put_file",
        "/v1/AUTH_async-images/12345678/upload.PNG",
        PNG,
    )
    assert put.args[1] == {"temp_url_sig": "sig", "temp_url_expires": "1700000060"}
    assert publish.args[2] == {
        "type": "ContentEvent",
        "contentType": "hosted/file",
        "message": {
            "caption": "logo",
            "relativePath": "/v1/AUTH_async-images/12345678/upload.PNG",
            "fileType": "PNG",
        },
    }
    await link.flush()
    message = conversation.main_dialog.get_message(sequence)
    assert message is not None and message.is_downloadable
    assert (message.relative_path, message.file_type, message.caption) == (
        "/v1/AUTH_async-images/12345678/upload.PNG",
        "PNG",
        "logo",
    )
    for data, kind in ((JPEG, "JPG"), (GIF, "GIF")):
        await conversation.upload_file(data)
        assert fake.called("generate_upload_url")[-1].args == (len(data), kind)
    await conversation.upload_file(JPEG, file_type="jpeg")
    assert fake.called("generate_upload_url")[-1].args == (len(JPEG), "JPEG")

    fake.scripts["get_file"] = lambda path, query: b"bytes of " + path.encode()
    data = await conversation.download_file(message.relative_path or "")
    assert data == b"bytes of /v1/AUTH_async-images/12345678/upload.PNG"
    assert fake.called("generate_download_url")[-1].args == ("/v1/AUTH_async-images/12345678/upload.PNG",)


async def test_consumer_takeover_fields() -> None:
    world, who, wconv, fake, _, conversation = await consumer_env()
    fake.scripts.pop("update_conversation_field")
    with pytest.raises(InvalidStateError, match="no existing consumer"):
        await conversation.consumer_takeover("new-consumer")  # no state received yet
    _, changes = decode_conversation_changes(
        conversation_body(world, "s", [("UPSERT", wconv)], brand=False), brand=False
    )
    conversation.apply(changes[0].conversation)
    await conversation.consumer_takeover("new-consumer")
    assert fake.called("update_conversation_field")[-1].args[1] == [
        {"field": "ParticipantsChange", "type": "REMOVE", "userId": who.id, "role": "CONSUMER"},
        {"field": "ParticipantsChange", "type": "ADD", "userId": "new-consumer", "role": "CONSUMER"},
    ]


async def test_agent_notes_are_a_json_array() -> None:
    env = await brand_env()
    _, _, conversation = await assigned(env)
    result = await conversation.set_agent_note("first", name="Alice")
    assert result == {"truncated": False, "truncated_text": None}
    await env.link.flush()
    notes = json.loads(conversation.note or "")
    assert [(n["agentId"], n["noteContent"], n["name"]) for n in notes] == [(AGENT_OLD, "first", "Alice")]
    await conversation.set_agent_note("second", agent_id=BOT_OLD)
    await env.link.flush()
    await conversation.set_agent_note("replaced")
    await env.link.flush()
    notes = json.loads(conversation.note or "")
    assert sorted((n["agentId"], n["noteContent"]) for n in notes) == [
        (AGENT_OLD, "replaced"),
        (BOT_OLD, "second"),
    ]
    with pytest.raises(ConfigurationError, match="5000"):
        await conversation.set_agent_note("x" * 6000)
    result = await conversation.set_agent_note("y" * 6000, truncate_enabled=True)
    assert result["truncated"] is True and 0 < len(result["truncated_text"]) < 5000
    assert len(env.fake.called("update_conversation_field")[-1].args[1][0]["note"]) <= 5000


def test_hashing_helpers_match_json_stringify() -> None:
    from lpm.client.model.conversation import hash_body, sniff_file_type

    assert hash_body("héllo") == hashlib.sha256("héllo".encode()).hexdigest()
    assert (
        hash_body({"type": "text", "text": "é"})
        == hashlib.sha256('{"type":"text","text":"é"}'.encode()).hexdigest()
    )
    assert hash_body(None) is None
    assert [sniff_file_type(d) for d in (PNG, JPEG, GIF, b"xx")] == ["PNG", "JPG", "GIF", None]
