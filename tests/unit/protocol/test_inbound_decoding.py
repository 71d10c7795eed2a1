"""A socket's notification bodies are decoded once, from their JSON (``msgspec.Raw``), straight
into the typed views: they must mean exactly what the same bodies as Python objects mean (the
webhooks path, and the reference), whatever the frame."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from lpm.protocol import frames
from lpm.protocol import notifications as n
from lpm.protocol.types import Notif, canonical_notification

FRAMES = Path(__file__).resolve().parents[2] / "fixtures" / "frames"


def _is_notification(path: Path) -> bool:
    data = json.loads(path.read_text())
    return isinstance(data, dict) and data.get("kind") == "notification"


NOTIFICATION_FILES = sorted(
    p for p in [*FRAMES.glob("*.json"), *(FRAMES / "published").glob("*.json")] if _is_notification(p)
)


def _decode(kind: Notif | None, body: Any, brand: bool) -> Any:
    if kind is Notif.EX_CONVERSATION_CHANGE:
        return n.decode_conversation_changes(body, brand=brand)
    if kind is Notif.MESSAGING_EVENT:
        return n.decode_messaging_events(body, brand=brand)
    if kind is Notif.ROUTING_TASK:
        return n.decode_routing_tasks(body)
    if kind is Notif.AGENT_STATE:
        return n.decode_agent_states(body)
    return None


def _outcome(kind: Notif | None, body: Any, brand: bool) -> Any:
    """What the body decodes to; a conversation's JSON as its value (whitespace aside)."""
    try:
        decoded = _decode(kind, body, brand)
    except n.NotificationError:
        return "NotificationError"
    if kind is Notif.EX_CONVERSATION_CHANGE:
        sub_id, changes = decoded
        return sub_id, [
            (c.type, msgspec.structs.replace(c.conversation, raw_json=None), c.conversation.raw)
            for c in changes
        ]
    return decoded


@pytest.mark.parametrize("path", NOTIFICATION_FILES, ids=lambda p: p.name)
@pytest.mark.parametrize("brand", [True, False])
def test_a_body_means_the_same_as_json_and_as_objects(path: Path, brand: bool) -> None:
    data = path.read_bytes()
    inbound = frames.decode_inbound(data)
    assert isinstance(inbound, frames.InboundNotification)
    reference = frames.decode_frame(data)
    assert isinstance(reference, frames.Notification)
    assert inbound.body == reference.body
    kind = canonical_notification(inbound.type)
    from_json = _outcome(kind, inbound.raw, brand)
    assert from_json == _outcome(kind, reference.body, brand)
    # Twice: the second time from the remembered participant lists.
    assert _outcome(kind, inbound.raw, brand) == from_json
    if kind is Notif.EX_CONVERSATION_CHANGE and from_json != "NotificationError":
        for (_, _, raw), raw_change in zip(from_json[1], reference.body["changes"], strict=True):
            assert raw == raw_change["result"]


def _upsert_body() -> dict[str, Any]:
    body: dict[str, Any] = json.loads((FRAMES / "brand_ex_conversation_upsert.json").read_text())["body"]
    return body


def test_remembered_participants_are_fresh_lists_of_the_same_values() -> None:
    raw = msgspec.Raw(msgspec.json.encode(_upsert_body()))
    _, [first] = n.decode_conversation_changes(raw, brand=True)
    _, [second] = n.decode_conversation_changes(raw, brand=True)
    a, b = first.conversation, second.conversation
    assert a.participants == b.participants and a.participants is not b.participants
    assert a.dialogs[0].participants == b.dialogs[0].participants
    assert a.dialogs[0].participants is not b.dialogs[0].participants
    a.participants.clear()  # an application's change to one notification's list stays there
    _, [third] = n.decode_conversation_changes(raw, brand=True)
    assert third.conversation.participants == b.participants


def test_an_invalid_participant_part_is_named_by_its_path() -> None:
    body = _upsert_body()
    body["changes"][0]["result"]["conversationDetails"]["dialogs"][0]["participantsDetails"][1]["id"] = 7
    with pytest.raises(n.NotificationError) as raised:
        n.decode_conversation_changes(msgspec.Raw(msgspec.json.encode(body)), brand=True)
    assert "$.changes[0].result.conversationDetails.dialogs[0].participantsDetails[1].id" in str(raised.value)
    body = _upsert_body()
    body["changes"][0]["result"]["conversationDetails"]["participantsPId"] = ["not", "a", "map"]
    with pytest.raises(
        n.NotificationError, match=r"\$\.changes\[0\]\.result\.conversationDetails\.participantsPId"
    ):
        n.decode_conversation_changes(body, brand=True)


