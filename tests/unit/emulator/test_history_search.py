"""The Messaging Interactions API's model, without sockets: the history trail (joins, transfers,
assignments), each search filter, and the record's sections."""

from __future__ import annotations

from typing import Any

import pytest

from lpm.emulator.entities import Actor, Conversation
from lpm.emulator.history_records import HistoryRecorder, conversation_record, format_time
from lpm.emulator.http_history import MAX_INTERVAL, ROUNDING, matches, parse_query
from lpm.emulator.world import World
from lpm.emulator.world_errors import BadRequest
from lpm.protocol import requests as pm
from tests.unit.model_harness import ACC, accept, agent, field_update, online, open_conv, status, text
from tests.unit.model_harness import new_consumer as consumer
from tests.worldkit import FakeScheduler, make_world

AGENT = "1001"  # sales and support (tests.worldkit), manager
BOT = "2001"  # sales
CLOSE = {"field": "ConversationStateField", "conversationState": "CLOSE"}


@pytest.fixture
def sched() -> FakeScheduler:
    return FakeScheduler()


@pytest.fixture
def world(sched: FakeScheduler) -> World:
    return make_world(sched)[0]


@pytest.fixture
def recorder(world: World) -> HistoryRecorder:
    rec = HistoryRecorder(world)
    world.sinks.append(rec)
    return rec


def search(world: World, recorder: HistoryRecorder, body: dict[str, Any]) -> list[str]:
    query = parse_query(body, world.now_ms())
    convs = world.accounts[ACC].conversations.values()
    return sorted(c.conv_id for c in convs if matches(world, recorder, c, query))


def since(world: World) -> dict[str, Any]:
    return {"start": {"from": world.now_ms() - 3_600_000, "to": -1}}


def test_trail_records_joins_transfers_and_assignments(
    world: World, recorder: HistoryRecorder, sched: FakeScheduler
) -> None:
    online(world, BOT)
    conv = open_conv(world, consumer(world), skill="11")
    sched.advance(5)
    first = accept(world, conv)
    assert first == BOT
    online(world, AGENT)
    sched.advance(5)
    field_update(
        world,
        agent(first),
        conv,
        {"field": "ParticipantsChange", "type": "REMOVE", "role": "ASSIGNED_AGENT"},
        {"field": "Skill", "type": "UPDATE", "skill": "12"},
    )
    sched.advance(5)
    assert accept(world, conv) == AGENT
    record = conversation_record(world, recorder, conv)
    (transfer,) = record["transfers"]
    assert transfer["reason"] == "Skill"
    assert (transfer["sourceSkillId"], transfer["sourceSkillName"]) == (11, "sales")
    assert (transfer["targetSkillId"], transfer["targetSkillName"]) == (12, "support")
    assert transfer["sourceAgentId"] == first and transfer["by"] == first
    assert transfer["time"] == format_time(transfer["timeL"])
    assert [i["assignedAgentId"] for i in record["interactions"]] == [first, AGENT]
    assert [i["interactiveSequence"] for i in record["interactions"]] == [1, 2]
    participants = [(p["agentId"], p["role"]) for p in record["agentParticipants"]]
    assert participants == [(first, "ASSIGNED_AGENT"), (AGENT, "ASSIGNED_AGENT")]
    assert [p["agentId"] for p in record["agentParticipantsLeave"]] == [first]
    assert [p["agentId"] for p in record["agentParticipantsActive"]] == [AGENT]
    assert record["info"]["latestAgentId"] == AGENT and record["info"]["latestSkillId"] == 12
    # Skill filters: every skill of its life, or only the latest.
    assert search(world, recorder, {**since(world), "skillIds": ["11"]}) == [conv.conv_id]
    assert search(world, recorder, {**since(world), "latestSkillIds": ["11"]}) == []
    assert search(world, recorder, {**since(world), "latestSkillIds": [12]}) == [conv.conv_id]
    # Agent filters: any id form; latest only the latest.
    pid = world.accounts[ACC].users[first].pid
    assert search(world, recorder, {**since(world), "agentIds": [pid]}) == [conv.conv_id]
    assert search(world, recorder, {**since(world), "latestAgentIds": [first]}) == []
    assert search(world, recorder, {**since(world), "latestAgentIds": [f"{ACC}.{AGENT}"]}) == [conv.conv_id]


