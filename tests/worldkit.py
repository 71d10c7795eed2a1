"""A socket-free emulator world for unit tests: the default world on a clock the test drives."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from lpm.emulator.config import default_world, populate
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


def make_world(sched: FakeScheduler | None = None, ring_expiry: float = 72) -> tuple[World, FakeScheduler]:
    """The default world (accounts, users, skills, connectors, app installs) on ``sched``'s clock."""
    sched = sched or FakeScheduler()
    world = World(clock=lambda: sched.now, scheduler=sched, ring_expiry=ring_expiry)
    populate(world, default_world())
    return world, sched
