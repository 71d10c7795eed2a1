"""Entities of the emulator's world: plain records, no behaviour beyond lookups.

What the store persists are msgspec Structs (encoded as JSON); :class:`Account` (one brand's
indexes over them) and :class:`Actor` (who performs an operation) are plain dataclasses.

Ids: agents are kept by their numeric ``user_id``; the wire shows them as the "old id"
``{account}.{user_id}`` on the brand dialect and as the PID (a UUID) on the consumer dialect.
Consumers are kept by their id, which is the ``sub`` of their LP JWT.  Non-MAIN dialog ids come
from :func:`new_dialog_id`.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field
from typing import Any

import msgspec

MAIN = "MAIN"
POST_SURVEY = "POST_SURVEY"
OPEN = "OPEN"
CLOSE = "CLOSE"

CONSUMER = "CONSUMER"
ASSIGNED_AGENT = "ASSIGNED_AGENT"
AGENT = "AGENT"
MANAGER = "MANAGER"
READER = "READER"
CONTROLLER = "CONTROLLER"
AGENT_ROLES = frozenset({ASSIGNED_AGENT, AGENT, MANAGER, READER, CONTROLLER})
#: Roles allowed to publish into a dialog (READERs only watch).
WRITER_ROLES = frozenset({CONSUMER, ASSIGNED_AGENT, AGENT, MANAGER, CONTROLLER})

ACTIVE = "ACTIVE"
SUGGESTED = "SUGGESTED"

#: Time to respond (seconds) of each ttrType until a TTR field sets another value.
TTR_DEFAULTS: dict[str, int] = {"NORMAL": 1200, "PRIORITIZED": 600, "URGENT": 300, "CUSTOM": 1200}


class User(msgspec.Struct, kw_only=True):
    """A brand user: human agent, bot or manager."""

    user_id: str
    pid: str
    login_name: str
    password: str | None = None
    app_key: str | None = None
    secret: str | None = None
    access_token: str | None = None
    access_token_secret: str | None = None
    nickname: str = ""
    full_name: str = ""
    skills: list[str] = []
    is_bot: bool = False
    is_manager: bool = False


class Skill(msgspec.Struct, kw_only=True):
    skill_id: str
    name: str
    #: Open a POST_SURVEY dialog after MAIN closes (for consumers that declared MULTI_DIALOG).
    survey: bool = False
    #: The user that joins the POST_SURVEY dialog as AGENT (None: no survey bot).
    survey_bot_user_id: str | None = None
    #: Shift status (``GET .../shift-status``): within working hours, and the epoch ms of the
    #: next shift start / end when known.
    on_shift: bool = True
    next_on: int | None = None
    next_off: int | None = None


class Connector(msgspec.Struct, kw_only=True):
    """A consumer-identity connector ("app/{id}/authenticate")."""

    connector_id: str
    name: str
    #: "unauthenticated" (ACR0: id_token is an anonymous token) or "authenticated" (brand JWT).
    kind: str
    #: Algorithm the brand signs id_tokens with: RS256 (public_key_pem) or HS256 (secret).
    jwt_alg: str = "RS256"
    public_key_pem: str | None = None
    secret: str | None = None
    #: Where the emulator wrote the brand's private signing key (default world only).
    private_key_file: str | None = None
    issuer: str | None = None


class WebhookEndpoint(msgspec.Struct, kw_only=True):
    endpoint: str
    headers: list[dict[str, str]] = []


class AppInstall(msgspec.Struct, kw_only=True):
    """A connector app install: sentinel credentials plus webhook registrations."""

    client_id: str
    client_secret: str
    name: str = "app"
    #: Event key (e.g. "ms.MessagingEventNotification.ContentEvent") -> endpoint.
    webhooks: dict[str, WebhookEndpoint] = {}
    #: Time-to-live retry policy: seconds a notification is retried before it is dropped.
    retention_time: float = 60.0
    #: User id of the agent who registered it through the installation API (None: from the world).
    created_by: str | None = None


class Consumer(msgspec.Struct, kw_only=True):
    consumer_id: str
    #: anonymous | unauthenticated | authenticated | mock | connector
    kind: str
    created_ts: int
    ext_sub: str | None = None
    ext_iss: str | None = None
    profile: dict[str, Any] = {}
    #: SDEs that came from a brand-signed JWT's ``lp_sdes`` claim.
    claims: dict[str, Any] = {}
    #: Consumer this one replaced by step-up (its conversations were taken over).
    stepped_up_from: str | None = None


class Participant(msgspec.Struct, kw_only=True):
    id: str
    role: str
    state: str = ACTIVE


class Dialog(msgspec.Struct, kw_only=True):
    dialog_id: str
    dialog_type: str
    channel_type: str
    state: str
    creation_ts: int
    participants: list[Participant]
    end_ts: int | None = None
    closed_by: str | None = None
    closed_cause: str | None = None
    meta_data: dict[str, Any] | None = None
    last_update_ts: int = 0
    next_seq: int = 0


class EventRecord(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    """One messaging event as stored (chat-state events are never stored: sequence None).

    Not tracked by the garbage collector (``gc=False``; a record never takes part in a reference
    cycle: it only points at strings, numbers and plain JSON containers).  Records are the one
    thing the world accumulates per message; tracked, they made full collections more frequent
    and longer as history grew, pausing every socket (see docs/performance.md).
    """

    sequence: int | None
    dialog_id: str
    conversation_id: str
    #: consumer id, or the agent's numeric user id
    originator_id: str
    originator_role: str
    server_ts: int | None
    event: dict[str, Any]
    audience: str = "ALL"
    metadata: list[Any] | None = None
    client_properties: dict[str, Any] | None = None


class Conversation(msgspec.Struct, kw_only=True):
    conv_id: str
    account_id: str
    consumer_id: str
    skill_id: str
    start_ts: int
    dialogs: list[Dialog]
    channel_type: str = "MESSAGING"
    stage: str = OPEN
    close_reason: str | None = None
    end_ts: int | None = None
    last_update_ts: int = 0
    ttr_type: str = "NORMAL"
    ttr_value: int = 1200
    #: When the oldest unanswered consumer message arrived (for effectiveTTR), or None.
    awaiting_reply_since: int | None = None
    delay: dict[str, Any] | None = None
    manual_ettr: int | None = None
    note: str = ""
    topic: str | None = None
    csat: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    campaign: dict[str, Any] | None = None
    first_conversation: bool = False
    #: Features the consumer declared (ClientProperties.features) when it opened the conversation.
    features: list[str] = []
    group_id: str = "-1"
    last_content_event: EventRecord | None = None
    #: The consumer's ClientProperties as the brand sees them in ``context.clientProperties``
    #: (see :func:`server_client_properties`).
    client_properties: dict[str, Any] | None = None
    #: Participant id -> messages of others it has not marked READ (``numberOfunreadMessages``).
    unread: dict[str, int] = {}

    @property
    def main(self) -> Dialog:
        return self.dialogs[0]

    @property
    def state(self) -> str:
        """Conversation ``state`` is the MAIN dialog's state; ``stage`` is the whole conversation."""
        return self.dialogs[0].state

    def dialog(self, dialog_id: str) -> Dialog | None:
        for dialog in self.dialogs:
            if dialog.dialog_id == dialog_id:
                return dialog
        return None

    def open_dialog(self) -> Dialog | None:
        for dialog in self.dialogs:
            if dialog.state == OPEN:
                return dialog
        return None

    def participants(self) -> list[Participant]:
        """Conversation-level participants: every active (id, role) over all dialogs, once."""
        seen: set[tuple[str, str]] = set()
        out: list[Participant] = []
        for dialog in self.dialogs:
            for p in dialog.participants:
                if p.state == ACTIVE and (p.id, p.role) not in seen:
                    seen.add((p.id, p.role))
                    out.append(p)
        return out


