"""The one retry shape (lpm.client.retry): schedule, jitter, predicate, limits, cancellation."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

import pytest

from lpm.client.retry import Backoff, Fatal, retry
from lpm.errors import ConfigurationError


class Transient(Exception):
    pass


class Permanent(Exception):
    pass


def transient_only(exc: BaseException) -> bool:
    return isinstance(exc, Transient)


class FakeSleep:
    """Records the delays instead of waiting; optionally advances a fake loop clock."""

    def __init__(self, clock: list[float] | None = None) -> None:
        self.delays: list[float] = []
        self.clock = clock

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        if self.clock is not None:
            self.clock[0] += delay


def failing(
    errors: list[BaseException], result: str = "ok"
) -> tuple[Callable[[], Awaitable[str]], list[int]]:
    """An operation that raises ``errors`` one per call, then returns ``result``."""
    calls = [0]

    async def operation() -> str:
        calls[0] += 1
        if errors:
            raise errors.pop(0)
        return result

    return operation, calls


# ---------------------------------------------------------------------------- Backoff


def test_delay_indexes_the_schedule_and_repeats_the_last_value() -> None:
    backoff = Backoff((1.0, 2.0, 5.0))
    assert [backoff.delay(n) for n in range(6)] == [1.0, 2.0, 5.0, 5.0, 5.0, 5.0]
    assert backoff.delay(10_000) == 5.0


def test_delays_is_an_endless_iterator_of_delay() -> None:
    backoff = Backoff((0.5, 1))
    it = backoff.delays()
    assert [next(it) for _ in range(5)] == [0.5, 1.0, 1.0, 1.0, 1.0]


def test_schedule_is_normalised_to_a_tuple_of_floats() -> None:
    backoff = Backoff([1, 2])  # type: ignore[arg-type]
    assert backoff.schedule == (1.0, 2.0)
    assert all(isinstance(s, float) for s in backoff.schedule)
    assert Backoff((1, 2)) == backoff


@pytest.mark.parametrize(
    "schedule",
    [(), (-1.0,), (1.0, -0.1), (float("nan"),), (float("inf"),), ("x",), None],
)
def test_invalid_schedules_are_configuration_errors(schedule: object) -> None:
    with pytest.raises(ConfigurationError):
        Backoff(schedule)  # type: ignore[arg-type]


@pytest.mark.parametrize("jitter", [-0.1, 1.1, True])
def test_invalid_jitter_is_a_configuration_error(jitter: float) -> None:
    with pytest.raises(ConfigurationError):
        Backoff((1.0,), jitter=jitter)


def test_negative_attempt_is_refused() -> None:
    with pytest.raises(ConfigurationError):
        Backoff((1.0,)).delay(-1)


def test_zero_delays_are_allowed() -> None:
    assert Backoff((0.0,), jitter=0.5).delay(3) == 0.0


def test_jitter_stays_within_bounds_and_varies() -> None:
    backoff = Backoff((10.0, 100.0), jitter=0.25, rng=random.Random(42))
    first = [backoff.delay(0) for _ in range(500)]
    later = [backoff.delay(7) for _ in range(500)]
    assert all(7.5 <= d <= 12.5 for d in first)
    assert all(75.0 <= d <= 125.0 for d in later)
    assert len(set(first)) > 100  # really random
    assert min(first) < 8.0 and max(first) > 12.0  # spans the range


def test_jitter_is_reproducible_with_a_seeded_rng() -> None:
    a = Backoff((1.0, 2.0, 3.0), jitter=1.0, rng=random.Random(7))
    b = Backoff((1.0, 2.0, 3.0), jitter=1.0, rng=random.Random(7))
    assert [a.delay(n) for n in range(10)] == [b.delay(n) for n in range(10)]
    full = Backoff((3.0,), jitter=1.0).delays()
    assert all(0.0 <= next(full) <= 6.0 for _ in range(200))


def test_jitter_uses_the_module_generator_when_none_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    import lpm.client.retry as retry_module

    monkeypatch.setattr(retry_module, "_RANDOM", random.Random(1))
    expected = 4.0 * random.Random(1).uniform(0.5, 1.5)
    assert Backoff((4.0,), jitter=0.5).delay(0) == expected


def test_rng_does_not_take_part_in_equality_or_hash() -> None:
    a = Backoff((1.0,), jitter=0.1, rng=random.Random(1))
    b = Backoff((1.0,), jitter=0.1)
    assert a == b and hash(a) == hash(b)


# ---------------------------------------------------------------------------- retry


async def test_returns_the_first_success_without_waiting() -> None:
    sleep = FakeSleep()
    operation, calls = failing([])
    assert await retry(operation, backoff=Backoff((1.0,)), is_retryable=transient_only, sleep=sleep) == "ok"
    assert calls == [1] and sleep.delays == []


async def test_retryable_errors_wait_on_the_schedule_then_succeed() -> None:
    sleep = FakeSleep()
    operation, calls = failing([Transient() for _ in range(5)])
    result = await retry(
        operation, backoff=Backoff((1.0, 2.0, 3.0)), is_retryable=transient_only, sleep=sleep
    )
    assert result == "ok"
    assert calls == [6]
    assert sleep.delays == [1.0, 2.0, 3.0, 3.0, 3.0]


async def test_fatal_error_is_raised_at_once() -> None:
    sleep = FakeSleep()
    boom = Permanent("no")
    operation, calls = failing([Transient(), boom])
    with pytest.raises(Permanent) as info:
        await retry(operation, backoff=Backoff((1.0,)), is_retryable=transient_only, sleep=sleep)
    assert info.value is boom
    assert calls == [2] and sleep.delays == [1.0]


async def test_predicate_sees_each_error() -> None:
    seen: list[BaseException] = []
    errors: list[BaseException] = [Transient("a"), Transient("b")]
    expected = list(errors)

    def predicate(exc: BaseException) -> bool:
        seen.append(exc)
        return True

    operation, _ = failing(errors)
    await retry(operation, backoff=Backoff((0.0,)), is_retryable=predicate, sleep=FakeSleep())
    assert seen == expected


async def test_fatal_helper_stops_the_loop_with_its_cause() -> None:
    cause = Transient("really fatal")

    async def operation() -> str:
        try:
            raise cause
        except Transient as exc:
            raise Fatal() from exc

    sleep = FakeSleep()
    with pytest.raises(Transient) as info:
        await retry(operation, backoff=Backoff((1.0,)), is_retryable=lambda e: True, sleep=sleep)
    assert info.value is cause
    assert sleep.delays == []


async def test_fatal_without_cause_is_raised_itself() -> None:
    operation, _ = failing([Fatal("stop")])
    with pytest.raises(Fatal, match="stop"):
        await retry(operation, backoff=Backoff((1.0,)), is_retryable=lambda e: True, sleep=FakeSleep())


async def test_max_attempts_raises_the_last_error() -> None:
    sleep = FakeSleep()
    errors: list[BaseException] = [Transient(str(n)) for n in range(10)]
    operation, calls = failing(errors)
    with pytest.raises(Transient, match=r"^2$"):
        await retry(
            operation, backoff=Backoff((1.0, 2.0)), is_retryable=transient_only, max_attempts=3, sleep=sleep
        )
    assert calls == [3]
    assert sleep.delays == [1.0, 2.0]


async def test_max_attempts_one_never_waits() -> None:
    sleep = FakeSleep()
    operation, calls = failing([Transient()])
    with pytest.raises(Transient):
        await retry(
            operation, backoff=Backoff((1.0,)), is_retryable=transient_only, max_attempts=1, sleep=sleep
        )
    assert calls == [1] and sleep.delays == []


async def test_max_attempts_not_reached_returns() -> None:
    operation, _ = failing([Transient(), Transient()])
    assert (
        await retry(
            operation, backoff=Backoff((1.0,)), is_retryable=transient_only, max_attempts=3, sleep=FakeSleep()
        )
        == "ok"
    )


@pytest.mark.parametrize("max_attempts", [0, -1])
async def test_max_attempts_below_one_is_refused(max_attempts: int) -> None:
    operation, calls = failing([])
    with pytest.raises(ConfigurationError):
        await retry(
            operation, backoff=Backoff((1.0,)), is_retryable=transient_only, max_attempts=max_attempts
        )
    assert calls == [0]


async def test_deadline_stops_before_a_wait_that_would_end_past_it(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()
    clock = [1000.0]
    monkeypatch.setattr(loop, "time", lambda: clock[0])
    sleep = FakeSleep(clock)
    errors: list[BaseException] = [Transient(str(n)) for n in range(10)]
    operation, calls = failing(errors)
    with pytest.raises(Transient, match=r"^3$"):
        # waits 1 (t=1001), 2 (t=1003), 3 (t=1006); the next (3 more, to 1009) would pass 1008
        await retry(
            operation,
            backoff=Backoff((1.0, 2.0, 3.0)),
            is_retryable=transient_only,
            deadline=1008.0,
            sleep=sleep,
        )
    assert sleep.delays == [1.0, 2.0, 3.0]
    assert calls == [4]


async def test_a_wait_ending_exactly_at_the_deadline_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()
    clock = [0.0]
    monkeypatch.setattr(loop, "time", lambda: clock[0])
    sleep = FakeSleep(clock)
    operation, _ = failing([Transient(), Transient()])
    result = await retry(
        operation, backoff=Backoff((1.0,)), is_retryable=transient_only, deadline=2.0, sleep=sleep
    )
    assert result == "ok" and sleep.delays == [1.0, 1.0]


async def test_a_past_deadline_raises_the_first_error(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()
    monkeypatch.setattr(loop, "time", lambda: 50.0)
    sleep = FakeSleep()
    operation, calls = failing([Transient()])
    with pytest.raises(Transient):
        await retry(
            operation, backoff=Backoff((0.5,)), is_retryable=transient_only, deadline=50.0, sleep=sleep
        )
    assert calls == [1] and sleep.delays == []


async def test_on_retry_sync_gets_error_attempt_and_delay_before_each_wait() -> None:
    events: list[tuple[object, ...]] = []
    sleep_log: list[tuple[object, ...]] = []

    async def sleep(delay: float) -> None:
        sleep_log.append(("sleep", delay))
        events.append(("sleep", delay))

    errors: list[BaseException] = [Transient("a"), Transient("b"), Transient("c")]
    a, b, c = errors
    operation, _ = failing(errors)

    def on_retry(exc: BaseException, attempt: int, delay: float) -> None:
        events.append(("retry", exc, attempt, delay))

    await retry(
        operation, backoff=Backoff((1.0, 2.0)), is_retryable=transient_only, on_retry=on_retry, sleep=sleep
    )
    assert events == [
        ("retry", a, 1, 1.0),
        ("sleep", 1.0),
        ("retry", b, 2, 2.0),
        ("sleep", 2.0),
        ("retry", c, 3, 2.0),
        ("sleep", 2.0),
    ]


async def test_on_retry_async_is_awaited() -> None:
    seen: list[tuple[str, int, float]] = []

    async def on_retry(exc: BaseException, attempt: int, delay: float) -> None:
        await asyncio.sleep(0)
        seen.append((str(exc), attempt, delay))

    operation, _ = failing([Transient("x"), Transient("y")])
    await retry(
        operation,
        backoff=Backoff((0.5, 0.25)),
        is_retryable=transient_only,
        on_retry=on_retry,
        sleep=FakeSleep(),
    )
    assert seen == [("x", 1, 0.5), ("y", 2, 0.25)]


async def test_on_retry_is_not_called_when_the_loop_gives_up() -> None:
    calls: list[int] = []
    operation, _ = failing([Transient(), Transient(), Permanent()])
    with pytest.raises(Permanent):
        await retry(
            operation,
            backoff=Backoff((0.0,)),
            is_retryable=transient_only,
            on_retry=lambda e, n, d: calls.append(n),
            sleep=FakeSleep(),
        )
    assert calls == [1, 2]
    calls.clear()
    operation, _ = failing([Transient(), Transient()])
    with pytest.raises(Transient):
        await retry(
            operation,
            backoff=Backoff((0.0,)),
            is_retryable=transient_only,
            on_retry=lambda e, n, d: calls.append(n),
            max_attempts=2,
            sleep=FakeSleep(),
        )
    assert calls == [1]


async def test_on_retry_delay_is_the_jittered_delay_actually_slept() -> None:
    seen: list[float] = []
    sleep = FakeSleep()
    operation, _ = failing([Transient() for _ in range(4)])
    await retry(
        operation,
        backoff=Backoff((1.0, 2.0), jitter=0.5, rng=random.Random(3)),
        is_retryable=transient_only,
        on_retry=lambda e, n, d: seen.append(d),
        sleep=sleep,
    )
    assert seen == sleep.delays
    assert 0.5 <= seen[0] <= 1.5 and all(1.0 <= d <= 3.0 for d in seen[1:])


async def test_cancelled_error_from_the_operation_is_never_retried() -> None:
    sleep = FakeSleep()
    operation, calls = failing([asyncio.CancelledError()])
    with pytest.raises(asyncio.CancelledError):
        await retry(operation, backoff=Backoff((1.0,)), is_retryable=lambda e: True, sleep=sleep)
    assert calls == [1] and sleep.delays == []


async def test_base_exceptions_propagate() -> None:
    operation, calls = failing([KeyboardInterrupt()])
    with pytest.raises(KeyboardInterrupt):
        await retry(operation, backoff=Backoff((1.0,)), is_retryable=lambda e: True, sleep=FakeSleep())
    assert calls == [1]


async def test_cancelling_during_a_wait_stops_the_loop() -> None:
    calls = [0]

    async def operation() -> None:
        calls[0] += 1
        raise Transient()

    task = asyncio.create_task(retry(operation, backoff=Backoff((3600.0,)), is_retryable=transient_only))
    for _ in range(5):
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert calls == [1]


async def test_cancelling_during_an_operation_stops_the_loop() -> None:
    started = asyncio.Event()

    async def operation() -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(retry(operation, backoff=Backoff((0.0,)), is_retryable=lambda e: True))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_default_sleep_really_waits_the_delay() -> None:
    loop = asyncio.get_running_loop()
    operation, _ = failing([Transient()])
    start = loop.time()
    await retry(operation, backoff=Backoff((0.02,)), is_retryable=transient_only)
    assert loop.time() - start >= 0.015