def test_agent_transfer_back_to_queue_and_takeover(world: World, recorder: HistoryRecorder) -> None:
    online(world, AGENT)
    online(world, BOT, "OCCUPIED")
    conv = open_conv(world, consumer(world))
    assert accept(world, conv) == AGENT
    field_update(
        world,
        agent(),
        conv,
        {"field": "ParticipantsChange", "type": "REMOVE", "role": "ASSIGNED_AGENT"},
        {
            "field": "ParticipantsChange",
            "type": "SUGGEST",
            "role": "ASSIGNED_AGENT",
            "userId": f"{ACC}.{BOT}",
        },
    )
    accept(world, conv)
    # The manager takes the conversation over: the bot out, the manager in, in one update.
    field_update(
        world,
        agent(),
        conv,
        {"field": "ParticipantsChange", "type": "REMOVE", "role": "ASSIGNED_AGENT", "userId": BOT},
        {"field": "ParticipantsChange", "type": "ADD", "role": "ASSIGNED_AGENT", "userId": AGENT},
    )
    field_update(
        world, agent(), conv, {"field": "ParticipantsChange", "type": "REMOVE", "role": "ASSIGNED_AGENT"}
    )
    reasons = [
        (t["reason"], t.get("assignedAgentId"))
        for t in conversation_record(world, recorder, conv)["transfers"]
    ]
    assert reasons == [("Agent", BOT), ("TakeOver", AGENT), ("Back2Q", None)]


def test_status_keyword_and_id_filters(world: World, recorder: HistoryRecorder, sched: FakeScheduler) -> None:
    online(world, BOT)
    talker = consumer(world)
    open_one = open_conv(world, talker)
    text(world, talker, open_one.conv_id, "Where is my Parcel?")
    other = consumer(world)
    closed = open_conv(world, other)
    text(world, other, closed.conv_id, "nothing to see")
    field_update(world, other, closed, CLOSE)
    both = sorted([open_one.conv_id, closed.conv_id])
    assert search(world, recorder, since(world)) == both
    assert search(world, recorder, {**since(world), "status": ["OPEN"]}) == [open_one.conv_id]
    assert search(world, recorder, {**since(world), "status": ["CLOSE", "OPEN"]}) == both
    assert search(world, recorder, {**since(world), "keyword": "parcel"}) == [open_one.conv_id]
    assert search(world, recorder, {**since(world), "keyword": '"my parcel"'}) == [open_one.conv_id]
    assert search(world, recorder, {**since(world), "keyword": "parcels"}) == []
    assert search(world, recorder, {"conversationId": closed.conv_id}) == [closed.conv_id]
    assert search(world, recorder, {**since(world), "conversationId": [closed.conv_id, "x"]}) == [
        closed.conv_id
    ]
    assert search(world, recorder, {**since(world), "end": {"from": 0}}) == [closed.conv_id]
    assert search(world, recorder, {**since(world), "latestConversationQueueState": "IN_QUEUE"}) == both
    assert search(world, recorder, {**since(world), "messageContentTypes": ["HOSTED_FILE"]}) == []
    assert search(world, recorder, {**since(world), "summary": "anything"}) == []
    assert search(world, recorder, {**since(world), "mcs": {"from": 0, "to": 50}}) == both
    assert search(world, recorder, {**since(world), "alertedMcsValues": ["1"]}) == []
    window = since(world)
    assert search(world, recorder, {**window, "duration": {"from": 3600}}) == []
    sched.advance(7200)
    assert search(world, recorder, {**window, "duration": {"from": 3600}}) == [open_one.conv_id]


def test_start_range_is_rounded_and_bounded(world: World, recorder: HistoryRecorder) -> None:
    online(world, BOT)
    conv = open_conv(world, consumer(world))
    start = conv.start_ts
    # Rounded to 10 minutes both ways: a range ending just before the start still finds it.
    assert search(world, recorder, {"start": {"from": start - 1000, "to": start - 1}}) == [conv.conv_id]
    later = (start // ROUNDING + 1) * ROUNDING
    assert search(world, recorder, {"start": {"from": later, "to": later + ROUNDING}}) == []
    with pytest.raises(BadRequest, match="three months"):
        parse_query({"start": {"from": start - MAX_INTERVAL - ROUNDING, "to": start}}, start)
    assert search(world, recorder, {"start": {"from": str(start - 60_000), "to": str(start + 60_000)}}) == [
        conv.conv_id
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "start"),
        ({"start": {"to": 5}}, "start"),
        ({"start": {"from": "soon"}}, "start.from must be a number"),
        ({"start": {"from": 10, "to": 5}}, "after"),
        ({"start": {"from": 0, "to": -1}, "status": ["PENDING"]}, "OPEN and CLOSE"),
        ({"start": {"from": 0, "to": -1}, "skillIds": "nope", "agentIds": [True]}, "agentIds"),
        ({"start": {"from": 0, "to": -1}, "keyword": 5}, "keyword must be a string"),
        ({"start": {"from": 0, "to": -1}, "contentToRetrieve": ["everything"]}, "unknown contentToRetrieve"),
        ({"start": {"from": 0, "to": -1}, "csat": {}}, "csat needs from or to"),
        ({"start": {"from": 0, "to": -1}, "latestConversationQueueState": "WAITING"}, "IN_QUEUE"),
        ({"start": {"from": 0, "to": -1}, "sdeSearch": {"personalInfo": 5}}, "sdeSearch"),
        (["not", "an", "object"], "JSON object"),
    ],
)
def test_malformed_searches_are_refused(body: Any, message: str) -> None:
    now = 90 * 24 * 3600 * 1000
    with pytest.raises(BadRequest, match=message):
        parse_query(body, now)


