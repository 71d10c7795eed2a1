"""A socket-free emulator world for unit tests: the default world (see :func:`unit_world`) on a
clock the test drives."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from lpm.emulator.config import WorldSpec, default_world, populate
from lpm.emulator.world import World


@dataclass
class FakeTimer:
    due: float
    callback: Callable[[], None]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class FakeScheduler:
    """World timers (ring expiry) fire only when the test advances time."""

    now: float = 1_700_000_000.0
    timers: list[FakeTimer] = field(default_factory=list)

    def call_later(self, delay: float, callback: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer(self.now + delay, callback)
        self.timers.append(timer)
        return timer

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for timer in sorted(self.timers, key=lambda t: t.due):
            if not timer.cancelled and timer.due <= self.now:
                timer.cancelled = True
                timer.callback()


def unit_world() -> WorldSpec:
    """The default world, except that the agent (1001) takes sales (11) as well as support (12).

    The unit tests route the same conversations to the human agent and to the bot (2001, sales):
    rings, rejections, transfers between them.  The default world gives each user one job (the
    agent support only), so here the agent is widened explicitly.
    """
    spec = default_world()
    for account in spec.accounts:
        for user in account.users:
            if user.user_id == "1001":
                user.skills = ["11", "12"]
    return spec


def make_world(sched: FakeScheduler | None = None, ring_expiry: float = 72) -> tuple[World, FakeScheduler]:
    """:func:`unit_world` (accounts, users, skills, connectors, app installs) on ``sched``'s clock."""
    sched = sched or FakeScheduler()
    world = World(clock=lambda: sched.now, scheduler=sched, ring_expiry=ring_expiry)
    populate(world, unit_world())
    return world, sched
