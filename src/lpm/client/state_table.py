"""One shape for the SDK's small state machines: a table of ``(state, trigger) -> new state``.

Each machine (a subscription's life cycle, the token maintainer's) spells its legal moves once, as
a :class:`StateTable`, and changes state only through :meth:`StateTable.next`: a move that is not
in the table is a bug of the SDK and raises :class:`~lpm.errors.InvalidStateError` instead of
leaving the object in a state nobody planned.  A trigger that leaves the state as it is appears
in the table as a move to the same state, so "ignored here" is written down too.

The connection's machine (:data:`lpm.client.connection.CONNECTION_STATES`), the subscriptions'
(:mod:`lpm.client.subscriptions.lifecycle`) and the token maintainers'
(:mod:`lpm.client.auth.tokens`) are tables of this shape.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

from lpm.errors import InvalidStateError

__all__ = ["StateTable"]

S = TypeVar("S", bound=str)
T = TypeVar("T", bound=str)


class StateTable(Generic[S, T]):
    """The legal moves of one state machine; ``name`` names the machine in error messages."""

    __slots__ = ("_moves", "name")

    def __init__(self, name: str, moves: Mapping[tuple[S, T], S]) -> None:
        self.name = name
        self._moves: dict[tuple[S, T], S] = dict(moves)

    @classmethod
    def by_state(
        cls, name: str, rows: Mapping[S, Mapping[T, S]], *, from_every_state: Mapping[T, S] | None = None
    ) -> StateTable[S, T]:
        """A table written state by state: ``{state: {trigger: new_state, ...}, ...}``;
        ``from_every_state`` adds moves legal in every state of ``rows`` (listed first)."""
        moves: dict[tuple[S, T], S] = {}
        for state, row in rows.items():
            for trigger, new in {**(from_every_state or {}), **row}.items():
                moves[(state, trigger)] = new
        return cls(name, moves)

    def next(self, state: S, trigger: T) -> S:
        """The state ``trigger`` leads to from ``state``; :class:`InvalidStateError` if illegal."""
        try:
            return self._moves[(state, trigger)]
        except KeyError:
            raise InvalidStateError(f"{self.name}: {trigger!s} is not allowed in state {state!s}") from None

    def allows(self, state: S, trigger: T) -> bool:
        """Whether ``trigger`` is legal in ``state``."""
        return (state, trigger) in self._moves

    def triggers(self, state: S) -> frozenset[T]:
        """The triggers legal in ``state``."""
        return frozenset(t for (s, t) in self._moves if s == state)

    def __iter__(self) -> Iterator[tuple[S, T, S]]:
        """Every move as ``(state, trigger, new_state)``, in table order."""
        return ((s, t, n) for (s, t), n in self._moves.items())

    def __len__(self) -> int:
        return len(self._moves)

    def __repr__(self) -> str:
        return f"<StateTable {self.name} ({len(self._moves)} moves)>"

    def render(self) -> str:
        """The table as text (one ``STATE --trigger--> NEW`` line per move), for docs and logs."""
        return "\n".join(f"{s!s} --{t!s}--> {n!s}" for s, t, n in self)
