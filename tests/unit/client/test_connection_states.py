"""The connection's state machine is one table with its triggers (lpm.client.connection).

The unit walk takes every legal (state, trigger) once and refuses every other; the emulator walk
(tests/integration/test_connection_states_walk.py) drives real connections through it.
"""

from __future__ import annotations

import itertools

import pytest

import lpm
from lpm.client import connection as cs
from lpm.client.connection import CONNECTION_STATES, TRANSITIONS, ConnectionTrigger
from lpm.errors import InvalidStateError

STATES = [
    cs.INITIAL,
    cs.CONNECTING,
    cs.CONNECTED,
    cs.FAILED_TO_CONNECT,
    cs.DISCONNECTED,
    cs.CLOSING,
    cs.CLOSED,
]


def bare_connection(state: str) -> lpm.Connection:
    conn = lpm.Connection(
        lpm.create_connection(
            account_id="12345678", user_type=lpm.UserType.CONSUMER, csds_domain="127.0.0.1:1"
        ).options,
        initial_state=state,
    )
    return conn


@pytest.mark.parametrize(("state", "trigger", "new"), list(CONNECTION_STATES))
def test_every_legal_move_is_taken_and_announced(state: str, trigger: ConnectionTrigger, new: str) -> None:
    conn = bare_connection(state)
    seen: list[str] = []
    conn.on("state", seen.append)
    conn._move(trigger)
    assert conn.state == new
    assert seen == ([] if new == state else [new])


def test_every_other_move_is_refused_and_leaves_the_state() -> None:
    legal = {(s, t) for s, t, _ in CONNECTION_STATES}
    refused = 0
    for state, trigger in itertools.product([*STATES, cs.NULL], ConnectionTrigger):
        if (state, trigger) in legal:
            continue
        conn = bare_connection(state)
        with pytest.raises(InvalidStateError):
            conn._move(trigger)
        assert conn.state == state
        refused += 1
    assert refused == (len(STATES) + 1) * len(ConnectionTrigger) - len(legal)


def test_closed_and_null_are_final() -> None:
    assert CONNECTION_STATES.triggers(cs.CLOSED) == frozenset()
    assert CONNECTION_STATES.triggers(cs.NULL) == frozenset()


def test_every_state_but_null_can_reach_closed() -> None:
    for state in STATES:
        reached, frontier = {state}, [state]
        while frontier:
            current = frontier.pop()
            for s, _, n in CONNECTION_STATES:
                if s == current and n not in reached:
                    reached.add(n)
                    frontier.append(n)
        assert cs.CLOSED in reached, state


def test_the_target_view_is_derived_from_the_table() -> None:
    assert TRANSITIONS[cs.CONNECTED] == {cs.DISCONNECTED, cs.CLOSING}
    assert TRANSITIONS[cs.CLOSING] == {cs.CLOSED}
    assert TRANSITIONS[cs.CLOSED] == frozenset()
