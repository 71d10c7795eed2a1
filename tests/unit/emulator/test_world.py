"""The emulator's world model, driven without sockets: lifecycle, messaging, routing, rules."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from lpm.emulator.entities import Actor, AgentState, Consumer, Conversation, EventRecord, RoutingTask
from lpm.emulator.world import World
from lpm.emulator.world_errors import BadRequest, Forbidden, NotFound
from lpm.protocol import requests as pm
from tests.unit.model_harness import agent, online, open_conv, text
from tests.unit.model_harness import new_consumer as consumer
from tests.worldkit import FakeScheduler, make_world

ACC = "12345678"
AGENT = "1001"  # skills sales (11) + support (12) in tests.worldkit.unit_world, manager
BOT = "2001"  # skill sales (11)
SURVEY_BOT = "2002"  # the survey bot of support (12)


@dataclass
class Recorder:
    """A WorldSink that keeps everything it is told."""

    conversations: list[tuple[str, str, str]] = field(default_factory=list)
    events: list[EventRecord] = field(default_factory=list)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    states: list[tuple[str, str]] = field(default_factory=list)

    def conversation_changed(self, conv: Conversation) -> None:
        self.conversations.append((conv.conv_id, conv.state, conv.stage))

    def messaging_event(self, conv: Conversation, record: EventRecord) -> None:
        self.events.append(record)

    def routing_task_changed(self, account_id: str, task: RoutingTask) -> None:
        self.tasks.append({"conv": task.conv_id, "rings": [(r.user_id, r.state) for r in task.rings]})

    def agent_state_changed(self, account_id: str, user_id: str, state: AgentState) -> None:
        self.states.append((user_id, state.availability))

    def consumer_changed(self, account_id: str, consumer: Consumer) -> None:
        pass


@pytest.fixture
def sched() -> FakeScheduler:
    return FakeScheduler()


@pytest.fixture
def world(sched: FakeScheduler) -> World:
    return make_world(sched)[0]


@pytest.fixture
def rec(world: World) -> Recorder:
    r = Recorder()
    world.sinks.append(r)
    return r


def waiting_ring(world: World, conv: Conversation) -> Any:
    task = world.accounts[ACC].tasks[conv.conv_id]
    return next(r for r in task.rings if r.state == "WAITING")


def accept(world: World, conv: Conversation) -> str:
    ring = waiting_ring(world, conv)
    world.update_ring_state(
        agent(ring.user_id), pm.UpdateRingStateBody(ringId=ring.ring_id, ringState="ACCEPTED")
    )
    return str(ring.user_id)


def field_update(world: World, who: Actor, conv: Conversation, *fields: dict[str, Any]) -> str:
    body = pm.parse_update_conversation_field(
        {"conversationId": conv.conv_id, "conversationField": list(fields)}
    )
    return world.update_fields(who, conv.conv_id, body.conversationField)


CLOSE = {"field": "ConversationStateField", "conversationState": "CLOSE"}

# ---------------------------------------------------------------- lifecycle


def test_new_conversation_has_main_dialog_with_the_conversation_id(world: World, rec: Recorder) -> None:
    who = consumer(world)
    conv = open_conv(world, who)
    assert conv.main.dialog_id == conv.conv_id
    assert conv.main.dialog_type == "MAIN"
    assert conv.state == "OPEN" and conv.stage == "OPEN"
    assert [(p.id, p.role) for p in conv.participants()] == [(who.id, "CONSUMER")]
    assert rec.conversations[-1] == (conv.conv_id, "OPEN", "OPEN")


def test_one_open_conversation_per_consumer(world: World) -> None:
    who = consumer(world)
    conv = open_conv(world, who)
    with pytest.raises(BadRequest, match="already has an open conversation"):
        open_conv(world, who)
    field_update(world, who, conv, CLOSE)
    assert open_conv(world, who).conv_id != conv.conv_id


def test_unknown_skill_is_refused(world: World) -> None:
    with pytest.raises(BadRequest, match="unknown skill"):
        open_conv(world, consumer(world), skill="999")


def test_skill_by_name_is_refused_unless_lenient(world: World) -> None:
    """The platform routes by skill id; a skill's name is a convenience of the lenient mode."""
    with pytest.raises(BadRequest, match="skills are named by id: support is 12"):
        open_conv(world, consumer(world), skill="support")
    world.lenient = True
    assert open_conv(world, consumer(world), skill="support").skill_id == "12"


