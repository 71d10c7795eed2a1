"""The SDK's one retry shape: a :class:`Backoff` schedule and :func:`retry` around an operation.

Modelled on ``websockets``' ``backoff()`` / ``process_exception``: the operation is called; when it
raises, a predicate (``is_retryable``) decides whether the error is transient (wait and call again)
or fatal (raise it at once).  The delays come from a schedule whose last value repeats forever,
optionally jittered.  ``asyncio.CancelledError`` (and any other ``BaseException`` that is not an
``Exception``) always propagates: cancelling the caller cancels the retry, during a call or a wait.

Every retry loop of the SDK goes through :func:`retry` (token logins, HTTP side calls, history
loads, WebSocket reconnects, REST/Send API 401 retries); only the predicate, the schedule and the
stop condition differ.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import math
import random
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from lpm.errors import ConfigurationError

__all__ = ["Backoff", "Fatal", "retry"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Backoff:
    """A delay schedule in seconds; the last value repeats forever; optional jitter.

    ``jitter`` is a fraction in ``[0, 1]``: each delay is scaled by a random factor in
    ``[1 - jitter, 1 + jitter]``.  ``rng`` (tests) replaces the module's random generator.
    """

    schedule: tuple[float, ...]
    jitter: float = 0.0
    rng: random.Random | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        try:
            schedule = tuple(float(s) for s in self.schedule)
        except (TypeError, ValueError):
            raise ConfigurationError("a back-off schedule must be a sequence of seconds") from None
        if not schedule or any(not math.isfinite(s) or s < 0 for s in schedule):
            raise ConfigurationError("a back-off schedule must be a non-empty sequence of seconds >= 0")
        if isinstance(self.jitter, bool) or not (0.0 <= self.jitter <= 1.0):
            raise ConfigurationError("back-off jitter must be a fraction in [0, 1]")
        object.__setattr__(self, "schedule", schedule)

    def delay(self, attempt: int) -> float:
        """The wait after failed attempt number ``attempt`` (0-based); past the end, the last value."""
        if attempt < 0:
            raise ConfigurationError("attempt must be >= 0")
        base = self.schedule[min(attempt, len(self.schedule) - 1)]
        if not self.jitter or not base:
            return base
        rng = self.rng if self.rng is not None else _RANDOM
        return base * rng.uniform(1.0 - self.jitter, 1.0 + self.jitter)

    def delays(self) -> Iterator[float]:
        """``delay(0), delay(1), ...`` forever."""
        return map(self.delay, itertools.count())


_RANDOM = random.Random()


class Fatal(Exception):
    """Raised by an operation to stop retrying whatever the predicate says.

    :func:`retry` raises the ``Fatal``'s ``__cause__`` when it has one (``raise Fatal() from exc``
    stops the loop with ``exc``), else the ``Fatal`` itself.
    """


async def retry(
    operation: Callable[[], Awaitable[T]],
    *,
    backoff: Backoff,
    is_retryable: Callable[[BaseException], bool],
    on_retry: Callable[[BaseException, int, float], Awaitable[None] | None] | None = None,
    max_attempts: int | None = None,
    deadline: float | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """Call ``operation()`` until it returns; wait ``backoff.delay(n)`` after the n-th failure (0-based).

    * ``is_retryable(error)`` false: the error is raised at once.
    * ``on_retry(error, attempt, delay)`` (sync or async) runs before each wait; ``attempt`` is the
      number of failed attempts so far (1 after the first failure) and ``delay`` the wait to come.
    * ``max_attempts``: after that many failed attempts the last error is raised (None: no limit).
    * ``deadline`` (a ``loop.time()`` value): a wait that would end past it is not started; the
      last error is raised instead.
    * ``asyncio.CancelledError`` always propagates; it is never retried.
    """
    if max_attempts is not None and max_attempts < 1:
        raise ConfigurationError("max_attempts must be >= 1")
    failures = 0
    while True:
        fatal: Fatal | None = None
        try:
            return await operation()
        except Fatal as exc:
            fatal = exc
        except Exception as exc:
            if not is_retryable(exc):
                raise
            failures += 1
            if max_attempts is not None and failures >= max_attempts:
                raise
            wait = backoff.delay(failures - 1)
            if deadline is not None and asyncio.get_running_loop().time() + wait > deadline:
                raise
            if on_retry is not None:
                result = on_retry(exc, failures, wait)
                if inspect.isawaitable(result):
                    await result
        if fatal is not None:
            # Raised outside the ``except`` block so the cause keeps its own context chain.
            raise fatal.__cause__ if fatal.__cause__ is not None else fatal
        await sleep(wait)
