"""A message of a dialog (a ContentEvent or RichContentEvent) with its delivery state.

Delivery state comes from AcceptStatusEvents: per status (``ACCEPT``, ``READ``, ``ACCESS``...)
a map user id -> :class:`MessageDeliveryStatus`.  The first status of a kind a user sends is
kept; repeats (UMS sends duplicates) are ignored.  ``READ`` counts even without a prior
``ACCEPT``.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from lpm.client.model.participant import NO_HANDLERS, LazyHandlers, Participant
from lpm.enums import ContentType, DeliveryStatus, MessageAudience, ParticipantRole, ParticipantState, coerce

if TYPE_CHECKING:
    from lpm.client.model.conversation import Conversation
    from lpm.client.model.dialog import Dialog
    from lpm.protocol.notifications import MessagingEventInfo

__all__ = ["Message", "MessageBody", "MessageDeliveryStatus"]

RICH_CONTENT_EVENT = "RichContentEvent"


class MessageDeliveryStatus:
    """One user's delivery status of one message (from an AcceptStatusEvent)."""

    __slots__ = ("delivery_status", "participant_role", "status_sequence", "timestamp", "user_id")

    def __init__(
        self,
        user_id: str,
        participant_role: str | None,
        delivery_status: str,
        timestamp: int | None,
        status_sequence: int | None,
    ) -> None:
        #: Who reported the status.
        self.user_id = user_id
        #: The reporter's role (:class:`lpm.ParticipantRole`) when known.
        self.participant_role = participant_role
        #: :class:`lpm.DeliveryStatus` value.
        self.delivery_status = delivery_status
        #: Server time of the status event (epoch ms).
        self.timestamp = timestamp
        #: Sequence of the AcceptStatusEvent that carried the status.
        self.status_sequence = status_sequence

    def __repr__(self) -> str:
        return f"<MessageDeliveryStatus {self.user_id} {self.delivery_status}>"

    def to_json(self) -> dict[str, Any]:
        return {
            "role": self.participant_role,
            "ts": self.timestamp,
            "seq": self.status_sequence,
        }


#: What :attr:`Message.body` holds: the text (``text/plain``), or a JSON object (the message
#: object of ``hosted/file`` and other content types, the structured content of rich content).
MessageBody = str | dict[str, Any] | None


_intern = sys.intern
#: Delivery states of a message nobody reported on yet (shared; see ``_apply_status``).
_NO_DELIVERY: dict[str, dict[str, MessageDeliveryStatus]] = {}


