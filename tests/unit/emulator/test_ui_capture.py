"""The web UI's capture, inspector and transcripts, without sockets (issue 17)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from lpm.emulator import entities as m
from lpm.emulator.entities import Actor
from lpm.emulator.ui import views
from lpm.emulator.ui.capture import FrameTap, redact
from lpm.emulator.ui.inspector import FrameIndex, parse
from lpm.emulator.ui.timeline import Timeline
from lpm.protocol import requests as pm
from tests.worldkit import make_world

ACC = "12345678"
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"


@dataclass
class FakeSession:
    id: int
    brand: bool = False
    account_id: str = ACC
    actor: Actor | None = None
    identity_kind: str = ""


def frame(kind: str, type_: str, body: Any, **extra: Any) -> str:
    return json.dumps({"kind": kind, "type": type_, "body": body, **extra})


def test_the_ring_keeps_the_latest_frames_and_costs_no_parsing() -> None:
    tap = FrameTap(limit=5)
    session = FakeSession(7)
    for n in range(12):
        tap.inbound(session, f"not even json {n}")
        tap.outbound(session, b"\x00binary")
    assert len(tap.frames) == 5 and tap.next_index == 24
    assert [f.number for f in tap.frames] == [19, 20, 21, 22, 23]
    assert tap.sessions[7].label == "consumer socket #7"
    index = FrameIndex(tap)
    index.update()  # what is not JSON is kept but filed under nothing
    assert next(iter(index.frames([23])))["frame"] == "\x00binary"


def test_sessions_are_named_and_their_coming_and_going_is_told() -> None:
    world, _ = make_world()
    tap = FrameTap()
    tap.world = world
    events: list[tuple[str, str]] = []
    tap.listeners.append(lambda event, info: events.append((event, info.label)))
    bot = FakeSession(1, brand=True, actor=Actor(ACC, "agent", "2001"))
    consumer = FakeSession(2, actor=Actor(ACC, "consumer", "c0ffee00-1234"), identity_kind="unauthenticated")
    tap.attached(bot)
    tap.attached(consumer)
    tap.detached(bot)
    tap.detached(bot)  # once
    assert events == [
        ("connected", "Botty"),
        ("connected", "consumer c0ffee00 (unauthenticated)"),
        ("disconnected", "Botty"),
    ]


def test_credentials_are_redacted_and_the_json_stays_json() -> None:
    text = json.dumps(
        {
            "kind": "req",
            "headers": [{"type": ".ams.headers.ConsumerAuthentication", "jwt": JWT}],
            "body": {"queryParams": {"temp_url_sig": "abc123", "temp_url_expires": "99"}},
            "url": "/v1/x.PNG?temp_url_sig=deadbeef&temp_url_expires=99",
            "note": f"bearer in a string {JWT}",
        }
    )
    out = redact(text)
    assert "eyJ" not in out and "abc123" not in out and "deadbeef" not in out
    value = json.loads(out)
    assert value["headers"][0]["jwt"] == "<redacted>"
    assert value["body"]["queryParams"]["temp_url_expires"] == "99"


def test_frames_are_filed_under_what_they_talk_about() -> None:
    publish = parse(frame("req", "ms.PublishEvent", {"dialogId": "d1", "conversationId": "c1"}, id="5"))
    assert publish is not None and publish.id == "5" and publish.convs == {"c1"} and publish.dialogs == {"d1"}
    answer = parse(json.dumps({"kind": "resp", "reqId": "5", "code": 200, "body": {"sequence": 3}}))
    assert answer is not None and answer.sequence == 3
    notice = parse(
        frame(
            "notification",
            "ms.MessagingEventNotification",
            {"changes": [{"dialogId": "d1", "sequence": 3, "conversationId": "c1"}]},
        )
    )
    assert notice is not None and notice.events == {("d1", 3)}
    online = parse(
        frame("notification", ".ams.ms.OnlineEventDistribution", {"dialogId": "d1", "sequence": 3})
    )
    assert online is not None and online.events == {("d1", 3)}
    change = {
        "convId": "c1",
        "conversationDetails": {"metaDataLastUpdateTs": 42, "dialogs": [{"dialogId": "d2"}]},
    }
    state = parse(
        frame(
            "notification",
            "cqm.ExConversationChangeNotification",
            {"changes": [{"type": "UPSERT", "result": change}]},
        )
    )
    assert state is not None and state.states == {("c1", 42)} and state.dialogs == {"d2"}
    task = {"conversationId": "c1", "ringsDetails": [{"ringId": "c1_acc_1", "ringState": "WAITING"}]}
    ring = parse(
        frame(
            "notification",
            ".ams.routing.RoutingTaskNotification",
            {"changes": [{"type": "UPSERT", "result": task}]},
        )
    )
    assert ring is not None and ring.rings == {("c1_acc_1", "WAITING")}
    accept = parse(frame("req", ".ams.routing.UpdateRingState", {"ringId": "c1_acc_1"}, id="9"))
    assert accept is not None and accept.convs == {"c1"}
    assert parse("[1, 2]") is None and parse("{") is None


def test_a_line_finds_its_request_response_and_notifications() -> None:
    tap = FrameTap()
    consumer, bot = FakeSession(1), FakeSession(2, brand=True)
    tap.inbound(consumer, frame("req", "ms.PublishEvent", {"dialogId": "d1"}, id="5"))
    tap.inbound(bot, frame("req", ".GetClock", {}, id="5"))  # same id, another socket
    tap.outbound(
        consumer, json.dumps({"kind": "resp", "reqId": "5", "code": 200, "body": {"sequence": 0}}).encode()
    )
    tap.outbound(
        bot,
        frame("notification", ".ams.ms.OnlineEventDistribution", {"dialogId": "d1", "sequence": 0}).encode(),
    )
    tap.outbound(
        bot,
        frame("notification", ".ams.ms.OnlineEventDistribution", {"dialogId": "d1", "sequence": 1}).encode(),
    )
    index = FrameIndex(tap)
    index.update()
    assert index.for_change(("event", "d1", 0), (1, "5"), at=1) == [0, 2, 3]
    assert index.for_change(("event", "d1", 1), None, at=5) == [4]
    described = list(index.frames([0, 3]))
    assert described[0]["direction"] == "in" and described[0]["type"] == "ms.PublishEvent"
    assert described[1]["direction"] == "out" and described[1]["socket"]["dialect"] == "brand"
    assert index.for_conversation("nope", []) == []


def test_the_index_forgets_frames_that_fell_out_of_the_ring() -> None:
    tap = FrameTap(limit=4)
    session = FakeSession(1)
    index = FrameIndex(tap)
    for n in range(20):
        tap.outbound(
            session,
            frame(
                "notification", ".ams.ms.OnlineEventDistribution", {"dialogId": "d", "sequence": n}
            ).encode(),
        )
        index.update()
    assert index.for_change(("event", "d", 19), None, 0) == [19]
    assert index.for_change(("event", "d", 2), None, 0) in ([], [2])
    assert list(index.frames(index.for_change(("event", "d", 2), None, 0))) == []
    assert all(i >= 12 for i in index._parsed)


def test_the_timeline_writes_participants_transfers_dialogs_rings_and_the_survey() -> None:
    world, sched = make_world()
    tap = FrameTap()
    changed: list[str | None] = []
    timeline = Timeline(tap, changed.append)
    timeline.watch(world)
    acc = world.accounts[ACC]
    consumer = world.add_consumer(ACC, "unauthenticated")
    me = Actor(ACC, "consumer", consumer.consumer_id)
    bot = Actor(ACC, "agent", "2001")
    alice = Actor(ACC, "agent", "1001")
    world.set_agent_state(bot, pm.SetAgentStateBody(availability="ONLINE"))
    world.routing_subscription(ACC, "2001", +1)
    conv = world.request_conversation(
        me, pm.ConsumerRequestConversationBody(skillId="11"), features=["MULTI_DIALOG"]
    )
    ring = acc.tasks[conv.conv_id].rings[0]
    world.update_ring_state(bot, pm.UpdateRingStateBody(ringId=ring.ring_id, ringState="ACCEPTED"))
    world.set_agent_state(alice, pm.SetAgentStateBody(availability="ONLINE"))
    world.routing_subscription(ACC, "1001", +1)
    text = pm.ContentEvent(contentType="text/plain", message="I want a human")
    world.publish(me, pm.PublishEventBody(dialogId=conv.conv_id, event=text))
    world.update_fields(
        bot,
        conv.conv_id,
        pm.parse_update_conversation_field(
            {
                "conversationId": conv.conv_id,
                "conversationField": [
                    {"field": "ParticipantsChange", "type": "REMOVE", "role": "ASSIGNED_AGENT"},
                    {"field": "Skill", "type": "UPDATE", "skill": "12"},
                ],
            }
        ).conversationField,
    )
    ring = next(r for r in acc.tasks[conv.conv_id].rings if r.state == "WAITING")
    assert ring.user_id == "1001"
    sched.advance(100)  # the ring expires; nobody else is there: Alice is rung again later
    world.set_agent_state(alice, pm.SetAgentStateBody(availability="ONLINE"))
    ring = next(r for r in acc.tasks[conv.conv_id].rings if r.state == "WAITING")
    world.update_ring_state(alice, pm.UpdateRingStateBody(ringId=ring.ring_id, ringState="ACCEPTED"))
    close = {"field": "ConversationStateField", "conversationState": "CLOSE"}
    world.update_fields(
        alice,
        conv.conv_id,
        pm.parse_update_conversation_field(
            {"conversationId": conv.conv_id, "conversationField": close}
        ).conversationField,
    )
    texts = [e.text for e in timeline.entries(acc, conv) if e.kind != "message"]
    for expected in (
        "Conversation opened on skill 11 (sales)",
        "Ringing Botty (new conversation, skill 11 (sales))",
        "Botty accepted the ring",
        "Botty joined as ASSIGNED_AGENT",
        "Botty left (ASSIGNED_AGENT)",
        "Transferred to skill 12 (support)",
        "Ringing Alice (transfer, skill 12 (support))",
        "Alice let the ring expire",
        "Alice accepted the ring",
        "Alice joined as ASSIGNED_AGENT",
        "MAIN dialog closed by AGENT: Closed by agent",
        "POST_SURVEY dialog opened",
        "Sunny joined as AGENT (POST_SURVEY dialog)",
        "Alice joined as READER (POST_SURVEY dialog)",
    ):
        assert expected in texts, (expected, texts)
    assert texts.index("Botty left (ASSIGNED_AGENT)") < texts.index("Alice joined as ASSIGNED_AGENT")
    assert conv.conv_id in changed
    # Each change keeps the state it led to: what the inspector looks its frames up by.
    transfer = next(e for e in timeline.entries(acc, conv) if e.kind == "skill")
    assert transfer.state_ts is not None and transfer.cause is None
    # The overview: the conversation is open in its survey, Alice reads it, nobody queues.
    overview = views.overview(world, _NoHub(), timeline)
    summary = overview["accounts"][0]["conversations"][0]
    assert summary["open_dialog"] == m.POST_SURVEY and summary["queued_since"] is None
    assert {p["name"] for p in summary["participants"]} >= {"Alice", "Sunny"}
    text = views.transcript_text(acc, conv, timeline.entries(acc, conv))
    assert "Consumer (CONSUMER): I want a human" in text
    assert "-- Transferred to skill 12 (support)" in text


def test_a_conversation_from_before_the_ui_is_rebuilt_from_what_the_world_stores() -> None:
    world, _ = make_world()
    acc = world.accounts[ACC]
    consumer = world.add_consumer(ACC, "anonymous")
    me = Actor(ACC, "consumer", consumer.consumer_id)
    conv = world.request_conversation(me, pm.ConsumerRequestConversationBody(skillId="11"))
    text = pm.ContentEvent(contentType="text/plain", message="before")
    world.publish(me, pm.PublishEventBody(dialogId=conv.conv_id, event=text))
    timeline = Timeline(FrameTap(), lambda _: None)
    timeline.watch(world)  # the UI starts watching now (a restart, or --db)
    text = pm.ContentEvent(contentType="text/plain", message="after")
    world.publish(me, pm.PublishEventBody(dialogId=conv.conv_id, event=text))
    entries = timeline.entries(acc, conv)
    assert [e.kind for e in entries] == ["opened", "message", "message"]
    rendered = [views.entry_json(acc, conv, e) for e in entries]
    assert [r["event"]["message"] for r in rendered[1:]] == ["before", "after"]


def test_content_as_text() -> None:
    card = {
        "type": "vertical",
        "elements": [{"type": "text", "text": "Shoe"}, {"type": "button", "title": "Buy"}],
    }
    assert (
        views.content_text({"type": "RichContentEvent", "content": card})
        == "[structured content: Shoe | Buy]"
    )
    quick = {"replies": [{"type": "button", "title": "Yes"}, {"type": "button", "title": "No"}]}
    event = {"type": "ContentEvent", "contentType": "text/plain", "message": "Sure?", "quickReplies": quick}
    assert views.content_text(event) == "Sure?  [quick replies: Yes | No]"
    file = {
        "type": "ContentEvent",
        "contentType": "hosted/file",
        "message": {"fileType": "PNG", "caption": "me"},
    }
    assert views.content_text(file) == "[file PNG: me]"
    assert (
        views.content_text({"type": "AcceptStatusEvent", "status": "READ", "sequenceList": [1, 2]})
        == "READ 1, 2"
    )


class _NoHub:
    sessions: set[Any] = set()
