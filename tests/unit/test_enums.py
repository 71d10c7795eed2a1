"""Every enum of the public API: exact members, exact wire values, and unknown values kept."""

from __future__ import annotations

import enum
import json

import msgspec
import pytest

from lpm import enums
from lpm.enums import (
    OS,
    AgentState,
    AuthType,
    ChannelType,
    ConnectionEvent,
    ConnectionState,
    ConnectionType,
    ContentType,
    ConversationContextType,
    ConversationState,
    CsatStatus,
    DeliveryStatus,
    DeviceFamily,
    DialogChangeType,
    DialogCloseReason,
    DialogState,
    DialogType,
    Features,
    Integration,
    MessageAudience,
    ParticipantChangeType,
    ParticipantChatState,
    ParticipantRole,
    ParticipantState,
    RingState,
    RoutingSubscriptionState,
    SubscriptionState,
    TTRType,
    UserType,
    coerce,
)


def _same(*names: str) -> dict[str, str]:
    """Members whose wire value is their name."""
    return {name: name for name in names}


_SUBSCRIPTION_STATES = {
    "INITIAL": "initial",
    "SUBSCRIBED": "subscribed",
    "UNSUBSCRIBING": "unsubscribing",
    "UNSUBSCRIBED": "unsubscribed",
    "DISCONNECTED": "disconnected",
    "RESUBSCRIBING": "subscribing",  # the Node SDK's value, not the member name
    "FAILED_TO_SUBSCRIBE": "failed_to_subscribe",
}

EXPECTED: dict[type[enum.StrEnum], dict[str, str]] = {
    AgentState: _same("ONLINE", "OFFLINE", "AWAY", "BACK_SOON", "OCCUPIED"),
    AuthType: {
        "NONE": "none",
        "CONSUMER_ANONYMOUS": "consumer_anonymous",
        "CONSUMER_UNAUTHENTICATED": "consumer_unauthenticated",
        "CONSUMER_AUTHENTICATED": "consumer_authenticated",
        "CONSUMER_UNDETERMINED": "consumer_undetermined",
        "CONSUMER_MOCK_AUTHENTICATED": "consumer_mock_authenticated",
        "BRAND_AUTHENTICATED": "brand_authenticated",
    },
    ChannelType: _same("MESSAGING", "LIVE_CHAT", "COBROWSE"),
    ConnectionEvent: {
        "ERROR": "error",
        "STATE": "state",
        "CONNECT": "connect",
        "RECONNECT": "reconnect",
        "DISCONNECT": "disconnect",
        "CLOSE": "close",
        "READY": "ready",
        "RECONNECT_WAIT": "reconnect-wait",
        "CONNECT_REQUEST": "connect#request",
        "CONNECT_RESPONSE": "connect#response",
        "TIMEOUT": "timeout",
        "NOTIFICATION": "notification",
        "CONVERSATION_NOTIFICATION": "conversationNotification",
        "MESSAGE_NOTIFICATION": "messageNotification",
        "ROUTING_TASK_NOTIFICATION": "routingTaskNotification",
        "AGENT_STATE": "agent-state",
        "CONVERSATION": "conversation",
    },
    ConnectionState: {
        "INITIAL": "initial",
        "CONNECTING": "connecting",
        "CONNECTED": "connected",
        "FAILED_TO_CONNECT": "failed_to_connect",
        "DISCONNECTED": "disconnected",
        "CLOSING": "closing",
        "CLOSED": "closed",
        "NULL": "null",
    },
    ConnectionType: {"WEBSOCKET": "ws", "REST": "rest", "SEND_API": "sendapi", "NULL": "null"},
    ContentType: {"PLAIN_TEXT": "text/plain", "HOSTED_FILE": "hosted/file", "RICH_TEXT": "RichContentEvent"},
    ConversationContextType: {
        "SHARK": "SharkContext",
        "FACEBOOK": "FacebookContext",
        "CUSTOM": "CustomContext",
        "MOBILE_APP": "MobileAppContext",
        "SMS": "SMSContext",
        "PROACTIVE": "ProactiveContext",
        "VOICE": "VoiceContext",
    },
    ConversationState: _same("OPEN", "CLOSE", "LOCKED", "CLOSING"),
    CsatStatus: _same("FILLED", "PARTIALLY_FILLED", "SKIPPED", "EMPTY"),
    DeliveryStatus: _same(
        "ACCEPT", "READ", "ENRICH", "ACTION", "ACCESS", "NACK", "VIEWED", "ABORTED", "ERROR"
    ),
    DeviceFamily: _same("DESKTOP", "TABLET", "MOBILE", "PDA", "OTHER", "UNKNOWN"),
    DialogChangeType: _same("CREATE", "UPDATE"),
    DialogCloseReason: _same("CONSUMER", "AGENT", "SYSTEM"),
    DialogState: _same("OPEN", "CLOSE"),
    DialogType: _same("MAIN", "AGENTS", "OTHER", "POST_SURVEY", "PRE_CONVERSATION_OPT_IN"),
    Features: _same(
        "CO_BROWSE",
        "CO_APP",
        "PHOTO_SHARING",
        "FILE_SHARING",
        "SECURE_FORMS",
        "AUTO_MESSAGES",
        "RICH_CONTENT",
        "QUICK_REPLIES",
        "MULTI_DIALOG",
        "MARKDOWN_HYPERLINKS",
    ),
    Integration: _same("WEB_SDK", "MOBILE_SDK", "BRAND_SDK"),
    MessageAudience: _same("ALL", "AGENTS_AND_MANAGERS", "UNKNOWN"),
    OS: _same("WINDOWS", "LINUX", "OSX", "ANDROID", "IOS", "OTHER"),
    ParticipantChangeType: _same("ADD", "REMOVE", "SUGGEST"),
    ParticipantChatState: _same("ACTIVE", "INACTIVE", "GONE", "COMPOSING", "PAUSE", "BACKGROUND", "REMOVED"),
    ParticipantRole: _same(
        "CONSUMER", "ASSIGNED_AGENT", "AGENT", "MANAGER", "READER", "BRAND_BOT", "CONTROLLER"
    ),
    ParticipantState: _same("ACTIVE", "SUGGESTED", "REMOVED"),
    RingState: _same("WAITING", "CANCELLED", "EXPIRED", "ACCEPTED", "REJECTED"),
    RoutingSubscriptionState: _SUBSCRIPTION_STATES,
    SubscriptionState: _SUBSCRIPTION_STATES,
    TTRType: _same("NORMAL", "URGENT", "PRIORITIZED", "CUSTOM"),
    UserType: {"CONSUMER": "consumer", "BRAND": "brand"},
}


