"""A skill (routing queue), shared per skill id by every conversation of one connection."""

from __future__ import annotations

from typing import Any

__all__ = ["Skill"]


class Skill:
    """A skill of the account; conversations point at the same object for the same id.

    Shift status (``on_shift``, ``next_on``, ``next_off``, epoch milliseconds) is filled in by
    :meth:`process_shift_status` when the application or a shift-status poller provides it.
    """

    __slots__ = ("next_off", "next_on", "on_shift", "skill_id")

    def __init__(self, skill_id: str) -> None:
        #: The skill id as UMS sends it (``"-1"`` means "any skill").
        self.skill_id = skill_id
        #: Whether the skill is within its working hours; None until known.
        self.on_shift: bool | None = None
        #: Epoch ms of the next shift start, if any.
        self.next_on: int | None = None
        #: Epoch ms of the next shift end, if any.
        self.next_off: int | None = None

    def __repr__(self) -> str:
        return f"<Skill {self.skill_id}>"

    def is_in_off_hours(self) -> bool:
        """True when the skill is known to be off shift and a next shift start is known."""
        return self.on_shift is False and self.next_on is not None

    def process_shift_status(self, data: dict[str, Any]) -> bool:
        """Apply one shift-status item (``{skillId, onShift, nextOn, nextOff}``); returns whether
        ``on_shift`` changed."""
        before = self.on_shift
        if "onShift" in data:
            self.on_shift = bool(data["onShift"])
        self.next_on = _int_or_none(data.get("nextOn"))
        self.next_off = _int_or_none(data.get("nextOff"))
        return before is not None and before != self.on_shift


def _int_or_none(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
