"""Webhooks intake: feed webhook notifications into a connection's objects (reference §3.10, §2.19).

:func:`process_webhooks_notification` takes one webhook payload in either form: the notification
itself, ``{"kind": "notification", "type", "body"}``, as LivePerson's webhooks pages show it and
LivePerson (and the emulator) POST it, or wrapped, ``{"wsNotificationMsg": {"type", "body"}, ...}``,
the form the Node SDK's ``processWebhooksNotification`` reads (:func:`webhook_notification` tells
them apart).  Bodies are the consumer-v3 shapes.  It applies the notification:

* ``ms.MessagingEventNotification``: the events are routed to their conversations exactly as
  socket notifications are (``message``, ``message-delivery-event``, chat states...);
* ``cqm.ExConversationChangeNotification``: the changes go to the connection's
  :class:`WebhooksIntake`, a conversation feed like a subscription's: an UPSERT of a conversation
  new to the connection caches it and emits ``conversation`` (on the intake and on the
  connection), later UPSERTs update it (change events), a DELETE releases it;
* any other type raises :class:`~lpm.errors.ConfigurationError` ``invalid notification type X``,
  a payload that is neither form ``notification is missing wsNotificationMsg``; a body that is
  not the documented shape raises :class:`~lpm.errors.ProtocolError`.

Intended for NULL and REST connections; it "should not be used in combination with conversation
subscriptions" (the Node SDK's words): a subscription and the intake would both feed the same
conversations.  Notifications of one conversation must be processed in order, one at a time
(await each call): :func:`lpm.webhooks.create_app` does that for you.

Webhooks send no DELETE when a conversation closes, so the intake releases a conversation
``clear_conversation_timeout`` seconds after an UPSERT shows it closed (late notifications still
find it: the cache keeps it ``conversations_cache_duration`` seconds more).  A long-running
webhook bot therefore does not accumulate every conversation it ever saw.

Intake events: ``conversation`` ``(conversation)``, ``upsert`` / ``delete`` ``(conversation)``,
``notification`` ``(changes)``.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from lpm.client.dispatch import RAW_EVENT_NAMES, dispatch_notification
from lpm.client.subscriptions.conversations import CLEAR_CONVERSATION_TIMEOUT, ConversationFeed
from lpm.client.typed_events import IntakeEmitter
from lpm.enums import ConnectionEvent, ConversationState
from lpm.errors import ConfigurationError, ProtocolError
from lpm.protocol.notifications import (
    NotificationError,
)
from lpm.protocol.types import Notif

if TYPE_CHECKING:
    from lpm.client.model.cache import ConversationCache
    from lpm.client.model.conversation import Conversation
    from lpm.protocol.notifications import ConversationChange, ConversationInfo, MessagingEventInfo

__all__ = [
    "IntakeEvent",
    "IntakeHost",
    "WebhooksIntake",
    "process_webhooks_notification",
    "webhook_notification",
    "webhooks_intake",
]

log = logging.getLogger("lpm.client.subscriptions.webhook_intake")


class IntakeEvent(enum.StrEnum):
    """The events of a :class:`WebhooksIntake` (see the module docstring)."""

    CONVERSATION = "conversation"
    UPSERT = "upsert"
    DELETE = "delete"
    NOTIFICATION = "notification"


class IntakeHost(Protocol):
    """What the intake needs of the connection it feeds (:class:`lpm.Connection` is one).

    The connection owns its intake (:attr:`webhooks_intake`, created on first use); this layer
    never imports the connection classes.
    """

    @property
    def conversations(self) -> ConversationCache:
        """The connection's conversation cache (a NULL connection's never loads history)."""
        ...

    @property
    def webhooks_intake(self) -> WebhooksIntake:
        """The connection's intake."""
        ...

    def emit(self, name: str, *args: Any) -> bool: ...

    def report_error(self, error: BaseException) -> None: ...


