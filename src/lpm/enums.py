"""Every enum of the public API, with the Node SDK's (``lp-messaging-sdk``) exact wire values.

All enums are :class:`enum.StrEnum`, so a member *is* its wire string: it compares equal to
the value received from the server, serializes to JSON as that string, and can be passed
wherever a plain string is expected::

    >>> ParticipantRole.CONSUMER == "CONSUMER"
    True
    >>> ConnectionState.CONNECTED == "connected"
    True

Member lists follow the seed API (``messaging-platform-sdk-api``); where the seed and the Node
SDK reference differ, the seed's members win and the values are the Node SDK's (for example
``ConnectionState`` values are lower case, ``ConnectionType.WEBSOCKET`` is ``"ws"``).  Enums the
seed lists without members (``Features``, ``RingState``) take the Node SDK 1.5.4 members.

Unknown values are never an error.  The platform adds values over time (an availability of
``OCCUPIED``, a ring state of ``AUTO_ACCEPT``, a close reason of ``TIMEOUT``...), so the SDK
keeps whatever the server sends: :func:`coerce` turns a wire string into the matching member
when there is one and returns the plain string otherwise.  Code that branches on a value should
therefore compare with ``==`` (which works for members and plain strings alike) rather than
with ``is``.
"""

from __future__ import annotations

import enum
from typing import TypeVar

from lpm.errors import ConfigurationError

__all__ = [
    "OS",
    "AgentState",
    "AuthType",
    "ChannelType",
    "ConnectionEvent",
    "ConnectionState",
    "ConnectionType",
    "ContentType",
    "ConversationContextType",
    "ConversationState",
    "CsatStatus",
    "DeliveryStatus",
    "DeviceFamily",
    "DialogChangeType",
    "DialogCloseReason",
    "DialogState",
    "DialogType",
    "Features",
    "Integration",
    "MessageAudience",
    "ParticipantChangeType",
    "ParticipantChatState",
    "ParticipantRole",
    "ParticipantState",
    "RingState",
    "RoutingSubscriptionState",
    "SubscriptionState",
    "TTRType",
    "UserType",
    "coerce",
]

E = TypeVar("E", bound=enum.StrEnum)


def coerce(enum_cls: type[E], value: str) -> E | str:
    """The member of ``enum_cls`` whose value is ``value``, or ``value`` itself when unknown.

    Matching is by wire value and case-sensitive (``coerce(ConnectionType, "ws")`` is
    ``ConnectionType.WEBSOCKET``; ``"WEBSOCKET"`` is not a wire value and stays a string).
    Use it on every enum-like value read from the server so that a value this SDK does not
    know yet is kept instead of raising::

        >>> coerce(AgentState, "ONLINE") is AgentState.ONLINE
        True
        >>> coerce(RingState, "AUTO_ACCEPT")
        'AUTO_ACCEPT'
    """
    # The value-to-member map directly: ``enum_cls(value)`` costs a call through EnumType and,
    # for unknown values, an exception; this runs for every field of every notification.
    try:
        member = enum_cls._value2member_map_.get(value)
    except TypeError:  # an unhashable value from a hostile server: kept as it is
        return value
    return member if member is not None else value  # type: ignore[return-value]


def parse_enum(enum_cls: type[E], value: object, what: str) -> E:
    """An argument the application gave as ``enum_cls``: the member itself, its wire value or
    its name, case-insensitively where that is unambiguous (``"BRAND"``, ``"brand"`` and
    ``UserType.BRAND`` are the same).  Anything else raises
    :class:`~lpm.errors.ConfigurationError` listing what is accepted.
    """
    if isinstance(value, enum_cls):
        return value
    if isinstance(value, str):
        for member in enum_cls:
            if value in (member.value, member.name):
                return member
        folded = value.casefold()
        matches = {m for m in enum_cls if folded in (m.value.casefold(), m.name.casefold())}
        if len(matches) == 1:
            return matches.pop()
    accepted = ", ".join(f"{enum_cls.__name__}.{m.name}" for m in enum_cls)
    raise ConfigurationError(f"invalid {what}: {value!r} (use {accepted}, or its value)")


class AgentState(enum.StrEnum):
    """An agent's availability for routing (``routing.SetAgentState`` ``availability``).

    ``OCCUPIED`` is not in the Node SDK's enum but is a platform value: online, but only
    transfers are routed to the agent.
    """

    #: Can receive new conversations and handles existing ones (routing and UI).
    ONLINE = "ONLINE"
    #: Receives no new conversations; current ones are not handled (routing only).
    OFFLINE = "OFFLINE"
    #: Receives no new conversations; current ones are handled after an undefined time (UI only).
    AWAY = "AWAY"
    #: Receives no new conversations; current ones are handled shortly (UI only).
    BACK_SOON = "BACK_SOON"
    #: Online, but only transfers are routed to the agent (a platform value).
    OCCUPIED = "OCCUPIED"


