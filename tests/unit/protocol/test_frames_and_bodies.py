"""The sans-I/O protocol layer: type-name dialects, frame codec, body models."""

from __future__ import annotations

import pytest

from lpm.protocol import frames
from lpm.protocol import requests as pm
from lpm.protocol.types import (
    BRAND_REQUESTS,
    CONSUMER_REQUESTS,
    Dialect,
    Notif,
    Req,
    canonical_notification,
    canonical_request,
    notification_type,
    request_wire_name,
    response_type,
)


@pytest.mark.parametrize(
    ("wire", "canonical"),
    [
        ("ms.PublishEvent", Req.PUBLISH_EVENT),
        (".ams.ms.PublishEvent", Req.PUBLISH_EVENT),
        (".GetClock", Req.GET_CLOCK),
        ("GetClock", Req.GET_CLOCK),
        (".ams.aam.SubscribeExConversations", Req.SUBSCRIBE_EX_CONVERSATIONS),
        ("cqm.SubscribeExConversations", Req.SUBSCRIBE_EX_CONVERSATIONS),
        (".ams.aam.UnSubscribeExConversations", Req.UNSUBSCRIBE_EX_CONVERSATIONS),
        ("up.GetUserProfile", Req.GET_USER_PROFILE),
        (".ams.userprofile.GetUserProfile", Req.GET_USER_PROFILE),
        (".ams.ms.token.GenerateDownloadToken", Req.GENERATE_DOWNLOAD_TOKEN),
        ("rs.SetAgentState", Req.SET_AGENT_STATE),
        (".ams.routing.UpdateRingState", Req.UPDATE_RING_STATE),
    ],
)
def test_canonical_request_accepts_every_spelling(wire: str, canonical: Req) -> None:
    assert canonical_request(wire) is canonical


def test_unknown_request_type_is_none() -> None:
    assert canonical_request("ms.Nope") is None
    assert canonical_request("") is None


def test_every_request_round_trips_through_both_dialects() -> None:
    for req in Req:
        for dialect in Dialect:
            assert canonical_request(request_wire_name(req, dialect)) is req
            assert response_type(req, dialect)


def test_brand_names_are_the_ams_names_node_agent_sdk_sends() -> None:
    assert request_wire_name(Req.GET_CLOCK, Dialect.BRAND_V2) == ".GetClock"
    assert (
        request_wire_name(Req.SUBSCRIBE_EX_CONVERSATIONS, Dialect.BRAND_V2)
        == ".ams.aam.SubscribeExConversations"
    )
    assert request_wire_name(Req.PUBLISH_EVENT, Dialect.BRAND_V2) == ".ams.ms.PublishEvent"
    assert response_type(Req.QUERY_MESSAGES, Dialect.BRAND_V2) == ".ams.ms.QueryMessages$Response"
    assert response_type(Req.GET_USER_PROFILE, Dialect.BRAND_V2) == ".ams.userprofile.GetUserProfile$Response"


def test_notification_names_per_dialect() -> None:
    assert notification_type(Notif.MESSAGING_EVENT, Dialect.BRAND_V2) == ".ams.ms.OnlineEventDistribution"
    assert notification_type(Notif.MESSAGING_EVENT, Dialect.CONSUMER_V3) == "ms.MessagingEventNotification"
    for notif in Notif:
        for dialect in Dialect:
            assert canonical_notification(notification_type(notif, dialect)) is notif


def test_dialect_request_sets() -> None:
    assert Req.CONSUMER_REQUEST_CONVERSATION in CONSUMER_REQUESTS
    assert Req.CONSUMER_REQUEST_CONVERSATION not in BRAND_REQUESTS
    assert Req.UPDATE_RING_STATE in BRAND_REQUESTS
    assert Req.UPDATE_RING_STATE not in CONSUMER_REQUESTS


def test_decode_request_with_numeric_id_and_null_headers() -> None:
    frame = frames.decode_frame('{"kind":"req","id":7,"type":"GetClock","headers":null,"metadata":null}')
    assert isinstance(frame, frames.Request)
    assert frame.id == "7"
    assert frame.headers is None


