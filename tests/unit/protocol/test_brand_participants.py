"""Brand participant maps that are not role -> list (found by the long fuzz run of make chaos)."""

from __future__ import annotations

import pytest

from lpm.protocol.notifications import NotificationError, decode_conversation_changes


def change(participants: object) -> dict[str, object]:
    return {
        "subscriptionId": "s1",
        "changes": [
            {
                "type": "UPSERT",
                "result": {
                    "convId": "c1",
                    "conversationDetails": {"participants": participants, "dialogs": []},
                },
            }
        ],
    }


@pytest.mark.parametrize("participants", [{"kind": True}, {"AGENT": "a.1"}, {"AGENT": {"x": 1}}])
def test_a_role_whose_ids_are_not_a_list_is_a_typed_error(participants: object) -> None:
    with pytest.raises(NotificationError):
        decode_conversation_changes(change(participants), brand=True)


def test_lists_of_ids_still_decode() -> None:
    _, changes = decode_conversation_changes(change({"AGENT": ["123.1"]}), brand=True)
    assert changes[0].conversation.conversation_id == "c1"
