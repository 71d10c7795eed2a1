"""A conversation: its state as UMS reports it, its dialogs, and the actions on it.

State comes from ExConversation notifications through :meth:`Conversation.apply` (reference
§3.6): a notification identical to the last one is ignored (``notification-ignored``), one older
than the known state is ignored (``notification-out-of-order``), and otherwise the fields are
compared with the known state, emitting an event per change, then each dialog is updated, then
``lastContentEventNotification`` becomes a message if its sequence is new, and finally
``notification`` fires.  The first state a conversation receives only initialises it (no change
events), so building a conversation from a snapshot never floods the application.

Event bubbling: the whitelisted conversation events (``group-change``, ``skill-change``,
``close``, ``dialog``, ``ttr-change``, ``manual-ettr-change``) and dialog events
(``participant-*``, ``transfer-*``, ``back-to-queue``, ``message``, ``message-delivery-event``)
are delivered at every level, innermost first, as DOM events bubble: the dialog's ``<name>``
(dialog events), the conversation's ``<name>``, then the connection's ``conversation:<name>``
(handler arguments ``(conversation, *args)``).  A listener at one level never silences another.
A dialog closing is the dialog's ``close``, the conversation's ``dialog:close``, then the
connection's ``conversation:dialog:close``.  (The Node SDK delivers to one level only.)

Conversation events and arguments:

* ``group-change`` ``(prev_group_id, new_group_id)``; ``skill-change`` ``(prev_skill_id, new_skill_id)``
* ``close`` ``()`` — the stage became CLOSE
* ``dialog`` ``(dialog)`` — a new dialog other than MAIN
* ``ttr-change`` ``(ttr_type, ttr_value, ttr_effective)``;
  ``manual-ettr-change`` ``(ttr_effective_manual, ttr_effective)``
* not bubbled: ``notification`` / ``notification-ignored`` / ``notification-out-of-order``
  ``(conversation_info)``, ``messaging-event`` ``(messaging_event_info)``

Times are epoch milliseconds as UMS sends them (``start_time``, ``update_time``,
``close_time``, ``ttr_effective``...).

Why one module (about 950 lines): the state diffing of :meth:`Conversation.apply`, the
event bubbling and the actions (close, transfer, fields, files) all read and write the same
conversation fields; the actions are the part that could move to a module of their own.
"""

from __future__ import annotations

import enum
import hashlib
import json
import logging
import sys
import time
import uuid
from typing import TYPE_CHECKING, Any

from lpm.client.model.dialog import Dialog, DialogEvent
from lpm.client.model.message import Message
from lpm.client.model.participant import NO_HANDLERS, LazyHandlers, Participant
from lpm.client.model.skill import Skill
from lpm.client.typed_events import ConversationEmitter
from lpm.enums import (
    ChannelType,
    ConversationState,
    CsatStatus,
    DialogChangeType,
    DialogState,
    DialogType,
    MessageAudience,
    ParticipantChangeType,
    ParticipantRole,
    TTRType,
    coerce,
)
from lpm.errors import (
    ConfigurationError,
    InvalidStateError,
    NoOpenDialogError,
    ProtocolError,
    UnexpectedResponseError,
)
from lpm.protocol.notifications import LiveConversationChange as _Live
from lpm.protocol.notifications import state_digest
from lpm.protocol.types import Req

if TYPE_CHECKING:
    from lpm.client.actions import ConnectionActions
    from lpm.client.model.cache import ConversationCache
    from lpm.protocol.notifications import (
        AnyConversationChange,
        ConversationInfo,
        LiveConversationChange,
        MessagingEventInfo,
    )

__all__ = [
    "CONNECTION_EVENT_PREFIX",
    "MAX_NOTE_LENGTH",
    "MAX_UPLOAD_SIZE",
    "Conversation",
    "ConversationEvent",
    "hash_body",
    "sniff_file_type",
]


class ConversationEvent(enum.StrEnum):
    """The events of a :class:`Conversation` (the Node SDK's names; see the module docstring)."""

    GROUP_CHANGE = "group-change"
    SKILL_CHANGE = "skill-change"
    CLOSE = "close"
    DIALOG = "dialog"
    TTR_CHANGE = "ttr-change"
    MANUAL_ETTR_CHANGE = "manual-ettr-change"
    #: A dialog closed (bubbled from the dialog's ``close``).
    DIALOG_CLOSE = "dialog:close"
    NOTIFICATION = "notification"
    NOTIFICATION_IGNORED = "notification-ignored"
    NOTIFICATION_OUT_OF_ORDER = "notification-out-of-order"
    MESSAGING_EVENT = "messaging-event"


#: A bubbled event ``name`` is emitted on the connection as ``CONNECTION_EVENT_PREFIX + name``.
CONNECTION_EVENT_PREFIX = "conversation:"

log = logging.getLogger("lpm.client.model.conversation")

#: UMS answers a successful ConversationStateField CLOSE with exactly this text.
CLOSE_OK = "OK Conversation resolved successfully"
UPDATE_FIELD = Req.UPDATE_CONVERSATION_FIELD.value
#: Hosted files may be up to 3 MB (protocol §8).
MAX_UPLOAD_SIZE = 3 * 1024 * 1024
#: Documented maximum length of a conversation note.
MAX_NOTE_LENGTH = 5000
#: Upload file types UMS accepts (``JPEG`` is sent as given).
UPLOAD_FILE_TYPES = frozenset({"PNG", "JPG", "JPEG", "GIF"})
#: Messaging events kept for a dialog the conversation does not know yet (see ``apply_event``).
MAX_EARLY_EVENTS = 500
SERIALIZATION_VERSION = 1
#: No close in flight (one shared empty set rather than one per conversation).
_NONE_PENDING: frozenset[str] = frozenset()
#: ``Conversation._early_events`` of a conversation without any (shared, always empty).
_NO_EARLY_EVENTS: dict[str, list[MessagingEventInfo]] = {}