def test_decode_request_without_kind() -> None:
    frame = frames.decode_frame('{"id":"1","type":"cm.ConsumerRequestConversation"}')
    assert isinstance(frame, frames.Request)
    assert frame.body is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("{bad", "malformed JSON"),
        ("[1,2]", "JSON object"),
        ('{"kind":"req","type":"GetClock"}', "id"),
        ('{"kind":"req","id":"' + "x" * 65 + '","type":"GetClock"}', "1-64"),
        ('{"kind":"req","id":"1"}', "type"),
        ('{"kind":"req","id":true,"type":"GetClock"}', "id"),
        ('{"kind":"weird"}', "unknown frame kind"),
        ('{"kind":"resp","reqId":"1","code":"x"}', "code"),
    ],
)
def test_decode_rejects_bad_frames(data: str, message: str) -> None:
    with pytest.raises(frames.FrameError, match=message):
        frames.decode_frame(data)


def test_decode_response_and_notification() -> None:
    resp = frames.decode_frame('{"kind":"resp","reqId":"1","code":"OK","type":"x","body":{"sequence":1}}')
    assert isinstance(resp, frames.Response)
    assert resp.code == 200
    note = frames.decode_frame('{"kind":"notification","type":"ms.MessagingEventNotification","body":{}}')
    assert isinstance(note, frames.Notification)


def test_encode_omits_unset_fields() -> None:
    data = frames.encode(frames.Request(id="1", type="GetClock"))
    assert data == b'{"kind":"req","id":"1","type":"GetClock"}'
    resp = frames.encode(frames.Response(reqId=None, code=400, type="StringResponse", body="bad"))
    assert resp == b'{"kind":"resp","reqId":null,"code":400,"type":"StringResponse","body":"bad"}'


def test_publish_body_models() -> None:
    body = pm.parse_body(
        pm.PublishEventBody,
        {"dialogId": "d", "event": {"type": "AcceptStatusEvent", "status": "READ", "sequenceList": [1, 2]}},
    )
    assert isinstance(body.event, pm.AcceptStatusEvent)
    assert body.messageAudience == "ALL"
    with pytest.raises(pm.BodyError, match=r"event\.type"):
        pm.parse_body(pm.PublishEventBody, {"dialogId": "d", "event": {"type": "Nope"}})
    with pytest.raises(pm.BodyError, match="dialogId"):
        pm.parse_body(pm.PublishEventBody, {"event": {"type": "ChatStateEvent", "chatState": "COMPOSING"}})


def test_update_field_accepts_object_or_array() -> None:
    one = pm.parse_update_conversation_field(
        {"conversationId": "c", "conversationField": {"field": "Stage", "conversationState": "CLOSE"}}
    )
    many = pm.parse_update_conversation_field(
        {
            "conversationId": "c",
            "conversationField": [
                {"field": "ParticipantsChange", "type": "REMOVE", "role": "ASSIGNED_AGENT"},
                {"field": "Skill", "type": "UPDATE", "skill": "12"},
            ],
        }
    )
    assert isinstance(one.conversationField[0], pm.StageField)
    assert isinstance(many.conversationField[1], pm.SkillField)


def test_string_numbers_are_accepted_where_clients_send_them() -> None:
    body = pm.parse_body(pm.GenerateUploadURLBody, {"fileSize": "1000", "fileType": "PNG"})
    assert body.fileSize == 1000


def test_routing_subscription_update_takes_the_subscribe_filters() -> None:
    raw = {"subscriptionId": "s1", "skillId": 12, "conversationId": "c1", "agentId": "a1"}
    body = pm.parse_body(pm.UpdateRoutingTaskSubscriptionBody, raw)
    assert (body.subscriptionId, body.skillId, body.conversationId, body.agentId) == ("s1", 12, "c1", "a1")
    assert pm.parse_body(pm.UpdateRoutingTaskSubscriptionBody, {"subscriptionId": "s2"}).skillId is None
    with pytest.raises(pm.BodyError, match="subscriptionId"):
        pm.parse_body(pm.UpdateRoutingTaskSubscriptionBody, {"skillId": 12})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("c1", "c1"), ({"userId": "c2"}, "c2"), (None, None), ({}, None), ("", None)],
)
def test_user_profile_target(raw: object, expected: str | None) -> None:
    assert pm.parse_user_profile_target(raw) == expected


def test_user_profile_target_rejects_garbage() -> None:
    with pytest.raises(pm.BodyError):
        pm.parse_user_profile_target(42)
