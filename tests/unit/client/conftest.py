"""Fixtures of the client unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from lpm.client.state_table import StateTable
from tests.unit.client.state_walk import Move


@pytest.fixture
def taken(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, set[Move]]]:
    """Every (state, trigger) each table was asked about, by table name."""
    seen: dict[str, set[Move]] = {}
    original = StateTable.next

    def spy(self: StateTable[Any, Any], state: Any, trigger: Any) -> Any:
        seen.setdefault(self.name, set()).add((str(state), str(trigger)))
        return original(self, state, trigger)

    monkeypatch.setattr(StateTable, "next", spy)
    yield seen