def test_consumer_close_sets_reason_and_stage(world: World) -> None:
    who = consumer(world)
    conv = open_conv(world, who)
    assert field_update(world, who, conv, CLOSE) == "OK Conversation resolved successfully"
    assert conv.state == "CLOSE" and conv.stage == "CLOSE"
    assert conv.close_reason == "CONSUMER" and conv.main.closed_by == "CONSUMER"
    assert conv.end_ts is not None
    with pytest.raises(BadRequest, match="already closed"):
        field_update(world, who, conv, CLOSE)


def test_post_survey_dialog_needs_survey_skill_and_multi_dialog(world: World) -> None:
    online(world, AGENT)
    who = consumer(world)
    conv = open_conv(world, who, skill="12", features=("MULTI_DIALOG",))
    accept(world, conv)
    field_update(world, agent(), conv, CLOSE)
    assert conv.state == "CLOSE" and conv.stage == "OPEN"
    survey = conv.dialogs[1]
    assert survey.dialog_type == "POST_SURVEY" and survey.state == "OPEN"
    roles = {(p.id, p.role) for p in survey.participants}
    assert roles == {(who.id, "CONSUMER"), (SURVEY_BOT, "AGENT"), (AGENT, "READER")}
    # the survey dialog has its own sequence, from 0
    assert text(world, agent(SURVEY_BOT), survey.dialog_id, "How did we do?") == 0
    assert text(world, who, survey.dialog_id, "5") == 1
    dialog_close = {
        "field": "DialogChange",
        "type": "UPDATE",
        "dialog": {"dialogId": survey.dialog_id, "state": "CLOSE"},
    }
    field_update(world, who, conv, dialog_close)
    assert conv.stage == "CLOSE"


def test_no_post_survey_without_multi_dialog(world: World) -> None:
    who = consumer(world)
    conv = open_conv(world, who, skill="12")
    field_update(world, who, conv, CLOSE)
    assert len(conv.dialogs) == 1 and conv.stage == "CLOSE"


def test_stage_close_skips_the_survey(world: World) -> None:
    who = consumer(world)
    conv = open_conv(world, who, skill="12", features=("MULTI_DIALOG",))
    field_update(world, who, conv, {"field": "Stage", "conversationState": "CLOSE"})
    assert len(conv.dialogs) == 1 and conv.stage == "CLOSE"


def test_csat_after_close(world: World) -> None:
    who = consumer(world)
    conv = open_conv(world, who)
    field_update(world, who, conv, CLOSE)
    csat = {"field": "CSATRate", "csatRate": 5, "csatResolutionConfirmation": True, "status": "FILLED"}
    field_update(world, who, conv, csat)
    assert conv.csat == {"csatRate": 5, "csatResolutionConfirmation": True, "status": "FILLED"}
    with pytest.raises(BadRequest):
        field_update(world, who, conv, {**csat, "csatRate": 9})


def test_ttr_and_effective_ttr(world: World, sched: FakeScheduler) -> None:
    online(world, AGENT)
    who = consumer(world)
    conv = open_conv(world, who)
    accept(world, conv)
    assert world.effective_ttr(conv) == -1
    field_update(world, who, conv, {"field": "TTRField", "ttrType": "CUSTOM", "value": 1800})
    text(world, who, conv.conv_id, "hello?")
    assert world.effective_ttr(conv) == int(sched.now * 1000) + 1800 * 1000
    text(world, agent(), conv.conv_id, "hi")
    assert world.effective_ttr(conv) == -1
    field_update(world, agent(), conv, {"field": "ManualETTR", "time": 123456})
    assert world.effective_ttr(conv) == 123456
    field_update(world, agent(), conv, {"field": "Note", "note": "vip"})
    assert conv.note == "vip"


# ---------------------------------------------------------------- messaging


