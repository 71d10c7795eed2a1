"""The transcripts the UI shows: every message, participant change, transfer, dialog, ring and
survey of each conversation, in order.

The world keeps a conversation's current state, not its history of participants; the UI's
:class:`Timeline` is a :class:`~lpm.emulator.sinks.WorldSink` (installed only while the UI is on)
that compares each announced state with the previous one and writes what changed as
:class:`Entry` lines -- "bot joined as ASSIGNED_AGENT", "transferred to skill 12 (support)",
"POST_SURVEY dialog opened"... -- next to the stored messages and the rings.  Each line keeps what
the inspector needs to find its frames: the request being handled when it happened (the tap's
``cause``), the capture position then, and the conversation state's ``metaDataLastUpdateTs``.

Conversations the UI did not watch (loaded from ``--db`` at start) get a transcript rebuilt from
what the world stores: their dialogs and messages.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lpm.emulator import entities as m
from lpm.emulator.entities import Account, Conversation, EventRecord, RoutingTask

if TYPE_CHECKING:
    from lpm.emulator.ui.capture import FrameTap
    from lpm.emulator.world import World

#: Conversations whose history is kept; the oldest closed ones are forgotten first.
MAX_TRACKS = 2_000
#: Lines kept per conversation.
MAX_ENTRIES = 5_000

MESSAGE_EVENTS = frozenset({"ContentEvent", "RichContentEvent"})
RING_WORDS = {
    "ACCEPTED": "accepted the ring",
    "REJECTED": "rejected the ring",
    "EXPIRED": "let the ring expire",
    "CANCELLED": "ring cancelled",
}


@dataclass(slots=True)
class Entry:
    """One line of a transcript."""

    n: int
    #: Epoch milliseconds.
    t: int
    #: opened, joined, left, suggested, role, skill, dialog-opened, dialog-closed, closed, csat,
    #: stepped-up, ring, message, receipt, event.
    kind: str
    text: str = ""
    dialog_id: str | None = None
    sequence: int | None = None
    #: The conversation's ``metaDataLastUpdateTs`` after the change.
    state_ts: int | None = None
    #: (ring id, ring state) of a ring line.
    ring: tuple[str, str] | None = None
    #: (session id, request id) of the request handled when it happened.
    cause: tuple[int, str | None] | None = None
    #: Capture position when it happened.
    at: int = 0


@dataclass(slots=True)
class _Signature:
    skill: str
    stage: str
    close_reason: str | None
    csat: dict[str, Any] | None
    #: dialog id -> (type, state, closed by, closed cause, ((participant id, role, state), ...))
    dialogs: dict[str, tuple[str, str, str | None, str | None, tuple[tuple[str, str, str], ...]]]


def _signature(conv: Conversation) -> _Signature:
    return _Signature(
        skill=conv.skill_id,
        stage=conv.stage,
        close_reason=conv.close_reason,
        csat=dict(conv.csat) if conv.csat else None,
        dialogs={
            d.dialog_id: (
                d.dialog_type,
                d.state,
                d.closed_by,
                d.closed_cause,
                tuple((p.id, p.role, p.state) for p in d.participants),
            )
            for d in conv.dialogs
        },
    )


@dataclass(slots=True)
class Track:
    """What the timeline keeps of one conversation."""

    conv_id: str
    account_id: str
    entries: list[Entry] = field(default_factory=list)
    last: _Signature | None = None
    rings: dict[str, str] = field(default_factory=dict)
    #: When the conversation last entered a queue (open, nobody assigned); None: assigned.
    queued_since: int | None = None
    closed: bool = False


def user_name(acc: Account, user_id: str, role: str = "") -> str:
    """How the UI names a participant."""
    if role == m.CONSUMER:
        return "Consumer"
    if role == m.CONTROLLER:
        return "Controller"
    user = acc.users.get(user_id)
    if user is None:
        return user_id
    return user.nickname or user.login_name


def skill_name(acc: Account, skill_id: str) -> str:
    if skill_id in ("", "-1"):
        return "-1 (any skill)"
    skill = acc.skills.get(skill_id)
    return f"{skill_id} ({skill.name})" if skill else skill_id


def _assigned(conv: Conversation) -> str | None:
    main = conv.main
    if main.state != m.OPEN:
        return None
    for p in main.participants:
        if p.role == m.ASSIGNED_AGENT and p.state == m.ACTIVE:
            return p.id
    return None


class Timeline:
    """A world sink writing transcripts (see the module docstring)."""

    def __init__(self, tap: FrameTap, on_change: Callable[[str | None], None]) -> None:
        self.tap = tap
        self.on_change = on_change
        self.world: World | None = None
        self.tracks: dict[str, Track] = {}
        #: Conversations the world had when the UI started watching it (loaded from ``--db``):
        #: their first line is what the world stores of them (:func:`rebuilt`).
        self._preexisting: set[str] = set()
        self._seeded = False

    def watch(self, world: World) -> None:
        """Watch ``world`` (at each start of the emulator; a restart brings a new world)."""
        self.world = world
        self._preexisting = {
            conv_id
            for acc in world.accounts.values()
            for conv_id in acc.conversations
            if conv_id not in self.tracks
        }
        world.sinks.append(self)

    # ---------------------------------------------------------------- helpers

    def _now(self) -> int:
        return self.world.now_ms() if self.world is not None else int(time.time() * 1000)

    def _track(self, acc: Account, conv: Conversation) -> Track:
        """The conversation's track; one known before the UI watched starts from the world's
        copy, which already holds the change being announced (:attr:`_seeded`)."""
        self._seeded = False
        track = self.tracks.get(conv.conv_id)
        if track is None:
            track = self.tracks[conv.conv_id] = Track(conv.conv_id, acc.account_id)
            if conv.conv_id in self._preexisting:
                # Known before the UI watched: start from what the world stores.
                self._preexisting.discard(conv.conv_id)
                track.entries = rebuilt(acc, conv)
                track.last = _signature(conv)
                self._seeded = True
            if len(self.tracks) > MAX_TRACKS:
                self._forget()
        return track

    def _forget(self) -> None:
        for conv_id in [cid for cid, t in self.tracks.items() if t.closed][: MAX_TRACKS // 10 or 1]:
            del self.tracks[conv_id]
        while len(self.tracks) > MAX_TRACKS:
            del self.tracks[next(iter(self.tracks))]

    def _add(self, track: Track, kind: str, text: str = "", **fields: Any) -> None:
        if len(track.entries) >= MAX_ENTRIES:
            return
        fields.setdefault("t", self._now())
        track.entries.append(
            Entry(
                n=len(track.entries),
                kind=kind,
                text=text,
                cause=self.tap.cause,
                at=self.tap.next_index,
                **fields,
            )
        )

    # ---------------------------------------------------------------- WorldSink

    def conversation_changed(self, conv: Conversation) -> None:
        if self.world is None:
            return
        acc = self.world.accounts[conv.account_id]
        track = self._track(acc, conv)
        sig = _signature(conv)
        self._diff(acc, conv, track, track.last, sig)
        track.last = sig
        track.closed = conv.stage == m.CLOSE
        if conv.stage == m.OPEN and conv.main.state == m.OPEN and _assigned(conv) is None:
            if track.queued_since is None:
                track.queued_since = self._now()
        else:
            track.queued_since = None
        self.on_change(conv.conv_id)

    def _diff(
        self, acc: Account, conv: Conversation, track: Track, prev: _Signature | None, sig: _Signature
    ) -> None:
        ts = conv.last_update_ts
        if prev is None:
            self._add(
                track,
                "opened",
                f"Conversation opened on skill {skill_name(acc, sig.skill)}",
                state_ts=ts,
            )
        old_dialogs = prev.dialogs if prev is not None else {}
        for dialog_id, (dtype, state, closed_by, cause, members) in sig.dialogs.items():
            old = old_dialogs.get(dialog_id)
            where = "" if dtype == m.MAIN else f" ({dtype} dialog)"
            if old is None and (prev is not None or dtype != m.MAIN):
                self._add(track, "dialog-opened", f"{dtype} dialog opened", dialog_id=dialog_id, state_ts=ts)
            before = {(pid, role): pstate for pid, role, pstate in (old[4] if old else ())}
            after = {(pid, role): pstate for pid, role, pstate in members}
            old_consumers = {pid for pid, role in before if role == m.CONSUMER}
            new_consumers = {pid for pid, role in after if role == m.CONSUMER}
            if old is not None and old_consumers and new_consumers and old_consumers != new_consumers:
                self._add(
                    track,
                    "stepped-up",
                    "The consumer stepped up to an authenticated identity",
                    dialog_id=dialog_id,
                    state_ts=ts,
                )
            for (pid, role), pstate in after.items():
                if role in (m.CONSUMER, m.CONTROLLER):
                    continue
                name = user_name(acc, pid, role)
                was = before.get((pid, role))
                if was == pstate:
                    continue
                if pstate == m.SUGGESTED:
                    text = f"{name} suggested as {role}: transfer to this agent, rung first{where}"
                    self._add(track, "suggested", text, dialog_id=dialog_id, state_ts=ts)
                else:
                    self._add(
                        track, "joined", f"{name} joined as {role}{where}", dialog_id=dialog_id, state_ts=ts
                    )
            for pid, role in before.keys() - after.keys():
                if role in (m.CONSUMER, m.CONTROLLER):
                    continue
                name = user_name(acc, pid, role)
                self._add(track, "left", f"{name} left ({role}){where}", dialog_id=dialog_id, state_ts=ts)
            if old is not None and old[1] != state and state == m.CLOSE:
                by = f" by {closed_by}" if closed_by else ""
                why = f": {cause}" if cause else ""
                self._add(
                    track,
                    "dialog-closed",
                    f"{dtype} dialog closed{by}{why}",
                    dialog_id=dialog_id,
                    state_ts=ts,
                )
        if prev is not None and prev.skill != sig.skill:
            self._add(track, "skill", f"Transferred to skill {skill_name(acc, sig.skill)}", state_ts=ts)
        if (prev is None or prev.stage != m.CLOSE) and sig.stage == m.CLOSE:
            reason = f" ({sig.close_reason})" if sig.close_reason else ""
            self._add(track, "closed", f"Conversation closed{reason}", state_ts=ts)
        if sig.csat and (prev is None or prev.csat != sig.csat):
            rate = sig.csat.get("csatRate")
            resolved = sig.csat.get("csatResolutionConfirmation")
            answer = "" if resolved is None else f", resolved: {'yes' if resolved else 'no'}"
            self._add(track, "csat", f"CSAT {rate}/5{answer}", state_ts=ts)

    def messaging_event(self, conv: Conversation, record: EventRecord) -> None:
        if record.sequence is None or self.world is None:
            return  # chat state: not stored, not a line of the transcript
        track = self._track(self.world.accounts[conv.account_id], conv)
        if self._seeded:  # the rebuilt transcript has it
            self.on_change(conv.conv_id)
            return
        kind = str(record.event.get("type") or "")
        line = "message" if kind in MESSAGE_EVENTS else "receipt" if kind == "AcceptStatusEvent" else "event"
        self._add(
            track,
            line,
            dialog_id=record.dialog_id,
            sequence=record.sequence,
            t=record.server_ts or self._now(),
        )
        self.on_change(conv.conv_id)

    def routing_task_changed(self, account_id: str, task: RoutingTask) -> None:
        if self.world is None:
            return
        acc = self.world.accounts[account_id]
        conv = acc.conversations.get(task.conv_id)
        if conv is None:
            return
        track = self._track(acc, conv)
        changed = False
        for ring in task.rings:
            if track.rings.get(ring.ring_id) == ring.state:
                continue
            track.rings[ring.ring_id] = ring.state
            name = user_name(acc, ring.user_id)
            if ring.state == "WAITING":
                why = "transfer" if task.is_transfer else "new conversation"
                text = f"Ringing {name} ({why}, skill {skill_name(acc, task.skill_id)})"
            elif ring.state == "CANCELLED":
                text = f"Ring to {name} cancelled"
            else:
                text = f"{name} {RING_WORDS.get(ring.state, ring.state.lower())}"
            self._add(track, "ring", text, ring=(ring.ring_id, ring.state))
            changed = True
        if changed:
            self.on_change(task.conv_id)

    def agent_state_changed(self, account_id: str, user_id: str, state: m.AgentState) -> None:
        self.on_change(None)

    def consumer_changed(self, account_id: str, consumer: m.Consumer) -> None:
        """Profiles do not show in transcripts."""

    # ---------------------------------------------------------------- reading

    def entries(self, acc: Account, conv: Conversation) -> list[Entry]:
        """The transcript of ``conv``: the lines written while watching, or (not watched) a
        transcript rebuilt from its stored dialogs and messages."""
        track = self.tracks.get(conv.conv_id)
        if track is not None and track.entries:
            return list(track.entries)
        return rebuilt(acc, conv)


def rebuilt(acc: Account, conv: Conversation) -> list[Entry]:
    """A transcript from what the world stores (no participant history)."""
    lines: list[tuple[int, int, Entry]] = []

    def add(order: int, entry: Entry) -> None:
        lines.append((entry.t, order, entry))

    add(
        0, Entry(0, conv.start_ts, "opened", f"Conversation opened on skill {skill_name(acc, conv.skill_id)}")
    )
    for number, dialog in enumerate(conv.dialogs):
        if dialog.dialog_type != m.MAIN:
            add(1, Entry(0, dialog.creation_ts, "dialog-opened", f"{dialog.dialog_type} dialog opened"))
        for record in acc.events.get(dialog.dialog_id, ()):
            kind = str(record.event.get("type") or "")
            line = (
                "message" if kind in MESSAGE_EVENTS else "receipt" if kind == "AcceptStatusEvent" else "event"
            )
            add(
                2,
                Entry(0, record.server_ts or 0, line, dialog_id=record.dialog_id, sequence=record.sequence),
            )
        if dialog.state == m.CLOSE and dialog.end_ts:
            by = f" by {dialog.closed_by}" if dialog.closed_by else ""
            add(
                3 + number,
                Entry(0, dialog.end_ts, "dialog-closed", f"{dialog.dialog_type} dialog closed{by}"),
            )
    if conv.stage == m.CLOSE:
        reason = f" ({conv.close_reason})" if conv.close_reason else ""
        add(9, Entry(0, conv.end_ts or conv.last_update_ts, "closed", f"Conversation closed{reason}"))
    out = [entry for _, _, entry in sorted(lines, key=lambda x: (x[0], x[1]))]
    for n, entry in enumerate(out):
        entry.n = n
    return out


def event_record(acc: Account, dialog_id: str | None, sequence: int | None) -> EventRecord | None:
    """The stored event ``(dialog_id, sequence)`` (None when unknown)."""
    if dialog_id is None or sequence is None:
        return None
    records = acc.events.get(dialog_id)
    if not records:
        return None
    if 0 <= sequence < len(records) and records[sequence].sequence == sequence:
        return records[sequence]
    for record in records:
        if record.sequence == sequence:
            return record
    return None