@pytest.mark.parametrize("enum_cls", list(EXPECTED), ids=lambda c: c.__name__)
def test_members_and_wire_values(enum_cls: type[enum.StrEnum]) -> None:
    assert {m.name: m.value for m in enum_cls} == EXPECTED[enum_cls]
    for member in enum_cls:
        # a member is its wire string: equal, hashable as it, and encoded as it
        assert member == member.value and isinstance(member, str)
        assert {member.value: 1}[member] == 1
        assert json.dumps(member) == json.dumps(member.value)
        assert msgspec.json.encode(member) == msgspec.json.encode(member.value)
        assert enum_cls(member.value) is member


def test_every_public_enum_is_covered_and_documented() -> None:
    public = {
        obj
        for name in enums.__all__
        if isinstance(obj := getattr(enums, name), type) and issubclass(obj, enum.StrEnum)
    }
    assert public == set(EXPECTED)
    for enum_cls in public:
        assert enum_cls.__doc__ and "An enumeration." not in enum_cls.__doc__


def test_examples_from_the_node_sdk() -> None:
    # Typed as plain str, as values read from the wire are (mypy's strict equality would
    # otherwise call a StrEnum literal and a str literal non-overlapping).
    wire: list[str] = ["CONSUMER", "connected", "ws", "sendapi", "brand"]
    members: list[str] = [
        ParticipantRole.CONSUMER,
        ConnectionState.CONNECTED,
        ConnectionType.WEBSOCKET,
        ConnectionType.SEND_API,
        UserType.BRAND,
    ]
    assert members == wire
    assert str(AgentState.BACK_SOON) == "BACK_SOON" and f"{UserType.CONSUMER}" == "consumer"


@pytest.mark.parametrize("enum_cls", list(EXPECTED), ids=lambda c: c.__name__)
def test_coerce_known_values(enum_cls: type[enum.StrEnum]) -> None:
    for member in enum_cls:
        assert coerce(enum_cls, member.value) is member
        assert coerce(enum_cls, member) is member


@pytest.mark.parametrize(
    ("enum_cls", "value"),
    [
        (RingState, "AUTO_ACCEPT"),
        (DialogCloseReason, "TIMEOUT"),
        (ParticipantChangeType, "UPDATE"),
        (DialogType, "COBROWSE_SESSION"),
        (ConnectionType, "WEBSOCKET"),  # a member *name* is not a wire value
        (ConnectionState, "CONNECTED"),  # matching is case-sensitive
        (ParticipantRole, ""),
    ],
)
def test_coerce_keeps_unknown_values(enum_cls: type[enum.StrEnum], value: str) -> None:
    result = coerce(enum_cls, value)
    assert result == value and not isinstance(result, enum_cls)
    assert type(result) is str


def test_coerce_results_compare_with_members() -> None:
    states = [coerce(RingState, v) for v in ("WAITING", "AUTO_ACCEPT")]
    assert states[0] == RingState.WAITING and states[1] != RingState.WAITING
    assert [s for s in states if s == "AUTO_ACCEPT"] == ["AUTO_ACCEPT"]
