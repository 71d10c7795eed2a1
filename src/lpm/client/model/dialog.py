"""A dialog of a conversation: participants, messages ordered by sequence, and dialog actions.

Sequences are per dialog.  The dialog remembers which sequences it has seen — compactly, as
"everything up to ``last_contiguous_sequence``" plus the few seen above it — so an event seen
twice (a replay after a reconnect, a history query overlapping live events, the
``lastContentEventNotification`` of a conversation) is applied once.  A consumer's messaging
subscription is re-issued from ``last_contiguous_sequence + 1`` after a reconnect: nothing
older than that can be missing, and anything replayed is dropped here.

``message`` events of a dialog come out once each and in sequence order.  While a history load
of the dialog is pending (a brand with ``get_all_messages`` that joined a conversation it had
already announced), live messages are held and emitted with the loaded ones, in order, once the
load is over (loaded, or failed for good).  On a brand connection a message older than one
already emitted (a gap from before this user took part, filled later by a reconnect's catch-up)
joins :attr:`Dialog.messages` as history, without an event.

Events (the whitelisted ones bubble to the conversation and the connection, innermost first;
see :meth:`Conversation._bubble`):

* ``participant-added`` ``(participant, previously_suggested)``
* ``participant-suggested`` ``(participant)`` and ``transfer-agent`` ``(participant)``
* ``participant-removed`` ``(participant)``, ``participant-suggested-removed`` ``(participant)``
* ``back-to-queue`` ``()`` — the assigned agent left and nobody replaced it (no skill change)
* ``transfer-skill`` ``(skill_id)`` — the skill changed and no agent is assigned
* ``message`` ``(message)`` and ``message-delivery-event`` ``(messages)`` — a list of the
  messages whose delivery state changed
* ``close`` ``(dialog)`` — bubbles as ``dialog:close`` / ``conversation:dialog:close``
* ``notification-out-of-order`` ``(dialog_info)`` — not bubbled

Why one module (about 800 lines): the sequence bookkeeping, the ordered emission of
``message`` events with history loads, the participants and the dialog's actions share the
dialog's state; splitting them would put one class's invariants in several files.
"""

from __future__ import annotations

import bisect
import enum
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from lpm.client.model.message import Message, MessageDeliveryStatus
from lpm.client.model.participant import NO_HANDLERS, LazyHandlers, Participant
from lpm.client.typed_events import DialogEmitter
from lpm.enums import (
    ChannelType,
    DeliveryStatus,
    DialogChangeType,
    DialogState,
    DialogType,
    MessageAudience,
    ParticipantChangeType,
    ParticipantRole,
    ParticipantState,
    coerce,
)
from lpm.errors import ConfigurationError, InvalidStateError, ProtocolError
from lpm.protocol.notifications import RememberedParticipants

if TYPE_CHECKING:
    from lpm.client.model.conversation import Conversation
    from lpm.protocol.notifications import DialogInfo, MessagingEventInfo, ParticipantInfo

__all__ = ["Dialog", "DialogEvent"]


class DialogEvent(enum.StrEnum):
    """The events of a :class:`Dialog` (the Node SDK's names; see the module docstring)."""

    PARTICIPANT_ADDED = "participant-added"
    PARTICIPANT_SUGGESTED = "participant-suggested"
    TRANSFER_AGENT = "transfer-agent"
    PARTICIPANT_REMOVED = "participant-removed"
    PARTICIPANT_SUGGESTED_REMOVED = "participant-suggested-removed"
    BACK_TO_QUEUE = "back-to-queue"
    TRANSFER_SKILL = "transfer-skill"
    MESSAGE = "message"
    MESSAGE_DELIVERY_EVENT = "message-delivery-event"
    CLOSE = "close"
    NOTIFICATION_OUT_OF_ORDER = "notification-out-of-order"


log = logging.getLogger("lpm.client.model.dialog")

CONTENT_EVENT = "ContentEvent"
RICH_CONTENT_EVENT = "RichContentEvent"
ACCEPT_STATUS_EVENT = "AcceptStatusEvent"
CHAT_STATE_EVENT = "ChatStateEvent"
#: Safety stop for :meth:`Dialog.get_all_publish_events` paging.
MAX_HISTORY_PAGES = 10_000
#: Sort key of events without a sequence (kept last).
_NO_SEQUENCE = 1 << 62
#: ``Dialog._seen`` of a dialog without gaps (the usual one): shared, instead of a set each
#: (an empty set is 216 bytes).
_NOTHING_ABOVE: frozenset[int] = frozenset()
#: ``Dialog._held`` while nothing is held (shared rather than an empty list each).
_NOTHING_HELD: tuple[Message, ...] = ()
#: ``Dialog._removed`` of a dialog nobody left (shared, always empty).
_NO_PARTICIPANTS: dict[str, Participant] = {}


