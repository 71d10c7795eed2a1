"""Wire type names of both UMS dialects and the mapping between them.

UMS message types are Java class names relative to ``com.liveperson.api``
(``.ams.cm.UpdateConversationField``); the public short names (``cm.UpdateConversationField``)
are aliases.  Consumers on ``/messaging/consumer?v=3`` speak the short names; brands on
``/messaging/brand/{bearer}?v=2.1`` (node-agent-sdk) speak the ``.ams.*`` names.  This module
is the only place that spells them.  Canonical names in this package are the public short names.
"""

from __future__ import annotations

import enum


class Dialect(enum.Enum):
    """Which naming convention and body shapes a socket speaks."""

    CONSUMER_V3 = "consumer"
    BRAND_V2 = "brand"


class Req(enum.StrEnum):
    """Canonical (public short) names of every request type."""

    INIT_CONNECTION = "InitConnection"
    GET_CLOCK = "GetClock"
    KEEP_ALIVE = "KeepAlive"
    CONSUMER_REQUEST_CONVERSATION = "cm.ConsumerRequestConversation"
    AGENT_REQUEST_CONVERSATION = "cm.AgentRequestConversation"
    UPDATE_CONVERSATION_FIELD = "cm.UpdateConversationField"
    PUBLISH_EVENT = "ms.PublishEvent"
    SUBSCRIBE_MESSAGING_EVENTS = "ms.SubscribeMessagingEvents"
    QUERY_MESSAGES = "ms.QueryMessages"
    GENERATE_UPLOAD_URL = "ms.GenerateURLForUploadFile"
    GENERATE_DOWNLOAD_URL = "ms.GenerateURLForDownloadFile"
    GENERATE_DOWNLOAD_TOKEN = "ms.GenerateDownloadToken"
    SUBSCRIBE_EX_CONVERSATIONS = "cqm.SubscribeExConversations"
    UNSUBSCRIBE_EX_CONVERSATIONS = "cqm.UnsubscribeExConversations"
    UPDATE_EX_CONVERSATION_SUBSCRIPTION = "cqm.UpdateExConversationSubscription"
    SET_USER_PROFILE = "userprofile.SetUserProfile"
    GET_USER_PROFILE = "userprofile.GetUserProfile"
    GET_BRAND_PROFILE = "brandprofile.GetBrandProfile"
    SET_AGENT_STATE = "routing.SetAgentState"
    SUBSCRIBE_AGENTS_STATE = "routing.SubscribeAgentsState"
    SUBSCRIBE_ROUTING_TASKS = "routing.SubscribeRoutingTasks"
    UPDATE_ROUTING_TASK_SUBSCRIPTION = "routing.UpdateRoutingTaskSubscription"
    UPDATE_RING_STATE = "routing.UpdateRingState"


class Notif(enum.StrEnum):
    """Canonical names of the notification kinds."""

    EX_CONVERSATION_CHANGE = "cqm.ExConversationChangeNotification"
    MESSAGING_EVENT = "ms.MessagingEventNotification"
    ROUTING_TASK = "routing.RoutingTaskNotification"
    AGENT_STATE = "routing.AgentStateNotification"


# Brand (v2.1) wire names, where they are not simply ``.ams.`` + the canonical name.
_BRAND_NAME_OVERRIDES: dict[str, str] = {
    Req.INIT_CONNECTION: ".InitConnection",
    Req.GET_CLOCK: ".GetClock",
    Req.KEEP_ALIVE: ".KeepAlive",
    Req.SUBSCRIBE_EX_CONVERSATIONS: ".ams.aam.SubscribeExConversations",
    Req.UNSUBSCRIBE_EX_CONVERSATIONS: ".ams.aam.UnsubscribeExConversations",
    Req.UPDATE_EX_CONVERSATION_SUBSCRIPTION: ".ams.aam.UpdateExConversationSubscription",
    Req.GENERATE_DOWNLOAD_TOKEN: ".ams.ms.token.GenerateDownloadToken",
}

# Other spellings seen in the field (lp-api, AMSJS, consumer schema, lp-messaging-sdk v3 names).
_ALIASES: dict[str, str] = {
    "aam.SubscribeExConversations": Req.SUBSCRIBE_EX_CONVERSATIONS,
    "aam.UnsubscribeExConversations": Req.UNSUBSCRIBE_EX_CONVERSATIONS,
    "aam.UnSubscribeExConversations": Req.UNSUBSCRIBE_EX_CONVERSATIONS,
    "cqm.UnSubscribeExConversations": Req.UNSUBSCRIBE_EX_CONVERSATIONS,
    "aam.UpdateExConversationSubscription": Req.UPDATE_EX_CONVERSATION_SUBSCRIPTION,
    "up.GetUserProfile": Req.GET_USER_PROFILE,
    "up.SetUserProfile": Req.SET_USER_PROFILE,
    "ms.token.GenerateDownloadToken": Req.GENERATE_DOWNLOAD_TOKEN,
    "rs.SetAgentState": Req.SET_AGENT_STATE,
    "rs.SubscribeAgentsState": Req.SUBSCRIBE_AGENTS_STATE,
    "rs.SubscribeRoutingTasks": Req.SUBSCRIBE_ROUTING_TASKS,
    "rs.UpdateRoutingTaskSubscription": Req.UPDATE_ROUTING_TASK_SUBSCRIPTION,
    "rs.UpdateRingState": Req.UPDATE_RING_STATE,
}

