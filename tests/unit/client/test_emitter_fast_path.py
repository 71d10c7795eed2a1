"""The emitter's path for one listener (the usual case) behaves as the general path: a ``once``
handler runs once and is gone before it runs, a handler added while emitting waits for the next
emission, an async handler runs as an owned task, a failing one is reported."""

from __future__ import annotations

import asyncio
from typing import Any

from lpm.client.events import EventEmitter
from lpm.errors import HandlerError


async def test_one_listener_runs_each_time() -> None:
    emitter = EventEmitter()
    seen: list[tuple[Any, ...]] = []
    emitter.on("x", lambda *args: seen.append(args))
    assert emitter.emit("x", 1, 2) is True
    assert emitter.emit("x") is True
    assert seen == [(1, 2), ()]
    assert emitter.emit("nobody") is False


async def test_one_once_listener_is_removed_before_it_runs() -> None:
    emitter = EventEmitter()
    counts: list[int] = []

    def handler() -> None:
        counts.append(emitter.listener_count("x"))  # already gone while it runs
        emitter.emit("x")  # re-entrant: nobody listens any more

    emitter.once("x", handler)
    assert emitter.emit("x") is True
    assert emitter.emit("x") is False
    assert counts == [0]
    assert not emitter.has_listeners("x")


async def test_a_handler_added_by_the_only_listener_waits_for_the_next_emission() -> None:
    emitter = EventEmitter()
    seen: list[str] = []

    def first() -> None:
        seen.append("first")
        if len(seen) == 1:
            emitter.on("x", lambda: seen.append("second"))

    emitter.on("x", first)
    emitter.emit("x")
    assert seen == ["first"]
    emitter.emit("x")
    assert seen == ["first", "first", "second"]


async def test_one_async_listener_runs_as_a_task_and_its_failure_is_reported() -> None:
    errors: list[BaseException] = []
    emitter = EventEmitter(error_sink=errors.append)
    done = asyncio.Event()

    async def handler(value: int) -> None:
        done.set()
        raise ValueError(value)

    emitter.on("x", handler)
    emitter.emit("x", 7)
    await asyncio.wait_for(done.wait(), 5)
    for _ in range(3):
        await asyncio.sleep(0)
    assert len(errors) == 1 and isinstance(errors[0], HandlerError)
    assert isinstance(errors[0].__cause__, ValueError)
    await emitter.close_events()


async def test_one_failing_sync_listener_is_reported() -> None:
    errors: list[BaseException] = []
    emitter = EventEmitter(error_sink=errors.append)
    emitter.on("x", lambda: 1 / 0)
    assert emitter.emit("x") is True
    assert len(errors) == 1 and isinstance(errors[0].__cause__, ZeroDivisionError)