def test_a_messaging_body_with_changes_is_read_as_such() -> None:
    """A brand event body is decoded straight into its struct, unless it is a ``{changes}`` body."""
    event = {"event": {"type": "ContentEvent", "message": "hi"}, "dialogId": "d", "sequence": 1}
    both = {**event, "changes": [{**event, "sequence": 2}]}
    [single] = n.decode_messaging_events(msgspec.Raw(msgspec.json.encode(event)), brand=True)
    [from_changes] = n.decode_messaging_events(msgspec.Raw(msgspec.json.encode(both)), brand=True)
    assert single.sequence == 1 and from_changes.sequence == 2
    assert from_changes == n.decode_messaging_events(both, brand=True)[0]


def test_a_history_page_decoded_from_its_json_is_the_same_events() -> None:
    frame = json.loads((FRAMES / "brand_query_messages_response.json").read_text())
    page = frame["body"]
    assert isinstance(page, list) and page
    as_json = msgspec.Raw(msgspec.json.encode(page))
    assert n.decode_query_messages(as_json, brand=True) == n.decode_messaging_events(page, brand=True)
    assert n.decode_query_messages(page, brand=True) == n.decode_messaging_events(page, brand=True)
    for not_a_page in ({"x": 1}, None, "text"):
        assert n.decode_query_messages(msgspec.Raw(msgspec.json.encode(not_a_page)), brand=True) == []
    bad = [*page, {"event": {"type": "ContentEvent"}, "sequence": -1}]
    with pytest.raises(n.NotificationError) as from_json:
        n.decode_query_messages(msgspec.Raw(msgspec.json.encode(bad)), brand=True)
    with pytest.raises(n.NotificationError) as from_objects:
        n.decode_messaging_events(bad, brand=True)
    assert str(from_json.value) == str(from_objects.value)


def _full(change: dict[str, Any]) -> n.ConversationInfo:
    """A change's conversation decoded in full, nothing remembered (raw JSON left out)."""
    raw = msgspec.Raw(msgspec.json.encode(change["result"]))
    return msgspec.structs.replace(n._decode_result(raw, True, 0, False), raw_json=None)


def _decoded(body: dict[str, Any]) -> n.ConversationChange:
    _, [change] = n.decode_conversation_changes(msgspec.Raw(msgspec.json.encode(body)), brand=True)
    return change


def test_a_live_update_of_the_same_details_keeps_their_token_and_means_the_same() -> None:
    """What a new message changes (the update times, the unread counts, the effective TTR, the
    last content event) keeps the details token; the conversation is what a full decode gives."""
    body = _upsert_body()
    first = _decoded(body)
    change = body["changes"][0]
    result = change["result"]
    result["lastUpdateTime"] += 10
    result["conversationDetails"]["metaDataLastUpdateTs"] = 1700000009999
    result["numberOfunreadMessages"] = {key: 3 for key in result["numberOfunreadMessages"]}
    result["effectiveTTR"] = 1700000100000
    result["lastContentEventNotification"] = {
        "sequence": 4,
        "originatorId": "12345678.1001",
        "originatorPId": "a1c5b2f5-7a28-5d8f-9a0d-8b0b1c9a0b11",
        "serverTimestamp": 1700000009999,
        "event": {"type": "ContentEvent", "message": "new"},
        "conversationId": result["convId"],
        "dialogId": result["convId"],
    }
    second = _decoded(body)
    assert first.details_token is not None and second.details_token == first.details_token
    assert msgspec.structs.replace(second.conversation, raw_json=None) == _full(change)
    assert second.conversation.last_content_event is not None
    assert second.conversation.raw == result  # its own JSON, not the first one's
    # What is remembered keeps no frame alive.
    assert all(kept.raw_json is None for _, kept, _ in n._DETAILS.values())
    # Lists of its own, as for any decoded notification.
    assert second.conversation.participants is not first.conversation.participants
    assert second.conversation.dialogs[0].participants is not first.conversation.dialogs[0].participants


def test_changed_details_get_a_new_token_and_a_change_of_many_none() -> None:
    body = _upsert_body()
    first = _decoded(body)
    change = body["changes"][0]
    change["result"]["conversationDetails"]["note"] = "a new note"
    second = _decoded(body)
    assert second.details_token is not None and second.details_token != first.details_token
    assert second.conversation.note == "a new note"
    assert msgspec.structs.replace(second.conversation, raw_json=None) == _full(change)
    body["changes"] = [change] * (n.REMEMBERED_UP_TO_CHANGES + 1)
    _, changes = n.decode_conversation_changes_lazily(msgspec.Raw(msgspec.json.encode(body)), brand=True)
    assert [c.details_token for c in changes] == [None] * len(body["changes"])