#: What the platform fills in a consumer's ClientProperties when the client does not say (the
#: emulator serves local clients: the address is the loopback one).
SERVER_CLIENT_PROPERTIES: dict[str, Any] = {
    "ipAddress": "127.0.0.1",
    "deviceFamily": "DESKTOP",
    "os": "OTHER",
    "timeZone": "UTC",
}
CONTENT_EVENTS = frozenset({"ContentEvent", "RichContentEvent"})


def server_client_properties(
    declared: dict[str, Any] | None, context: dict[str, Any] | None
) -> dict[str, Any]:
    """The consumer's ClientProperties as the brand sees them in ``context.clientProperties``.

    On the platform the brand's context carries the consumer's client properties: what the
    consumer's client declared (the connection's ``Client-Properties`` / InitConnection header,
    and the conversation context's own ``clientProperties``) plus what the server fills in -- the
    IP address it sees (always), and the device family, OS and time zone when the client named
    none.
    """
    props: dict[str, Any] = {"type": ".ClientProperties"}
    own = (context or {}).get("clientProperties")
    if isinstance(own, dict):
        props.update((k, v) for k, v in own.items() if k != "type")
    if declared:
        props.update((k, v) for k, v in declared.items() if k != "type")
    for key, value in SERVER_CLIENT_PROPERTIES.items():
        if key == "ipAddress" or key not in props:
            props[key] = value
    return props


