"""Request bodies shared by the transports (lpm.client.transport.bodies)."""

from __future__ import annotations

from lpm.client.transport.bodies import as_json, conversation_request, publish_request, user_profile_body


def test_conversation_request_defaults() -> None:
    body = as_json(conversation_request("123", None, None, None, ttr_def_name="NORMAL"))
    assert body == {
        "ttrDefName": "NORMAL",
        "channelType": "MESSAGING",
        "skillId": "-1",
        "brandId": "123",
        "conversationContext": {"type": "CustomContext", "name": "lpm-python-sdk"},
    }


def test_conversation_request_with_context_campaign_and_client_properties() -> None:
    context = {"type": "SharkContext", "lang": "en-US"}
    body = as_json(
        conversation_request(
            "123",
            "11",
            context,
            {"campaignId": 1, "engagementId": 2},
            ttr_def_name="URGENT",
            client_properties={"appId": "app"},
        )
    )
    assert body["skillId"] == "11" and body["ttrDefName"] == "URGENT"
    assert body["campaignInfo"] == {"campaignId": 1, "engagementId": 2}
    assert body["conversationContext"] == {
        "type": "SharkContext",
        "lang": "en-US",
        "clientProperties": {"type": ".ClientProperties", "appId": "app"},
    }
    assert context == {"type": "SharkContext", "lang": "en-US"}  # the caller's dict is not changed


def test_publish_body_names_the_audience_only_when_restricted() -> None:
    event = {"type": "ContentEvent", "contentType": "text/plain", "message": "hi"}
    assert as_json(publish_request("c", "d", event)) == {
        "dialogId": "d",
        "conversationId": "c",
        "event": event,
    }
    private = as_json(publish_request("c", "d", event, "AGENTS_AND_MANAGERS"))
    assert private["messageAudience"] == "AGENTS_AND_MANAGERS"


def test_user_profile_names() -> None:
    assert user_profile_body({"first_name": "A", "nickName": "n", "other": 1}) == {
        "firstName": "A",
        "nickName": "n",
        "other": 1,
    }
