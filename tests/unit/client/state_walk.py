"""Helpers of the state-table walks (tests/unit/client/*/test_*_states.py; the ``taken`` fixture
is in tests/unit/client/conftest.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from lpm.client.state_table import StateTable

Move = tuple[str, str]


def moves(table: StateTable[Any, Any]) -> set[Move]:
    """The table's legal (state, trigger) pairs, as strings."""
    return {(str(s), str(t)) for s, t, _ in table}


async def until(condition: Callable[[], bool]) -> None:
    """Let the loop run until ``condition()`` holds (a bounded number of turns)."""
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never met")