def test_sequences_per_dialog_and_chat_state_not_stored(world: World, rec: Recorder) -> None:
    who = consumer(world)
    conv = open_conv(world, who)
    assert text(world, who, conv.conv_id, "one") == 0
    typing = pm.PublishEventBody(dialogId=conv.conv_id, event=pm.ChatStateEvent(chatState="COMPOSING"))
    assert world.publish(who, typing) == 0
    assert text(world, who, conv.conv_id, "two") == 1
    read = pm.PublishEventBody(
        dialogId=conv.conv_id, event=pm.AcceptStatusEvent(status="READ", sequenceList=[0])
    )
    assert world.publish(who, read) == 2
    _, events = world.events(who, conv.conv_id)
    assert [e.sequence for e in events] == [0, 1, 2]
    chat_states = [e for e in rec.events if e.event["type"] == "ChatStateEvent"]
    assert chat_states and chat_states[0].sequence is None and chat_states[0].server_ts is None


def test_accept_status_must_point_at_existing_sequences(world: World) -> None:
    who = consumer(world)
    conv = open_conv(world, who)
    bad = pm.PublishEventBody(
        dialogId=conv.conv_id, event=pm.AcceptStatusEvent(status="READ", sequenceList=[5])
    )
    with pytest.raises(BadRequest, match="unknown sequences"):
        world.publish(who, bad)


def test_private_messages_are_hidden_from_consumers(world: World) -> None:
    online(world, AGENT)
    who = consumer(world)
    conv = open_conv(world, who)
    accept(world, conv)
    text(world, agent(), conv.conv_id, "internal note", audience="AGENTS_AND_MANAGERS")
    text(world, agent(), conv.conv_id, "hello")
    _, mine = world.events(who, conv.conv_id)
    assert [e.event["message"] for e in mine] == ["hello"]
    _, theirs = world.events(agent(), conv.conv_id)
    assert len(theirs) == 2
    with pytest.raises(BadRequest, match="private"):
        text(world, who, conv.conv_id, "x", audience="AGENTS_AND_MANAGERS")


def test_publishing_into_a_closed_dialog_is_refused(world: World) -> None:
    who = consumer(world)
    conv = open_conv(world, who)
    field_update(world, who, conv, CLOSE)
    with pytest.raises(BadRequest, match="closed"):
        text(world, who, conv.conv_id, "late")


def test_query_paging(world: World) -> None:
    who = consumer(world)
    conv = open_conv(world, who)
    for i in range(10):
        text(world, who, conv.conv_id, str(i))
    _, newer = world.events(who, conv.conv_id, newer_than=0)
    assert [e.sequence for e in newer][:2] == [0, 1]  # newerThanSequence 0 means "from the start"
    _, page = world.events(who, conv.conv_id, newer_than=4, limit=3)
    assert [e.sequence for e in page] == [5, 6, 7]
    _, older = world.events(who, conv.conv_id, older_than=5, limit=2)
    assert [e.sequence for e in older] == [3, 4]


# ---------------------------------------------------------------- authorization


def test_consumers_cannot_touch_other_conversations(world: World) -> None:
    alice, mallory = consumer(world), consumer(world)
    conv = open_conv(world, alice)
    with pytest.raises(Forbidden):
        text(world, mallory, conv.conv_id, "hi")
    with pytest.raises(Forbidden):
        world.events(mallory, conv.conv_id)
    with pytest.raises(Forbidden):
        field_update(world, mallory, conv, CLOSE)
    with pytest.raises(Forbidden):
        world.get_user_profile(mallory, alice.id)


def test_non_participant_agent_cannot_publish(world: World) -> None:
    who = consumer(world)
    conv = open_conv(world, who)
    with pytest.raises(Forbidden):
        text(world, agent(BOT), conv.conv_id, "hi")
    with pytest.raises(Forbidden):
        field_update(world, agent(BOT), conv, CLOSE)


def test_consumers_cannot_change_agent_fields(world: World) -> None:
    who = consumer(world)
    conv = open_conv(world, who)
    with pytest.raises(Forbidden):
        field_update(world, who, conv, {"field": "Skill", "type": "UPDATE", "skill": "12"})


def test_unknown_dialog(world: World) -> None:
    with pytest.raises(NotFound):
        text(world, consumer(world), "nope", "hi")


