"""The inspector: which captured frames belong to a line of a transcript.

Frames are parsed only when someone asks, and each once: :meth:`FrameIndex.update` reads the
frames captured since its last call and files each under what it talks about -- a messaging
event ``(dialogId, sequence)``, a conversation state ``(convId, metaDataLastUpdateTs)``, a ring
``(ringId, ringState)``, the conversation and dialog ids it names, and requests and responses by
``(session, id)``.  A transcript line then finds its frames with a few lookups:

* a message: the ``PublishEvent`` request that published it and its response (when it came over
  a socket), and every notification carrying the event (consumer ``ms.MessagingEventNotification``
  changes, brand ``.ams.ms.OnlineEventDistribution`` bodies, ``QueryMessages`` answers);
* a change of the conversation (participants, skill, dialogs, close, CSAT): the request being
  handled when the world announced it (its response too) and every
  ``ExConversationChangeNotification`` showing that state (the state's ``metaDataLastUpdateTs``
  is unique to it);
* a ring: the routing-task notifications showing the ring in that state, and the request behind it.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec

from lpm.emulator.ui.capture import CapturedFrame, FrameTap, redact

#: What a request or response is known by: (session id, request id).
ReqKey = tuple[int, str]
K = TypeVar("K", bound=Hashable)


@dataclass(slots=True)
class _Parsed:
    kind: str
    type: str
    #: The request id (requests) or reqId (responses).
    id: str | None = None
    #: A response's ``body.sequence`` (PublishEvent).
    sequence: int | None = None
    convs: set[str] = field(default_factory=set)
    dialogs: set[str] = field(default_factory=set)
    events: set[tuple[str, int]] = field(default_factory=set)
    states: set[tuple[str, int]] = field(default_factory=set)
    rings: set[tuple[str, str]] = field(default_factory=set)


def _text(data: str | bytes) -> str:
    return data if isinstance(data, str) else data.decode("utf-8", errors="replace")


def _event_keys(parsed: _Parsed, change: Any) -> None:
    if not isinstance(change, dict):
        return
    dialog = change.get("dialogId")
    seq = change.get("sequence")
    if isinstance(dialog, str):
        parsed.dialogs.add(dialog)
        if isinstance(seq, int):
            parsed.events.add((dialog, seq))
    conv = change.get("conversationId")
    if isinstance(conv, str):
        parsed.convs.add(conv)


def _result_keys(parsed: _Parsed, result: Any) -> None:
    if not isinstance(result, dict):
        return
    conv = result.get("convId")
    if isinstance(conv, str):
        parsed.convs.add(conv)
        details = result.get("conversationDetails")
        ts = details.get("metaDataLastUpdateTs") if isinstance(details, dict) else None
        if isinstance(ts, int):
            parsed.states.add((conv, ts))
        if isinstance(details, dict):
            for dialog in details.get("dialogs") or ():
                if isinstance(dialog, dict) and isinstance(dialog.get("dialogId"), str):
                    parsed.dialogs.add(dialog["dialogId"])
    task_conv = result.get("conversationId")
    rings = result.get("ringsDetails")
    if isinstance(task_conv, str) and isinstance(rings, list):
        parsed.convs.add(task_conv)
        for ring in rings:
            if isinstance(ring, dict) and isinstance(ring.get("ringId"), str):
                parsed.rings.add((ring["ringId"], str(ring.get("ringState"))))


def parse(data: str | bytes) -> _Parsed | None:
    """What one frame talks about (None: not a JSON frame)."""
    try:
        frame = msgspec.json.decode(data)
    except msgspec.DecodeError:
        return None
    if not isinstance(frame, dict):
        return None
    kind = str(frame.get("kind") or "")
    type_ = str(frame.get("type") or "")
    body = frame.get("body")
    parsed = _Parsed(kind=kind, type=type_)
    if kind == "req":
        raw_id = frame.get("id")
        parsed.id = None if raw_id is None else str(raw_id)
        if isinstance(body, dict):
            for key in ("conversationId", "convId"):
                if isinstance(body.get(key), str):
                    parsed.convs.add(body[key])
            if isinstance(body.get("dialogId"), str):
                parsed.dialogs.add(body["dialogId"])
            ring = body.get("ringId")
            if isinstance(ring, str):
                # Ring ids are {convId}_{accountId}_{epochMs}.
                parsed.convs.add(ring.split("_", 1)[0])
    elif kind == "resp":
        raw_id = frame.get("reqId")
        parsed.id = None if raw_id is None else str(raw_id)
        if isinstance(body, dict):
            if isinstance(body.get("conversationId"), str):
                parsed.convs.add(body["conversationId"])
            if isinstance(body.get("sequence"), int):
                parsed.sequence = body["sequence"]
        elif isinstance(body, list):  # QueryMessages: the dialog's events
            for change in body:
                _event_keys(parsed, change)
    elif kind == "notification" and isinstance(body, dict):
        changes = body.get("changes")
        if isinstance(changes, list):
            for change in changes:
                if isinstance(change, dict) and "result" in change:
                    _result_keys(parsed, change["result"])
                else:
                    _event_keys(parsed, change)
        else:  # .ams.ms.OnlineEventDistribution: one event, no changes array
            _event_keys(parsed, body)
    return parsed


def _pruned(table: dict[K, list[int]], first: int) -> dict[K, list[int]]:
    out: dict[K, list[int]] = {}
    for key, indices in table.items():
        kept = [i for i in indices if i >= first]
        if kept:
            out[key] = kept
    return out


class FrameIndex:
    """Lookups over a :class:`FrameTap`'s frames (built lazily, forgotten with the frames)."""

    def __init__(self, tap: FrameTap) -> None:
        self.tap = tap
        self._done = 0
        self._pruned_at = 0
        self._parsed: dict[int, _Parsed] = {}
        self._by: dict[Any, list[int]] = {}
        self._requests: dict[ReqKey, list[int]] = {}
        self._responses: dict[ReqKey, list[int]] = {}

    # ---------------------------------------------------------------- building

    def update(self) -> None:
        """File the frames captured since the last call."""
        frames = self.tap.frames
        if not frames:
            return
        first = frames[0].number
        if first - self._pruned_at > (frames.maxlen or len(frames)) // 2:
            # Forget what fell out of the ring (not at every call: the tables are walked).
            self._parsed = {i: p for i, p in self._parsed.items() if i >= first}
            self._by = _pruned(self._by, first)
            self._requests = _pruned(self._requests, first)
            self._responses = _pruned(self._responses, first)
            self._pruned_at = first
        start = max(self._done, first) - first
        for frame in itertools.islice(frames, start, None):
            self._file(frame)
        self._done = self.tap.next_index

    def _add(self, key: Any, index: int) -> None:
        self._by.setdefault(key, []).append(index)

    def _file(self, frame: CapturedFrame) -> None:
        parsed = parse(frame.data)
        if parsed is None:
            return
        self._parsed[frame.number] = parsed
        if parsed.id is not None:
            key = (frame.session, parsed.id)
            if parsed.kind == "req" and not frame.outbound:
                self._requests.setdefault(key, []).append(frame.number)
            elif parsed.kind == "resp" and frame.outbound:
                self._responses.setdefault(key, []).append(frame.number)
        for conv in parsed.convs:
            self._add(("conv", conv), frame.number)
        for dialog in parsed.dialogs:
            self._add(("dialog", dialog), frame.number)
        for event in parsed.events:
            self._add(("event", *event), frame.number)
        for state in parsed.states:
            self._add(("state", *state), frame.number)
        for ring in parsed.rings:
            self._add(("ring", *ring), frame.number)

    # ---------------------------------------------------------------- pairing

    def response_to(self, request: int) -> int | None:
        """The response to the request frame ``request`` (the first after it with its id)."""
        frame = self._frame(request)
        parsed = self._parsed.get(request)
        if frame is None or parsed is None or parsed.id is None:
            return None
        for index in self._responses.get((frame.session, parsed.id), ()):
            if index > request:
                return index
        return None

    def request_of(self, response: int) -> int | None:
        """The request a response answers (the last before it with its id)."""
        frame = self._frame(response)
        parsed = self._parsed.get(response)
        if frame is None or parsed is None or parsed.id is None:
            return None
        found = None
        for index in self._requests.get((frame.session, parsed.id), ()):
            if index < response:
                found = index
        return found

    def request(self, cause: tuple[int, str | None] | None, before: int) -> int | None:
        """The request frame named by a ``cause`` (session, id), captured before ``before``."""
        if cause is None or cause[1] is None:
            return None
        found = None
        for index in self._requests.get((cause[0], cause[1]), ()):
            if index < before:
                found = index
        return found

    # ---------------------------------------------------------------- queries

    def _exchange(self, cause: tuple[int, str | None] | None, at: int) -> list[int]:
        request = self.request(cause, at)
        if request is None:
            return []
        response = self.response_to(request)
        return [request] if response is None else [request, response]

    def for_change(
        self, key: tuple[str, str, int | str], cause: tuple[int, str | None] | None, at: int
    ) -> list[int]:
        """Frames of one change, with the request that caused it and its response: a stored
        messaging event (``("event", dialog id, sequence)``), one state of a conversation
        (``("state", conversation id, last update)``: a participant, skill, dialog or stage
        change) or a ring in one state (``("ring", ring id, state)``)."""
        found = set(self._by.get(key, ()))
        found.update(self._exchange(cause, at))
        return sorted(found)

    def for_conversation(self, conv_id: str, dialog_ids: Iterable[str]) -> list[int]:
        """Every captured frame about a conversation, with the requests and responses paired."""
        found = set(self._by.get(("conv", conv_id), ()))
        for dialog in dialog_ids:
            found.update(self._by.get(("dialog", dialog), ()))
        for index in list(found):
            parsed = self._parsed.get(index)
            if parsed is None:
                continue
            if parsed.kind == "req":
                other = self.response_to(index)
            elif parsed.kind == "resp":
                other = self.request_of(index)
            else:
                other = None
            if other is not None:
                found.add(other)
        return sorted(found)

    # ---------------------------------------------------------------- output

    def _frame(self, index: int) -> CapturedFrame | None:
        frames = self.tap.frames
        if not frames:
            return None
        position = index - frames[0].number
        if 0 <= position < len(frames):
            frame = frames[position]
            if frame.number == index:
                return frame
            # Not contiguous (never expected): search.
            keys = [f.number for f in frames]
            at = bisect.bisect_left(keys, index)
            if at < len(keys) and keys[at] == index:
                return frames[at]
        return None

    def frames(self, indices: Iterable[int]) -> Iterator[dict[str, Any]]:
        """The frames at ``indices`` as the UI shows them: credentials redacted, parsed JSON."""
        for index in indices:
            frame = self._frame(index)
            if frame is None:
                continue
            yield self.describe(frame)

    def describe(self, frame: CapturedFrame) -> dict[str, Any]:
        text = redact(_text(frame.data))
        try:
            value: Any = msgspec.json.decode(text)
        except msgspec.DecodeError:
            value = None
        info = self.tap.sessions.get(frame.session)
        parsed = self._parsed.get(frame.number)
        return {
            "index": frame.number,
            "time": int(frame.time * 1000),
            "direction": "out" if frame.outbound else "in",
            "session": frame.session,
            "socket": {
                "id": frame.session,
                "dialect": info.dialect if info else "",
                "who": info.label if info else f"socket #{frame.session}",
            },
            "kind": parsed.kind if parsed is not None else "",
            "type": parsed.type if parsed is not None else "",
            "frame": value if value is not None else text,
        }
