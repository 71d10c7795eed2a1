"""A reconnect's catch-up (brand._CatchUp): every dialog added is fetched once, however often it
is added (before the resubscription, then after it), by at most CATCH_UP_CONCURRENCY workers at
a time; the first failure is raised by wait(), and cancel() stops the rest."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from lpm.client.transport.brand import CATCH_UP_CONCURRENCY, _CatchUp


class Dialog:
    def __init__(self, dialog_id: str) -> None:
        self.dialog_id = dialog_id


async def test_each_dialog_fetched_once_with_bounded_concurrency() -> None:
    fetched: list[str] = []
    running = 0
    most = 0
    gate = asyncio.Event()

    async def fetch(conversation_id: str, dialog: Any) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await gate.wait()
        fetched.append(dialog.dialog_id)
        running -= 1

    dialogs = [Dialog(f"d{i}") for i in range(CATCH_UP_CONCURRENCY * 3)]
    catch_up = _CatchUp(fetch)
    catch_up.add([("c", d) for d in dialogs[: CATCH_UP_CONCURRENCY * 2]])
    await asyncio.sleep(0)
    # after the resubscription: the same dialogs again, and new ones
    catch_up.add([("c", d) for d in dialogs])
    gate.set()
    await catch_up.wait()
    await catch_up.cancel()
    assert sorted(fetched) == sorted(d.dialog_id for d in dialogs)
    assert most <= CATCH_UP_CONCURRENCY


async def test_added_after_the_workers_finished_starts_new_ones() -> None:
    fetched: list[str] = []

    async def fetch(conversation_id: str, dialog: Any) -> None:
        fetched.append(dialog.dialog_id)

    first, second = Dialog("a"), Dialog("b")
    catch_up = _CatchUp(fetch)
    catch_up.add([("c", first)])
    await catch_up.wait()
    catch_up.add([("c", first), ("c", second)])
    await catch_up.wait()
    await catch_up.cancel()
    assert fetched == ["a", "b"]


async def test_the_first_failure_is_raised_and_cancel_stops_the_rest() -> None:
    stuck = asyncio.Event()

    async def fetch(conversation_id: str, dialog: Any) -> None:
        if dialog.dialog_id == "bad":
            raise RuntimeError("boom")
        await stuck.wait()  # never set

    catch_up = _CatchUp(fetch)
    catch_up.add([("c", Dialog("slow")), ("c", Dialog("bad"))])
    with pytest.raises(RuntimeError, match="boom"):
        await catch_up.wait()
    await catch_up.cancel()
    assert all(w.done() for w in catch_up._workers)
