"""What the store holds per conversation: the application's state and the bot's own bookkeeping.

One JSON object per conversation, written whole after every handler::

    {"v": 1, "state": {...}, "started": true, "done": {"<dialog id>": <last handled sequence>},
     "surveys": ["<survey dialog id>"], "handled": 12, "by": "<replica id>"}

``done`` says which consumer messages are handled: everything up to that sequence in that dialog.
A handler's state is saved together with the sequence it handled, in one write, so a message is
either handled with its state or not at all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from lpm.errors import ConfigurationError

__all__ = ["Record"]

VERSION = 1


@dataclass
class Record:
    """One conversation's record (see the module docstring)."""

    state: dict[str, Any] = field(default_factory=dict)
    started: bool = False
    done: dict[str, int] = field(default_factory=dict)
    surveys: list[str] = field(default_factory=list)
    #: Handler runs saved so far (every replica's).
    handled: int = 0
    #: The replica that saved last.
    by: str | None = None
    #: Whether the store had it (False: a conversation new to the bot).
    stored: bool = False

    def dumps(self) -> str:
        try:
            return json.dumps(
                {
                    "v": VERSION,
                    "state": self.state,
                    "started": self.started,
                    "done": self.done,
                    "surveys": self.surveys,
                    "handled": self.handled,
                    "by": self.by,
                },
                separators=(",", ":"),
                allow_nan=False,
            )
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"conversation state must be JSON-serializable: {exc}") from None

    @classmethod
    def loads(cls, text: str | None) -> Record:
        """The record a store returned (None or unreadable text: a new record)."""
        if text is None:
            return cls()
        try:
            data = json.loads(text)
        except ValueError:
            return cls()
        if not isinstance(data, dict) or data.get("v") != VERSION:
            return cls()
        state = data.get("state")
        done = data.get("done")
        surveys = data.get("surveys")
        return cls(
            state=state if isinstance(state, dict) else {},
            started=bool(data.get("started")),
            done={str(k): int(v) for k, v in done.items() if isinstance(v, int)}
            if isinstance(done, dict)
            else {},
            surveys=[str(s) for s in surveys] if isinstance(surveys, list) else [],
            handled=int(data.get("handled") or 0),
            by=data.get("by") if isinstance(data.get("by"), str) else None,
            stored=True,
        )
