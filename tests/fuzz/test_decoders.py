"""(a) The SDK's decoders (``lpm.protocol.frames`` and ``lpm.protocol.notifications``) fed random
and mutated golden frames: the only exceptions that may come out are the documented ones
(``FrameError`` from the frame codec, ``NotificationError`` from the body decoders, both
``ValueError``), which the connection turns into ``lpm.errors.ProtocolError`` on its ``error``
event (see test_sdk_garbage)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from lpm.protocol import frames
from lpm.protocol.notifications import (
    NotificationError,
    decode_agent_states,
    decode_conversation_changes,
    decode_messaging_events,
    decode_routing_tasks,
)
from lpm.protocol.types import Notif, canonical_notification
from tests.fuzz.common import FUZZ, golden_frames, json_values, mutated, protocol_objects

GOLDEN = golden_frames()


def decode_body(kind: Notif | None, body: Any) -> None:
    """Run every decoder that could be handed ``body`` (both dialects where it matters)."""
    for brand in (True, False):
        if kind in (None, Notif.EX_CONVERSATION_CHANGE):
            with _documented():
                decode_conversation_changes(body, brand=brand)
        if kind in (None, Notif.MESSAGING_EVENT):
            with _documented():
                decode_messaging_events(body, brand=brand)
    if kind in (None, Notif.ROUTING_TASK):
        with _documented():
            decode_routing_tasks(body)
    if kind in (None, Notif.AGENT_STATE):
        with _documented():
            decode_agent_states(body)


class _documented:
    """Let a NotificationError through; anything else fails the test (as it would escape)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is None:
            return False
        if isinstance(exc, NotificationError):
            assert str(exc), "a rejection must say why"
            return True
        return False  # re-raised: an undocumented exception is a bug


def decode_frame_text(data: str | bytes) -> frames.Frame | None:
    try:
        return frames.decode_frame(data)
    except frames.FrameError as exc:
        assert str(exc)
        return None


@FUZZ
@given(st.binary(max_size=300) | st.text(max_size=300))
def test_random_bytes_and_text(data: bytes | str) -> None:
    decode_frame_text(data)


@FUZZ
@given(protocol_objects)
def test_random_json_frames(value: Any) -> None:
    frame = decode_frame_text(json.dumps(value))
    if isinstance(frame, frames.Notification | frames.Response):
        decode_body(None, frame.body)


@FUZZ
@given(st.sampled_from(sorted(GOLDEN)), st.data())
def test_mutated_golden_frames(name: str, data: st.DataObject) -> None:
    frame_value = data.draw(mutated(GOLDEN[name]))
    frame = decode_frame_text(json.dumps(frame_value))
    if isinstance(frame, frames.Notification):
        decode_body(canonical_notification(frame.type), frame.body)
    elif isinstance(frame, frames.Response):
        decode_body(Notif.MESSAGING_EVENT, frame.body)  # QueryMessages answers


@FUZZ
@given(json_values)
def test_random_bodies_for_every_decoder(body: Any) -> None:
    decode_body(None, body)


def test_golden_frames_still_decode() -> None:
    """The mutation source itself is valid (so the mutants start from something real)."""
    for name, value in GOLDEN.items():
        frame = frames.decode_frame(json.dumps(value))
        assert isinstance(frame, frames.Notification | frames.Response), name