class AuthType(enum.StrEnum):
    """How a connection authenticated (an SDK-side classification, never sent on the wire)."""

    #: Not authenticated yet.
    NONE = "none"
    #: Consumer JWT obtained without a connector id (IdP ``signup``).
    CONSUMER_ANONYMOUS = "consumer_anonymous"
    #: Consumer JWT obtained through an unauthenticated connector (type 1).
    CONSUMER_UNAUTHENTICATED = "consumer_unauthenticated"
    #: Consumer JWT obtained through an authenticated connector (type 2).
    CONSUMER_AUTHENTICATED = "consumer_authenticated"
    #: A consumer JWT was provided but its kind is unknown.
    CONSUMER_UNDETERMINED = "consumer_undetermined"
    #: A mocked consumer identity (test only).
    CONSUMER_MOCK_AUTHENTICATED = "consumer_mock_authenticated"
    #: Brand bearer token from a user/password (or OAuth1) login.
    BRAND_AUTHENTICATED = "brand_authenticated"


class ChannelType(enum.StrEnum):
    """A dialog's channel (``dialogs[].channelType``)."""

    #: The default channel type.
    MESSAGING = "MESSAGING"
    LIVE_CHAT = "LIVE_CHAT"
    COBROWSE = "COBROWSE"


class ConnectionEvent(enum.StrEnum):
    """The events of a connection (the Node SDK's names); ``<type>#request`` /
    ``<type>#response`` are emitted for every request type besides these."""

    #: ``(error)``: a background failure (a handler's, a notification's, a reconnect's).
    ERROR = "error"
    #: ``(state)``: the connection's :class:`ConnectionState` changed.
    STATE = "state"
    #: ``()``: the first session is restored.
    CONNECT = "connect"
    #: ``()``: a later session is restored after a lost socket.
    RECONNECT = "reconnect"
    #: ``({"code", "reason"})``: the socket was lost; maintenance reconnects.
    DISCONNECT = "disconnect"
    #: ``({"code", "reason"})``: closed for good.
    CLOSE = "close"
    #: ``()``: the default subscription has loaded every existing conversation.
    READY = "ready"
    #: ``({"seconds"})``: the next connect attempt waits this long.
    RECONNECT_WAIT = "reconnect-wait"
    CONNECT_REQUEST = "connect#request"
    CONNECT_RESPONSE = "connect#response"
    #: ``(RequestTimeoutError)``: a request got no response in time.
    TIMEOUT = "timeout"
    #: ``(type, body)``: every notification, raw.
    NOTIFICATION = "notification"
    CONVERSATION_NOTIFICATION = "conversationNotification"
    MESSAGE_NOTIFICATION = "messageNotification"
    ROUTING_TASK_NOTIFICATION = "routingTaskNotification"
    #: ``(AgentStateInfo)``: brand agent-state notifications.
    AGENT_STATE = "agent-state"
    #: ``(conversation)``: a conversation new to the connection (a subscription's, the
    #: webhooks intake's).
    CONVERSATION = "conversation"


class ConnectionState(enum.StrEnum):
    """The state of a connection's state machine (``connection.state``)."""

    #: No connection has been attempted.
    INITIAL = "initial"
    #: Connecting.
    CONNECTING = "connecting"
    #: Established and ready to be used.
    CONNECTED = "connected"
    #: The connection has never been established.
    FAILED_TO_CONNECT = "failed_to_connect"
    #: Was connected, then disconnected.
    DISCONNECTED = "disconnected"
    #: Closing.
    CLOSING = "closing"
    #: Closed intentionally.
    CLOSED = "closed"
    #: No connection is possible or will be attempted (``ConnectionType.NULL``).
    NULL = "null"


class ConnectionType(enum.StrEnum):
    """How a connection talks to UMS (``create_connection(connection_type=...)``)."""

    #: Requests and notifications over a WebSocket (the default).
    WEBSOCKET = "ws"
    #: Requests over UMS REST v1; notifications need another path (webhooks).
    REST = "rest"
    #: Requests over the connector Send API; notifications need another path.
    SEND_API = "sendapi"
    #: No requests are made; all interaction with UMS is handled externally.
    NULL = "null"