class Message(LazyHandlers):
    """One message; it has no events of its own (delivery changes are announced by the dialog
    with ``message-delivery-event``).

    Read its content through the typed accessors: :attr:`text` (``text/plain`` messages),
    :attr:`structured_content` (rich content), :attr:`relative_path` / :attr:`file_type` /
    :attr:`caption` / :attr:`preview` (``hosted/file``).  ``body`` is the raw content, a
    ``str`` or a JSON object (:data:`MessageBody`): ``message.body.strip()`` does not type-check,
    because a file's body is a dict.  ``content_type`` is the event's ``contentType`` or
    ``"RichContentEvent"``.  Times are epoch milliseconds as UMS sends them.
    """

    __slots__ = (
        "_delivery",
        "_participant",
        "_synthesized",
        "audience",
        "body",
        "client_properties",
        "content_type",
        "dialog",
        "metadata",
        "originator_agent_id",
        "originator_id",
        "originator_role",
        "quick_replies",
        "sequence",
        "time",
    )

    def __init__(
        self,
        dialog: Dialog,
        *,
        sequence: int | None,
        time: int | None,
        body: MessageBody,
        content_type: str,
        originator_id: str | None,
        originator_role: str | None = None,
        originator_agent_id: str | None = None,
        audience: str = MessageAudience.ALL,
        metadata: list[Any] | None = None,
        quick_replies: dict[str, Any] | None = None,
        client_properties: dict[str, Any] | None = None,
    ) -> None:
        # EventEmitter's state, with the dialog's error sink (the same bound method: one object
        # for all) and no handler table of its own until a handler is registered.
        self._handlers = NO_HANDLERS
        self._handler_tasks = None
        self._error_sink = dialog._error_sink
        #: The dialog the message belongs to.
        self.dialog = dialog
        #: The message's sequence in its dialog (None only for malformed events).
        self.sequence = sequence
        #: Server timestamp (epoch ms).
        self.time = time
        #: :class:`lpm.MessageAudience` value.
        self.audience: str = (
            MessageAudience.ALL if audience == MessageAudience.ALL else coerce(MessageAudience, audience)
        )
        #: The publish metadata (a list of objects) or None.
        self.metadata = metadata
        #: The raw content: text, message object or rich content (prefer :attr:`text` and the
        #: other typed accessors).
        self.body: MessageBody = body
        #: :class:`lpm.ContentType` value (other content types stay plain strings).
        self.content_type: str = (
            ContentType.PLAIN_TEXT
            if content_type == ContentType.PLAIN_TEXT
            else coerce(ContentType, content_type)
        )
        #: Quick replies attached to the message (their JSON object), if any.
        self.quick_replies = quick_replies
        #: ClientProperties of the sender (consumers), if UMS sent them.
        self.client_properties = client_properties
        # The sender's ids and role repeat in every message of a dialog: one string object each
        # (interned) rather than one per message.
        #: PID / consumer id of the sender.
        self.originator_id = _intern(originator_id) if type(originator_id) is str else originator_id
        #: The sender's role as the event reported it.
        self.originator_role = _intern(originator_role) if type(originator_role) is str else originator_role
        #: Brand dialect: the sender's old-style agent id.
        self.originator_agent_id = (
            _intern(originator_agent_id) if type(originator_agent_id) is str else originator_agent_id
        )
        self._participant: Participant | None = None
        self._synthesized: Participant | None = None
        # Status -> user id -> entry; the shared empty _NO_DELIVERY until the first status.
        self._delivery: dict[str, dict[str, MessageDeliveryStatus]] = _NO_DELIVERY

    @classmethod
    def from_event(cls, dialog: Dialog, event: MessagingEventInfo) -> Message:
        """Build a message from a ContentEvent / RichContentEvent."""
        # What __init__ does, without its keyword arguments: this runs for every message.
        get = event.event.get
        message = cls.__new__(cls)
        message._handlers = NO_HANDLERS
        message._handler_tasks = None
        message._error_sink = dialog._error_sink
        message.dialog = dialog
        message.sequence = event.sequence
        message.time = event.server_ts
        audience = event.audience
        message.audience = (
            MessageAudience.ALL if audience == MessageAudience.ALL else coerce(MessageAudience, audience)
        )
        message.metadata = event.metadata
        if get("type") == RICH_CONTENT_EVENT:
            message.body = get("content")
            message.content_type = ContentType.RICH_TEXT
        else:
            message.body = get("message")
            content_type = get("contentType")
            message.content_type = (
                ContentType.PLAIN_TEXT
                if not content_type or content_type == ContentType.PLAIN_TEXT
                else coerce(ContentType, str(content_type))
            )
        message.quick_replies = get("quickReplies")
        message.client_properties = event.client_properties
        originator_id, role, agent_id = event.originator_id, event.originator_role, event.originator_agent_id
        message.originator_id = _intern(originator_id) if type(originator_id) is str else originator_id
        message.originator_role = _intern(role) if type(role) is str else role
        message.originator_agent_id = _intern(agent_id) if type(agent_id) is str else agent_id
        message._participant = None
        message._synthesized = None
        message._delivery = _NO_DELIVERY
        return message

    def __repr__(self) -> str:
        return f"<Message {self.dialog.dialog_id}#{self.sequence} {self.content_type}>"

    # ---------------------------------------------------------------- relations

    @property
    def conversation(self) -> Conversation:
        """The conversation of the message's dialog."""
        return self.dialog.conversation

    @property
    def participant(self) -> Participant:
        """The sender.  Looked up when first read (a message can arrive before the notification
        that adds its sender); a sender the dialog does not know is represented by a REMOVED
        participant with the role the event reported."""
        found = self._participant
        if found is not None:
            return found
        user_id = self.originator_id or ""
        found = self.dialog.get_participant(user_id) or self.dialog.get_removed_participant(user_id)
        if found is not None:
            self._participant = found
            return found
        if self._synthesized is None:
            self._synthesized = Participant(
                self.dialog,
                user_id,
                self.originator_role or "",
                agent_id=self.originator_agent_id,
                state=ParticipantState.REMOVED,
            )
        return self._synthesized

    def sent_by_current_user(self) -> bool:
        """True when this connection's user sent the message."""
        actions = self.dialog.conversation.actions
        if self.originator_id is not None and self.originator_id == actions.user_id:
            return True
        return self.originator_agent_id is not None and self.originator_agent_id == actions.agent_id

    # ---------------------------------------------------------------- content

    @property
    def text(self) -> str | None:
        """The text of a ``text/plain`` message; None for any other content (a file, rich
        content...), so ``(message.text or "").split()`` is safe whatever arrives."""
        body = self.body
        return body if self.content_type == ContentType.PLAIN_TEXT and isinstance(body, str) else None

    @property
    def structured_content(self) -> dict[str, Any] | None:
        """Rich content (``content_type`` ``RichContentEvent``): the structured content object
        (``{"type": "vertical", "elements": [...]}``...); None for any other message."""
        body = self.body
        return body if self.content_type == ContentType.RICH_TEXT and isinstance(body, dict) else None

    # ---------------------------------------------------------------- hosted files

    def _file_field(self, name: str) -> Any:
        if self.content_type == ContentType.HOSTED_FILE and isinstance(self.body, dict):
            return self.body.get(name)
        return None

    @property
    def relative_path(self) -> str | None:
        """``hosted/file`` messages: the storage path to pass to ``Conversation.download_file``."""
        value = self._file_field("relativePath")
        return str(value) if value is not None else None

    @property
    def file_type(self) -> str | None:
        """``hosted/file`` messages: the file type (``PNG``, ``JPG``, ``GIF``...)."""
        value = self._file_field("fileType")
        return str(value) if value is not None else None

    @property
    def caption(self) -> str | None:
        """``hosted/file`` messages: the caption."""
        value = self._file_field("caption")
        return str(value) if value is not None else None

    @property
    def preview(self) -> str | None:
        """``hosted/file`` messages: the preview (a data URL), if any."""
        value = self._file_field("preview")
        return str(value) if value is not None else None

    @property
    def is_downloadable(self) -> bool:
        """True for hosted files with a storage path."""
        return bool(self.relative_path)

    # ---------------------------------------------------------------- delivery

    @property
    def accepted_by(self) -> dict[str, MessageDeliveryStatus]:
        """User id -> ACCEPT status."""
        return self._delivery.get(DeliveryStatus.ACCEPT, {})

    @property
    def read_by(self) -> dict[str, MessageDeliveryStatus]:
        """User id -> READ status."""
        return self._delivery.get(DeliveryStatus.READ, {})

    def delivery_statuses(self, status: str) -> dict[str, MessageDeliveryStatus]:
        """User id -> status entry for any :class:`lpm.DeliveryStatus` (``ACCESS``, ``ACTION``...)."""
        return self._delivery.get(status, {})

    def _read_by_role(self, role: str) -> bool:
        return any(s.participant_role == role for s in self.read_by.values())

    def has_consumer_read(self) -> bool:
        """True once the consumer sent READ for this message."""
        return self._read_by_role(ParticipantRole.CONSUMER)

    def has_assigned_agent_read(self) -> bool:
        """True once an assigned agent sent READ for this message."""
        return self._read_by_role(ParticipantRole.ASSIGNED_AGENT)

    def _apply_status(self, status: MessageDeliveryStatus) -> bool:
        """Record a status; returns False for a repeat of a status this user already reported."""
        if self._delivery is _NO_DELIVERY:
            self._delivery = {}
        by_user = self._delivery.setdefault(status.delivery_status, {})
        if status.user_id in by_user:
            return False
        by_user[status.user_id] = status
        return True

    async def accept(self) -> None:
        """Publish ACCEPT for this message."""
        if self.sequence is not None:
            await self.dialog.send_accept_status([self.sequence])

    async def read(self) -> None:
        """Publish READ for this message."""
        if self.sequence is not None:
            await self.dialog.send_read_status([self.sequence])

    # ---------------------------------------------------------------- serialization

    def _delivery_json(self) -> dict[str, dict[str, dict[str, Any]]]:
        return {
            status: {uid: s.to_json() for uid, s in users.items()} for status, users in self._delivery.items()
        }

    def _load_delivery(self, data: dict[str, dict[str, dict[str, Any]]]) -> None:
        for status, users in data.items():
            for uid, entry in users.items():
                self._apply_status(
                    MessageDeliveryStatus(uid, entry.get("role"), status, entry.get("ts"), entry.get("seq"))
                )
