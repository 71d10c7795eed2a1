"""A participant of a dialog: a consumer, an agent, a bot or a manager, with role and chat state.

Participants are identified by ``user_id`` (the PID for brand users, the consumer id for
consumers); brand users also carry ``agent_id``, the old-style ``{account}.{userId}``, when the
connection speaks the brand dialect.  A participant who leaves keeps its object (state and chat
state become ``REMOVED``) and the same object comes back if the user is added again, so
references held by messages and applications stay valid.
"""

from __future__ import annotations

import enum
import sys
from typing import TYPE_CHECKING, Any

from lpm.client.events import EventEmitter, H
from lpm.client.typed_events import ParticipantEmitter
from lpm.enums import ParticipantChatState, ParticipantRole, ParticipantState, coerce

if TYPE_CHECKING:
    from collections.abc import Callable

    from lpm.client.model.dialog import Dialog

__all__ = ["LazyHandlers", "Participant", "ParticipantEvent"]

#: The handler table of every emitter of the object model nobody listens to (most messages and
#: participants): shared and always empty (see :class:`LazyHandlers`).
NO_HANDLERS: dict[str, Any] = {}


class LazyHandlers(EventEmitter):
    """An emitter of which there are many (messages, participants): its handler table is the
    shared empty :data:`NO_HANDLERS` until a handler is registered (an empty dict per object
    is 64 bytes; a brand connection may hold 100,000 messages).  Subclasses set
    ``self._handlers = NO_HANDLERS`` instead of calling ``EventEmitter.__init__``."""

    __slots__ = ()

    def _register(self, name: str, handler: H | None, *, once: bool) -> H | Callable[[H], H]:
        if self._handlers is NO_HANDLERS:
            self._handlers = {}
        return super()._register(name, handler, once=once)


class ParticipantEvent(enum.StrEnum):
    """The events of a :class:`Participant` (the Node SDK's names)."""

    ROLE_CHANGE = "role-change"
    STATE_CHANGE = "state-change"
    CHAT_STATE_CHANGE = "chat-state-change"


class Participant(LazyHandlers, ParticipantEmitter):
    """One user in one dialog.

    Events (emitted on the participant only, never bubbled):

    * ``role-change`` ``(role)`` — the user's role in the dialog changed;
    * ``state-change`` ``(state)`` — e.g. ``SUGGESTED`` → ``ACTIVE`` when a transfer is accepted;
    * ``chat-state-change`` ``(chat_state)`` — a ChatStateEvent (``COMPOSING``, ``ACTIVE``...).
    """

    __slots__ = ("agent_id", "chat_state", "dialog", "role", "state", "user_id")

    def __init__(
        self,
        dialog: Dialog,
        user_id: str,
        role: str,
        *,
        agent_id: str | None = None,
        state: str = ParticipantState.ACTIVE,
    ) -> None:
        # EventEmitter's state, with the dialog's error sink (the same bound method: one object
        # for all) and no handler table of its own until a handler is registered.
        self._handlers = NO_HANDLERS
        self._handler_tasks = None
        self._error_sink = dialog._error_sink
        #: The dialog this participant belongs to.
        self.dialog = dialog
        # Interned: the same agents and bots take part in thousands of conversations.
        #: PID (brand users) or consumer id.
        self.user_id = sys.intern(user_id) if type(user_id) is str else user_id
        #: Brand dialect only: the old-style ``{account}.{userId}`` id of a brand user.
        self.agent_id = sys.intern(agent_id) if type(agent_id) is str else agent_id
        #: :class:`lpm.ParticipantRole` (unknown roles stay plain strings).
        self.role: str = coerce(ParticipantRole, role)
        #: :class:`lpm.ParticipantState`: ACTIVE, SUGGESTED or REMOVED.
        self.state: str = coerce(ParticipantState, state)
        #: :class:`lpm.ParticipantChatState`; ACTIVE until the user says otherwise.
        self.chat_state: str = (
            ParticipantChatState.REMOVED
            if self.state == ParticipantState.REMOVED
            else ParticipantChatState.ACTIVE
        )

    def __repr__(self) -> str:
        return f"<Participant {self.user_id} {self.role} {self.state}>"

    @property
    def is_active(self) -> bool:
        """True while the user takes part in the dialog (not suggested, not removed)."""
        return self.state == ParticipantState.ACTIVE

    # ---------------------------------------------------------------- updates (object model only)

    def _set_role(self, role: str) -> None:
        if role != self.role:
            self.role = coerce(ParticipantRole, role)
            self.emit(ParticipantEvent.ROLE_CHANGE, self.role)

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = coerce(ParticipantState, state)
            self.emit(ParticipantEvent.STATE_CHANGE, self.state)

    def _set_chat_state(self, chat_state: str) -> None:
        if chat_state != self.chat_state:
            self.chat_state = coerce(ParticipantChatState, chat_state)
            self.emit(ParticipantEvent.CHAT_STATE_CHANGE, self.chat_state)

    def _mark_removed(self) -> None:
        # Quietly: the dialog announces the removal with participant-removed.
        self.state = ParticipantState.REMOVED
        self.chat_state = ParticipantChatState.REMOVED

    def _revive(self, role: str, state: str, agent_id: str | None) -> None:
        # A removed user added again: same object, fresh state, no per-field events.
        self.role = coerce(ParticipantRole, role)
        self.state = coerce(ParticipantState, state)
        self.chat_state = ParticipantChatState.ACTIVE
        if agent_id is not None:
            self.agent_id = agent_id