class ContentType(enum.StrEnum):
    """The content type of a message (``message.content_type``).

    The Node SDK's values are undocumented; these are the strings a message's content type
    actually holds on the wire (a ContentEvent's ``contentType``, or the event type for rich
    content), so ``message.content_type == ContentType.PLAIN_TEXT`` works.
    """

    PLAIN_TEXT = "text/plain"
    HOSTED_FILE = "hosted/file"
    RICH_TEXT = "RichContentEvent"


class ConversationContextType(enum.StrEnum):
    """The ``type`` of a conversation's context (``conversationContext`` / ``context``)."""

    SHARK = "SharkContext"
    FACEBOOK = "FacebookContext"
    CUSTOM = "CustomContext"
    MOBILE_APP = "MobileAppContext"
    SMS = "SMSContext"
    PROACTIVE = "ProactiveContext"
    VOICE = "VoiceContext"


class ConversationState(enum.StrEnum):
    """A conversation's state (the MAIN dialog's state, ``conversationDetails.state``)."""

    #: The main dialog is open.
    OPEN = "OPEN"
    #: The dialog with the consumer has ended; agent activity is still possible.
    CLOSE = "CLOSE"
    #: Any change to the conversation is forbidden, agent notes and topic included.
    LOCKED = "LOCKED"
    #: SDK only: the client asked to close the conversation and awaits confirmation.
    CLOSING = "CLOSING"


class CsatStatus(enum.StrEnum):
    """The status of a CSAT rating (``CSATRate`` field ``status``)."""

    #: The default when the rating is set.
    FILLED = "FILLED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    SKIPPED = "SKIPPED"
    EMPTY = "EMPTY"


class DeliveryStatus(enum.StrEnum):
    """The ``status`` of an AcceptStatusEvent (delivery and read receipts)."""

    #: Reported when the client received the event.
    ACCEPT = "ACCEPT"
    #: Reported after the end user read the event.
    READ = "READ"
    #: Enriches a line with metadata.
    ENRICH = "ENRICH"
    #: The user clicked rich content (movie, url...).
    ACTION = "ACTION"
    #: The user accessed an external resource such as a file attachment.
    ACCESS = "ACCESS"
    #: The received message is unknown and cannot be handled.
    NACK = "NACK"
    #: Secure form viewed by the client.
    VIEWED = "VIEWED"
    #: Secure form: the client neither got nor viewed the form.
    ABORTED = "ABORTED"
    #: Secure form: the client failed to generate a token; the agent should send it again.
    ERROR = "ERROR"


class DeviceFamily(enum.StrEnum):
    """A client's device family (ClientProperties ``deviceFamily``)."""

    DESKTOP = "DESKTOP"
    TABLET = "TABLET"
    MOBILE = "MOBILE"
    PDA = "PDA"
    OTHER = "OTHER"
    UNKNOWN = "UNKNOWN"


class DialogChangeType(enum.StrEnum):
    """The ``type`` of a ``DialogChange`` conversation field."""

    #: Creates a new dialog (rarely used by clients).
    CREATE = "CREATE"
    #: Changes the given dialog.
    UPDATE = "UPDATE"


class DialogCloseReason(enum.StrEnum):
    """Who closed a dialog (``closedBy``, ``closeReason``).

    The platform also reports ``TIMEOUT``; :func:`coerce` keeps it as a plain string.
    """

    CONSUMER = "CONSUMER"
    AGENT = "AGENT"
    SYSTEM = "SYSTEM"


class DialogState(enum.StrEnum):
    """A dialog's state (``dialogs[].state``)."""

    OPEN = "OPEN"
    CLOSE = "CLOSE"


class DialogType(enum.StrEnum):
    """A dialog's type; every conversation has a MAIN dialog, and one dialog is open at a time."""

    MAIN = "MAIN"
    AGENTS = "AGENTS"
    OTHER = "OTHER"
    #: Opened after MAIN closes, for consumers declaring the MULTI_DIALOG feature.
    POST_SURVEY = "POST_SURVEY"
    PRE_CONVERSATION_OPT_IN = "PRE_CONVERSATION_OPT_IN"


class Features(enum.StrEnum):
    """Client features a consumer declares (ClientProperties ``features``)."""

    CO_BROWSE = "CO_BROWSE"
    CO_APP = "CO_APP"
    PHOTO_SHARING = "PHOTO_SHARING"
    FILE_SHARING = "FILE_SHARING"
    SECURE_FORMS = "SECURE_FORMS"
    #: Needed to receive auto-messages.
    AUTO_MESSAGES = "AUTO_MESSAGES"
    RICH_CONTENT = "RICH_CONTENT"
    QUICK_REPLIES = "QUICK_REPLIES"
    #: Needed to receive POST_SURVEY dialogs.
    MULTI_DIALOG = "MULTI_DIALOG"
    MARKDOWN_HYPERLINKS = "MARKDOWN_HYPERLINKS"