def test_failed_update_rolls_back_every_field(world: World) -> None:
    online(world, AGENT)
    who = consumer(world)
    conv = open_conv(world, who)
    accept(world, conv)
    with pytest.raises(BadRequest):
        field_update(
            world,
            agent(),
            conv,
            {"field": "Note", "note": "changed"},
            {"field": "ParticipantsChange", "type": "REMOVE", "role": "MANAGER", "userId": BOT},
        )
    assert conv.note == ""


# ---------------------------------------------------------------- routing


def test_ring_goes_to_online_subscribed_agent_and_accept_assigns(world: World, rec: Recorder) -> None:
    who = consumer(world)
    conv = open_conv(world, who)
    assert conv.conv_id in world.accounts[ACC].tasks
    assert not world.accounts[ACC].tasks[conv.conv_id].rings  # nobody online yet
    online(world, AGENT)
    ring = waiting_ring(world, conv)
    assert ring.user_id == AGENT and ring.expiration_ms == 72000
    assert ring.ring_id.startswith(f"{conv.conv_id}_{ACC}_")
    accept(world, conv)
    assert [(p.id, p.role) for p in conv.participants()] == [(who.id, "CONSUMER"), (AGENT, "ASSIGNED_AGENT")]
    assert conv.conv_id not in world.accounts[ACC].tasks
    assert rec.tasks[-1]["rings"] == [(AGENT, "ACCEPTED")]


def test_away_and_unsubscribed_agents_get_no_rings(world: World) -> None:
    world.set_agent_state(agent(), pm.SetAgentStateBody(availability="ONLINE"))  # no subscription
    online(world, BOT, "AWAY")
    conv = open_conv(world, consumer(world))
    assert not world.accounts[ACC].tasks[conv.conv_id].rings


def test_reject_moves_to_next_agent(world: World) -> None:
    online(world, AGENT)
    online(world, BOT)
    conv = open_conv(world, consumer(world))
    first = waiting_ring(world, conv)
    world.update_ring_state(
        agent(first.user_id), pm.UpdateRingStateBody(ringId=first.ring_id, ringState="REJECTED")
    )
    second = waiting_ring(world, conv)
    assert second.user_id != first.user_id


def test_ring_expires_then_next_agent(world: World, sched: FakeScheduler) -> None:
    online(world, AGENT)
    online(world, BOT)
    conv = open_conv(world, consumer(world))
    first = waiting_ring(world, conv)
    sched.advance(71)
    assert first.state == "WAITING"
    sched.advance(2)
    assert first.state == "EXPIRED"
    assert waiting_ring(world, conv).user_id != first.user_id


def test_ring_of_another_agent_cannot_be_answered(world: World) -> None:
    online(world, AGENT)
    conv = open_conv(world, consumer(world))
    ring = waiting_ring(world, conv)
    with pytest.raises(Forbidden):
        world.update_ring_state(agent(BOT), pm.UpdateRingStateBody(ringId=ring.ring_id, ringState="ACCEPTED"))
    with pytest.raises(NotFound):
        world.update_ring_state(agent(), pm.UpdateRingStateBody(ringId="nope", ringState="ACCEPTED"))


def test_close_cancels_ringing(world: World) -> None:
    online(world, AGENT)
    who = consumer(world)
    conv = open_conv(world, who)
    ring = waiting_ring(world, conv)
    field_update(world, who, conv, CLOSE)
    assert ring.state == "CANCELLED"


def test_skill_transfer_removes_agent_and_rerings(world: World) -> None:
    online(world, BOT)  # sales only
    online(world, AGENT)
    conv = open_conv(world, consumer(world), skill="11")
    assigned = accept(world, conv)
    field_update(
        world,
        agent(assigned),
        conv,
        {"field": "ParticipantsChange", "type": "REMOVE", "role": "ASSIGNED_AGENT"},
        {"field": "Skill", "type": "UPDATE", "skill": "12"},
    )
    assert conv.skill_id == "12"
    assert not any(p.role == "ASSIGNED_AGENT" for p in conv.main.participants)
    assert waiting_ring(world, conv).user_id == AGENT  # the only support agent