def _same_message(message: Message, event: MessagingEventInfo) -> bool:
    """Whether ``event`` is ``message`` again (a replay or a history load of it)."""
    if event.event_type not in (CONTENT_EVENT, RICH_CONTENT_EVENT):
        return False
    # The content only: the sender's ids are spelled differently by some paths (a brand's live
    # event and its history), and a replay never changes the content.
    again = Message.from_event(message.dialog, event)
    return again.body == message.body and again.content_type == message.content_type


def _seq_key(message: Message) -> int:
    return message.sequence if message.sequence is not None else _NO_SEQUENCE


class Dialog(LazyHandlers, DialogEmitter):
    """One dialog (MAIN, POST_SURVEY, OTHER...) of a conversation.

    Times (``start_time``, ``end_time``, ``update_time``) are epoch milliseconds as UMS sends
    them; None until known.
    """

    __slots__ = (
        "_closing",
        "_contiguous",
        "_emitted_top",
        "_held",
        "_holds",
        "_members",
        "_ms_subscribed",
        "_participants",
        "_removed",
        "_seen",
        "channel_type",
        "closed_by",
        "closed_cause",
        "conversation",
        "dialog_id",
        "dialog_type",
        "end_time",
        "messages",
        "meta_data",
        "start_time",
        "state",
        "update_time",
    )

    def __init__(
        self,
        conversation: Conversation,
        dialog_id: str,
        *,
        dialog_type: str = DialogType.MAIN,
        channel_type: str = ChannelType.MESSAGING,
        state: str = DialogState.OPEN,
        start_time: int | None = None,
    ) -> None:
        # EventEmitter's state without a handler table of its own until a handler is registered
        # (see LazyHandlers: most dialogs have no listener).
        self._handlers = NO_HANDLERS
        self._handler_tasks = None
        self._error_sink = conversation._error_sink
        #: The conversation this dialog belongs to.
        self.conversation = conversation
        #: The dialog id (the MAIN dialog's id is the conversation id).
        self.dialog_id = dialog_id
        #: :class:`lpm.DialogType` value.
        self.dialog_type: str = coerce(DialogType, dialog_type)
        #: :class:`lpm.ChannelType` value.
        self.channel_type: str = coerce(ChannelType, channel_type)
        #: :class:`lpm.DialogState` value.
        self.state: str = coerce(DialogState, state)
        self.start_time = start_time
        self.end_time: int | None = None
        self.update_time: int | None = None
        #: Who closed the dialog (:class:`lpm.DialogCloseReason`) and why, once closed.
        self.closed_by: str | None = None
        self.closed_cause: str | None = None
        #: The dialog's ``metaData`` (e.g. the survey's app install id).
        self.meta_data: dict[str, Any] | None = None
        #: Messages sorted by sequence.
        self.messages: list[Message] = []
        self._participants: dict[str, Participant] = {}
        #: The remembered participant list (RememberedParticipants.source) the participants
        #: were last set to: a notification listing the same one changes none of them.
        self._members: tuple[ParticipantInfo, ...] | None = None
        # The shared empty _NO_PARTICIPANTS until someone leaves.
        self._removed: dict[str, Participant] = _NO_PARTICIPANTS
        # Every sequence <= _contiguous has been seen; _seen holds the seen ones above it.
        self._contiguous = -1
        self._seen: set[int] | frozenset[int] = _NOTHING_ABOVE
        self._closing = False
        self._ms_subscribed = False
        # ``message`` events held while a history load is pending (see _hold_messages), and the
        # highest sequence a ``message`` event was emitted for (events never go back below it).
        self._holds = 0
        self._held: list[Message] | tuple[Message, ...] = _NOTHING_HELD
        self._emitted_top = -1

    def __repr__(self) -> str:
        return f"<Dialog {self.dialog_id} {self.dialog_type} {self.state}>"

    # ---------------------------------------------------------------- reading

    @property
    def participants(self) -> list[Participant]:
        """Current participants (active and suggested), in the order UMS listed them."""
        return list(self._participants.values())

    @property
    def removed_participants(self) -> list[Participant]:
        """Participants that left (kept so messages can still name their sender)."""
        return list(self._removed.values())

    @property
    def is_open(self) -> bool:
        """Whether the dialog is OPEN (messages can be published to it)."""
        return self.state == DialogState.OPEN

    @property
    def closing(self) -> bool:
        """True between :meth:`close` and the notification that confirms it."""
        return self._closing and self.state == DialogState.OPEN

    def _first_active(self, role: str) -> Participant | None:
        for p in self._participants.values():
            if p.role == role and p.state == ParticipantState.ACTIVE:
                return p
        return None

    @property
    def assigned_agent(self) -> Participant | None:
        """The active ASSIGNED_AGENT (a suggested transfer target is not assigned yet)."""
        return self._first_active(ParticipantRole.ASSIGNED_AGENT)

    @property
    def consumer(self) -> Participant | None:
        """The active CONSUMER participant."""
        return self._first_active(ParticipantRole.CONSUMER)

    def get_participant(self, user_id: str) -> Participant | None:
        """The current participant with this PID / consumer id."""
        return self._participants.get(user_id)

    def get_participant_by_agent_id(self, agent_id: str) -> Participant | None:
        """The current participant with this old-style agent id (``{account}.{userId}``)."""
        for p in self._participants.values():
            if p.agent_id == agent_id:
                return p
        return None

    def get_removed_participant(self, user_id: str) -> Participant | None:
        """A participant that left the dialog."""
        return self._removed.get(user_id)

    def get_self_participant(self) -> Participant | None:
        """This connection's user in the dialog (brand: by agent id, then PID; consumer: by id)."""
        actions = self.conversation.actions
        if actions.agent_id:
            found = self.get_participant_by_agent_id(actions.agent_id)
            if found is not None:
                return found
        return self.get_participant(actions.user_id) if actions.user_id else None

    def get_message(self, sequence: int) -> Message | None:
        """The message with this sequence, if loaded."""
        # ``messages`` is sorted by sequence: found by bisection (an index by sequence would
        # double what every message costs in memory).
        messages = self.messages
        if not isinstance(sequence, int):
            return None
        i = bisect.bisect_left(messages, sequence, key=_seq_key)
        if i < len(messages) and messages[i].sequence == sequence:
            return messages[i]
        return None

    # ---------------------------------------------------------------- sequences

    def has_seen(self, sequence: int) -> bool:
        """Whether an event with this sequence was already applied."""
        return sequence <= self._contiguous or sequence in self._seen

    @property
    def last_contiguous_sequence(self) -> int:
        """The highest sequence such that every sequence from 0 to it was seen (-1: none)."""
        return self._contiguous

    @property
    def max_seen_sequence(self) -> int:
        """The highest sequence seen (-1: none)."""
        return max(self._seen, default=self._contiguous)

    def _mark_seen(self, sequence: int) -> None:
        if sequence <= self._contiguous:
            return
        current = self._seen
        if sequence == self._contiguous + 1 and not current:
            self._contiguous = sequence  # the usual case: the next one, no gap
            return
        seen = current if isinstance(current, set) else set()
        self._seen = seen
        seen.add(sequence)
        while self._contiguous + 1 in seen:
            self._contiguous += 1
            seen.discard(self._contiguous)

    def _seen_ranges(self) -> list[list[int]]:
        """Seen sequences as ``[first, last]`` ranges (for serialization)."""
        ranges: list[list[int]] = [[0, self._contiguous]] if self._contiguous >= 0 else []
        for seq in sorted(self._seen):
            if ranges and seq == ranges[-1][1] + 1:
                ranges[-1][1] = seq
            else:
                ranges.append([seq, seq])
        return ranges

    # ---------------------------------------------------------------- state notifications

    def apply(self, info: DialogInfo, *, skill_changed: bool = False, silent: bool = False) -> None:
        """Apply the dialog part of a conversation notification.

        ``silent`` initialises the dialog without events (a conversation's first state).
        """
        if (
            not silent
            and info.last_update_ts is not None
            and self.update_time is not None
            and info.last_update_ts < self.update_time
        ):
            self.emit(DialogEvent.NOTIFICATION_OUT_OF_ORDER, info)
            return
        if info.dialog_type != self.dialog_type:
            self.dialog_type = coerce(DialogType, info.dialog_type)
        if info.channel_type != self.channel_type:
            self.channel_type = coerce(ChannelType, info.channel_type)
        if info.creation_ts is not None:
            self.start_time = info.creation_ts
        if info.last_update_ts is not None:
            self.update_time = info.last_update_ts
        self.end_time = info.end_ts
        self.closed_by = info.closed_by
        self.closed_cause = info.closed_cause
        self.meta_data = info.meta_data
        closed_now = False
        if info.state != self.state:
            if self.state == DialogState.OPEN and info.state == DialogState.CLOSE:
                closed_now = True
            elif not silent:
                self._report_error(
                    ProtocolError(f"unexpected dialog state change from {self.state} to {info.state}")
                )
            self.state = coerce(DialogState, info.state)
            self._closing = False
        participants = info.participants
        if silent:
            self._set_participants_silently(participants)
        elif (
            closed_now
            or skill_changed
            or type(participants) is not RememberedParticipants
            or participants.source is not self._members
        ):
            self._diff_participants(participants, skill_changed=skill_changed, closed_now=closed_now)
        # (else: the very participants the dialog was last set to, the usual notification:
        # nothing to compare, nothing to announce -- see _same_participants)

    def _set_participants_silently(self, infos: Iterable[ParticipantInfo]) -> None:
        self._participants = {}
        for uid, pinfo in _dedupe(infos).items():
            self._participants[uid] = self._participant_for(uid, pinfo)
        self._members = _source_of(infos)

    def _rekey(self, uid: str, agent_id: str, incoming: dict[str, ParticipantInfo]) -> Participant | None:
        """The participant known under another user id with the same agent id.

        The brand dialect names a SUGGESTED agent by its old id (it is not in
        ``participantsPId`` yet) and by its PID once it accepted: still the same participant.
        """
        for key, participant in self._participants.items():
            if participant.agent_id == agent_id and key not in incoming:
                del self._participants[key]
                participant.user_id = uid
                self._participants[uid] = participant
                return participant
        return None

    def _participant_for(self, uid: str, pinfo: ParticipantInfo) -> Participant:
        revived = self._removed.pop(uid, None)
        if revived is None and pinfo.agent_id:
            key = next((k for k, p in self._removed.items() if p.agent_id == pinfo.agent_id), None)
            revived = self._removed.pop(key) if key is not None else None
        if revived is not None:
            revived.user_id = uid
            revived._revive(pinfo.role, pinfo.state, pinfo.agent_id)
            return revived
        return Participant(self, uid, pinfo.role, agent_id=pinfo.agent_id, state=pinfo.state)

    def _same_participants(self, infos: Iterable[ParticipantInfo]) -> bool:
        """Whether ``infos`` are the current participants as they are, in the same order (each
        user once): then the full comparison below would change and announce nothing."""
        current = self._participants
        if not isinstance(infos, list) or len(infos) != len(current):
            return False
        for pinfo, participant in zip(infos, current.values()):  # noqa: B905 (same length)
            if (
                pinfo.user_id != participant.user_id
                or pinfo.role != participant.role
                or pinfo.state != participant.state
                or (pinfo.agent_id and not participant.agent_id)
            ):
                return False
        self._members = _source_of(infos)
        return True

    def _diff_participants(
        self, infos: Iterable[ParticipantInfo], *, skill_changed: bool, closed_now: bool
    ) -> None:
        if not closed_now and not skill_changed and self._same_participants(infos):
            return  # nothing to compare further, nothing to announce (the usual notification)
        # The participants are set to these below (whatever was announced on the way).
        self._members = _source_of(infos)
        incoming = _dedupe(infos)
        added: list[tuple[Participant, bool]] = []
        suggested: list[Participant] = []
        removed: list[Participant] = []
        suggested_removed: list[Participant] = []
        assigned_left = False
        for uid, pinfo in incoming.items():
            existing = self._participants.get(uid)
            if existing is None and pinfo.agent_id:
                existing = self._rekey(uid, pinfo.agent_id, incoming)
            if existing is None:
                participant = self._participant_for(uid, pinfo)
                self._participants[uid] = participant
                if participant.state == ParticipantState.SUGGESTED:
                    suggested.append(participant)
                else:
                    added.append((participant, False))
                continue
            was_suggested = existing.state == ParticipantState.SUGGESTED
            if pinfo.agent_id and not existing.agent_id:
                existing.agent_id = pinfo.agent_id
            if (
                not was_suggested
                and existing.role == ParticipantRole.ASSIGNED_AGENT
                and pinfo.role != ParticipantRole.ASSIGNED_AGENT
            ):
                assigned_left = True  # e.g. demoted to READER
            existing._set_role(pinfo.role)
            existing._set_state(pinfo.state)
            if was_suggested and pinfo.state == ParticipantState.ACTIVE:
                added.append((existing, True))
            elif not was_suggested and pinfo.state == ParticipantState.SUGGESTED:
                suggested.append(existing)
        for uid in [u for u in self._participants if u not in incoming]:
            participant = self._participants.pop(uid)
            if participant.state == ParticipantState.SUGGESTED:
                suggested_removed.append(participant)
            else:
                removed.append(participant)
                if participant.role == ParticipantRole.ASSIGNED_AGENT:
                    assigned_left = True
            participant._mark_removed()
            if self._removed is _NO_PARTICIPANTS:
                self._removed = {}
            self._removed[uid] = participant

        # Emission order of the reference (§2.11).
        if closed_now:
            self.conversation._bubble_dialog_close(self)
        bubble = self.conversation._bubble
        for participant, previously_suggested in added:
            bubble(DialogEvent.PARTICIPANT_ADDED, (participant, previously_suggested), self)
        for participant in suggested:
            bubble(DialogEvent.PARTICIPANT_SUGGESTED, (participant,), self)
        for participant in suggested:
            bubble(DialogEvent.TRANSFER_AGENT, (participant,), self)
        for participant in removed:
            bubble(DialogEvent.PARTICIPANT_REMOVED, (participant,), self)
        for participant in suggested_removed:
            bubble(DialogEvent.PARTICIPANT_SUGGESTED_REMOVED, (participant,), self)
        pending_transfer = any(p.state == ParticipantState.SUGGESTED for p in self._participants.values())
        if assigned_left and self.assigned_agent is None and not pending_transfer and not skill_changed:
            bubble(DialogEvent.BACK_TO_QUEUE, (), self)
        if skill_changed and self.is_open and self.assigned_agent is None:
            bubble(DialogEvent.TRANSFER_SKILL, (self.conversation.skill_id,), self)

    # ---------------------------------------------------------------- messaging events

    def apply_event(self, event: MessagingEventInfo) -> None:
        """Apply one live messaging event (content, rich content, accept status, chat state)."""
        self._apply(event, notify=True)

    def _apply(self, event: MessagingEventInfo, *, notify: bool) -> Message | None:
        """Apply an event once; returns the content message it is (new or already known)."""
        seq = event.sequence
        etype = event.event.get("type", "")
        if type(etype) is not str:
            etype = str(etype)
        if seq is not None and (seq <= self._contiguous or seq in self._seen):
            known = self.get_message(seq)
            if known is not None and not _same_message(known, event):
                # A replay repeats an event as it was; other content under a known sequence is
                # the server's error, and applying either silently would hide one message.
                self._report_error(
                    ProtocolError(
                        f"sequence {seq} of dialog {self.dialog_id} (conversation "
                        f"{self.conversation.conversation_id}) was received again with other "
                        "content; the first one is kept"
                    )
                )
            return known
        if etype in (CONTENT_EVENT, RICH_CONTENT_EVENT):
            message = Message.from_event(self, event)
            if seq is not None:
                if seq == self._contiguous + 1 and not self._seen:
                    self._contiguous = seq  # the usual case (see _mark_seen)
                else:
                    self._mark_seen(seq)
            messages = self.messages
            top = messages[-1].sequence if messages else -1
            if seq is not None and top is not None and top <= seq:
                messages.append(message)  # the usual case: in order (see _insert)
            else:
                self._insert(message)
            if notify:
                if self._holds:
                    held = self._held
                    if not isinstance(held, list):
                        held = self._held = []
                    held.append(message)
                else:
                    self._emit_message(message)
            return message
        if seq is not None:
            self._mark_seen(seq)
        if etype == ACCEPT_STATUS_EVENT:
            changed = self._apply_delivery(event)
            if changed and notify:
                self.conversation._bubble(DialogEvent.MESSAGE_DELIVERY_EVENT, (changed,), self)
        elif etype == CHAT_STATE_EVENT:
            self._apply_chat_state(event)
        return None

    def _emit_message(self, message: Message) -> None:
        seq = message.sequence
        if seq is not None:
            if seq < self._emitted_top and self.conversation.actions.is_brand:
                # Older than a message already announced: it filled a gap left before this
                # user took part (a reconnect's catch-up reaching back before the join; a brand
                # socket only carries a dialog's events while its user is a participant).  It
                # is in :attr:`messages` like any history, but an event now would come out of
                # order.  (A consumer's gaps are refilled by a replay of what its socket lost:
                # those messages were never announced, and are.)
                log.debug("message %s of dialog %s merged as history", seq, self.dialog_id)
                return
            if seq > self._emitted_top:
                self._emitted_top = seq
        self.conversation._bubble(DialogEvent.MESSAGE, (message,), self)

    def _hold_messages(self) -> None:
        """Hold ``message`` events until :meth:`_release_messages` (calls nest).

        A history load is pending: a live message arriving meanwhile may be newer than messages
        the load is about to bring, and would otherwise be announced ahead of them.
        """
        self._holds += 1

    def _release_messages(self) -> None:
        """End one hold; the last one emits the held ``message`` events in sequence order."""
        self._holds = max(self._holds - 1, 0)
        if self._holds:
            return
        held, self._held = self._held, _NOTHING_HELD
        for message in sorted(held, key=_seq_key):
            self._emit_message(message)

    def _insert(self, message: Message) -> None:
        messages = self.messages
        if not messages or _seq_key(messages[-1]) <= _seq_key(message):
            messages.append(message)  # the usual case: live events arrive in order
        else:
            bisect.insort(messages, message, key=_seq_key)

    def _apply_delivery(self, event: MessagingEventInfo) -> list[Message]:
        raw = event.event
        status = str(raw.get("status") or "")
        user_id = event.originator_id
        if not status or not user_id:
            return []
        role = event.originator_role
        if role is None:
            sender = self._participants.get(user_id)
            role = sender.role if sender is not None else None
        status = coerce(DeliveryStatus, status)
        changed: list[Message] = []
        for seq in raw.get("sequenceList") or ():
            message = self.get_message(seq)
            if message is None:
                continue  # a message this dialog never loaded (older than the subscription)
            entry = MessageDeliveryStatus(user_id, role, status, event.server_ts, event.sequence)
            if message._apply_status(entry):
                changed.append(message)
        return changed

    def _apply_chat_state(self, event: MessagingEventInfo) -> None:
        chat_state = event.event.get("chatState")
        participant = self._participants.get(event.originator_id or "")
        if participant is None or not isinstance(chat_state, str):
            # Typing indicators of users not (yet) known are noise, not errors.
            log.debug("chat state %r of unknown participant %s ignored", chat_state, event.originator_id)
            return
        participant._set_chat_state(chat_state)

    def _merge(self, events: Iterable[MessagingEventInfo], *, notify: bool = False) -> list[Message]:
        """Merge queried history (no events unless ``notify``); returns its content messages,
        known ones reused."""
        found: dict[int, Message] = {}
        extra: list[Message] = []
        for event in sorted(events, key=lambda e: e.sequence if e.sequence is not None else _NO_SEQUENCE):
            message = self._apply(event, notify=notify)
            if message is None:
                continue
            if message.sequence is None:
                extra.append(message)
            else:
                found[message.sequence] = message
        return [found[s] for s in sorted(found)] + extra

    def _report_error(self, error: BaseException) -> None:
        self.conversation.actions.report_error(error)

    # ---------------------------------------------------------------- sending

    def _ids(self) -> tuple[str, str]:
        return self.conversation.conversation_id, self.dialog_id

    async def _publish(self, event: dict[str, Any], *, audience: str, metadata: list[Any] | None) -> int:
        conversation_id, dialog_id = self._ids()
        return await self.conversation.actions.publish_event(
            conversation_id, dialog_id, event, audience=audience, metadata=metadata
        )

    async def send_message(
        self, text: str, metadata: list[Any] | None = None, quick_replies: dict[str, Any] | None = None
    ) -> int:
        """Publish a ``text/plain`` message; returns its sequence."""
        return await self._send_text(text, metadata, quick_replies, MessageAudience.ALL)

    async def send_private_message(
        self, text: str, metadata: list[Any] | None = None, quick_replies: dict[str, Any] | None = None
    ) -> int:
        """Brand only: publish a message only agents and managers see; returns its sequence."""
        if not self.conversation.actions.is_brand:
            raise InvalidStateError("private messages can only be sent by brand connections")
        return await self._send_text(text, metadata, quick_replies, MessageAudience.AGENTS_AND_MANAGERS)

    async def _send_text(
        self, text: str, metadata: list[Any] | None, quick_replies: dict[str, Any] | None, audience: str
    ) -> int:
        if not isinstance(text, str) or not text:
            raise ConfigurationError("Empty message text is not allowed")
        event: dict[str, Any] = {"type": CONTENT_EVENT, "contentType": "text/plain", "message": text}
        if quick_replies is not None:
            event["quickReplies"] = quick_replies
        return await self._publish(event, audience=audience, metadata=metadata)

    async def send_rich_text(
        self,
        content: dict[str, Any],
        metadata: list[Any] | None = None,
        quick_replies: dict[str, Any] | None = None,
    ) -> int:
        """Publish structured content (a RichContentEvent); returns its sequence."""
        if not isinstance(content, dict) or not content:
            raise ConfigurationError("rich content must be a non-empty dict (structured content)")
        event: dict[str, Any] = {"type": RICH_CONTENT_EVENT, "content": content}
        if quick_replies is not None:
            event["quickReplies"] = quick_replies
        return await self._publish(event, audience=MessageAudience.ALL, metadata=metadata)

    async def _send_status(self, status: str, sequences: Iterable[int]) -> None:
        sequence_list = list(sequences)
        if not sequence_list:
            return
        event = {"type": ACCEPT_STATUS_EVENT, "status": status, "sequenceList": sequence_list}
        await self._publish(event, audience=MessageAudience.ALL, metadata=None)

    async def send_accept_status(self, sequences: Iterable[int]) -> None:
        """Publish ACCEPT for these sequences (nothing is sent for an empty list)."""
        await self._send_status(DeliveryStatus.ACCEPT, sequences)

    async def send_read_status(self, sequences: Iterable[int]) -> None:
        """Publish READ for these sequences (nothing is sent for an empty list)."""
        await self._send_status(DeliveryStatus.READ, sequences)

    async def set_chat_state(self, state: str) -> None:
        """Publish a ChatStateEvent (:class:`lpm.ParticipantChatState`: COMPOSING, ACTIVE...)."""
        if not isinstance(state, str) or not state:
            raise ConfigurationError("chat state must be a ParticipantChatState value")
        await self._publish(
            {"type": CHAT_STATE_EVENT, "chatState": str(state)}, audience="ALL", metadata=None
        )

    # ---------------------------------------------------------------- membership and lifecycle

    async def join(self, role: str) -> None:
        """Brand only: add this connection's user with ``role`` (MANAGER, READER, AGENT...)."""
        agent_id = self.conversation.actions.agent_id
        if not agent_id:
            raise InvalidStateError("join needs a brand connection (no agent id)")
        if not isinstance(role, str) or not role:
            raise ConfigurationError("role must be a ParticipantRole value")
        change = {
            "field": "ParticipantsChange",
            "type": ParticipantChangeType.ADD,
            "userId": agent_id,
            "role": role,
        }
        await self.conversation._update_fields([change])

    async def leave(self) -> None:
        """Brand only: remove this connection's user (with its current role) from the dialog."""
        agent_id = self.conversation.actions.agent_id
        me = self.get_self_participant()
        if not agent_id or me is None:
            raise InvalidStateError(f"this user is not a participant of dialog {self.dialog_id}")
        change = {
            "field": "ParticipantsChange",
            "type": ParticipantChangeType.REMOVE,
            "userId": agent_id,
            "role": me.role,
        }
        await self.conversation._update_fields([change])

    async def close(self, reason: str | None = None, cause: str | None = None) -> None:
        """Close this dialog (``DialogChange`` UPDATE CLOSE); ``reason`` is the ``closedBy``
        (:class:`lpm.DialogCloseReason`), ``cause`` a free text.  The conversation stays open
        while another dialog is open."""
        if self.state == DialogState.CLOSE:
            raise InvalidStateError("Dialog is already closed.")
        if self._closing:
            raise InvalidStateError("Dialog has already begun closing.")
        spec: dict[str, Any] = {"dialogId": self.dialog_id, "state": DialogState.CLOSE}
        if reason is not None:
            spec["closedBy"] = reason
        if cause is not None:
            spec["closedCause"] = cause
        self._closing = True
        try:
            await self.conversation._update_fields(
                [{"field": "DialogChange", "type": DialogChangeType.UPDATE, "dialog": spec}]
            )
        except BaseException:
            self._closing = False
            raise

    # ---------------------------------------------------------------- history

    async def query_messages(
        self,
        max_quantity: int | None = None,
        sequence_min: int | None = None,
        sequence_max: int | None = None,
    ) -> list[Message]:
        """Stored messages of this dialog (brand connections).  They are merged into
        :attr:`messages` without ``message`` events; known messages are returned as the same
        objects.  ``sequence_min`` / ``sequence_max`` are UMS's exclusive ``newerThanSequence`` /
        ``olderThanSequence`` (pass -1 as ``sequence_min`` to include sequence 0)."""
        conversation_id, dialog_id = self._ids()
        events = await self.conversation.actions.query_messages(
            conversation_id,
            dialog_id,
            max_quantity=max_quantity,
            newer_than=sequence_min,
            older_than=sequence_max,
        )
        return self._merge(events)

    async def get_all_publish_events(self) -> list[Message]:
        """Load every stored event from the first sequence not seen yet (paging until UMS has
        nothing newer); returns all the dialog's messages."""
        return await self._load_history(notify=False)

    async def _load_history(self, *, notify: bool) -> list[Message]:
        """:meth:`get_all_publish_events`; with ``notify`` the messages it brings are emitted
        as ``message`` events (a conversation that was announced before this user joined it)."""
        cursor = self._contiguous  # newerThanSequence is exclusive: start at the first gap
        for _ in range(MAX_HISTORY_PAGES):
            conversation_id, dialog_id = self._ids()
            events = await self.conversation.actions.query_messages(
                conversation_id, dialog_id, newer_than=cursor
            )
            self._merge(events, notify=notify)
            top = max((e.sequence for e in events if e.sequence is not None), default=None)
            if top is None or top <= cursor:
                break
            cursor = top
        return list(self.messages)

    async def subscribe_messaging_events(self, from_seq: int | None = None) -> None:
        """Consumer: (re)subscribe to this dialog's events, by default from the first sequence
        not seen contiguously, so a replay can neither skip nor duplicate a message."""
        start = self._contiguous + 1 if from_seq is None else from_seq
        # Marked before the request: a notification processed meanwhile must not subscribe twice.
        self._ms_subscribed = True
        try:
            conversation_id, dialog_id = self._ids()
            await self.conversation.actions.subscribe_messaging_events(conversation_id, dialog_id, start)
        except BaseException:
            self._ms_subscribed = False
            raise

    # ---------------------------------------------------------------- serialization

    def _to_json(self, hash_body: Any) -> dict[str, Any]:
        return {
            "dialog_id": self.dialog_id,
            "dialog_type": self.dialog_type,
            "channel_type": self.channel_type,
            "state": self.state,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "update_time": self.update_time,
            "closed_by": self.closed_by,
            "closed_cause": self.closed_cause,
            "meta_data": self.meta_data,
            "participants": [_participant_json(p) for p in self._participants.values()],
            "removed_participants": [_participant_json(p) for p in self._removed.values()],
            "seen": self._seen_ranges(),
            "messages": [
                {
                    "sequence": m.sequence,
                    "time": m.time,
                    "audience": m.audience,
                    "metadata": m.metadata,
                    "body": hash_body(m.body),
                    "content_type": m.content_type,
                    "originator_id": m.originator_id,
                    "originator_role": m.originator_role,
                    "originator_agent_id": m.originator_agent_id,
                    "delivery": m._delivery_json(),
                }
                for m in self.messages
            ],
        }

    @classmethod
    def _from_json(cls, conversation: Conversation, data: dict[str, Any]) -> Dialog:
        dialog = cls(
            conversation,
            str(data["dialog_id"]),
            dialog_type=data.get("dialog_type") or DialogType.MAIN,
            channel_type=data.get("channel_type") or ChannelType.MESSAGING,
            state=data.get("state") or DialogState.OPEN,
            start_time=data.get("start_time"),
        )
        dialog.end_time = data.get("end_time")
        dialog.update_time = data.get("update_time")
        dialog.closed_by = data.get("closed_by")
        dialog.closed_cause = data.get("closed_cause")
        dialog.meta_data = data.get("meta_data")
        for p in data.get("participants") or ():
            dialog._participants[p["user_id"]] = _participant_from_json(dialog, p)
        for p in data.get("removed_participants") or ():
            if dialog._removed is _NO_PARTICIPANTS:
                dialog._removed = {}
            dialog._removed[p["user_id"]] = _participant_from_json(dialog, p)
        for first, last in data.get("seen") or ():
            for seq in range(int(first), int(last) + 1):
                dialog._mark_seen(seq)
        for m in data.get("messages") or ():
            message = Message(
                dialog,
                sequence=m.get("sequence"),
                time=m.get("time"),
                body=m.get("body"),
                content_type=m.get("content_type") or "text/plain",
                originator_id=m.get("originator_id"),
                originator_role=m.get("originator_role"),
                originator_agent_id=m.get("originator_agent_id"),
                audience=m.get("audience") or MessageAudience.ALL,
                metadata=m.get("metadata"),
            )
            message._load_delivery(m.get("delivery") or {})
            dialog._insert(message)
        return dialog