class Integration(enum.StrEnum):
    """The integration type of a client (ClientProperties ``integration``)."""

    WEB_SDK = "WEB_SDK"
    MOBILE_SDK = "MOBILE_SDK"
    BRAND_SDK = "BRAND_SDK"


class MessageAudience(enum.StrEnum):
    """Who may see a message (``messageAudience``)."""

    #: Everyone, the consumer included.
    ALL = "ALL"
    #: Private: agents and managers only (brand users may send these).
    AGENTS_AND_MANAGERS = "AGENTS_AND_MANAGERS"
    #: SDK only: the audience is not known (a message built from ``lastContentEventNotification``).
    UNKNOWN = "UNKNOWN"


class OS(enum.StrEnum):
    """A client's operating system (ClientProperties ``os``)."""

    WINDOWS = "WINDOWS"
    LINUX = "LINUX"
    OSX = "OSX"
    ANDROID = "ANDROID"
    IOS = "IOS"
    OTHER = "OTHER"


class ParticipantChangeType(enum.StrEnum):
    """The ``type`` of a ``ParticipantsChange`` conversation field.

    The platform also accepts ``UPDATE``; it is not part of the SDK's enum.
    """

    ADD = "ADD"
    REMOVE = "REMOVE"
    #: Transfer to an agent: the agent is SUGGESTED until it accepts the ring.
    SUGGEST = "SUGGEST"


class ParticipantChatState(enum.StrEnum):
    """A participant's chat state (ChatStateEvent ``chatState``)."""

    ACTIVE = "ACTIVE"
    INACTIVE = "INACTIVE"
    GONE = "GONE"
    COMPOSING = "COMPOSING"
    PAUSE = "PAUSE"
    #: The client app is in the background (needed to get push notifications).
    BACKGROUND = "BACKGROUND"
    #: SDK only: the participant has been removed from the dialog.
    REMOVED = "REMOVED"


class ParticipantRole(enum.StrEnum):
    """A participant's role in a conversation or dialog."""

    CONSUMER = "CONSUMER"
    ASSIGNED_AGENT = "ASSIGNED_AGENT"
    AGENT = "AGENT"
    MANAGER = "MANAGER"
    READER = "READER"
    BRAND_BOT = "BRAND_BOT"
    CONTROLLER = "CONTROLLER"


class ParticipantState(enum.StrEnum):
    """A dialog participant's state (``participantsDetails[].state``)."""

    ACTIVE = "ACTIVE"
    #: Transferred to this agent, not accepted yet (brand dialect only).
    SUGGESTED = "SUGGESTED"
    #: SDK only: the participant left.
    REMOVED = "REMOVED"


class RingState(enum.StrEnum):
    """The state of a routing ring (``ringsDetails[].ringState``).

    The platform also reports ``AUTO_ACCEPT``; :func:`coerce` keeps it as a plain string.
    """

    WAITING = "WAITING"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"


class SubscriptionState(enum.StrEnum):
    """The state of a conversation or routing-task subscription (SDK side)."""

    #: Created; the subscribe request has not been processed by UMS yet.
    INITIAL = "initial"
    #: Active: UMS holds the subscription.
    SUBSCRIBED = "subscribed"
    #: An unsubscribe request was sent, no response yet.
    UNSUBSCRIBING = "unsubscribing"
    #: Unsubscribed: no more notifications will be emitted.
    UNSUBSCRIBED = "unsubscribed"
    #: SDK only: an unexpected disconnect dropped the subscription in UMS.
    DISCONNECTED = "disconnected"
    #: SDK only: subscribing again after a reconnect, not confirmed yet (Node's value).
    RESUBSCRIBING = "subscribing"
    #: The subscribe request failed.
    FAILED_TO_SUBSCRIBE = "failed_to_subscribe"


#: The state of a routing-task subscription (SDK side): the same states as a conversation
#: subscription's, so the same enum.
RoutingSubscriptionState = SubscriptionState


class TTRType(enum.StrEnum):
    """A conversation's time-to-respond class (``ttr.ttrType``, ``TTRField``)."""

    NORMAL = "NORMAL"
    URGENT = "URGENT"
    PRIORITIZED = "PRIORITIZED"
    CUSTOM = "CUSTOM"


class UserType(enum.StrEnum):
    """Which side a connection is on; decides which API it can use."""

    #: A consumer.
    CONSUMER = "consumer"
    #: A brand user: agent, agent manager, campaign manager or admin.
    BRAND = "brand"