_CANONICAL: dict[str, Req] = {r.value: r for r in Req}


def canonical_request(wire_type: str) -> Req | None:
    """Map any accepted spelling of a request type to its canonical name (``None`` if unknown).

    Accepts the short names, the ``.ams.*`` brand names, a bare leading ``.`` and the aliases
    seen in other clients (``aam.``, ``up.``, ``rs.``).
    """
    name = wire_type
    if name.startswith(".ams."):
        name = name[5:]
    elif name.startswith("."):
        name = name[1:]
    found = _CANONICAL.get(name)
    if found is not None:
        return found
    alias = _ALIASES.get(name)
    return Req(alias) if alias is not None else None


def request_display_name(wire_type: str) -> str:
    """How messages and errors name a request: its canonical name whatever the dialect spelled
    (``.ams.ms.PublishEvent`` and ``ms.PublishEvent`` are both ``ms.PublishEvent``); a type this
    package does not know is shown as given."""
    found = canonical_request(wire_type)
    return found.value if found is not None else wire_type


def request_wire_name(req: Req, dialect: Dialect) -> str:
    """The type name a client of ``dialect`` sends for ``req``."""
    if dialect is Dialect.CONSUMER_V3:
        return req.value
    return _BRAND_NAME_OVERRIDES.get(req, ".ams." + req.value)


#: Type of a response whose body is a plain string (errors included).
STRING_RESPONSE: dict[Dialect, str] = {
    Dialect.CONSUMER_V3: "StringResponse",
    Dialect.BRAND_V2: ".ReqBody$StringResp",
}

# Response type names.  A request answered with a body is answered with its own name plus
# ``Response`` (consumer v3) or its brand wire name plus ``$Response`` (brand v2.1); these are
# answered with a plain string, or (the table below) with a name of their own.
_STRING_ANSWERED = frozenset(
    {
        Req.KEEP_ALIVE,
        Req.UPDATE_CONVERSATION_FIELD,
        Req.UNSUBSCRIBE_EX_CONVERSATIONS,
        Req.UPDATE_EX_CONVERSATION_SUBSCRIPTION,
        Req.SET_USER_PROFILE,
        Req.SET_AGENT_STATE,
        Req.UPDATE_ROUTING_TASK_SUBSCRIPTION,
        Req.UPDATE_RING_STATE,
    }
)
_REQUEST_CONVERSATION_RESPONSE = ("cm.RequestConversationResponse", ".ams.cm.RequestConversation$Response")
# The file-sharing tutorial's traces answer ``ms.BaseGenerateURLResponse`` (the schema's default
# says ``ms.GenerateURLResponse``; clients match responses by reqId, not by type).
_GENERATE_URL_RESPONSE = ("ms.BaseGenerateURLResponse", ".ams.ms.GenerateURLResponse")
_GENERIC_SUBSCRIBE_RESPONSE = ("GenericSubscribeResponse", ".ams.GenericSubscribe$Response")
# (consumer v3, brand v2.1) where the rule does not hold.
_RESPONSE_NAME_OVERRIDES: dict[Req, tuple[str, str]] = {
    Req.INIT_CONNECTION: ("InitConnectionResponse", STRING_RESPONSE[Dialect.BRAND_V2]),
    Req.CONSUMER_REQUEST_CONVERSATION: _REQUEST_CONVERSATION_RESPONSE,
    Req.AGENT_REQUEST_CONVERSATION: _REQUEST_CONVERSATION_RESPONSE,
    Req.SUBSCRIBE_MESSAGING_EVENTS: ("GenericSubscribeResponse", ".ams.GenericSubscribeResponse"),
    Req.GENERATE_UPLOAD_URL: _GENERATE_URL_RESPONSE,
    Req.GENERATE_DOWNLOAD_URL: _GENERATE_URL_RESPONSE,
    Req.GENERATE_DOWNLOAD_TOKEN: ("ms.DownloadToken", ".ams.ms.token.DownloadToken"),
    Req.SUBSCRIBE_AGENTS_STATE: _GENERIC_SUBSCRIBE_RESPONSE,
    Req.SUBSCRIBE_ROUTING_TASKS: _GENERIC_SUBSCRIBE_RESPONSE,
}