def test_record_sections(world: World, recorder: HistoryRecorder) -> None:
    online(world, BOT)
    who = consumer(world)
    sdes = [
        {"type": "ctmrinfo", "info": {"customerId": "c-1", "cstatus": "gold", "balance": 7.5}},
        {
            "type": "personal",
            "personal": {
                "firstname": "Ada",
                "age": {"age": 36, "year": 1815},
                "contacts": [{"phone": "+44 1"}],
            },
        },
    ]
    world.set_user_profile(
        who, pm.SetUserProfileBody(lastName="Lovelace", authenticatedData={"lp_sdes": sdes})
    )
    conv = open_conv(world, who)
    text(world, who, conv.conv_id, "hi")
    accept(world, conv)
    bot = agent(BOT)
    card = {"type": "vertical", "elements": [{"type": "text", "text": "card"}]}
    world.publish(bot, pm.PublishEventBody(dialogId=conv.conv_id, event=pm.RichContentEvent(content=card)))
    status(world, bot, conv.conv_id, "READ", [0])
    field_update(world, who, conv, CLOSE)
    field_update(
        world,
        who,
        conv,
        {"field": "CSATRate", "csatRate": 4, "csatResolutionConfirmation": True, "status": "FILLED"},
    )
    record = conversation_record(world, recorder, conv)
    assert set(record) >= {"info", "messageRecords", "agentParticipants", "consumerParticipants", "transfers",
                           "messageStatuses", "conversationSurveys", "sdes", "interactions"}  # fmt: skip
    info = record["info"]
    assert info["status"] == "CLOSE" and info["closeReason"] == "CONSUMER" and info["csatRate"] == 4
    assert info["endTimeL"] == conv.end_ts and info["duration"] == conv.end_ts - conv.start_ts
    texts, rich = record["messageRecords"]
    assert (
        texts["messageData"] == {"msg": {"text": "hi"}}
        and texts["messageId"] == f"ms::conv:{conv.conv_id}::msg:0"
    )
    assert rich["type"] == "RICH_CONTENT" and rich["sentBy"] == "Agent" and rich["participantId"] == BOT
    assert record["messageStatuses"][0]["messageDeliveryStatus"] == "READ"
    assert record["conversationSurveys"][0]["surveyData"][0] == {"question": "CSAT", "answer": "4"}
    (person,) = record["consumerParticipants"]
    assert (person["firstName"], person["lastName"], person["phone"]) == ("Ada", "Lovelace", "+44 1")
    events = {e["sdeType"]: e for e in record["sdes"]["events"]}
    customer = events["CUSTOMER_INFO"]["customerInfo"]["customerInfo"]
    assert customer == {"customerId": "c-1", "customerStatus": "gold", "balance": "7.5"}  # v1: text
    personal = events["PERSONAL_INFO"]["personalInfo"]["personalInfo"]
    assert personal["name"] == "Ada" and personal["customerAge"]["customerYearOfBirth"] == "1815"
    assert personal["contacts"] == [{"personalContact": {"phone": "+44 1"}}]
    typed = conversation_record(world, recorder, conv, typed_sdes=True)
    assert typed["sdes"]["events"][0]["customerInfo"]["customerInfo"]["balance"] == 7.5
    # Only the sections asked for.
    assert set(conversation_record(world, recorder, conv, content=["sdes"])) == {"info", "sdes"}
    # SDE search: in that SDE type only; userUpdate is the profile.
    assert search(world, recorder, {**since(world), "sdeSearch": {"personalInfo": "ada"}}) == [conv.conv_id]
    assert search(world, recorder, {**since(world), "sdeSearch": {"customerInfo": "ada"}}) == []
    assert search(world, recorder, {**since(world), "sdeSearch": {"userUpdate": "lovelace"}}) == [
        conv.conv_id
    ]
    assert search(world, recorder, {**since(world), "csat": {"from": 4, "to": 5}}) == [conv.conv_id]
    assert search(world, recorder, {**since(world), "csat": {"from": 5}}) == []


def test_agents_see_their_conversations_only(world: World, recorder: HistoryRecorder) -> None:
    online(world, BOT)
    conv = open_conv(world, consumer(world))
    accept(world, conv)
    for actor, visible in (
        (agent(BOT), True),
        (agent("2002"), False),
        (agent(AGENT), True),
        (Actor(ACC, "app", "x"), True),
    ):
        try:
            world.authorize_read(actor, conv)
            seen = True
        except Exception:
            seen = False
        assert seen is visible, actor


def test_a_trail_starts_from_a_loaded_conversation(world: World) -> None:
    online(world, BOT)
    conv: Conversation = open_conv(world, consumer(world))
    accept(world, conv)
    late = HistoryRecorder(world)  # as after a restart: it never saw the conversation change
    record = conversation_record(world, late, conv)
    assert [p["agentId"] for p in record["agentParticipants"]] == [BOT]
    assert record["agentParticipants"][0]["timeL"] == conv.main.creation_ts
    assert record["transfers"] == [] and record["info"]["latestAgentId"] == BOT