def _source_of(infos: Iterable[ParticipantInfo]) -> tuple[ParticipantInfo, ...] | None:
    """The remembered list ``infos`` were copied from (see RememberedParticipants), if any."""
    return infos.source if type(infos) is RememberedParticipants else None


def _dedupe(infos: Iterable[ParticipantInfo]) -> dict[str, ParticipantInfo]:
    """One entry per user id; an ACTIVE entry wins over a SUGGESTED one of the same user."""
    out: dict[str, ParticipantInfo] = {}
    for pinfo in infos:
        current = out.get(pinfo.user_id)
        if current is None or (
            current.state != ParticipantState.ACTIVE and pinfo.state == ParticipantState.ACTIVE
        ):
            out[pinfo.user_id] = pinfo
    return out


def _participant_json(p: Participant) -> dict[str, Any]:
    return {
        "user_id": p.user_id,
        "agent_id": p.agent_id,
        "role": p.role,
        "state": p.state,
        "chat_state": p.chat_state,
    }


def _participant_from_json(dialog: Dialog, data: dict[str, Any]) -> Participant:
    participant = Participant(
        dialog,
        str(data["user_id"]),
        str(data.get("role") or ""),
        agent_id=data.get("agent_id"),
        state=str(data.get("state") or ParticipantState.ACTIVE),
    )
    if data.get("chat_state"):
        participant.chat_state = data["chat_state"]
    return participant