def test_agent_transfer_suggests_then_accept(world: World) -> None:
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
    suggested = [p for p in conv.main.participants if p.state == "SUGGESTED"]
    assert [(p.id, p.role) for p in suggested] == [(BOT, "ASSIGNED_AGENT")]
    ring = waiting_ring(world, conv)
    assert ring.user_id == BOT  # OCCUPIED agents get transfers
    accept(world, conv)
    assert [(p.id, p.role, p.state) for p in conv.main.participants if p.role == "ASSIGNED_AGENT"] == [
        (BOT, "ASSIGNED_AGENT", "ACTIVE")
    ]


def test_back_to_queue(world: World) -> None:
    online(world, AGENT)
    conv = open_conv(world, consumer(world))
    accept(world, conv)
    field_update(
        world, agent(), conv, {"field": "ParticipantsChange", "type": "REMOVE", "role": "ASSIGNED_AGENT"}
    )
    assert conv.conv_id in world.accounts[ACC].tasks


def test_join_and_leave_roles(world: World) -> None:
    conv = open_conv(world, consumer(world))
    for role in ("MANAGER", "READER", "CONTROLLER", "AGENT"):
        field_update(world, agent(BOT), conv, {"field": "ParticipantsChange", "type": "ADD", "role": role})
        assert (BOT, role) in {(p.id, p.role) for p in conv.main.participants}
        field_update(world, agent(BOT), conv, {"field": "ParticipantsChange", "type": "REMOVE", "role": role})
        assert (BOT, role) not in {(p.id, p.role) for p in conv.main.participants}


def test_reader_cannot_publish(world: World) -> None:
    conv = open_conv(world, consumer(world))
    field_update(world, agent(BOT), conv, {"field": "ParticipantsChange", "type": "ADD", "role": "READER"})
    with pytest.raises(Forbidden):
        text(world, agent(BOT), conv.conv_id, "hi")


def test_join_as_assigned_agent_completes_routing(world: World) -> None:
    conv = open_conv(world, consumer(world))
    field_update(
        world, agent(BOT), conv, {"field": "ParticipantsChange", "type": "ADD", "role": "ASSIGNED_AGENT"}
    )
    assert conv.conv_id not in world.accounts[ACC].tasks
    with pytest.raises(BadRequest, match="already has an assigned agent"):
        field_update(
            world, agent(), conv, {"field": "ParticipantsChange", "type": "ADD", "role": "ASSIGNED_AGENT"}
        )


def test_agent_state_rules(world: World, rec: Recorder) -> None:
    world.set_agent_state(agent(BOT), pm.SetAgentStateBody(availability="BACK_SOON"))
    assert rec.states[-1] == (BOT, "BACK_SOON")
    with pytest.raises(BadRequest):
        world.set_agent_state(agent(BOT), pm.SetAgentStateBody(availability="SLEEPING"))
    with pytest.raises(Forbidden):  # the bot is no manager
        world.set_agent_state(
            agent(BOT), pm.SetAgentStateBody(availability="ONLINE", agentUserId=f"{ACC}.{AGENT}")
        )


def test_step_up_moves_the_open_conversation(world: World) -> None:
    anon = consumer(world)
    conv = open_conv(world, anon)
    auth = world.add_consumer(ACC, "authenticated", consumer_id="f" * 64)
    assert world.step_up(ACC, anon.id, auth.consumer_id) == [conv.conv_id]
    assert conv.consumer_id == auth.consumer_id
    assert conv.main.participants[0].id == auth.consumer_id
    with pytest.raises(Forbidden):
        text(world, anon, conv.conv_id, "hi")
    assert text(world, Actor(ACC, "consumer", auth.consumer_id), conv.conv_id, "hi") == 0


def test_profiles(world: World) -> None:
    who = consumer(world)
    world.set_user_profile(
        who,
        pm.SetUserProfileBody(firstName="Ada", privateData={"mail": "ada@example.com", "mobileNum": "+1"}),
    )
    profile = world.get_user_profile(agent(), who.id)
    assert profile["firstName"] == "Ada" and profile["role"] == "CONSUMER"
    assert profile["privateData"]["email"] == "ada@example.com"
    # An agent's own profile is its old id (Messaging Agent API, getting started); another
    # reader (a consumer) sees the agent's public profile, named by PID.
    assert world.get_user_profile(agent(), None) == {"userId": "12345678.1001"}
    public = world.get_user_profile(who, "1001")
    assert public["role"] == "AGENT" and public["nickName"] == "Alice" and public["userId"] != "1001"
