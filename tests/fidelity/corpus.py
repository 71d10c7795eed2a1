"""The published corpus (``tests/fixtures/frames/published/``) and its shape comparison.

A frame's *shape* is the set of its JSON paths with the types found at each: ``body.changes[]
.result.convId`` -> ``{"string"}``.  Array elements share one path (``[]``), and the keys of the
objects that are maps of data (ids, roles) are folded into ``*``: what is compared is the
structure, never the values.  :func:`differences` lists what one shape has and the other has
not (``platform-only``: in LivePerson's frame, not the emulator's; ``emulator-only``: the
reverse), the paths whose types differ (``type``) and, for the few paths whose value is part of
the protocol (the frame's ``kind``, ``type`` and ``code``, a string body), values that differ
(``value``).  ``allowances.toml`` lists the differences the emulator keeps, each with its reason.
"""

from __future__ import annotations

import fnmatch
import json
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DIRECTORY = Path(__file__).resolve().parents[1] / "fixtures" / "frames" / "published"

#: Objects whose keys are data (participant ids, roles), at paths ending with these names.
MAP_KEYS = ("numberOfunreadMessages", "participants", "participantsPId")
#: Paths whose values are compared too (in every frame).
VALUE_PATHS = ("kind", "type", "code")
KINDS = ("platform-only", "emulator-only", "type", "value")


@dataclass(frozen=True)
class Published:
    """One frame of the corpus with its index entry."""

    name: str
    url: str
    dialect: str
    kind: str
    frame: Any
    source: str | None = None
    where: str = ""


@dataclass(frozen=True)
class Difference:
    kind: str
    path: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.kind} {self.path}" + (f" ({self.detail})" if self.detail else "")


@dataclass
class Allowance:
    frames: list[str]
    path: str
    kind: str
    reason: str
    used: int = 0

    def covers(self, frame: str, difference: Difference) -> bool:
        return (
            difference.kind == self.kind
            and any(fnmatch.fnmatchcase(frame, pattern) for pattern in self.frames)
            and fnmatch.fnmatchcase(difference.path, _literal_brackets(self.path))
        )


def _literal_brackets(pattern: str) -> str:
    """A path pattern for fnmatch: ``[]`` (an array element) stays literal, only ``*`` globs."""
    return pattern.replace("[", "\0").replace("]", "[]]").replace("\0", "[[]")


def load_corpus() -> dict[str, Published]:
    index = tomllib.loads((DIRECTORY / "index.toml").read_text(encoding="utf-8"))
    corpus = {}
    for name, entry in index["frames"].items():
        frame = json.loads((DIRECTORY / f"{name}.json").read_text(encoding="utf-8"))
        corpus[name] = Published(
            name=name,
            url=entry["url"],
            dialect=entry["dialect"],
            kind=entry["kind"],
            frame=frame,
            source=entry.get("source"),
            where=entry.get("where", ""),
        )
    return corpus


def load_allowances() -> list[Allowance]:
    raw = tomllib.loads((DIRECTORY / "allowances.toml").read_text(encoding="utf-8"))
    out = []
    for i, entry in enumerate(raw.get("allow", [])):
        frames = entry["frames"] if isinstance(entry["frames"], list) else [entry["frames"]]
        if entry["kind"] not in KINDS or not entry.get("reason", "").strip():
            raise ValueError(f"allowance #{i} needs a kind of {KINDS} and a reason")
        out.append(Allowance(frames=frames, path=entry["path"], kind=entry["kind"], reason=entry["reason"]))
    return out


def _type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def shape(frame: Any) -> dict[str, set[str]]:
    """Path -> the JSON types found there (``$`` is the frame itself)."""
    found: dict[str, set[str]] = {}

    def walk(value: Any, path: str) -> None:
        found.setdefault(path or "$", set()).add(_type(value))
        if isinstance(value, dict):
            fold = path.rsplit(".", 1)[-1] in MAP_KEYS
            for key, item in value.items():
                name = "*" if fold else key
                walk(item, f"{path}.{name}" if path else name)
        elif isinstance(value, list):
            for item in value:
                walk(item, f"{path}[]")

    walk(frame, "")
    return found


def _value(frame: Any, path: str) -> Any:
    current = frame
    for part in path.split("."):
        if not isinstance(current, dict) or part not in current:
            return None
        current = current[part]
    return current


def differences(published: Any, emulated: Any) -> list[Difference]:
    """What tells the two frames apart (see the module docstring)."""
    theirs, ours = shape(published), shape(emulated)
    out = [Difference("platform-only", p) for p in sorted(theirs.keys() - ours.keys())]
    out += [Difference("emulator-only", p) for p in sorted(ours.keys() - theirs.keys())]
    for path in sorted(theirs.keys() & ours.keys()):
        if theirs[path] != ours[path]:
            out.append(
                Difference("type", path, f"published {sorted(theirs[path])}, emulator {sorted(ours[path])}")
            )
    value_paths: Iterable[str] = VALUE_PATHS
    if isinstance(published, dict) and isinstance(published.get("body"), str):
        value_paths = (*VALUE_PATHS, "body")
    for path in value_paths:
        mine, expected = _value(emulated, path), _value(published, path)
        if mine != expected:
            out.append(Difference("value", path, f"published {expected!r}, emulator {mine!r}"))
    return out


def fill(frame: Any, values: dict[str, Any]) -> Any:
    """``frame`` with every string equal to a key of ``values`` replaced by its value (a published
    request's placeholders and example ids, made to name the scenario's)."""
    if isinstance(frame, dict):
        return {k: fill(v, values) for k, v in frame.items()}
    if isinstance(frame, list):
        return [fill(v, values) for v in frame]
    if isinstance(frame, str) and frame in values:
        return values[frame]
    return frame
