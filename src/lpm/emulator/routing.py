"""Routing: rings conversations to agents, one ring at a time.

Rules (protocol §8): ONLINE agents of the conversation's skill (skill ``-1`` = any agent) get
rings for new conversations; transfers may also ring OCCUPIED agents; AWAY/BACK_SOON/OFFLINE
agents get none.  Only agents with a live routing-task subscription are rung, so a ring never
waits on a socket that is gone.  A SUGGESTed agent is rung first (whatever its state, unless
OFFLINE), then the skill queue.  A ring that is REJECTED or EXPIRED moves to the next agent not
yet tried; when every agent was tried the task waits until an agent becomes available again.
Among candidates the agent with the fewest assigned open conversations and waiting rings wins.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from lpm.emulator import model as m
from lpm.emulator.errors import BadRequest, Forbidden, NotFound
from lpm.emulator.model import Conversation, Participant, Ring, RoutingTask

if TYPE_CHECKING:
    from lpm.emulator.world import Account, Cancellable, World

WAITING = "WAITING"
ACCEPTED = "ACCEPTED"
REJECTED = "REJECTED"
EXPIRED = "EXPIRED"
CANCELLED = "CANCELLED"


class Router:
    """Owns the routing tasks of every account of a world."""

    def __init__(self, world: World) -> None:
        self.world = world
        self._timers: dict[str, Cancellable] = {}

    # ---------------------------------------------------------------- entry points

    def route(
        self, acc: Account, conv: Conversation, *, is_transfer: bool, suggested: str | None = None
    ) -> None:
        """Start (or restart) routing of ``conv`` to its skill."""
        old = acc.tasks.get(conv.conv_id)
        if old is not None:
            self._close_task(acc, old, CANCELLED)
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

    def cancel(self, acc: Account, conv_id: str) -> None:
        """The conversation closed: cancel its routing."""
        task = acc.tasks.get(conv_id)
        if task is not None:
            self._close_task(acc, task, CANCELLED)

    def assigned_directly(self, acc: Account, conv_id: str, user_id: str) -> None:
        """An agent joined as ASSIGNED_AGENT without a ring (ParticipantsChange ADD)."""
        task = acc.tasks.get(conv_id)
        if task is not None:
            task.assigned_user_id = user_id
            self._close_task(acc, task, CANCELLED)

    def agent_available(self, acc: Account) -> None:
        """Agent states or routing subscriptions changed: offer waiting tasks again."""
        for task in list(acc.tasks.values()):
            if not task.completed and not any(r.state == WAITING for r in task.rings):
                if self._candidates(acc, task) == []:
                    task.tried.clear()
                self._offer(acc, task)

    def update_ring(self, acc: Account, user_id: str, ring_id: str, state: str) -> None:
        conv_id = acc.rings.get(ring_id)
        task = acc.tasks.get(conv_id) if conv_id else None
        ring = next((r for r in task.rings if r.ring_id == ring_id), None) if task else None
        if task is None or ring is None:
            raise NotFound(f"ring {ring_id} not found")
        if ring.user_id != user_id:
            raise Forbidden("this ring belongs to another agent")
        if ring.state != WAITING:
            raise BadRequest(f"ring {ring_id} is {ring.state}, not WAITING")
        self._stop_timer(ring_id)
        if state == ACCEPTED:
            self._accept(acc, task, ring)
        else:
            ring.state = REJECTED
            self._emit(acc, task)
            self._offer(acc, task)

    # ---------------------------------------------------------------- internals

    def _candidates(self, acc: Account, task: RoutingTask) -> list[str]:
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

    def _offer(self, acc: Account, task: RoutingTask) -> None:
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
        now = self.world.now_ms()
        if task.rings:
            # Ring ids are {convId}_{accountId}_{epochMs}: keep them unique within a task.
            now = max(now, task.rings[-1].created_ts + 1)
        expiry_ms = int(self.world.ring_expiry * 1000)
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
        scheduler = self.world.scheduler
        if scheduler is not None:
            self._timers[ring.ring_id] = scheduler.call_later(
                self.world.ring_expiry, lambda: self._expire(acc, task, ring)
            )
        self._emit(acc, task)

    def _expire(self, acc: Account, task: RoutingTask, ring: Ring) -> None:
        self._timers.pop(ring.ring_id, None)
        if ring.state != WAITING or task.completed:
            return
        ring.state = EXPIRED
        self._emit(acc, task)
        self._offer(acc, task)

    def expire_all(self, acc: Account) -> None:
        """Expire every waiting ring now (fault injection / tests)."""
        for task in list(acc.tasks.values()):
            for ring in list(task.rings):
                if ring.state == WAITING:
                    self._stop_timer(ring.ring_id)
                    self._expire(acc, task, ring)

    def _accept(self, acc: Account, task: RoutingTask, ring: Ring) -> None:
        conv = acc.conversations[task.conv_id]
        if conv.main.state != m.OPEN:
            ring.state = CANCELLED
            self._close_task(acc, task, CANCELLED)
            raise BadRequest(f"conversation {conv.conv_id} is closed")
        ring.state = ACCEPTED
        task.completed = True
        task.assigned_user_id = ring.user_id
        main = conv.main
        main.participants = [
            p
            for p in main.participants
            if p.role != m.ASSIGNED_AGENT and not (p.id == ring.user_id and p.role in (m.MANAGER, m.READER))
        ]
        main.participants.append(Participant(id=ring.user_id, role=m.ASSIGNED_AGENT))
        main.last_update_ts = self.world.now_ms()
        self._emit(acc, task)
        self._forget(acc, task)
        self.world._changed(conv)

    def _close_task(self, acc: Account, task: RoutingTask, ring_state: str) -> None:
        for ring in task.rings:
            if ring.state == WAITING:
                ring.state = ring_state
                self._stop_timer(ring.ring_id)
        task.completed = True
        self._emit(acc, task)
        self._forget(acc, task)

    def _forget(self, acc: Account, task: RoutingTask) -> None:
        if acc.tasks.get(task.conv_id) is task:
            del acc.tasks[task.conv_id]
        for ring in task.rings:
            acc.rings.pop(ring.ring_id, None)

    def _stop_timer(self, ring_id: str) -> None:
        timer = self._timers.pop(ring_id, None)
        if timer is not None:
            timer.cancel()

    def _emit(self, acc: Account, task: RoutingTask) -> None:
        self.world._emit("routing_task_changed", acc.account_id, task)