def response_type(req: Req | None, dialect: Dialect) -> str:
    """The response type name for ``req`` in ``dialect`` (string response when unknown)."""
    if req is None or req in _STRING_ANSWERED:
        return STRING_RESPONSE[dialect]
    names = _RESPONSE_NAME_OVERRIDES.get(req)
    if names is not None:
        return names[0] if dialect is Dialect.CONSUMER_V3 else names[1]
    if dialect is Dialect.CONSUMER_V3:
        return req.value + "Response"
    return request_wire_name(req, dialect) + "$Response"


_NOTIFICATION_NAMES: dict[Notif, tuple[str, str]] = {
    Notif.EX_CONVERSATION_CHANGE: (
        "cqm.ExConversationChangeNotification",
        ".ams.aam.ExConversationChangeNotification",
    ),
    Notif.MESSAGING_EVENT: ("ms.MessagingEventNotification", ".ams.ms.OnlineEventDistribution"),
    Notif.ROUTING_TASK: ("routing.RoutingTaskNotification", ".ams.routing.RoutingTaskNotification"),
    Notif.AGENT_STATE: ("routing.AgentStateNotification", ".ams.routing.AgentStateNotification"),
}

_NOTIFICATION_BY_WIRE: dict[str, Notif] = {}
for _notif, (_v3, _brand) in _NOTIFICATION_NAMES.items():
    _NOTIFICATION_BY_WIRE[_v3] = _notif
    _NOTIFICATION_BY_WIRE[_brand] = _notif
_NOTIFICATION_BY_WIRE["ms.OnlineEventDistribution"] = Notif.MESSAGING_EVENT
# The Messaging Window API reference shows the consumer notification as ``aam.`` (issue 14).
_NOTIFICATION_BY_WIRE["aam.ExConversationChangeNotification"] = Notif.EX_CONVERSATION_CHANGE
_NOTIFICATION_BY_WIRE["rs.RoutingTaskNotification"] = Notif.ROUTING_TASK
_NOTIFICATION_BY_WIRE["rs.AgentStateNotification"] = Notif.AGENT_STATE


def notification_type(notif: Notif, dialect: Dialect) -> str:
    """The notification type name sent to a client of ``dialect``."""
    names = _NOTIFICATION_NAMES[notif]
    return names[0] if dialect is Dialect.CONSUMER_V3 else names[1]


def canonical_notification(wire_type: str) -> Notif | None:
    """Map a received notification type (either dialect) to its canonical kind."""
    return _NOTIFICATION_BY_WIRE.get(wire_type)


# Requests both endpoints accept.
_COMMON_REQUESTS = frozenset(
    {
        Req.GET_CLOCK,
        Req.KEEP_ALIVE,
        Req.UPDATE_CONVERSATION_FIELD,
        Req.PUBLISH_EVENT,
        Req.SUBSCRIBE_MESSAGING_EVENTS,
        Req.GENERATE_UPLOAD_URL,
        Req.GENERATE_DOWNLOAD_URL,
        Req.GENERATE_DOWNLOAD_TOKEN,
        Req.SUBSCRIBE_EX_CONVERSATIONS,
        Req.UNSUBSCRIBE_EX_CONVERSATIONS,
        Req.UPDATE_EX_CONVERSATION_SUBSCRIPTION,
        Req.GET_USER_PROFILE,
        Req.GET_BRAND_PROFILE,
    }
)

#: Requests a consumer may send on the v3 endpoint.
CONSUMER_REQUESTS: frozenset[Req] = _COMMON_REQUESTS | {
    Req.INIT_CONNECTION,
    Req.CONSUMER_REQUEST_CONVERSATION,
    Req.SET_USER_PROFILE,
}

#: Requests a brand user may send on the v2.1 endpoint.
BRAND_REQUESTS: frozenset[Req] = _COMMON_REQUESTS | {
    Req.AGENT_REQUEST_CONVERSATION,
    Req.QUERY_MESSAGES,
    Req.SET_AGENT_STATE,
    Req.SUBSCRIBE_AGENTS_STATE,
    Req.SUBSCRIBE_ROUTING_TASKS,
    Req.UPDATE_ROUTING_TASK_SUBSCRIPTION,
    Req.UPDATE_RING_STATE,
}

#: Requests whose success code is 202 rather than 200.
ACCEPTED_202: frozenset[Req] = frozenset({Req.SET_AGENT_STATE, Req.UPDATE_RING_STATE})

# Header object types of InitConnection / the Client-Properties upgrade header.
HEADER_CLIENT_PROPERTIES = ".ams.headers.ClientProperties"
HEADER_CONSUMER_AUTH = ".ams.headers.ConsumerAuthentication"
CLIENT_PROPERTIES_TYPE = ".ClientProperties"