class WebhooksIntake(ConversationFeed, IntakeEmitter):
    """The conversation feed of a connection's ``cqm.ExConversationChangeNotification`` webhooks.

    Holds a reference (in the connection's cache) on every conversation it has seen and not yet
    released; see the module docstring for events and the release of closed conversations.
    """

    def __init__(
        self, connection: IntakeHost, *, clear_conversation_timeout: float = CLEAR_CONVERSATION_TIMEOUT
    ) -> None:
        super().__init__(connection.report_error)
        self._connection = connection
        #: Seconds a DELETEd or closed conversation stays in the feed.
        self.clear_conversation_timeout = clear_conversation_timeout
        self._feed: dict[str, Conversation] = {}
        self._drop_timers: dict[str, asyncio.TimerHandle] = {}
        self._closed = False

    def __repr__(self) -> str:
        return f"<WebhooksIntake {len(self._feed)} conversations>"

    # ---------------------------------------------------------------- processing

    async def handle(self, changes: list[ConversationChange]) -> None:
        """Apply the changes of one notification, in order.  A change that fails is reported on
        the connection's ``error`` event and does not stop the others."""
        if self._closed:
            log.debug("notification for a closed connection ignored")
            return
        for change in changes:
            try:
                if change.type == "DELETE":
                    self._on_delete(change.conversation)
                    continue
                new = self._on_upsert(change.conversation)
                if new is not None:
                    await self._announce(new)
            except Exception as exc:
                self._connection.report_error(exc)
        self.emit(IntakeEvent.NOTIFICATION, changes)

    def _on_upsert(self, info: ConversationInfo) -> Conversation | None:
        """Apply an UPSERT; returns the conversation when it is new to the connection."""
        cache = self._connection.conversations
        cid = info.conversation_id
        conversation = self._feed.get(cid)
        new: Conversation | None = None
        if conversation is None:
            conversation = cache.get(cid)
            if conversation is None:
                conversation = new = cache.from_info(info)
            cache.adopt(conversation)
            self._feed[cid] = conversation
        if new is None:
            conversation.apply(info)
        self.emit(IntakeEvent.UPSERT, conversation)
        if conversation.stage == ConversationState.CLOSE:
            self._schedule_drop(cid)
        else:
            timer = self._drop_timers.pop(cid, None)
            if timer is not None:
                timer.cancel()
        return new

    def _on_delete(self, info: ConversationInfo) -> None:
        conversation = self._feed.get(info.conversation_id)
        if conversation is None:
            raise ProtocolError(f"DELETE webhook received for unknown conversation {info.conversation_id}")
        conversation.apply(info)
        self.emit(IntakeEvent.DELETE, conversation)
        self._schedule_drop(info.conversation_id)

    async def _announce(self, conversation: Conversation) -> None:
        cache = self._connection.conversations
        # Only a connection that can read history loads it (get_all_messages): a NULL connection's
        # cache never asks for it.
        if cache._needs_history(conversation):
            await cache._load_history(conversation)
        if self._feed.get(conversation.conversation_id) is not conversation:
            return  # released while its history loaded
        self.emit(IntakeEvent.CONVERSATION, conversation)
        self._connection.emit(ConnectionEvent.CONVERSATION, conversation)

    def _schedule_drop(self, conversation_id: str) -> None:
        if conversation_id in self._drop_timers:
            return
        loop = asyncio.get_running_loop()
        self._drop_timers[conversation_id] = loop.call_later(
            self.clear_conversation_timeout, self._drop, conversation_id
        )

    def _drop(self, conversation_id: str) -> None:
        self._drop_timers.pop(conversation_id, None)
        conversation = self._feed.pop(conversation_id, None)
        if conversation is not None:
            self._connection.conversations.release(conversation)

    async def close(self) -> None:
        """Cancel the drop timers, release every conversation and the handler tasks."""
        self._closed = True
        for timer in self._drop_timers.values():
            timer.cancel()
        self._drop_timers.clear()
        for conversation in self._feed.values():
            self._connection.conversations.release(conversation)
        self._feed.clear()
        await self.close_events()


