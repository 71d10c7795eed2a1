"""Shared pieces of the fuzz tests: hypothesis profiles, JSON strategies, golden-frame mutation
and a private event loop running one emulator for a whole module.

Profiles: ``lpm-fuzz`` (modest, deterministic: part of ``make test``) and ``lpm-fuzz-long``
(many more examples, random; ``LPM_CHAOS=long``, i.e. ``make chaos``).  The hypothesis example
database is off so runs leave no files behind.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from lpm.emulator.app import Emulator

LONG = os.environ.get("LPM_CHAOS", "").lower() == "long"
FRAMES_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "frames"

settings.register_profile(
    "lpm-fuzz",
    max_examples=100,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "lpm-fuzz-long",
    max_examples=2000,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
#: Decorate fuzz tests with this (``@FUZZ``); ``scaled(n)`` for tests whose examples are costly.
FUZZ = settings.get_profile("lpm-fuzz-long" if LONG else "lpm-fuzz")


def scaled(examples: int) -> settings:
    """The fuzz profile with ``examples`` examples (ten times more in the long run)."""
    return settings(FUZZ, max_examples=examples * 10 if LONG else examples)


# ---------------------------------------------------------------- values

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=25,
)
#: Keys the protocol uses, so random objects often look almost right.
PROTOCOL_KEYS = [
    "kind",
    "id",
    "reqId",
    "type",
    "body",
    "code",
    "headers",
    "changes",
    "result",
    "subscriptionId",
    "convId",
    "conversationId",
    "dialogId",
    "sequence",
    "event",
    "message",
    "conversationDetails",
    "dialogs",
    "participants",
    "participantsPId",
    "participantsDetails",
    "role",
    "state",
    "stage",
    "ringsDetails",
    "ringId",
    "ringState",
    "originatorId",
    "originatorMetadata",
    "serverTimestamp",
]
protocol_objects = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(PROTOCOL_KEYS) | st.text(max_size=8), inner, max_size=6)
    ),
    max_leaves=30,
)


def golden_frames() -> dict[str, Any]:
    """Every golden frame under tests/fixtures/frames, parsed."""
    return {p.name: json.loads(p.read_text()) for p in sorted(FRAMES_DIR.glob("*.json"))}


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out.extend(_paths(item, (*prefix, key)))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out.extend(_paths(item, (*prefix, i)))
    return out


def _replace(value: Any, path: tuple[Any, ...], new: Any, *, delete: bool = False) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        copy = dict(value)
        if delete and not rest:
            copy.pop(head, None)
        else:
            copy[head] = _replace(value[head], rest, new, delete=delete)
        return copy
    copy_list = list(value)
    if delete and not rest:
        del copy_list[head]
    else:
        copy_list[head] = _replace(value[head], rest, new, delete=delete)
    return copy_list


@st.composite
def mutated(draw: st.DrawFn, value: Any, mutations: int = 3) -> Any:
    """``value`` with a few random paths replaced by random values or deleted."""
    for _ in range(draw(st.integers(min_value=1, max_value=mutations))):
        paths = _paths(value)
        path = draw(st.sampled_from(paths))
        if path and draw(st.booleans()):
            value = _replace(value, path, None, delete=True)
        else:
            value = _replace(value, path, draw(protocol_objects))
    return value


# ---------------------------------------------------------------- a loop of our own

T = TypeVar("T")


class LoopEmulator:
    """An emulator on a private event loop, driven from synchronous (hypothesis) tests."""

    def __init__(self, **settings_: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.emu = Emulator(**settings_)
        self.run(self.emu.start())

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return self.loop.run_until_complete(asyncio.wait_for(coro, timeout))

    def close(self) -> None:
        try:
            self.run(self.emu.stop())
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        finally:
            self.loop.close()
