"""The emulator's ring router driven alone: an account record, a fake clock and scheduler, and a
callback that records every routing-task change.  No world, no sockets.

The first tests walk the ring state table (every legal move taken, every illegal one refused);
the rest drive the :class:`Router` through each trigger of that table.
"""

from __future__ import annotations

import itertools

import pytest

from lpm.emulator import entities as m
from lpm.emulator.entities import (
    Account,
    AgentState,
    Conversation,
    Dialog,
    Participant,
    Ring,
    RoutingTask,
    User,
)
from lpm.emulator.ring_routing import (
    ACCEPTED,
    CANCELLED,
    EXPIRED,
    REJECTED,
    RING_STATES,
    RING_TRANSITIONS,
    WAITING,
    IllegalRingMove,
    RingTrigger,
    Router,
    move_ring,
    next_ring_state,
    ring_may,
)
from lpm.emulator.world_errors import BadRequest, Forbidden, NotFound
from tests.worldkit import FakeScheduler

ACC = "12345678"
ALICE = "1001"
BOB = "1002"
EXPIRY = 30.0

LEGAL = {(t.source, t.trigger): t.target for t in RING_TRANSITIONS}


def ring_in(state: str) -> Ring:
    return Ring(ring_id="r1", user_id=ALICE, state=state, created_ts=0, expiration_ms=1000, weight=0)


# ---------------------------------------------------------------- the table


@pytest.mark.parametrize(("state", "trigger"), list(itertools.product(sorted(RING_STATES), RingTrigger)))
def test_every_move_of_the_table_is_taken_or_refused(state: str, trigger: RingTrigger) -> None:
    ring = ring_in(state)
    target = LEGAL.get((state, trigger))
    assert ring_may(state, trigger) == (target is not None)
    if target is None:
        with pytest.raises(IllegalRingMove) as refused:
            move_ring(ring, trigger)
        assert ring.state == state  # a refused move changes nothing
        assert refused.value.status == 400 and isinstance(refused.value, BadRequest)
        assert refused.value.message == f"ring r1 is {state}, not WAITING"
    else:
        assert next_ring_state(ring, trigger) == target
        move_ring(ring, trigger)
        assert ring.state == target


def test_the_table_has_one_move_per_trigger_out_of_waiting_and_every_other_state_is_final() -> None:
    assert {t.source for t in RING_TRANSITIONS} == {WAITING}
    assert {(t.trigger, t.target) for t in RING_TRANSITIONS} == {
        (RingTrigger.ACCEPT, ACCEPTED),
        (RingTrigger.REJECT, REJECTED),
        (RingTrigger.EXPIRE, EXPIRED),
        (RingTrigger.CANCEL, CANCELLED),
    }
    assert len(LEGAL) == len(RING_TRANSITIONS)  # no (state, trigger) pair twice
    assert {t.target for t in RING_TRANSITIONS} | {WAITING} == RING_STATES


# ---------------------------------------------------------------- the router alone


class Harness:
    """An account with two ONLINE agents listening for rings, and a router over it."""

    def __init__(self) -> None:
        self.sched = FakeScheduler()
        self.acc = Account(ACC)
        for user_id in (ALICE, BOB):
            self.acc.add_user(User(user_id=user_id, pid=f"pid-{user_id}", login_name=f"agent{user_id}"))
            self.acc.agent_states[user_id] = AgentState(availability="ONLINE")
            self.acc.routing_listeners[user_id] = 1
        self.changes: list[tuple[str, list[tuple[str, str]], bool]] = []
        self.router = Router(
            clock=lambda: self.sched.now,
            scheduler=self.sched,
            ring_expiry=EXPIRY,
            on_change=self.record,
        )

    def record(self, account_id: str, task: RoutingTask) -> None:
        self.changes.append((account_id, [(r.user_id, r.state) for r in task.rings], task.completed))

    def conversation(self, conv_id: str = "c1") -> Conversation:
        main = Dialog(
            dialog_id=conv_id,
            dialog_type=m.MAIN,
            channel_type="MESSAGING",
            state=m.OPEN,
            creation_ts=0,
            participants=[Participant(id="consumer-1", role=m.CONSUMER)],
        )
        conv = Conversation(
            conv_id=conv_id,
            account_id=ACC,
            consumer_id="consumer-1",
            skill_id="-1",
            start_ts=0,
            dialogs=[main],
        )
        self.acc.conversations[conv_id] = conv
        self.acc.open_conversation[conv.consumer_id] = conv_id
        return conv

    def routed(self) -> tuple[Conversation, RoutingTask, Ring]:
        conv = self.conversation()
        self.router.route(self.acc, conv, is_transfer=False)
        task = self.acc.tasks[conv.conv_id]
        return conv, task, task.rings[-1]


def live_timers(sched: FakeScheduler) -> int:
    return sum(1 for t in sched.timers if not t.cancelled)


