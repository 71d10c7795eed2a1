"""Timers the world and its router are given instead of reading a clock or a loop themselves.

Production passes a scheduler on the running asyncio loop (:mod:`lpm.emulator.app`); unit tests
pass one that fires only when the test advances time, so rings expire without sleeping.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class Cancellable(Protocol):
    def cancel(self) -> Any: ...


class Scheduler(Protocol):
    """Runs ``callback`` after ``delay`` seconds (asyncio's ``loop.call_later`` fits)."""

    def call_later(self, delay: float, callback: Callable[[], None]) -> Cancellable: ...