def count_unread(conv: Conversation, dialog: Dialog, record: EventRecord, events: list[EventRecord]) -> None:
    """Keep ``conv.unread`` up to date with a stored event of ``dialog`` (``events``: the
    dialog's stored events, ``record`` last): a message counts for every other participant who
    may see it; a READ receipt resets its sender's count to the others' messages after it."""
    kind = record.event.get("type")
    if kind in CONTENT_EVENTS:
        for p in dialog.participants:
            if p.state != ACTIVE or p.id == record.originator_id or p.role == CONTROLLER:
                continue
            if record.audience != "ALL" and p.role == CONSUMER:
                continue
            conv.unread[p.id] = conv.unread.get(p.id, 0) + 1
    elif kind == "AcceptStatusEvent" and record.event.get("status") == "READ":
        upto = max((s for s in record.event.get("sequenceList") or () if isinstance(s, int)), default=-1)
        count = 0
        for earlier in reversed(events):
            if earlier.sequence is None or earlier.sequence <= upto:
                break
            if earlier.event.get("type") in CONTENT_EVENTS and earlier.originator_id != record.originator_id:
                count += 1
        conv.unread[record.originator_id] = count


class Ring(msgspec.Struct, kw_only=True):
    ring_id: str
    user_id: str
    state: str
    created_ts: int
    expiration_ms: int
    weight: int


class RoutingTask(msgspec.Struct, kw_only=True):
    """Routing of one conversation to an agent: a chain of rings, one at a time."""

    task_id: str
    conv_id: str
    consumer_id: str
    skill_id: str
    #: Transfer target: only this agent is rung (SUGGEST), then the skill queue.
    suggested_user_id: str | None = None
    #: Transfers may ring OCCUPIED agents; new conversations ring ONLINE agents only.
    is_transfer: bool = False
    rings: list[Ring] = []
    completed: bool = False
    assigned_user_id: str | None = None
    tried: list[str] = []


class AgentState(msgspec.Struct, kw_only=True):
    availability: str = "OFFLINE"
    description: str = ""
    channels: list[str] = msgspec.field(default_factory=lambda: ["MESSAGING"])


class AgentSession(msgspec.Struct, kw_only=True):
    """An agentVep login session."""

    bearer: str
    csrf: str
    session_id: str
    account_id: str
    user_id: str
    expires_at: float
    ttl: float


def survey_app_install_id(account_id: str, skill_id: str) -> str:
    """The ``appInstallId`` of a POST_SURVEY dialog's ``metaData`` (stable per account and skill)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"lpm-emulator/{account_id}/survey/{skill_id}"))


def new_dialog_id() -> str:
    """Non-MAIN dialog ids are 22-char base64url strings, as on the platform."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


@dataclass(frozen=True, slots=True)
class Actor:
    """Who performs an operation.

    ``kind`` is ``consumer`` (id = consumer id), ``agent`` (id = numeric user id) or ``app``
    (a server-to-server caller with an AppJWT acting for ``id`` in ``role``).
    """

    account_id: str
    kind: str
    id: str
    role: str | None = None
    client_properties: dict[str, Any] | None = None

    @property
    def is_consumer(self) -> bool:
        return self.kind == "consumer"


@dataclass(slots=True)
class Account:
    """One brand: its configuration, its entities, and the indexes the world keeps over them."""

    account_id: str
    users: dict[str, User] = field(default_factory=dict)
    skills: dict[str, Skill] = field(default_factory=dict)
    connectors: dict[str, Connector] = field(default_factory=dict)
    app_installs: dict[str, AppInstall] = field(default_factory=dict)
    consumers: dict[str, Consumer] = field(default_factory=dict)
    conversations: dict[str, Conversation] = field(default_factory=dict)
    events: dict[str, list[EventRecord]] = field(default_factory=dict)
    dialog_index: dict[str, str] = field(default_factory=dict)
    open_conversation: dict[str, str] = field(default_factory=dict)
    agent_states: dict[str, AgentState] = field(default_factory=dict)
    tasks: dict[str, RoutingTask] = field(default_factory=dict)
    rings: dict[str, str] = field(default_factory=dict)  # ring id -> conv id
    pid_index: dict[str, str] = field(default_factory=dict)  # pid -> user id
    login_index: dict[str, str] = field(default_factory=dict)  # login name -> user id
    routing_listeners: dict[str, int] = field(default_factory=dict)  # user id -> subscriptions

    def add_user(self, user: User) -> None:
        self.users[user.user_id] = user
        self.pid_index[user.pid] = user.user_id
        self.login_index[user.login_name] = user.user_id

    def old_id(self, user_id: str) -> str:
        return f"{self.account_id}.{user_id}"

    def resolve_user(self, any_id: str | None) -> User | None:
        """Find a user by numeric id, old id ``acc.id``, PID or login name."""
        if not any_id:
            return None
        if any_id in self.users:
            return self.users[any_id]
        prefix = self.account_id + "."
        if any_id.startswith(prefix) and any_id[len(prefix) :] in self.users:
            return self.users[any_id[len(prefix) :]]
        user_id = self.pid_index.get(any_id) or self.login_index.get(any_id)
        return self.users.get(user_id) if user_id else None