_intern = sys.intern


def _stored_digest(value: Any) -> bytes | None:
    """A state digest as :meth:`Conversation._to_json` stores it (hex), back to bytes; anything
    unreadable is no digest (the next notification is then applied, never wrongly ignored)."""
    if not isinstance(value, str):
        return None
    try:
        return bytes.fromhex(value)
    except ValueError:
        return None


def _intern_optional(value: str | None) -> str | None:
    return _intern(value) if type(value) is str else value


def _now_ms() -> int:
    return int(time.time() * 1000)


def sniff_file_type(data: bytes) -> str | None:
    """``PNG``, ``JPG`` or ``GIF`` from the file's magic bytes, or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPG"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    return None


def hash_body(body: Any) -> str | None:
    """SHA-256 hex of a message body (rich content is JSON-serialized first, as
    ``JSON.stringify`` does), so serialized conversations carry no message text."""
    if body is None:
        return None
    text = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


#: The connection's name of each bubbled event (``conversation:<name>``), made once.
_CONNECTION_NAMES: dict[str, str] = {
    str(name): CONNECTION_EVENT_PREFIX + name for names in (ConversationEvent, DialogEvent) for name in names
}


class Conversation(LazyHandlers, ConversationEmitter):
    """One conversation of the connection's cache (see the module docstring for events)."""

    __slots__ = (
        "_cache",
        "_close_pending",
        "_details_token",
        "_dialogs",
        "_early_events",
        "_hash",
        "_initialized",
        "_unannounced",
        "account_id",
        "actions",
        "campaign_info",
        "client_properties",
        "close_reason",
        "close_time",
        "context",
        "conversation_id",
        "csat",
        "delay",
        "first_conversation",
        "group_id",
        "handler_account_id",
        "handler_skill_id",
        "note",
        "notification_count",
        "notification_ignored_count",
        "notification_out_of_order_count",
        "number_of_unread_messages",
        "skill",
        "stage",
        "start_time",
        "state",
        "ttr_effective",
        "ttr_effective_manual",
        "ttr_type",
        "ttr_value",
        "update_time",
    )

    def __init__(
        self,
        cache: ConversationCache,
        conversation_id: str,
        *,
        skill_id: str | None = None,
        context: dict[str, Any] | None = None,
        campaign_info: dict[str, Any] | None = None,
    ) -> None:
        # EventEmitter's state without a handler table of its own until a handler is registered
        # (see LazyHandlers: most conversations have no listener).
        self._handlers = NO_HANDLERS
        self._handler_tasks = None
        self._error_sink = cache.report_error
        self._cache = cache
        #: The connection (through the one interface the object model uses).
        self.actions: ConnectionActions = cache.actions
        #: The conversation id (also the MAIN dialog's id).
        self.conversation_id = conversation_id
        #: The brand's account id.
        self.account_id: str | None = self.actions.account_id
        #: The conversation's current :class:`lpm.Skill` (None before routing).
        self.skill: Skill | None = cache.skill(skill_id) if skill_id is not None else None
        #: :class:`lpm.ConversationState` of the whole conversation (CLOSING while a close is
        #: awaiting confirmation).
        self.stage: str = ConversationState.OPEN
        #: The MAIN dialog's state (OPEN / CLOSE).
        self.state: str = ConversationState.OPEN
        #: Epoch ms when the conversation started.
        self.start_time: int | None = None
        #: Epoch ms of the last change UMS reported.
        self.update_time: int | None = None
        #: Epoch ms when it closed (None while open).
        self.close_time: int | None = None
        #: Who closed it (:class:`lpm.DialogCloseReason`), once closed.
        self.close_reason: str | None = None
        self.group_id: str | None = None
        #: Epoch ms by which an agent should answer (-1 when no answer is awaited).
        self.ttr_effective: int | None = None
        #: The manual ETTR set with :meth:`set_manual_ettr`, if any.
        self.ttr_effective_manual: int | None = None
        #: :class:`lpm.TTRType` and its value in seconds (CUSTOM).
        self.ttr_type: str | None = None
        self.ttr_value: int | None = None
        self.delay: dict[str, Any] | None = None
        self.first_conversation: bool | None = None
        #: User id -> number of unread messages (brand dialect).
        self.number_of_unread_messages: dict[str, int] = {}
        #: The CSAT rate (1-5) once the consumer rated, else None.
        self.csat: int | None = None
        #: The conversation note (a JSON array of agent notes when set by :meth:`set_agent_note`).
        self.note: str | None = None
        self.campaign_info: dict[str, Any] | None = campaign_info
        self.handler_account_id: str | None = None
        self.handler_skill_id: str | None = None
        #: The conversation context without its ``clientProperties``.
        self.context: dict[str, Any] | None = None
        #: The consumer's ClientProperties from the context, if any.
        self.client_properties: dict[str, Any] | None = None
        self._set_context(context)
        self.notification_count = 0
        self.notification_ignored_count = 0
        self.notification_out_of_order_count = 0
        self._hash: bytes | None = None
        #: The details token of the state applied last (see :meth:`_apply`).
        self._details_token: int | None = None
        self._initialized = False
        #: The dialogs a close request in flight closes (see :meth:`close`).
        self._close_pending: frozenset[str] = _NONE_PENDING
        #: Bubbled events held until the connection has announced the conversation (None: it
        #: has been, or it needs no announcement -- it was created or loaded here).
        self._unannounced: (
            list[tuple[ConversationEvent | DialogEvent, tuple[Any, ...], Dialog | None]] | None
        ) = None
        #: Events of dialogs not known yet (see apply_event); the shared empty _NO_EARLY_EVENTS
        #: until there is one.
        self._early_events: dict[str, list[MessagingEventInfo]] = _NO_EARLY_EVENTS
        # The MAIN dialog exists from the start (its id is the conversation id) so sending works
        # before the first notification.
        self._dialogs: dict[str, Dialog] = {}
        self._add_dialog(Dialog(self, conversation_id))

    def __repr__(self) -> str:
        return f"<Conversation {self.conversation_id} {self.stage}>"

    # ---------------------------------------------------------------- reading

    @property
    def skill_id(self) -> str | None:
        """The id of the conversation's current skill (None before its first state)."""
        return self.skill.skill_id if self.skill is not None else None

    @property
    def campaign_id(self) -> Any:
        """The campaign the conversation came from (``campaignInfo.campaignId``), if any."""
        return (self.campaign_info or {}).get("campaignId")

    @property
    def engagement_id(self) -> Any:
        """The engagement the conversation came from (``campaignInfo.engagementId``), if any."""
        return (self.campaign_info or {}).get("engagementId")

    @property
    def dialogs(self) -> list[Dialog]:
        """Every dialog, in creation order (MAIN first)."""
        return list(self._dialogs.values())

    def _dialog_by_id(self, dialog_id: str | None) -> Dialog | None:
        """The dialog of this id, if any (one look-up: a publish asks for it every time)."""
        return self._dialogs.get(dialog_id) if dialog_id is not None else None

    @property
    def main_dialog(self) -> Dialog:
        """The MAIN dialog (its id is the conversation id)."""
        return self._dialogs[self.conversation_id]

    @property
    def open_dialog(self) -> Dialog | None:
        """The dialog messages go to: the newest open messaging dialog (MAIN, or POST_SURVEY
        after MAIN closed); None once the conversation is closed or closing."""
        if self.stage in (ConversationState.CLOSE, ConversationState.CLOSING):
            return None
        fallback: Dialog | None = None
        for dialog in reversed(self._dialogs.values()):
            if dialog.state == DialogState.OPEN:
                if dialog.channel_type == ChannelType.MESSAGING:
                    return dialog
                fallback = fallback or dialog
        return fallback

    def _is_closed(self) -> bool:
        return ConversationState.CLOSE in (self.state, self.stage)

    @property
    def assigned_agent(self) -> Participant | None:
        """The MAIN dialog's assigned agent; None if none or the conversation is closed."""
        return None if self._is_closed() else self.main_dialog.assigned_agent

    @property
    def consumer(self) -> Participant | None:
        """The MAIN dialog's consumer; None if the conversation is closed."""
        return None if self._is_closed() else self.main_dialog.consumer

    def get_dialog(self, dialog_type: str) -> Dialog | None:
        """The most recently updated dialog of this :class:`lpm.DialogType`, or None."""
        best: Dialog | None = None
        for dialog in self._dialogs.values():
            if dialog.dialog_type == dialog_type and (
                best is None or (dialog.update_time or -1) >= (best.update_time or -1)
            ):
                best = dialog
        return best

    def get_latest_consumer_message(self) -> Message | None:
        """The newest loaded message the consumer sent, in any dialog."""
        latest: Message | None = None
        for dialog in self._dialogs.values():
            for message in reversed(dialog.messages):
                if message.originator_role == ParticipantRole.CONSUMER or (
                    message.originator_role is None and message.participant.role == ParticipantRole.CONSUMER
                ):
                    if latest is None or (message.time or 0) > (latest.time or 0):
                        latest = message
                    break
        return latest

    def _require_open_dialog(self) -> Dialog:
        dialog = self.open_dialog
        if dialog is None:
            raise NoOpenDialogError(self.conversation_id)
        return dialog

    # ---------------------------------------------------------------- dialogs and bubbling

    def _add_dialog(self, dialog: Dialog) -> None:
        self._dialogs[dialog.dialog_id] = dialog
        self._cache._index_dialog(dialog.dialog_id, self)

    def _bubble(
        self, name: ConversationEvent | DialogEvent, args: tuple[Any, ...], dialog: Dialog | None = None
    ) -> None:
        """Deliver a whitelisted event at every level, innermost first (the dialog, the
        conversation, then the connection as ``conversation:<name>``), as DOM events bubble: a
        listener at one level never silences another (the Node SDK delivers to one level only)."""
        if self._unannounced is not None:
            self._unannounced.append((name, args, dialog))
            return
        # ``if x._handlers``: most dialogs and conversations have no listener at all, and this
        # runs for every message (emit would find nothing, at the cost of a call).
        if dialog is not None and dialog._handlers:
            dialog.emit(name, *args)
        if self._handlers:
            self.emit(name, *args)
        self.actions.emit(_CONNECTION_NAMES.get(name) or CONNECTION_EVENT_PREFIX + name, self, *args)

    @property
    def announced(self) -> bool:
        """Whether the connection has emitted its ``conversation`` event for this conversation
        (or it needed none: created or loaded by this connection)."""
        return self._unannounced is None

    def _hold_until_announced(self) -> None:
        """Hold bubbled events: the connection's ``conversation`` event must come first."""
        if self._unannounced is None:
            self._unannounced = []

    def _release_announced(self) -> None:
        """The ``conversation`` event went out: the held events follow, in order."""
        held, self._unannounced = self._unannounced, None
        for name, args, dialog in held or ():
            if name == ConversationEvent.DIALOG_CLOSE and dialog is not None:
                self._bubble_dialog_close(dialog)
            else:
                self._bubble(name, args, dialog)

    def _bubble_dialog_close(self, dialog: Dialog) -> None:
        """A dialog's close: ``close`` on the dialog, ``dialog:close`` on the conversation and
        ``conversation:dialog:close`` on the connection, in that order."""
        if self._unannounced is not None:
            self._unannounced.append((ConversationEvent.DIALOG_CLOSE, (dialog,), dialog))
            return
        dialog.emit(DialogEvent.CLOSE, dialog)
        self.emit(ConversationEvent.DIALOG_CLOSE, dialog)
        self.actions.emit(CONNECTION_EVENT_PREFIX + ConversationEvent.DIALOG_CLOSE, self, dialog)

    # ---------------------------------------------------------------- state notifications

    def apply(self, info: ConversationInfo) -> bool:
        """Process one state notification; returns False when it was ignored (duplicate or
        out of order)."""
        return self._apply(info, state_digest(info))

    def _repeats_state(self, digest: bytes) -> bool:
        """Whether a state of this digest is the one applied last (a duplicate, to ignore)."""
        return digest == self._hash

    def _ignore(self, info: ConversationInfo | None) -> None:
        """A duplicate of the state applied last (``info``: None when nobody listens here, so
        that a duplicate need not even be decoded)."""
        self.notification_ignored_count += 1
        if info is not None:
            self.emit(ConversationEvent.NOTIFICATION_IGNORED, info)

    def _apply_change(self, change: AnyConversationChange, digest: bytes) -> bool:
        """:meth:`_apply` of one change of a subscription's notification, whose state is not the
        one applied last (see :meth:`_repeats_state`).  A live update repeating the details this
        conversation applied last is applied from what it changes, its conversation not built."""
        token = change.details_token
        if token is None or token != self._details_token or type(change) is not _Live:
            return self._apply(change.conversation, digest, token)
        stamp = change.last_update_ts
        if stamp is not None and self.update_time is not None and stamp < self.update_time:
            self.notification_out_of_order_count += 1
            self.emit(ConversationEvent.NOTIFICATION_OUT_OF_ORDER, change.conversation)
            return False
        self._hash = digest
        self.notification_count += 1
        self._apply_volatile(change, notify=True)
        if self._handlers and self.has_listeners(ConversationEvent.NOTIFICATION):
            self.emit(ConversationEvent.NOTIFICATION, change.conversation)
        return True

    def _apply(self, info: ConversationInfo, digest: bytes, details_token: int | None = None) -> bool:
        """:meth:`apply` with the state's digest (:func:`~lpm.protocol.notifications.state_digest`)
        worked out already.  ``details_token``: see
        :attr:`~lpm.protocol.notifications.ConversationChange.details_token`."""
        if digest == self._hash:
            self._ignore(info)
            return False
        if (
            info.last_update_ts is not None
            and self.update_time is not None
            and info.last_update_ts < self.update_time
        ):
            self.notification_out_of_order_count += 1
            self.emit(ConversationEvent.NOTIFICATION_OUT_OF_ORDER, info)
            return False
        self._hash = digest
        self.notification_count += 1
        if details_token is not None and details_token == self._details_token:
            # The details are those applied last: applying them again would change nothing
            # (what this side changed meanwhile, a close in progress, survives a full apply
            # too), so only what a new message changes is applied.
            self._apply_volatile(info, notify=True)
        else:
            silent = not self._initialized
            self._initialized = True
            self._apply_state(info, silent=silent)
            self._details_token = details_token
        if self._handlers:
            self.emit(ConversationEvent.NOTIFICATION, info)
        return True

    def _apply_state(self, info: ConversationInfo, *, silent: bool) -> None:
        # A conversation's first state initialises it without change events (``silent``).
        # Written for the usual notification, in which nearly nothing changed: each field is
        # compared before anything else is done with it.
        # The short ids repeated by every conversation (account, skill, group) are kept as one
        # string object each (interned) rather than the copy each notification decodes.
        bubble = self._bubble
        self._apply_volatile_fields(info)
        # Set once: they never change for a conversation.
        account_id = info.account_id
        if account_id is not None and account_id != self.account_id:
            self.account_id = _intern(account_id)
        if self.start_time is None:
            self.start_time = info.start_ts
        if self.first_conversation is None:
            self.first_conversation = info.first_conversation

        if info.group_id != self.group_id:
            previous_group, self.group_id = self.group_id, _intern_optional(info.group_id)
            if not silent:
                bubble(ConversationEvent.GROUP_CHANGE, (previous_group, info.group_id))
        skill_changed = False
        skill_id = info.skill_id
        if skill_id is not None and (self.skill is None or skill_id != self.skill.skill_id):
            previous_skill = self.skill_id
            self.skill = self._cache.skill(skill_id)
            skill_changed = previous_skill is not None
            if skill_changed and not silent:
                bubble(ConversationEvent.SKILL_CHANGE, (previous_skill, skill_id))
        if info.state is not None and info.state != self.state:
            self.state = coerce(ConversationState, info.state)
        stage = info.stage
        # (The usual notification leaves the stage as it is: _apply_stage would do nothing.)
        closed_now = (
            False
            if stage is None or (stage == self.stage and stage != ConversationState.CLOSE)
            else self._apply_stage(info)
        )
        self.close_time = info.end_ts
        self.close_reason = info.close_reason
        if closed_now and not silent:
            bubble(ConversationEvent.CLOSE, ())
        self.csat = info.csat_rate or None  # UMS sends 0 until the consumer rates
        self.note = info.note
        if info.ttr_type != self.ttr_type or info.ttr_value != self.ttr_value:
            self.ttr_type = coerce(TTRType, info.ttr_type) if info.ttr_type is not None else None
            self.ttr_value = info.ttr_value
            if not silent:
                bubble(ConversationEvent.TTR_CHANGE, (self.ttr_type, self.ttr_value, self.ttr_effective))
        if info.manual_ettr != self.ttr_effective_manual:
            self.ttr_effective_manual = info.manual_ettr
            if not silent:
                bubble(ConversationEvent.MANUAL_ETTR_CHANGE, (self.ttr_effective_manual, self.ttr_effective))
        self.delay = info.delay
        if info.campaign_info is not None:
            self.campaign_info = info.campaign_info
        if info.handler_account_id != self.handler_account_id:
            self.handler_account_id = _intern_optional(info.handler_account_id)
        if info.handler_skill_id != self.handler_skill_id:
            self.handler_skill_id = _intern_optional(info.handler_skill_id)
        context = info.context
        if context is not None and (context != self.context or "clientProperties" in context):
            self._set_context(context)

        new_dialogs: list[Dialog] | None = None
        dialogs = self._dialogs
        for dinfo in info.dialogs:
            dialog = dialogs.get(dinfo.dialog_id)
            if dialog is None:
                dialog = Dialog(self, dinfo.dialog_id)
                self._add_dialog(dialog)
                dialog.apply(dinfo, silent=True)
                if new_dialogs is None:
                    new_dialogs = []
                new_dialogs.append(dialog)
            else:
                dialog.apply(dinfo, skill_changed=skill_changed, silent=silent)
        for dialog in new_dialogs or ():
            if dialog.dialog_type != DialogType.MAIN and not silent:
                bubble(ConversationEvent.DIALOG, (dialog,), dialog)
            self._replay_early_events(dialog)

        self._apply_last_content_event(info, notify=not silent)

    def _apply_volatile(self, info: ConversationInfo | LiveConversationChange, *, notify: bool) -> None:
        """Apply what a live update changes when the details are those applied last (see
        :meth:`_apply`): the update time, the unread counts, the effective TTR and the last
        content event."""
        self._apply_volatile_fields(info)
        self._apply_last_content_event(info, notify=notify)

    def _apply_volatile_fields(self, info: ConversationInfo | LiveConversationChange) -> None:
        self.ttr_effective = info.effective_ttr
        unread = info.unread
        if unread is not None and unread != self.number_of_unread_messages:
            self.number_of_unread_messages = {_intern(k): v for k, v in unread.items()}
        if info.last_update_ts is not None:
            self.update_time = info.last_update_ts

    def _apply_last_content_event(
        self, info: ConversationInfo | LiveConversationChange, *, notify: bool
    ) -> None:
        last = info.last_content_event
        if last is not None:
            target = self._dialogs.get(last.dialog_id) or self.main_dialog
            # Only when it directly follows what the dialog has seen: a later one would be
            # announced ahead of the events the messaging stream is about to (re)deliver, and
            # messages must come out in sequence order.
            if last.sequence is not None and last.sequence == target._contiguous + 1:
                target._apply(last, notify=notify)

    def _apply_stage(self, info: ConversationInfo) -> bool:
        """Update ``stage``; returns True when the conversation just closed."""
        stage = info.stage
        if stage is None or stage == self.stage:
            if stage == ConversationState.CLOSE:
                self._close_pending = _NONE_PENDING
            return False
        # A state in which a dialog our close request closes is still open was sent before the
        # request was applied: stay CLOSING.
        still_open = any(
            d.dialog_id in self._close_pending and d.state == DialogState.OPEN for d in info.dialogs
        )
        if stage == ConversationState.OPEN and still_open:
            return False
        self._close_pending = _NONE_PENDING
        was_closed = self.stage == ConversationState.CLOSE
        self.stage = coerce(ConversationState, stage)
        return stage == ConversationState.CLOSE and not was_closed

    def _set_context(self, context: dict[str, Any] | None) -> None:
        if context is None:
            return
        context = dict(context)
        properties = context.pop("clientProperties", None)
        self.context = context
        if isinstance(properties, dict):
            self.client_properties = properties

    # ---------------------------------------------------------------- messaging events

    def apply_event(self, event: MessagingEventInfo) -> None:
        """Route one messaging event to its dialog.

        An event of a dialog this conversation does not know yet (its state notification is
        still being processed) is kept and applied when the dialog appears, so it is not lost.
        """
        if self._handlers:
            self.emit(ConversationEvent.MESSAGING_EVENT, event)
        dialog = self._dialogs.get(event.dialog_id)
        if dialog is not None:
            dialog._apply(event, notify=True)
            return
        if self._early_events is _NO_EARLY_EVENTS:
            self._early_events = {}
        early = self._early_events.setdefault(event.dialog_id, [])
        if sum(len(v) for v in self._early_events.values()) >= MAX_EARLY_EVENTS:
            self.actions.report_error(
                ProtocolError(
                    f"dialog not found, dialogId: {event.dialog_id}, conversationId: {self.conversation_id}"
                )
            )
            return
        early.append(event)

    def _replay_early_events(self, dialog: Dialog) -> None:
        for event in self._early_events.pop(dialog.dialog_id, ()):
            dialog.apply_event(event)

    # ---------------------------------------------------------------- sending

    async def send_message(
        self, text: str, metadata: list[Any] | None = None, quick_replies: dict[str, Any] | None = None
    ) -> int:
        """Send a text message to the open dialog; returns its sequence."""
        return await self._require_open_dialog().send_message(text, metadata, quick_replies)

    async def send_private_message(
        self, text: str, metadata: list[Any] | None = None, quick_replies: dict[str, Any] | None = None
    ) -> int:
        """Brand only: a message only agents and managers see; returns its sequence."""
        return await self._require_open_dialog().send_private_message(text, metadata, quick_replies)

    async def send_rich_text(
        self,
        content: dict[str, Any],
        metadata: list[Any] | None = None,
        quick_replies: dict[str, Any] | None = None,
    ) -> int:
        """Send structured content to the open dialog; returns its sequence."""
        return await self._require_open_dialog().send_rich_text(content, metadata, quick_replies)

    async def set_chat_state(self, state: str) -> None:
        """Tell the open dialog's participants this user's chat state
        (:class:`lpm.ParticipantChatState`: COMPOSING, PAUSE, ACTIVE...)."""
        await self._require_open_dialog().set_chat_state(state)

    async def join(self, role: str) -> None:
        """Brand only: join the open dialog with ``role``."""
        await self._require_open_dialog().join(role)

    async def leave(self) -> None:
        """Brand only: leave the open dialog."""
        await self._require_open_dialog().leave()

    async def query_messages(
        self,
        max_quantity: int | None = None,
        sequence_min: int | None = None,
        sequence_max: int | None = None,
    ) -> list[Message]:
        """History of the open dialog (the MAIN dialog once closed); see :meth:`Dialog.query_messages`."""
        dialog = self.open_dialog or self.main_dialog
        return await dialog.query_messages(max_quantity, sequence_min, sequence_max)

    async def get_all_publish_events(self) -> list[Message]:
        """Load the complete history of the open dialog (the MAIN dialog once closed)."""
        return await (self.open_dialog or self.main_dialog).get_all_publish_events()

    async def subscribe_messaging(self) -> None:
        """Consumer: subscribe to the messaging events of every open dialog not subscribed yet."""
        for dialog in list(self._dialogs.values()):
            if dialog.state == DialogState.OPEN and not dialog._ms_subscribed:
                await dialog.subscribe_messaging_events()

    # ---------------------------------------------------------------- conversation fields

    async def _update_fields(self, fields: list[dict[str, Any]], metadata: list[Any] | None = None) -> Any:
        return await self.actions.update_conversation_field(self.conversation_id, fields, metadata=metadata)

    async def close(self) -> None:
        """Close the conversation.  ``stage`` is CLOSING until the notification confirming the
        close arrives (it returns to OPEN if a POST_SURVEY dialog opened, or if the request
        fails).

        While the MAIN dialog is open this is ``ConversationStateField`` CLOSE: MAIN closes, and
        the conversation with it unless the skill's post-conversation survey opens a POST_SURVEY
        dialog.  Once MAIN has closed while the survey (or another dialog) is open, the
        conversation is still OPEN: then the open dialogs are closed (``DialogChange`` UPDATE
        CLOSE, which ends the survey unanswered), and the conversation closes with them.
        """
        if self.stage in (ConversationState.CLOSE, ConversationState.CLOSING):
            raise InvalidStateError(f"conversation {self.conversation_id} is already closed")
        main = self.main_dialog
        others = [d for d in self._dialogs.values() if d is not main and d.state == DialogState.OPEN]
        ending_survey = main.state != DialogState.OPEN and bool(others)
        if ending_survey:
            pending = frozenset(d.dialog_id for d in others)
            fields = [
                {
                    "field": "DialogChange",
                    "type": DialogChangeType.UPDATE,
                    "dialog": {"dialogId": d.dialog_id, "state": DialogState.CLOSE},
                }
                for d in others
            ]
        else:
            pending = frozenset({main.dialog_id})
            fields = [{"field": "ConversationStateField", "conversationState": "CLOSE"}]
        previous = self.stage
        self.stage = ConversationState.CLOSING
        self._close_pending = pending
        try:
            result = await self._update_fields(fields)
        except BaseException:
            self._undo_closing(previous)
            raise
        # Closing dialogs is answered with the dialog's own text ("OK Dialog updated ...").
        if not ending_survey and result != CLOSE_OK:
            self._undo_closing(previous)
            raise UnexpectedResponseError(200, UPDATE_FIELD, result)

    def _undo_closing(self, previous: str) -> None:
        self._close_pending = _NONE_PENDING
        if self.stage == ConversationState.CLOSING:
            self.stage = previous

    def _normalize_agent_id(self, agent_id: str) -> str:
        """``{account}.{userId}`` from a numeric user id, an old id, or a known participant's PID;
        any other id (an unknown agent's PID) is returned unchanged."""
        if agent_id.isdigit():
            return f"{self.actions.account_id}.{agent_id}"
        if "." in agent_id:
            return agent_id
        if agent_id == self.actions.user_id and self.actions.agent_id:
            return self.actions.agent_id
        for dialog in self._dialogs.values():
            known = dialog.get_participant(agent_id) or dialog.get_removed_participant(agent_id)
            if known is not None and known.agent_id:
                return known.agent_id
        # The PID of an agent who never took part: no client-side mapping exists, so it is sent
        # as given (the emulator resolves PIDs; prefer numeric or old ids with LivePerson).
        return agent_id

    def _agent_id_of(self, participant: Participant) -> str:
        if participant.agent_id:
            return participant.agent_id
        return (
            self._normalize_agent_id(participant.user_id)
            if participant.user_id.isdigit()
            else participant.user_id
        )

    async def transfer(self, agent_id: str | None = None, skill_id: str | None = None) -> None:
        """Transfer to a skill, to an agent (suggested as ASSIGNED_AGENT until it accepts), or
        both; the current assigned agent is removed.  Agent ids may be numeric user ids, old ids
        ``{account}.{userId}`` or a participant's PID; they are always sent as old ids."""
        if agent_id is None and skill_id is None:
            raise ConfigurationError("transfer needs agent_id or skill_id")
        dialog = self._require_open_dialog()
        assigned = dialog.assigned_agent
        fields: list[dict[str, Any]] = []
        if skill_id is not None:
            fields.append({"field": "Skill", "type": "UPDATE", "skill": str(skill_id)})
        if agent_id is not None:
            target = self._normalize_agent_id(str(agent_id))
            if assigned is not None and target in (self._agent_id_of(assigned), assigned.user_id):
                raise ConfigurationError(f"Cannot transfer to the same agent: {target}")
            current = dialog.get_participant_by_agent_id(target)
            if current is not None:
                fields.append(_participants_change(ParticipantChangeType.REMOVE, target, current.role))
            fields.append(
                _participants_change(ParticipantChangeType.SUGGEST, target, ParticipantRole.ASSIGNED_AGENT)
            )
        if assigned is not None:
            fields.append(
                _participants_change(
                    ParticipantChangeType.REMOVE, self._agent_id_of(assigned), ParticipantRole.ASSIGNED_AGENT
                )
            )
        await self._update_fields(fields)

    async def consumer_takeover(self, new_consumer_id: str) -> None:
        """Replace the consumer participant by ``new_consumer_id`` (step-up)."""
        if not isinstance(new_consumer_id, str) or not new_consumer_id:
            raise ConfigurationError("new_consumer_id must be a non-empty string")
        consumer = (self.open_dialog or self.main_dialog).consumer
        if consumer is None:
            raise InvalidStateError("no existing consumer participant")
        await self._update_fields(
            [
                _participants_change(
                    ParticipantChangeType.REMOVE, consumer.user_id, ParticipantRole.CONSUMER
                ),
                _participants_change(ParticipantChangeType.ADD, new_consumer_id, ParticipantRole.CONSUMER),
            ]
        )

    async def set_note(self, note: str) -> None:
        """Brand: replace the conversation note (UMS documents at most 5000 characters)."""
        if not isinstance(note, str):
            raise ConfigurationError("note must be a string")
        await self._update_fields([{"field": "Note", "note": note}])

    async def set_agent_note(
        self,
        note_content: str,
        *,
        agent_id: str | None = None,
        name: str | None = None,
        note_id: str | None = None,
        is_auto_summary: bool = False,
        truncate_enabled: bool = False,
    ) -> dict[str, Any]:
        """Add or replace this agent's note in the note's JSON array of agent notes
        (``{agentId, name, noteContent, time, noteId, isAutoSummary}``), keeping the other
        agents' notes.  A note with ``note_id`` replaces the note with that id; otherwise the
        agent's previous note of the same kind is replaced.

        When the whole array would exceed 5000 characters the call fails with
        :class:`~lpm.errors.ConfigurationError`, unless ``truncate_enabled``: then the content is
        shortened to fit.  Returns ``{"truncated": bool, "truncated_text": str | None}`` (the
        stored, shortened content when truncated).
        """
        if not isinstance(note_content, str) or not note_content:
            raise ConfigurationError("note_content must be a non-empty string")
        author = agent_id or self.actions.agent_id
        notes = self._agent_notes()
        entry: dict[str, Any] = {
            "agentId": author,
            "name": name,
            "noteContent": note_content,
            "time": _now_ms(),
            "noteId": note_id or str(uuid.uuid4()),
            "isAutoSummary": bool(is_auto_summary),
        }
        if note_id is not None:
            others = [n for n in notes if n.get("noteId") != note_id]
        else:
            others = [
                n
                for n in notes
                if not (n.get("agentId") == author and bool(n.get("isAutoSummary")) == is_auto_summary)
            ]
        encoded = json.dumps([*others, entry], separators=(",", ":"))
        truncated = False
        if len(encoded) > MAX_NOTE_LENGTH:
            if not truncate_enabled:
                raise ConfigurationError(f"the notes would exceed {MAX_NOTE_LENGTH} characters")
            entry["noteContent"] = _fit_note(others, entry)
            if not entry["noteContent"]:
                raise ConfigurationError(f"the other notes already fill the {MAX_NOTE_LENGTH} characters")
            encoded = json.dumps([*others, entry], separators=(",", ":"))
            truncated = True
        await self.set_note(encoded)
        return {"truncated": truncated, "truncated_text": entry["noteContent"] if truncated else None}

    def _agent_notes(self) -> list[dict[str, Any]]:
        if not self.note:
            return []
        try:
            parsed = json.loads(self.note)
        except ValueError:
            parsed = None
        if isinstance(parsed, list) and all(isinstance(n, dict) for n in parsed):
            return parsed
        # A plain-text note from elsewhere: kept as an anonymous entry rather than lost.
        return [
            {
                "agentId": None,
                "name": None,
                "noteContent": self.note,
                "noteId": "legacy",
                "isAutoSummary": False,
            }
        ]

    async def set_csat(
        self, rate: int, resolution_confirmation: bool, status: str = CsatStatus.FILLED
    ) -> None:
        """Consumer: rate the conversation (``rate`` an int from 1 to 5)."""
        if isinstance(rate, bool) or not isinstance(rate, int) or not 1 <= rate <= 5:
            raise ConfigurationError(f"csat rate must be an integer from 1 to 5, got {rate!r}")
        if status not in set(CsatStatus):
            raise ConfigurationError(f"csat status must be a CsatStatus value, got {status!r}")
        await self._update_fields(
            [
                {
                    "field": "CSATRate",
                    "csatRate": rate,
                    "csatResolutionConfirmation": bool(resolution_confirmation),
                    "status": str(status),
                }
            ]
        )

    async def set_ttr(self, ttr_type: str, value: int = 0) -> None:
        """Set the time to respond (:class:`lpm.TTRType`); ``value`` (seconds) counts for CUSTOM."""
        if ttr_type not in set(TTRType):
            raise ConfigurationError(f"ttr_type must be a TTRType value, got {ttr_type!r}")
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigurationError(f"ttr value must be an integer >= 0, got {value!r}")
        await self._update_fields([{"field": "TTRField", "ttrType": str(ttr_type), "value": value}])

    async def set_manual_ettr(self, time: int | None) -> None:
        """Brand: set the manual effective TTR (epoch ms); None clears it."""
        if time is not None and (isinstance(time, bool) or not isinstance(time, int) or time < 0):
            raise ConfigurationError(f"manual ETTR must be an epoch time in milliseconds, got {time!r}")
        await self._update_fields([{"field": "ManualETTR", "time": time}])

    # ---------------------------------------------------------------- files

    async def upload_file(self, data: bytes, caption: str | None = None, file_type: str | None = None) -> int:
        """Upload an image (PNG, JPG/JPEG or GIF, at most 3 MB) and publish it as a
        ``hosted/file`` message in the open dialog; returns the message's sequence.

        Without ``file_type`` the type is recognised from the file's first bytes.
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise ConfigurationError("data must be bytes")
        payload = bytes(data)
        if not payload:
            raise ConfigurationError("cannot upload an empty file")
        if len(payload) > MAX_UPLOAD_SIZE:
            raise ConfigurationError(
                f"file is {len(payload)} bytes; at most {MAX_UPLOAD_SIZE} bytes (3 MB) allowed"
            )
        if file_type is None:
            kind = sniff_file_type(payload)
            if kind is None:
                raise ConfigurationError(
                    "unknown file type (PNG, JPEG and GIF are recognised); pass file_type"
                )
        else:
            kind = str(file_type).upper()
            if kind not in UPLOAD_FILE_TYPES:
                raise ConfigurationError(f"file_type must be one of {', '.join(sorted(UPLOAD_FILE_TYPES))}")
        dialog = self._require_open_dialog()
        upload = await self.actions.generate_upload_url(len(payload), kind)
        relative_path = upload.get("relativePath")
        if not isinstance(relative_path, str) or not relative_path:
            raise UnexpectedResponseError(200, "GenerateURLForUploadFile", upload)
        query = {str(k): str(v) for k, v in (upload.get("queryParams") or {}).items()}
        await self.actions.put_file(relative_path, query, payload)
        message = {"caption": caption or "", "relativePath": relative_path, "fileType": kind}
        event = {"type": "ContentEvent", "contentType": "hosted/file", "message": message}
        return await dialog._publish(event, audience=MessageAudience.ALL, metadata=None)

    async def download_file(self, relative_path: str) -> bytes:
        """The bytes of a hosted file (``message.relative_path``)."""
        if not isinstance(relative_path, str) or not relative_path:
            raise ConfigurationError("relative_path must be a non-empty string")
        url = await self.actions.generate_download_url(relative_path)
        path = url.get("relativePath") or relative_path
        query = {str(k): str(v) for k, v in (url.get("queryParams") or {}).items()}
        return await self.actions.get_file(str(path), query)

    # ---------------------------------------------------------------- cache and serialization

    def unload(self) -> None:
        """Release a conversation loaded with ``load_conversation`` (it leaves the cache unless
        a subscription still holds it)."""
        self._cache.unload(self)

    def serialize(self) -> str:
        """JSON of the conversation's state, dialogs, participants, seen sequences and
        messages; message bodies are replaced by the SHA-256 hex of the body (no text leaves
        the process), so a stateless bot can persist and :meth:`deserialize` it."""
        data = {
            "version": SERIALIZATION_VERSION,
            "conversation_id": self.conversation_id,
            "account_id": self.account_id,
            "skill_id": self.skill_id,
            "stage": self.stage,
            "state": self.state,
            "start_time": self.start_time,
            "update_time": self.update_time,
            "close_time": self.close_time,
            "close_reason": self.close_reason,
            "group_id": self.group_id,
            "ttr_effective": self.ttr_effective,
            "ttr_effective_manual": self.ttr_effective_manual,
            "ttr_type": self.ttr_type,
            "ttr_value": self.ttr_value,
            "delay": self.delay,
            "first_conversation": self.first_conversation,
            "number_of_unread_messages": self.number_of_unread_messages,
            "csat": self.csat,
            "note": self.note,
            "campaign_info": self.campaign_info,
            "handler_account_id": self.handler_account_id,
            "handler_skill_id": self.handler_skill_id,
            "context": self.context,
            "client_properties": self.client_properties,
            "hash": None if self._hash is None else self._hash.hex(),
            "initialized": self._initialized,
            "notification_count": self.notification_count,
            "notification_ignored_count": self.notification_ignored_count,
            "notification_out_of_order_count": self.notification_out_of_order_count,
            "dialogs": [d._to_json(hash_body) for d in self._dialogs.values()],
        }
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def deserialize(cls, cache: ConversationCache, text: str) -> Conversation:
        """Rebuild a conversation from :meth:`serialize` output (not added to any cache)."""
        try:
            data = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"not a serialized conversation: {exc}") from None
        if (
            not isinstance(data, dict)
            or data.get("version") != SERIALIZATION_VERSION
            or "conversation_id" not in data
        ):
            raise ConfigurationError("not a serialized conversation (unknown format or version)")
        conv = cls(cache, str(data["conversation_id"]), skill_id=data.get("skill_id"))
        stage = data.get("stage") or ConversationState.OPEN
        # A close that was in flight when the state was saved is unknown now: trust the server.
        conv.stage = coerce(
            ConversationState, ConversationState.OPEN if stage == ConversationState.CLOSING else stage
        )
        conv.state = coerce(ConversationState, data.get("state") or ConversationState.OPEN)
        for name in (
            "account_id",
            "start_time",
            "update_time",
            "close_time",
            "close_reason",
            "group_id",
            "ttr_effective",
            "ttr_effective_manual",
            "ttr_type",
            "ttr_value",
            "delay",
            "first_conversation",
            "csat",
            "note",
            "campaign_info",
            "handler_account_id",
            "handler_skill_id",
            "context",
            "client_properties",
            "notification_count",
            "notification_ignored_count",
            "notification_out_of_order_count",
        ):
            if name in data:
                setattr(conv, name, data[name])
        conv.number_of_unread_messages = dict(data.get("number_of_unread_messages") or {})
        conv._hash = _stored_digest(data.get("hash"))
        conv._initialized = bool(data.get("initialized"))
        conv._dialogs = {}
        for dialog_data in data.get("dialogs") or ():
            conv._add_dialog(Dialog._from_json(conv, dialog_data))
        if conv.conversation_id not in conv._dialogs:
            conv._add_dialog(Dialog(conv, conv.conversation_id))
        return conv


def _participants_change(change_type: str, user_id: str, role: str) -> dict[str, Any]:
    return {"field": "ParticipantsChange", "type": str(change_type), "userId": user_id, "role": str(role)}


def _fit_note(others: list[dict[str, Any]], entry: dict[str, Any]) -> str:
    """The longest prefix of the entry's content that keeps the encoded notes within the limit."""
    content: str = entry["noteContent"]
    low, high = 0, len(content)
    while low < high:
        mid = (low + high + 1) // 2
        candidate = json.dumps([*others, {**entry, "noteContent": content[:mid]}], separators=(",", ":"))
        if len(candidate) <= MAX_NOTE_LENGTH:
            low = mid
        else:
            high = mid - 1
    return content[:low]
