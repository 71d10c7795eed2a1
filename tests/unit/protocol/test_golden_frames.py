"""Golden frames: checked by the SDK's decoders *and* by the emulator that produced them.

(a) every frame under ``tests/fixtures/frames/`` decodes with :func:`lpm.protocol.frames.decode_frame`
and the matching decoder of :mod:`lpm.protocol.notifications` into the expected normalized values;
(b) the emulator still renders exactly the committed generated frames (regenerate on purpose with
``.venv/bin/python tests/fixtures/make_frames.py`` and review the diff); (c) the hand-written
``spec_*.json`` frames, copied in shape from the protocol spec, decode too, anchoring both sides to
the spec rather than to each other.  Edge cases of the decoders close the file.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from lpm.emulator.config import default_world
from lpm.emulator.render import CONTROLLER_USER_ID, controller_pid
from lpm.enums import DialogType, ParticipantRole, RingState, coerce
from lpm.protocol.frames import Notification, Response, decode_frame
from lpm.protocol.notifications import (
    ConversationInfo,
    MessagingEventInfo,
    NotificationError,
    decode_agent_states,
    decode_conversation_changes,
    decode_messaging_events,
    decode_routing_tasks,
)
from lpm.protocol.types import Dialect, Notif, Req, canonical_notification, notification_type, response_type
from tests.fixtures.make_frames import (
    ACCOUNT,
    AGENT_OLD_ID,
    BOT_OLD_ID,
    CONSUMER_ID,
    CONVERSATION_ID,
    FRAMES_DIR,
    SURVEY_DIALOG_ID,
    build_frames,
)

_USERS = {u.user_id: u for spec in default_world().accounts for u in spec.users}
AGENT_PID = _USERS["1001"].pid
BOT_PID = _USERS["2001"].pid
SURVEY_BOT_PID = _USERS["2002"].pid  # the survey bot of skill 12
SURVEY_BOT_OLD_ID = f"{ACCOUNT}.2002"
# The platform's own participant of every MAIN dialog (lpm.emulator.render).
CONTROLLER_PID = controller_pid(ACCOUNT)
CONTROLLER_OLD_ID = f"{ACCOUNT}.{CONTROLLER_USER_ID}"

ALL_FILES = sorted(p.name for p in FRAMES_DIR.glob("*.json"))
SPEC_FILES = [name for name in ALL_FILES if name.startswith("spec_")]
GENERATED_FILES = [name for name in ALL_FILES if not name.startswith("spec_")]


def load(name: str) -> Notification | Response:
    frame = decode_frame((FRAMES_DIR / name).read_bytes())
    assert isinstance(frame, Notification | Response)
    return frame


def notification(name: str, notif: Notif) -> Any:
    """The body of a golden notification, checking its wire type against the dialect of the file."""
    frame = load(name)
    assert isinstance(frame, Notification)
    dialect = Dialect.BRAND_V2 if "brand_" in name else Dialect.CONSUMER_V3
    assert frame.type == notification_type(notif, dialect)
    return frame.body


def conversation(name: str, change_type: str = "UPSERT") -> ConversationInfo:
    brand = "brand_" in name
    body = notification(name, Notif.EX_CONVERSATION_CHANGE)
    subscription_id, changes = decode_conversation_changes(body, brand=brand)
    assert subscription_id == body["subscriptionId"]
    assert [c.type for c in changes] == [change_type]
    return changes[0].conversation


def events(name: str) -> list[MessagingEventInfo]:
    brand = "brand_" in name
    if name.endswith("_response.json"):
        frame = load(name)
        assert isinstance(frame, Response)
        assert frame.type == response_type(Req.QUERY_MESSAGES, Dialect.BRAND_V2)
        return decode_messaging_events(frame.body, brand=brand)
    return decode_messaging_events(notification(name, Notif.MESSAGING_EVENT), brand=brand)


def people(members: Any) -> list[tuple[str, str, str | None, str]]:
    return [(p.user_id, p.role, p.agent_id, p.state) for p in members]


# ---------------------------------------------------------------- (a) every frame decodes


def test_the_fixture_set_is_complete() -> None:
    assert len(GENERATED_FILES) >= 12 and len(SPEC_FILES) >= 3
    for kind in ("brand_", "consumer_"):
        assert any(name.startswith(kind) for name in GENERATED_FILES)


@pytest.mark.parametrize("name", ALL_FILES)
def test_every_golden_frame_decodes(name: str) -> None:
    frame = load(name)
    brand = "brand_" in name
    dialect = Dialect.BRAND_V2 if brand else Dialect.CONSUMER_V3
    if isinstance(frame, Response):
        assert frame.code == 200 and frame.type == response_type(Req.QUERY_MESSAGES, dialect)
        assert decode_messaging_events(frame.body, brand=brand)
        return
    kind = canonical_notification(frame.type)
    assert kind is not None, frame.type
    assert frame.type == notification_type(kind, dialect)
    if kind is Notif.EX_CONVERSATION_CHANGE:
        assert decode_conversation_changes(frame.body, brand=brand)[1]
    elif kind is Notif.MESSAGING_EVENT:
        assert decode_messaging_events(frame.body, brand=brand)
    elif kind is Notif.ROUTING_TASK:
        assert decode_routing_tasks(frame.body)[1]
    else:
        assert decode_agent_states(frame.body)[1]


def test_brand_agent_state() -> None:
    subscription_id, states = decode_agent_states(notification("brand_agent_state.json", Notif.AGENT_STATE))
    assert subscription_id
    [state] = states
    assert (state.availability, state.agent_id, state.channels, state.description) == (
        "ONLINE",
        AGENT_OLD_ID,
        ["MESSAGING"],
        "",
    )


def test_brand_routing_task() -> None:
    _, tasks = decode_routing_tasks(notification("brand_routing_task.json", Notif.ROUTING_TASK))
    [(change, task)] = tasks
    assert change == "UPSERT"
    assert (task.conversation_id, task.consumer_id, task.skill_id, task.account_id) == (
        CONVERSATION_ID,
        CONSUMER_ID,
        "12",
        ACCOUNT,
    )
    assert not task.task_completed
    [ring] = task.rings
    assert coerce(RingState, ring.state) is RingState.WAITING
    assert ring.ring_id.startswith(f"{CONVERSATION_ID}_{ACCOUNT}_")
    assert ring.expiration_ms == 72000  # milliseconds on the wire
    assert ring.weight is not None and ring.expiration_ts == ring.weight + 72000


def test_consumer_sees_the_new_conversation() -> None:
    conv = conversation("consumer_ex_conversation_upsert.json")
    assert (conv.conversation_id, conv.account_id, conv.skill_id, conv.state, conv.stage) == (
        CONVERSATION_ID,
        ACCOUNT,
        "12",
        "OPEN",
        "OPEN",
    )
    assert people(conv.participants) == [
        (CONSUMER_ID, "CONSUMER", None, "ACTIVE"),
        (CONTROLLER_PID, "CONTROLLER", None, "ACTIVE"),
    ]
    [main] = conv.dialogs
    assert main.dialog_id == CONVERSATION_ID and main.dialog_type == "MAIN"  # MAIN dialog id = conv id
    assert main.channel_type == "MESSAGING" and main.state == "OPEN"
    # Brand-only fields never reach a consumer (as the published consumer frames show).
    assert conv.context is None and conv.first_conversation is None and conv.last_content_event is None
    assert (conv.ttr_type, conv.ttr_value) == ("NORMAL", 1200)
    assert conv.raw is not None and conv.raw["convId"] == CONVERSATION_ID


def test_brand_sees_the_assigned_agent_by_pid_and_old_id() -> None:
    conv = conversation("brand_ex_conversation_upsert.json")
    expected = [
        (CONSUMER_ID, "CONSUMER", None, "ACTIVE"),
        (CONTROLLER_PID, "CONTROLLER", CONTROLLER_OLD_ID, "ACTIVE"),
        (AGENT_PID, "ASSIGNED_AGENT", AGENT_OLD_ID, "ACTIVE"),
    ]
    assert people(conv.participants) == expected
    assert people(conv.dialogs[0].participants) == expected
    assert conv.handler_account_id == ACCOUNT and conv.handler_skill_id == "12"
    assert conv.note == "" and conv.group_id == "-1"
    # Unread messages per participant (old ids for agents): nobody has read anything yet.
    assert conv.unread == {CONSUMER_ID: 0, AGENT_OLD_ID: 0}
    # The brand's context carries the consumer's client properties, the server's included.
    assert conv.context is not None and conv.context["type"] == "SharkContext"
    properties = conv.raw["conversationDetails"]["context"]["clientProperties"] if conv.raw else {}
    assert properties["appId"] == "golden-frames" and properties["ipAddress"] == "127.0.0.1"
    # the raw brand shapes are kept as received
    assert conv.raw is not None
    assert conv.raw["conversationDetails"]["participants"]["ASSIGNED_AGENT"] == [AGENT_OLD_ID]
    assert conv.raw["conversationDetails"]["participantsPId"]["ASSIGNED_AGENT"] == [AGENT_PID]


def test_brand_online_event_from_the_consumer() -> None:
    [event] = events("brand_online_event.json")
    assert (event.sequence, event.originator_id, event.originator_role, event.originator_agent_id) == (
        0,
        CONSUMER_ID,
        "CONSUMER",
        None,
    )
    assert (event.dialog_id, event.conversation_id, event.audience) == (
        CONVERSATION_ID,
        CONVERSATION_ID,
        "ALL",
    )
    assert event.event_type == "ContentEvent" and event.event["contentType"] == "text/plain"
    assert event.server_ts is not None
    assert event.client_properties is not None and event.client_properties["appId"] == "golden-frames"


def test_brand_private_message_echo() -> None:
    [event] = events("brand_online_event_private.json")
    assert (event.sequence, event.originator_id, event.originator_role, event.originator_agent_id) == (
        2,
        AGENT_PID,
        "ASSIGNED_AGENT",
        AGENT_OLD_ID,
    )
    assert event.audience == "AGENTS_AND_MANAGERS"


def test_brand_chat_state_has_no_sequence() -> None:
    [event] = events("brand_online_event_chat_state.json")
    assert event.event == {"type": "ChatStateEvent", "chatState": "ACTIVE"}
    assert event.sequence is None and event.server_ts is None
    assert event.originator_id == CONSUMER_ID


def test_brand_read_receipt() -> None:
    [event] = events("brand_online_event_accept_status.json")
    assert event.sequence == 3 and event.originator_id == CONSUMER_ID
    assert event.event == {"type": "AcceptStatusEvent", "status": "READ", "sequenceList": [1]}


def test_brand_query_messages_response_is_the_whole_history() -> None:
    history = events("brand_query_messages_response.json")
    assert [
        (e.sequence, e.originator_id, e.originator_agent_id, e.audience, e.event_type) for e in history
    ] == [
        (0, CONSUMER_ID, None, "ALL", "ContentEvent"),
        (1, AGENT_PID, AGENT_OLD_ID, "ALL", "ContentEvent"),
        (2, AGENT_PID, AGENT_OLD_ID, "AGENTS_AND_MANAGERS", "ContentEvent"),
        (3, CONSUMER_ID, None, "ALL", "AcceptStatusEvent"),
    ]


def test_consumer_history_replay_hides_private_messages() -> None:
    history = events("consumer_messaging_events.json")
    assert [(e.sequence, e.originator_id, e.originator_role, e.originator_agent_id) for e in history] == [
        (0, CONSUMER_ID, "CONSUMER", None),
        (1, AGENT_PID, "ASSIGNED_AGENT", None),
    ]
    assert all(e.audience == "ALL" and e.dialog_id == CONVERSATION_ID for e in history)


def test_consumer_sees_the_agent_typing() -> None:
    [event] = events("consumer_chat_state.json")
    assert event.event == {"type": "ChatStateEvent", "chatState": "COMPOSING"}
    assert (event.sequence, event.originator_id, event.originator_role) == (None, AGENT_PID, "ASSIGNED_AGENT")


def test_brand_sees_the_suggested_transfer() -> None:
    conv = conversation("brand_ex_conversation_suggested.json")
    # Only ACTIVE participants are conversation participants; the SUGGESTED agent is in the
    # dialog and missing from participantsPId, so (like node-agent-sdk) it keeps its old id.
    assert people(conv.participants) == [
        (CONSUMER_ID, "CONSUMER", None, "ACTIVE"),
        (CONTROLLER_PID, "CONTROLLER", CONTROLLER_OLD_ID, "ACTIVE"),
    ]
    assert people(conv.dialogs[0].participants) == [
        (CONSUMER_ID, "CONSUMER", None, "ACTIVE"),
        (CONTROLLER_PID, "CONTROLLER", CONTROLLER_OLD_ID, "ACTIVE"),
        (BOT_OLD_ID, "ASSIGNED_AGENT", BOT_OLD_ID, "SUGGESTED"),
    ]
    assert conv.raw is not None and "ASSIGNED_AGENT" not in conv.raw["conversationDetails"]["participantsPId"]


@pytest.mark.parametrize("dialect", ["consumer", "brand"])
def test_post_survey_dialog(dialect: str) -> None:
    conv = conversation(f"{dialect}_ex_conversation_post_survey.json")
    brand = dialect == "brand"
    # state is the MAIN dialog's; stage stays OPEN while the survey is open
    assert (conv.state, conv.stage, conv.close_reason) == ("CLOSE", "OPEN", "AGENT")
    main, survey = conv.dialogs
    assert (main.dialog_id, main.state, main.closed_by, main.closed_cause) == (
        CONVERSATION_ID,
        "CLOSE",
        "AGENT",
        "Closed by agent",
    )
    assert main.end_ts is not None
    assert coerce(DialogType, survey.dialog_type) is DialogType.POST_SURVEY
    assert (survey.dialog_id, survey.state) == (SURVEY_DIALOG_ID, "OPEN")
    assert survey.meta_data is not None and set(survey.meta_data) == {"appInstallId"}
    assert people(survey.participants) == [
        (CONSUMER_ID, "CONSUMER", None, "ACTIVE"),
        (SURVEY_BOT_PID, "AGENT", SURVEY_BOT_OLD_ID if brand else None, "ACTIVE"),
        (AGENT_PID, "READER", AGENT_OLD_ID if brand else None, "ACTIVE"),
    ]
    # the same agent appears once per role it holds
    roles = [(p.user_id, coerce(ParticipantRole, p.role)) for p in conv.participants]
    assert (AGENT_PID, ParticipantRole.ASSIGNED_AGENT) in roles and (
        AGENT_PID,
        ParticipantRole.READER,
    ) in roles


def test_consumer_gets_the_survey_question() -> None:
    [event] = events("consumer_messaging_events_post_survey.json")
    assert (event.dialog_id, event.sequence, event.originator_id, event.originator_role) == (
        SURVEY_DIALOG_ID,
        0,  # every dialog has its own sequence
        SURVEY_BOT_PID,
        "AGENT",
    )


def test_consumer_sees_the_conversation_end() -> None:
    conv = conversation("consumer_ex_conversation_closed.json")
    assert (conv.state, conv.stage) == ("CLOSE", "CLOSE")
    survey = conv.dialogs[1]
    assert (survey.state, survey.closed_by, survey.closed_cause) == ("CLOSE", "CONSUMER", "Survey completed")
    # A consumer's frames carry no lastContentEventNotification (brand-only); the brand's does.
    assert conv.last_content_event is None
    _, [change] = decode_conversation_changes(_golden_body("brand_ex_conversation_delete.json"), brand=True)
    last = change.conversation.last_content_event
    assert last is not None and (last.dialog_id, last.event["message"]) == (SURVEY_DIALOG_ID, "5")


def test_brand_subscription_drops_the_closed_conversation() -> None:
    # stage filter ["OPEN"]: the closed conversation leaves with a DELETE carrying its full state
    conv = conversation("brand_ex_conversation_delete.json", change_type="DELETE")
    assert conv.stage == "CLOSE" and conv.conversation_id == CONVERSATION_ID
    assert conv.last_content_event is not None and conv.last_content_event.originator_agent_id is None


# ---------------------------------------------------------------- (b) the emulator still renders them


@pytest.fixture(scope="module")
def generated() -> dict[str, Any]:
    return build_frames()


def test_emulator_renders_the_committed_frames(generated: dict[str, Any]) -> None:
    hint = "the emulator's frames changed: regenerate with tests/fixtures/make_frames.py and review the diff"
    assert sorted(generated) == GENERATED_FILES, hint
    for name in GENERATED_FILES:
        committed = json.loads((FRAMES_DIR / name).read_text(encoding="utf-8"))
        assert generated[name] == committed, f"{name}: {hint}"


def test_generation_is_deterministic(generated: dict[str, Any]) -> None:
    # Random uuid4s differ between runs; the stabilized output must not.
    assert build_frames() == generated


# ---------------------------------------------------------------- (c) frames written from the spec


def test_spec_consumer_ex_conversation() -> None:
    conv = conversation("spec_consumer_ex_conversation.json")
    assert (conv.conversation_id, conv.account_id, conv.skill_id) == (
        "c0ffee00-1234-4abc-8def-0123456789ab",
        "55501234",
        "777001",
    )
    agent = "a9b8c7d6-0000-4111-8222-333344445555"
    assert [(p.user_id, p.role) for p in conv.participants] == [
        (agent, "ASSIGNED_AGENT"),
        ("f1e2d3c4-aaaa-4bbb-8ccc-ddddeeeeffff", "CONSUMER"),
        ("0a1b2c3d-1111-4222-8333-444455556666", "CONTROLLER"),
        ("9f8e7d6c-5555-4666-8777-888899990000", "AGENT"),
        (agent, "READER"),
    ]
    assert all(p.agent_id is None for p in conv.participants)
    main, survey = conv.dialogs
    assert (main.closed_by, main.closed_cause, main.end_ts) == (
        "CONSUMER",
        "Closed by consumer",
        1600000900000,
    )
    assert survey.dialog_type == "POST_SURVEY" and survey.meta_data == {
        "appInstallId": "4d3c2b1a-9999-4888-8777-666655554444"
    }
    assert (conv.ttr_type, conv.ttr_value, conv.manual_ettr, conv.effective_ttr) == (
        "PRIORITIZED",
        600,
        1600030000000,
        -1,
    )
    assert conv.delay == {"type": "NIGHT", "tillWhen": 1600030000000}
    assert conv.last_content_event is not None and conv.last_content_event.sequence == 7


def test_spec_brand_ex_conversation() -> None:
    conv = conversation("spec_brand_ex_conversation.json")
    consumer = "b7c6d5e4-2222-4333-8444-555566667777"
    manager_pid = "11111111-aaaa-4aaa-8aaa-111111111111"
    assert people(conv.participants) == [
        (consumer, "CONSUMER", None, "ACTIVE"),
        (manager_pid, "MANAGER", "55501234.880011", "ACTIVE"),
        ("22222222-bbbb-4bbb-8bbb-222222222222", "MANAGER", "55501234.880022", "ACTIVE"),
        # a CONTROLLER missing from participantsPId keeps its old id
        ("55501234.880033", "CONTROLLER", "55501234.880033", "ACTIVE"),
    ]
    # dialog participants are renamed to PIDs in order per role
    assert people(conv.dialogs[0].participants) == [
        (consumer, "CONSUMER", None, "ACTIVE"),
        (manager_pid, "MANAGER", "55501234.880011", "ACTIVE"),
    ]
    assert conv.unread == {consumer: 1, "55501234.880011": 0}
    assert (conv.note, conv.group_id, conv.csat_rate, conv.close_reason) == ("", "4411", 0, "AGENT")
    assert conv.context is not None and conv.context["type"] == "CustomContext"
    last = conv.last_content_event
    assert last is not None
    assert (last.originator_id, last.originator_agent_id, last.originator_role, last.sequence) == (
        manager_pid,
        "55501234.880011",
        "MANAGER",
        12,
    )


def test_spec_brand_online_event() -> None:
    [event] = events("spec_brand_online_event.json")
    assert (event.originator_id, event.originator_agent_id, event.originator_role, event.sequence) == (
        "44444444-dddd-4ddd-8ddd-444444444444",
        "55501234.990044",
        "ASSIGNED_AGENT",
        4,
    )
    assert event.metadata == [{"type": "ExternalId", "id": "crm-ticket-5521"}]
    assert event.client_properties == {"type": ".ClientProperties", "ipAddress": "203.0.113.5"}
    assert event.server_ts == 1620000001234


def test_spec_brand_routing_task() -> None:
    subscription_id, tasks = decode_routing_tasks(
        notification("spec_brand_routing_task.json", Notif.ROUTING_TASK)
    )
    assert subscription_id == "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d"
    [(change, task)] = tasks
    assert change == "UPSERT"
    assert (task.conversation_id, task.consumer_id, task.skill_id, task.account_id) == (
        "e1e2e3e4-5555-4666-8777-888899990001",
        "c1c2c3c4-6666-4777-8888-999900001111",
        "-1",
        "55501234",
    )
    [ring] = task.rings
    assert (ring.state, ring.expiration_ms, ring.expiration_ts, ring.weight) == (
        "WAITING",
        72000,
        1620000072000,
        1620003600000,
    )


# ---------------------------------------------------------------- decoder edge cases


def _golden_body(name: str) -> Any:
    body = json.loads((FRAMES_DIR / name).read_text(encoding="utf-8"))["body"]
    return copy.deepcopy(body)


@pytest.mark.parametrize(
    "name", ["consumer_ex_conversation_upsert.json", "brand_ex_conversation_upsert.json"]
)
def test_missing_conversation_details_is_a_notification_error(name: str) -> None:
    body = _golden_body(name)
    del body["changes"][0]["result"]["conversationDetails"]
    with pytest.raises(NotificationError, match=f"{CONVERSATION_ID} is missing conversationDetails"):
        decode_conversation_changes(body, brand=name.startswith("brand"))


def test_suggested_brand_participant_missing_from_participants_pid() -> None:
    # A hand-made variant: an ASSIGNED agent plus a SUGGESTED one that only the dialog names.
    body = _golden_body("brand_ex_conversation_upsert.json")
    details = body["changes"][0]["result"]["conversationDetails"]
    details["dialogs"][0]["participantsDetails"].append(
        {"id": BOT_OLD_ID, "role": "ASSIGNED_AGENT", "state": "SUGGESTED"}
    )
    _, [change] = decode_conversation_changes(body, brand=True)
    assert people(change.conversation.dialogs[0].participants) == [
        (CONSUMER_ID, "CONSUMER", None, "ACTIVE"),
        (CONTROLLER_PID, "CONTROLLER", CONTROLLER_OLD_ID, "ACTIVE"),
        (AGENT_PID, "ASSIGNED_AGENT", AGENT_OLD_ID, "ACTIVE"),
        (BOT_OLD_ID, "ASSIGNED_AGENT", BOT_OLD_ID, "SUGGESTED"),
    ]
    # A SUGGESTED participant named by PID (no dot: not an old id) is taken as a PID.
    details["dialogs"][0]["participantsDetails"][-1]["id"] = BOT_PID
    _, [change] = decode_conversation_changes(body, brand=True)
    assert people(change.conversation.dialogs[0].participants)[-1] == (
        BOT_PID,
        "ASSIGNED_AGENT",
        None,
        "SUGGESTED",
    )


def test_unknown_enum_values_are_kept_as_strings() -> None:
    body = _golden_body("brand_ex_conversation_upsert.json")
    change = body["changes"][0]
    change["type"] = "MERGE"
    details = change["result"]["conversationDetails"]
    details["state"] = "ARCHIVED"
    details["ttr"]["ttrType"] = "LEISURELY"
    dialog = details["dialogs"][0]
    dialog.update(dialogType="HOLOGRAM", channelType="TELEPATHY", state="PAUSED")
    dialog["participantsDetails"][2].update(role="SUPERVISOR", state="HOVERING")
    _, [decoded] = decode_conversation_changes(body, brand=True)
    conv = decoded.conversation
    assert decoded.type == "MERGE" and conv.state == "ARCHIVED" and conv.ttr_type == "LEISURELY"
    d = conv.dialogs[0]
    assert (d.dialog_type, d.channel_type, d.state) == ("HOLOGRAM", "TELEPATHY", "PAUSED")
    assert people(d.participants)[2] == (AGENT_PID, "SUPERVISOR", AGENT_OLD_ID, "HOVERING")
    assert coerce(DialogType, d.dialog_type) == "HOLOGRAM" and not isinstance(
        coerce(DialogType, d.dialog_type), DialogType
    )

    event = _golden_body("brand_online_event.json")
    event.update(messageAudience="EVERYBODY_ELSE")
    event["originatorMetadata"]["role"] = "OBSERVER"
    event["event"] = {"type": "TelepathyEvent", "thought": "hello"}
    [info] = decode_messaging_events(event, brand=True)
    assert (info.audience, info.originator_role, info.event_type) == (
        "EVERYBODY_ELSE",
        "OBSERVER",
        "TelepathyEvent",
    )

    routing = _golden_body("brand_routing_task.json")
    routing["changes"][0]["result"]["ringsDetails"][0]["ringState"] = "AUTO_ACCEPT"
    [(_, task)] = decode_routing_tasks(routing)[1]
    assert task.rings[0].state == "AUTO_ACCEPT" and coerce(RingState, task.rings[0].state) == "AUTO_ACCEPT"

    states = _golden_body("brand_agent_state.json")
    states["changes"][0]["result"]["availability"] = "OCCUPIED"
    assert decode_agent_states(states)[1][0].availability == "OCCUPIED"


def test_single_element_changes() -> None:
    # Live messaging events usually come one per notification; the consumer body still wraps it.
    [event] = decode_messaging_events(_golden_body("consumer_chat_state.json"), brand=False)
    assert event.originator_id == AGENT_PID
    body = _golden_body("consumer_messaging_events.json")
    body["changes"] = body["changes"][:1]
    [only] = decode_messaging_events(body, brand=False)
    assert only.sequence == 0 and only.originator_id == CONSUMER_ID
    # an ExConversation notification with exactly one change
    _, changes = decode_conversation_changes(
        _golden_body("consumer_ex_conversation_upsert.json"), brand=False
    )
    assert len(changes) == 1
    # an empty snapshot is valid too
    assert decode_conversation_changes({"subscriptionId": "s", "changes": []}, brand=True) == ("s", [])


def test_changes_that_are_not_an_array_are_refused() -> None:
    body = _golden_body("consumer_ex_conversation_upsert.json")
    body["changes"] = body["changes"][0]
    with pytest.raises(NotificationError, match="changes"):
        decode_conversation_changes(body, brand=False)


def test_metadata_may_be_null_and_events_may_be_bare() -> None:
    # protocol 5.1.1: metadata may be absent, an array or null; older traces carry only the
    # schema's required fields.
    bare = {
        "sequence": 3,
        "originatorId": CONSUMER_ID,
        "serverTimestamp": 1,
        "dialogId": "d",
        "metadata": None,
    }
    [event] = decode_messaging_events(
        {"changes": [{**bare, "event": {"type": "ContentEvent", "message": "x"}}]}, brand=False
    )
    assert event.metadata is None and event.audience == "ALL" and event.originator_role is None


def test_change_without_dialog_id_takes_the_body_dialog_id() -> None:
    body = {
        "dialogId": "d1",
        "changes": [{"sequence": 1, "originatorId": "c1", "event": {"type": "ContentEvent"}}],
    }
    [event] = decode_messaging_events(body, brand=False)
    assert event.dialog_id == "d1"


def test_older_v3_participants_pid_map() -> None:
    body = _golden_body("consumer_ex_conversation_upsert.json")
    details = body["changes"][0]["result"]["conversationDetails"]
    del details["participants"]
    details["participantsPId"] = {"CONSUMER": [CONSUMER_ID], "ASSIGNED_AGENT": [AGENT_PID]}
    _, [change] = decode_conversation_changes(body, brand=False)
    assert [(p.user_id, p.role) for p in change.conversation.participants] == [
        (CONSUMER_ID, "CONSUMER"),
        (AGENT_PID, "ASSIGNED_AGENT"),
    ]


def test_consumer_frames_do_not_show_suggested_agents() -> None:
    from lpm.emulator import render
    from lpm.emulator.entities import Actor, Participant
    from lpm.emulator.world import World
    from lpm.protocol import requests as pm

    world = World(clock=lambda: 1_700_000_000.0)
    acc = world.add_account(ACCOUNT)
    for user in _USERS.values():
        acc.add_user(user)
    consumer = world.add_consumer(ACCOUNT, "unauthenticated", consumer_id=CONSUMER_ID)
    conv = world.request_conversation(
        Actor(ACCOUNT, "consumer", consumer.consumer_id), pm.ConsumerRequestConversationBody()
    )
    conv.main.participants.append(Participant(id="2001", role="ASSIGNED_AGENT", state="SUGGESTED"))
    details = render.conversation_result(world, conv, brand=False)["conversationDetails"]
    # The consumer dialect names no participant state (a v2.1 addition): only the consumer and
    # the CONTROLLER, both active, are shown.
    shown = details["dialogs"][0]["participantsDetails"]
    assert [p["role"] for p in shown] == ["CONSUMER", "CONTROLLER"]
    assert all("state" not in p for p in shown)


@pytest.mark.parametrize(
    ("name", "brand"),
    [("consumer_ex_conversation_upsert.json", False), ("brand_ex_conversation_upsert.json", True)],
)
def test_a_role_whose_ids_are_not_a_list_is_a_notification_error(name: str, brand: bool) -> None:
    """A role -> ids map with ``true`` in place of a list (what the long fuzz run found) used to
    escape as a ``TypeError``."""
    body = _golden_body(name)
    details = body["changes"][0]["result"]["conversationDetails"]
    details.pop("participantsPId", None)
    details["participants"] = {"CONSUMER": True}
    with pytest.raises(NotificationError, match="not a list"):
        decode_conversation_changes(body, brand=brand)