def test_route_rings_one_agent_with_an_expiry_timer_and_reports_the_change() -> None:
    h = Harness()
    conv, _, ring = h.routed()
    assert ring.state == WAITING and ring.user_id == ALICE
    assert ring.ring_id == f"{conv.conv_id}_{ACC}_{int(h.sched.now * 1000)}"
    assert ring.expiration_ms == EXPIRY * 1000
    assert h.acc.rings == {ring.ring_id: conv.conv_id}
    assert live_timers(h.sched) == 1
    assert h.changes == [(ACC, [(ALICE, WAITING)], False)]


def test_accept_completes_the_task_and_leaves_the_conversation_to_the_caller() -> None:
    h = Harness()
    conv, task, ring = h.routed()
    before = [(p.id, p.role) for p in conv.main.participants]
    got_task, got_ring = h.router.update_ring(h.acc, ALICE, ring.ring_id, ACCEPTED)
    assert (got_task, got_ring) == (task, ring)
    assert ring.state == ACCEPTED and task.completed and task.assigned_user_id == ALICE
    assert [(p.id, p.role) for p in conv.main.participants] == before  # the world assigns
    assert h.acc.tasks == {} and h.acc.rings == {}
    assert live_timers(h.sched) == 0
    assert h.changes[-1] == (ACC, [(ALICE, ACCEPTED)], True)


def test_reject_rings_the_next_agent() -> None:
    h = Harness()
    _, task, ring = h.routed()
    h.sched.advance(1)
    h.router.update_ring(h.acc, ALICE, ring.ring_id, "REJECTED")
    assert [(r.user_id, r.state) for r in task.rings] == [(ALICE, REJECTED), (BOB, WAITING)]
    assert not task.completed and live_timers(h.sched) == 1


def test_expiry_rings_the_next_agent_then_waits_for_someone_available() -> None:
    h = Harness()
    _, task, ring = h.routed()
    h.sched.advance(EXPIRY)
    assert ring.state == EXPIRED
    h.sched.advance(EXPIRY)
    assert [(r.user_id, r.state) for r in task.rings] == [(ALICE, EXPIRED), (BOB, EXPIRED)]
    assert not task.completed  # every agent tried: the task waits
    h.router.agent_available(h.acc)
    assert task.rings[-1].state == WAITING


def test_expire_all_expires_waiting_rings_now() -> None:
    h = Harness()
    _, task, ring = h.routed()
    h.router.expire_all(h.acc)
    assert ring.state == EXPIRED and task.rings[-1].user_id == BOB
    assert live_timers(h.sched) == 1  # only the new ring's


def test_cancel_cancels_the_waiting_ring_and_its_timer() -> None:
    h = Harness()
    conv, task, ring = h.routed()
    h.router.cancel(h.acc, conv.conv_id)
    assert ring.state == CANCELLED and task.completed
    assert live_timers(h.sched) == 0 and h.acc.tasks == {}
    h.sched.advance(EXPIRY)  # a stale timer would have nothing to do
    assert ring.state == CANCELLED


def test_direct_assignment_cancels_ringing() -> None:
    h = Harness()
    conv, task, ring = h.routed()
    h.router.assigned_directly(h.acc, conv.conv_id, BOB)
    assert ring.state == CANCELLED and task.assigned_user_id == BOB


def test_rerouting_cancels_the_old_task() -> None:
    h = Harness()
    conv, old, ring = h.routed()
    h.router.route(h.acc, conv, is_transfer=True)
    assert ring.state == CANCELLED and old.completed
    assert h.acc.tasks[conv.conv_id] is not old


def test_accepting_after_the_conversation_closed_cancels() -> None:
    h = Harness()
    conv, task, ring = h.routed()
    conv.main.state = m.CLOSE
    with pytest.raises(BadRequest, match="is closed"):
        h.router.update_ring(h.acc, ALICE, ring.ring_id, ACCEPTED)
    assert ring.state == CANCELLED and task.completed and h.acc.tasks == {}


def test_a_finished_ring_cannot_be_answered_again() -> None:
    h = Harness()
    *_, ring = h.routed()
    h.router.update_ring(h.acc, ALICE, ring.ring_id, "REJECTED")
    with pytest.raises(IllegalRingMove, match=f"ring {ring.ring_id} is REJECTED, not WAITING"):
        h.router.update_ring(h.acc, ALICE, ring.ring_id, ACCEPTED)
    assert ring.state == REJECTED


def test_only_the_rung_agent_answers_a_ring_that_exists() -> None:
    h = Harness()
    _, _, ring = h.routed()
    with pytest.raises(Forbidden):
        h.router.update_ring(h.acc, BOB, ring.ring_id, ACCEPTED)
    with pytest.raises(NotFound):
        h.router.update_ring(h.acc, ALICE, "nope", ACCEPTED)
    assert ring.state == WAITING