def webhooks_intake(connection: IntakeHost) -> WebhooksIntake:
    """The connection's :class:`WebhooksIntake` (created on first use)."""
    return connection.webhooks_intake


def _payload_object(payload: Any) -> Mapping[str, Any]:
    if isinstance(payload, bytes | bytearray | str):
        try:
            payload = json.loads(payload)
        except ValueError as exc:
            raise ConfigurationError(f"notification is not valid JSON: {exc}") from None
    if not isinstance(payload, Mapping):
        raise ConfigurationError(f"notification must be a JSON object, not {type(payload).__name__}")
    return payload


class _WebhookSink:
    """Where a webhook's decoded notification goes: messaging events to the cache, conversation
    changes to the connection's intake (webhooks carry no subscription id)."""

    __slots__ = ("_connection",)

    def __init__(self, connection: IntakeHost) -> None:
        self._connection = connection

    def on_conversation_changes(
        self, subscription_id: str | None, changes: list[ConversationChange]
    ) -> Awaitable[None]:
        return self._connection.webhooks_intake.handle(changes)

    def on_messaging_events(self, events: list[MessagingEventInfo]) -> None:
        self._connection.conversations.handle_messaging_events(events)

    def on_routing_tasks(self, subscription_id: str | None, tasks: list[Any]) -> None:
        raise ConfigurationError(f"invalid notification type {Notif.ROUTING_TASK}")

    def on_agent_states(self, states: list[Any]) -> None:
        raise ConfigurationError(f"invalid notification type {Notif.AGENT_STATE}")


#: The notification types webhooks deliver (consumer-v3 spellings, as LivePerson POSTs them; the
#: Messaging Window API reference also spells the conversation one ``aam.``).
WEBHOOK_TYPES = frozenset(
    {Notif.MESSAGING_EVENT.value, Notif.EX_CONVERSATION_CHANGE.value, "aam.ExConversationChangeNotification"}
)


def webhook_notification(payload: Any) -> Mapping[str, Any]:
    """The notification (``{"kind", "type", "body"}``) of a webhook payload in either form: the
    notification itself (what LivePerson POSTs) or ``{"wsNotificationMsg": <notification>}`` (what
    the Node SDK's intake reads).  ``payload`` is a dict or its JSON text.

    Raises :class:`~lpm.errors.ConfigurationError` for a payload that is neither.
    """
    outer = _payload_object(payload)
    if "wsNotificationMsg" in outer:
        message: Any = outer["wsNotificationMsg"]
        if not isinstance(message, Mapping):
            raise ConfigurationError("wsNotificationMsg must be an object")
        return message
    if "type" in outer and outer.get("kind", "notification") == "notification":
        return outer
    raise ConfigurationError(
        "notification is missing wsNotificationMsg (and is not a"
        ' {"kind": "notification", "type", "body"} notification either)'
    )


async def process_webhooks_notification(connection: IntakeHost, payload: Any) -> None:
    """Apply one webhook payload (a dict, or its JSON text; either form of
    :func:`webhook_notification`) to ``connection`` (module docstring).

    Decoded and routed by :func:`lpm.client.dispatch.dispatch_notification`, like a socket's
    notifications.  Await each call before the next one of the same conversation: notifications
    of one conversation must be applied in the order they were sent.
    """
    message = webhook_notification(payload)
    kind = message.get("type")
    body = message.get("body")
    if kind not in WEBHOOK_TYPES:
        raise ConfigurationError(f"invalid notification type {kind}")

    def emit_raw(decoded: Notif, raw_body: Any) -> None:
        connection.emit(ConnectionEvent.NOTIFICATION, kind, raw_body)
        connection.emit(RAW_EVENT_NAMES[decoded], raw_body)

    try:
        _, routed = dispatch_notification(
            str(kind), body, brand=False, sink=_WebhookSink(connection), before_route=emit_raw
        )
    except NotificationError as exc:
        raise ProtocolError(f"invalid webhook notification: {exc}", frame=body) from None
    if routed is not None:
        await routed
