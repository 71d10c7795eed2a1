"""Routing: rings conversations to agents, one ring at a time.

Rules (protocol §8): ONLINE agents of the conversation's skill (skill ``-1`` = any agent) get
rings for new conversations; transfers may also ring OCCUPIED agents; AWAY/BACK_SOON/OFFLINE
agents get none.  Only agents with a live routing-task subscription are rung, so a ring never
waits on a socket that is gone.  A SUGGESTed agent is rung first (whatever its state, unless
OFFLINE), then the skill queue.  A ring that is REJECTED or EXPIRED moves to the next agent not
yet tried; when every agent was tried the task waits until an agent becomes available again.
Among candidates the agent with the fewest assigned open conversations and waiting rings wins.

A ring's state changes only through :func:`move_ring`, which follows :data:`RING_TRANSITIONS`
(state, trigger) -> state and refuses every other move.

The :class:`Router` knows no world: it is given a clock, a scheduler (ring expiry) and an
``on_change`` callback told about every change of a routing task, and it sees an account through
:class:`RoutingAccount`.  It reads conversations but never edits them: when a ring is accepted,
:meth:`Router.update_ring` says so and the caller makes the agent the ASSIGNED_AGENT.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, NamedTuple, Protocol

from lpm.emulator import entities as m
from lpm.emulator.entities import AgentState, Conversation, Ring, RoutingTask, User
from lpm.emulator.scheduling import Cancellable, Scheduler
from lpm.emulator.world_errors import BadRequest, Forbidden, NotFound

WAITING: Final = "WAITING"
ACCEPTED: Final = "ACCEPTED"
REJECTED: Final = "REJECTED"
EXPIRED: Final = "EXPIRED"
CANCELLED: Final = "CANCELLED"
RING_STATES: Final = frozenset({WAITING, ACCEPTED, REJECTED, EXPIRED, CANCELLED})


class RingTrigger(StrEnum):
    """What moves a ring out of its state."""

    #: The rung agent answered UpdateRingState ACCEPTED.
    ACCEPT = "accept"
    #: The rung agent answered any other ring state.
    REJECT = "reject"
    #: ``ring_expiry`` elapsed (or ``/_emulator/rings/expire``).
    EXPIRE = "expire"
    #: The task ended otherwise: conversation closed, agent added directly, rerouted, or an
    #: accept that came after the conversation closed.
    CANCEL = "cancel"


class RingTransition(NamedTuple):
    source: str
    trigger: RingTrigger
    target: str


#: Every legal move of a ring; anything else is refused.
RING_TRANSITIONS: Final[tuple[RingTransition, ...]] = (
    RingTransition(WAITING, RingTrigger.ACCEPT, ACCEPTED),
    RingTransition(WAITING, RingTrigger.REJECT, REJECTED),
    RingTransition(WAITING, RingTrigger.EXPIRE, EXPIRED),
    RingTransition(WAITING, RingTrigger.CANCEL, CANCELLED),
)
_MOVES: Final = {(t.source, t.trigger): t.target for t in RING_TRANSITIONS}


class IllegalRingMove(BadRequest):
    """A ring was asked to move in a way :data:`RING_TRANSITIONS` does not allow."""


def ring_may(state: str, trigger: RingTrigger) -> bool:
    """Whether a ring in ``state`` may move on ``trigger``."""
    return (state, trigger) in _MOVES


def next_ring_state(ring: Ring, trigger: RingTrigger) -> str:
    """The state ``ring`` moves to on ``trigger``.

    Raises :class:`IllegalRingMove` (a 400 on the wire) when the table has no such move.
    """
    target = _MOVES.get((ring.state, trigger))
    if target is None:
        sources = sorted({t.source for t in RING_TRANSITIONS if t.trigger is trigger})
        raise IllegalRingMove(f"ring {ring.ring_id} is {ring.state}, not {' or '.join(sources)}")
    return target


def move_ring(ring: Ring, trigger: RingTrigger) -> None:
    """Move ``ring`` on ``trigger``: the one place a ring's state changes (illegal moves raise
    :class:`IllegalRingMove` and change nothing)."""
    ring.state = next_ring_state(ring, trigger)


class RoutingAccount(Protocol):
    """What the router reads of an account, and the routing state it keeps there."""

    @property
    def account_id(self) -> str: ...

    @property
    def users(self) -> Mapping[str, User]: ...

    @property
    def agent_states(self) -> Mapping[str, AgentState]: ...

    @property
    def routing_listeners(self) -> Mapping[str, int]: ...

    @property
    def conversations(self) -> Mapping[str, Conversation]: ...

    @property
    def open_conversation(self) -> Mapping[str, str]: ...

    #: The router's own state: conversation id -> its routing task, ring id -> conversation id.
    @property
    def tasks(self) -> dict[str, RoutingTask]: ...

    @property
    def rings(self) -> dict[str, str]: ...


@dataclass(slots=True, kw_only=True, eq=False)
class Router:
    """Owns the routing tasks of every account of a world."""

    clock: Callable[[], float]
    scheduler: Scheduler | None
    ring_expiry: float
    on_change: Callable[[str, RoutingTask], None]
    _timers: dict[str, Cancellable] = field(default_factory=dict, init=False)

    # ---------------------------------------------------------------- entry points

    def route(
        self, acc: RoutingAccount, conv: Conversation, *, is_transfer: bool, suggested: str | None = None
    ) -> None:
        """Start (or restart) routing of ``conv`` to its skill."""
        old = acc.tasks.get(conv.conv_id)
        if old is not None:
            self._close_task(acc, old)
        task = RoutingTask(
            task_id=str(uuid.uuid4()),
            conv_id=conv.conv_id,
            consumer_id=conv.consumer_id,
            skill_id=conv.skill_id,
            suggested_user_id=suggested,
            is_transfer=is_transfer,
        )
        acc.tasks[conv.conv_id] = task
        self._offer(acc, task)

    def cancel(self, acc: RoutingAccount, conv_id: str) -> None:
        """The conversation closed: cancel its routing."""
        task = acc.tasks.get(conv_id)
        if task is not None:
            self._close_task(acc, task)

    def assigned_directly(self, acc: RoutingAccount, conv_id: str, user_id: str) -> None:
        """An agent joined as ASSIGNED_AGENT without a ring (ParticipantsChange ADD)."""
        task = acc.tasks.get(conv_id)
        if task is not None:
            task.assigned_user_id = user_id
            self._close_task(acc, task)

    def agent_available(self, acc: RoutingAccount) -> None:
        """Agent states or routing subscriptions changed: offer waiting tasks again."""
        for task in list(acc.tasks.values()):
            if not task.completed and not any(r.state == WAITING for r in task.rings):
                if self._candidates(acc, task) == []:
                    task.tried.clear()
                self._offer(acc, task)

    def update_ring(
        self, acc: RoutingAccount, user_id: str, ring_id: str, state: str
    ) -> tuple[RoutingTask, Ring]:
        """UpdateRingState of ``user_id``: ``ACCEPTED`` accepts the ring, any other state rejects it.

        Returns the ring's task and the ring; when the ring is ACCEPTED the task is completed
        with ``assigned_user_id`` set, and the caller assigns the agent to the conversation.
        """
        conv_id = acc.rings.get(ring_id)
        task = acc.tasks.get(conv_id) if conv_id else None
        ring = next((r for r in task.rings if r.ring_id == ring_id), None) if task else None
        if task is None or ring is None:
            raise NotFound(f"ring {ring_id} not found")
        if ring.user_id != user_id:
            raise Forbidden("this ring belongs to another agent")
        trigger = RingTrigger.ACCEPT if state == ACCEPTED else RingTrigger.REJECT
        next_ring_state(ring, trigger)  # refuses a ring that is no longer WAITING, before any change
        self._stop_timer(ring_id)
        if trigger is RingTrigger.REJECT:
            move_ring(ring, trigger)
            self._emit(acc, task)
            self._offer(acc, task)
            return task, ring
        conv = acc.conversations[task.conv_id]
        if conv.main.state != m.OPEN:
            self._close_task(acc, task)
            raise BadRequest(f"conversation {conv.conv_id} is closed")
        move_ring(ring, trigger)
        task.completed = True
        task.assigned_user_id = ring.user_id
        self._emit(acc, task)
        self._forget(acc, task)
        return task, ring

    def expire_all(self, acc: RoutingAccount) -> None:
        """Expire every waiting ring now (fault injection / tests)."""
        for task in list(acc.tasks.values()):
            for ring in list(task.rings):
                if ring_may(ring.state, RingTrigger.EXPIRE):
                    self._stop_timer(ring.ring_id)
                    self._expire(acc, task, ring)

    # ---------------------------------------------------------------- internals

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _candidates(self, acc: RoutingAccount, task: RoutingTask) -> list[str]:
        allowed = {"ONLINE", "OCCUPIED"} if task.is_transfer else {"ONLINE"}
        load: dict[str, int] = {}
        for other in acc.tasks.values():
            for r in other.rings:
                if r.state == WAITING:
                    load[r.user_id] = load.get(r.user_id, 0) + 1
        for conv_id in acc.open_conversation.values():
            for p in acc.conversations[conv_id].main.participants:
                if p.role == m.ASSIGNED_AGENT:
                    load[p.id] = load.get(p.id, 0) + 1
        out: list[tuple[int, str]] = []
        for user_id in acc.routing_listeners:
            user = acc.users.get(user_id)
            if user is None or user_id in task.tried:
                continue
            state = acc.agent_states.get(user_id)
            if state is None or state.availability not in allowed:
                continue
            if task.skill_id != "-1" and user.skills and task.skill_id not in user.skills:
                continue
            out.append((load.get(user_id, 0), user_id))
        out.sort()
        return [user_id for _, user_id in out]

    def _offer(self, acc: RoutingAccount, task: RoutingTask) -> None:
        if task.completed:
            return
        target: str | None = None
        if task.suggested_user_id and task.suggested_user_id not in task.tried:
            state = acc.agent_states.get(task.suggested_user_id)
            if (
                state is not None
                and state.availability != "OFFLINE"
                and task.suggested_user_id in acc.routing_listeners
            ):
                target = task.suggested_user_id
        if target is None:
            candidates = self._candidates(acc, task)
            target = candidates[0] if candidates else None
        if target is None:
            return
        task.tried.append(target)
        now = self._now_ms()
        if task.rings:
            # Ring ids are {convId}_{accountId}_{epochMs}: keep them unique within a task.
            now = max(now, task.rings[-1].created_ts + 1)
        expiry_ms = int(self.ring_expiry * 1000)
        ring = Ring(
            ring_id=f"{task.conv_id}_{acc.account_id}_{now}",
            user_id=target,
            state=WAITING,
            created_ts=now,
            expiration_ms=expiry_ms,
            weight=now,
        )
        task.rings.append(ring)
        acc.rings[ring.ring_id] = task.conv_id
        if self.scheduler is not None:
            self._timers[ring.ring_id] = self.scheduler.call_later(
                self.ring_expiry, lambda: self._expire(acc, task, ring)
            )
        self._emit(acc, task)

    def _expire(self, acc: RoutingAccount, task: RoutingTask, ring: Ring) -> None:
        self._timers.pop(ring.ring_id, None)
        if task.completed or not ring_may(ring.state, RingTrigger.EXPIRE):
            return
        move_ring(ring, RingTrigger.EXPIRE)
        self._emit(acc, task)
        self._offer(acc, task)

    def _close_task(self, acc: RoutingAccount, task: RoutingTask) -> None:
        for ring in task.rings:
            if ring_may(ring.state, RingTrigger.CANCEL):
                move_ring(ring, RingTrigger.CANCEL)
                self._stop_timer(ring.ring_id)
        task.completed = True
        self._emit(acc, task)
        self._forget(acc, task)

    def _forget(self, acc: RoutingAccount, task: RoutingTask) -> None:
        if acc.tasks.get(task.conv_id) is task:
            del acc.tasks[task.conv_id]
        for ring in task.rings:
            acc.rings.pop(ring.ring_id, None)

    def _stop_timer(self, ring_id: str) -> None:
        timer = self._timers.pop(ring_id, None)
        if timer is not None:
            timer.cancel()

    def _emit(self, acc: RoutingAccount, task: RoutingTask) -> None:
        self.on_change(acc.account_id, task)
