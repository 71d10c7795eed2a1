"""The emulator's world: one consistent model of accounts, conversations, dialogs and routing.

Plain Python with no I/O: every face (both WebSocket dialects, UMS REST, Send API, webhooks)
calls the operations here with an :class:`Actor` and turns :class:`~lpm.emulator.errors.WorldError`
into its own wire error.  Changes are announced to :class:`WorldSink` objects (socket fan-out,
webhooks, persistence) *after* an operation has succeeded, so a refused request never leaks a
half-applied change.  Time comes from an injected clock and timers from an injected scheduler so
unit tests can drive the model without sockets or sleeps.
"""

from __future__ import annotations

import base64
import copy
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec

from lpm.emulator import model as m
from lpm.emulator.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized
from lpm.emulator.model import (
    AgentSession,
    AgentState,
    AppInstall,
    Connector,
    Consumer,
    Conversation,
    Dialog,
    EventRecord,
    Participant,
    Skill,
    User,
)
from lpm.emulator.tokens import record_issued
from lpm.protocol import models as pm

TTR_DEFAULTS: dict[str, int] = {"NORMAL": 1200, "PRIORITIZED": 600, "URGENT": 300, "CUSTOM": 1200}
SKILL_ANY = "-1"


class Cancellable(Protocol):
    def cancel(self) -> Any: ...


class Scheduler(Protocol):
    """Runs ``callback`` after ``delay`` seconds (asyncio's ``loop.call_later`` fits)."""

    def call_later(self, delay: float, callback: Callable[[], None]) -> Cancellable: ...


class WorldSink(Protocol):
    """Receives every committed change of the world."""

    def conversation_changed(self, conv: Conversation) -> None: ...

    def messaging_event(self, conv: Conversation, record: EventRecord) -> None: ...

    def routing_task_changed(self, account_id: str, task: m.RoutingTask) -> None: ...

    def agent_state_changed(self, account_id: str, user_id: str, state: AgentState) -> None: ...

    def consumer_changed(self, account_id: str, consumer: Consumer) -> None: ...


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
    tasks: dict[str, m.RoutingTask] = field(default_factory=dict)
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


class NullStore:
    """Store interface; the in-memory default persists nothing."""

    def conversation_changed(self, conv: Conversation) -> None:
        """Persist the conversation (without its events)."""

    def messaging_event(self, conv: Conversation, record: EventRecord) -> None:
        """Persist one stored event."""

    def routing_task_changed(self, account_id: str, task: m.RoutingTask) -> None:
        """Routing is transient: rings are not persisted."""

    def agent_state_changed(self, account_id: str, user_id: str, state: AgentState) -> None:
        """Persist an agent's state."""

    def consumer_changed(self, account_id: str, consumer: Consumer) -> None:
        """Persist a consumer identity and profile."""

    def session_changed(self, session: AgentSession | None, bearer: str) -> None:
        """Persist (or, with ``None``, forget) an agent login session."""

    def app_install_changed(self, account_id: str, install: AppInstall) -> None:
        """Persist an app install."""

    def app_install_removed(self, account_id: str, client_id: str) -> None:
        """Forget a persisted app install (configured ones come back with the config)."""


def _now_ms(clock: Callable[[], float]) -> int:
    return int(clock() * 1000)


def new_dialog_id() -> str:
    """Non-MAIN dialog ids are 22-char base64url strings, as on the platform."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


class World:
    """All accounts and their state, with the platform's rules."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        scheduler: Scheduler | None = None,
        ring_expiry: float = 72.0,
    ) -> None:
        self.clock = clock
        self.scheduler = scheduler
        self.ring_expiry = ring_expiry
        self.accounts: dict[str, Account] = {}
        self.sinks: list[WorldSink] = []
        self.store: NullStore = NullStore()
        self.sessions: dict[str, AgentSession] = {}
        # Imported here: routing needs World, World owns the router.
        from lpm.emulator.routing import Router

        self.router = Router(self)

    # ------------------------------------------------------------------ setup and lookup

    def now_ms(self) -> int:
        return _now_ms(self.clock)

    def add_account(self, account_id: str) -> Account:
        acc = self.accounts.get(account_id)
        if acc is None:
            acc = self.accounts[account_id] = Account(account_id)
        return acc

    def account(self, account_id: str) -> Account:
        acc = self.accounts.get(account_id)
        if acc is None:
            raise NotFound(f"unknown account {account_id}")
        return acc

    def conversation(self, account_id: str, conv_id: str) -> Conversation:
        conv = self.account(account_id).conversations.get(conv_id)
        if conv is None:
            raise NotFound(f"conversation {conv_id} not found")
        return conv

    def conversation_of_dialog(self, account_id: str, dialog_id: str) -> Conversation:
        acc = self.account(account_id)
        conv_id = acc.dialog_index.get(dialog_id)
        if conv_id is None:
            raise NotFound(f"dialog {dialog_id} not found")
        return acc.conversations[conv_id]

    def _emit(self, method: str, *args: Any) -> None:
        getattr(self.store, method)(*args)
        for sink in self.sinks:
            getattr(sink, method)(*args)

    def _changed(self, conv: Conversation) -> None:
        conv.last_update_ts = max(self.now_ms(), conv.last_update_ts + 1)
        self._emit("conversation_changed", conv)

    # ------------------------------------------------------------------ identities

    def add_consumer(
        self,
        account_id: str,
        kind: str,
        *,
        consumer_id: str | None = None,
        ext_sub: str | None = None,
        ext_iss: str | None = None,
        claims: dict[str, Any] | None = None,
    ) -> Consumer:
        """Create (or, for a known id, update) a consumer identity."""
        acc = self.account(account_id)
        cid = consumer_id or str(uuid.uuid4())
        consumer = acc.consumers.get(cid)
        if consumer is None:
            consumer = Consumer(consumer_id=cid, kind=kind, created_ts=self.now_ms())
            acc.consumers[cid] = consumer
        consumer.kind = kind
        if ext_sub is not None:
            consumer.ext_sub = ext_sub
        if ext_iss is not None:
            consumer.ext_iss = ext_iss
        if claims is not None:
            consumer.claims = claims
        self._emit("consumer_changed", account_id, consumer)
        return consumer

    def consumer(self, account_id: str, consumer_id: str) -> Consumer:
        consumer = self.account(account_id).consumers.get(consumer_id)
        if consumer is None:
            raise Unauthorized("unknown consumer")
        return consumer

    def step_up(self, account_id: str, old_consumer_id: str, new_consumer_id: str) -> list[str]:
        """The authenticated consumer ``new`` takes over ``old``'s open conversation(s)."""
        acc = self.account(account_id)
        taken: list[str] = []
        if new_consumer_id in acc.consumers:
            acc.consumers[new_consumer_id].stepped_up_from = old_consumer_id
        conv_id = acc.open_conversation.get(old_consumer_id)
        if conv_id is None:
            return taken
        if new_consumer_id in acc.open_conversation:
            raise Conflict("the authenticated consumer already has an open conversation")
        conv = acc.conversations[conv_id]
        conv.consumer_id = new_consumer_id
        for dialog in conv.dialogs:
            for p in dialog.participants:
                if p.role == m.CONSUMER and p.id == old_consumer_id:
                    p.id = new_consumer_id
        del acc.open_conversation[old_consumer_id]
        acc.open_conversation[new_consumer_id] = conv_id
        task = acc.tasks.get(conv_id)
        if task is not None:
            task.consumer_id = new_consumer_id
        taken.append(conv_id)
        self._changed(conv)
        return taken

    # ---------------------------------------------------------------- agent sessions

    def login(self, account_id: str, user: User, ttl: float) -> AgentSession:
        session = AgentSession(
            bearer=uuid.uuid4().hex + uuid.uuid4().hex,
            csrf=uuid.uuid4().hex,
            session_id=uuid.uuid4().hex,
            account_id=account_id,
            user_id=user.user_id,
            expires_at=self.clock() + ttl,
            ttl=ttl,
        )
        self.sessions[session.bearer] = session
        self.store.session_changed(session, session.bearer)
        record_issued(session.bearer, session.csrf, session.session_id)
        return session

    def session(self, bearer: str) -> AgentSession | None:
        """A live session for ``bearer`` (expired sessions are forgotten)."""
        session = self.sessions.get(bearer)
        if session is not None and session.expires_at <= self.clock():
            return None
        return session

    def refresh_session(self, session: AgentSession) -> None:
        session.expires_at = self.clock() + session.ttl
        self.store.session_changed(session, session.bearer)

    def logout(self, session: AgentSession) -> None:
        self.sessions.pop(session.bearer, None)
        self.store.session_changed(None, session.bearer)

    # ------------------------------------------------------------------ conversations

    def _agent(self, actor: Actor) -> User:
        user = self.account(actor.account_id).users.get(actor.id)
        if user is None:
            raise Unauthorized("unknown agent")
        return user

    def _authorize_read(self, actor: Actor, conv: Conversation) -> None:
        if actor.is_consumer:
            if conv.consumer_id != actor.id:
                raise Forbidden("not your conversation")
            return
        if actor.kind == "app":
            return
        user = self._agent(actor)
        if user.is_manager:
            return
        if not any(p.id == actor.id and p.role != m.CONSUMER for d in conv.dialogs for p in d.participants):
            raise Forbidden(f"agent {actor.id} is not a participant of conversation {conv.conv_id}")

    def _resolve_skill(self, acc: Account, skill: str | int | None) -> str:
        if skill is None or str(skill) in ("", SKILL_ANY):
            return SKILL_ANY
        key = str(skill)
        if key in acc.skills:
            return key
        for s in acc.skills.values():
            if s.name == key:
                return s.skill_id
        raise BadRequest(f"unknown skill {key}")

    def request_conversation(
        self,
        actor: Actor,
        body: pm.ConsumerRequestConversationBody,
        *,
        features: Iterable[str] = (),
    ) -> Conversation:
        """``cm.ConsumerRequestConversation``: one open conversation per consumer per brand."""
        if not actor.is_consumer:
            raise Forbidden("only consumers request conversations this way")
        acc = self.account(actor.account_id)
        if body.brandId is not None and body.brandId != acc.account_id:
            raise BadRequest(f"brandId {body.brandId} does not match account {acc.account_id}")
        self.consumer(acc.account_id, actor.id)
        existing = acc.open_conversation.get(actor.id)
        if existing is not None:
            raise BadRequest(f"consumer already has an open conversation {existing}")
        skill_id = self._resolve_skill(acc, body.skillId)
        campaign = msgspec.to_builtins(body.campaignInfo) if body.campaignInfo else None
        conv = self._new_conversation(
            acc,
            consumer_id=actor.id,
            skill_id=skill_id,
            channel=body.channelType,
            ttr_def=body.ttrDefName,
            context=body.conversationContext,
            campaign=campaign,
            features=list(features),
        )
        self._changed(conv)
        self.router.route(acc, conv, is_transfer=False)
        return conv

    def agent_request_conversation(self, actor: Actor, body: pm.AgentRequestConversationBody) -> Conversation:
        """Proactive conversation; the requesting agent becomes its ASSIGNED_AGENT."""
        user = self._agent(actor)
        acc = self.account(actor.account_id)
        if body.consumerId not in acc.consumers:
            raise NotFound(f"consumer {body.consumerId} not found")
        if body.consumerId in acc.open_conversation:
            raise BadRequest("consumer already has an open conversation")
        conv = self._new_conversation(
            acc,
            consumer_id=body.consumerId,
            skill_id=self._resolve_skill(acc, body.skillId),
            channel=body.channelType,
            ttr_def=body.ttrDefName,
            context=body.conversationContext or {"type": "ProactiveContext"},
            campaign=None,
            features=[],
        )
        conv.main.participants.append(Participant(id=user.user_id, role=m.ASSIGNED_AGENT))
        self._changed(conv)
        return conv

    def _new_conversation(
        self,
        acc: Account,
        *,
        consumer_id: str,
        skill_id: str,
        channel: str,
        ttr_def: str | None,
        context: dict[str, Any] | None,
        campaign: dict[str, Any] | None,
        features: list[str],
    ) -> Conversation:
        now = self.now_ms()
        conv_id = str(uuid.uuid4())
        ttr_type = ttr_def if ttr_def in TTR_DEFAULTS else "NORMAL"
        first = not any(c.consumer_id == consumer_id for c in acc.conversations.values())
        main = Dialog(
            dialog_id=conv_id,
            dialog_type=m.MAIN,
            channel_type=channel or "MESSAGING",
            state=m.OPEN,
            creation_ts=now,
            participants=[Participant(id=consumer_id, role=m.CONSUMER)],
            last_update_ts=now,
        )
        conv = Conversation(
            conv_id=conv_id,
            account_id=acc.account_id,
            consumer_id=consumer_id,
            skill_id=skill_id,
            start_ts=now,
            dialogs=[main],
            channel_type=channel or "MESSAGING",
            ttr_type=ttr_type,
            ttr_value=TTR_DEFAULTS[ttr_type],
            context=context,
            campaign=campaign,
            first_conversation=first,
            features=features,
            last_update_ts=now,
        )
        acc.conversations[conv_id] = conv
        acc.dialog_index[conv_id] = conv_id
        acc.events[conv_id] = []
        acc.open_conversation[consumer_id] = conv_id
        return conv

    # ------------------------------------------------------------------ publishing

    def publish(
        self,
        actor: Actor,
        body: pm.PublishEventBody,
        metadata: list[Any] | None = None,
    ) -> int:
        """``ms.PublishEvent``; returns the new event's sequence (0 for chat state)."""
        acc = self.account(actor.account_id)
        conv_id = acc.dialog_index.get(body.dialogId)
        if conv_id is None:
            raise NotFound(f"dialog {body.dialogId} not found")
        conv = acc.conversations[conv_id]
        if body.conversationId and body.conversationId != conv_id:
            raise BadRequest(f"dialog {body.dialogId} is not in conversation {body.conversationId}")
        dialog = conv.dialog(body.dialogId)
        assert dialog is not None
        role, originator = self._publisher_role(actor, conv, dialog)
        audience = body.messageAudience or "ALL"
        if audience not in pm.MESSAGE_AUDIENCES:
            raise BadRequest(f"unknown messageAudience {audience}")
        if audience != "ALL" and role == m.CONSUMER:
            raise BadRequest("consumers cannot publish private messages")
        event = self._validated_event(body.event, dialog)
        if dialog.state != m.OPEN:
            raise BadRequest(f"dialog {dialog.dialog_id} is closed")
        now = self.now_ms()
        is_chat_state = isinstance(body.event, pm.ChatStateEvent)
        record = EventRecord(
            sequence=None if is_chat_state else dialog.next_seq,
            dialog_id=dialog.dialog_id,
            conversation_id=conv.conv_id,
            originator_id=originator,
            originator_role=role,
            server_ts=None if is_chat_state else now,
            event=event,
            audience=audience,
            metadata=metadata if metadata else None,
            client_properties=actor.client_properties,
        )
        if is_chat_state:
            self._emit("messaging_event", conv, record)
            return 0
        dialog.next_seq += 1
        acc.events.setdefault(dialog.dialog_id, []).append(record)
        content = isinstance(body.event, pm.ContentEvent | pm.RichContentEvent)
        if content and audience == "ALL":
            if role == m.CONSUMER:
                if conv.awaiting_reply_since is None:
                    conv.awaiting_reply_since = now
            else:
                conv.awaiting_reply_since = None
        self._emit("messaging_event", conv, record)
        if content:
            conv.last_content_event = record
            self._changed(conv)
        return record.sequence or 0

    def _publisher_role(self, actor: Actor, conv: Conversation, dialog: Dialog) -> tuple[str, str]:
        """(role, originator id as stored) of a publisher, who must be a writing participant.

        App callers name the originator in any id form (PID, old id, user id); the stored
        originator is always the numeric user id, so every face renders it the same way.
        """
        if actor.is_consumer:
            if conv.consumer_id != actor.id:
                raise Forbidden("not your conversation")
            return m.CONSUMER, actor.id
        wanted = actor.id
        if actor.kind == "app":
            user = self.account(actor.account_id).resolve_user(actor.id)
            wanted = user.user_id if user else actor.id
            if actor.role == m.CONSUMER:
                if conv.consumer_id != actor.id:
                    raise Forbidden("originator is not the conversation's consumer")
                return m.CONSUMER, actor.id
        for p in dialog.participants:
            if p.id == wanted and p.state == m.ACTIVE and p.role in m.WRITER_ROLES and p.role != m.CONSUMER:
                if actor.kind == "app" and actor.role and actor.role != p.role:
                    continue
                return p.role, wanted
        raise Forbidden(f"{wanted} is not a participant who may publish in dialog {dialog.dialog_id}")

    def _validated_event(self, event: pm.MessagingEvent, dialog: Dialog) -> dict[str, Any]:
        if isinstance(event, pm.ContentEvent):
            if event.contentType == "text/plain" and not isinstance(event.message, str):
                raise BadRequest("a text/plain ContentEvent needs a string message")
            if event.contentType == "hosted/file":
                msg = event.message
                if not isinstance(msg, dict) or not all(k in msg for k in ("relativePath", "fileType")):
                    raise BadRequest("a hosted/file ContentEvent needs message.relativePath and fileType")
        elif isinstance(event, pm.RichContentEvent):
            if "type" not in event.content:
                raise BadRequest("RichContentEvent.content needs a type")
        elif isinstance(event, pm.ChatStateEvent):
            if event.chatState not in pm.CHAT_STATES:
                raise BadRequest(f"unknown chatState {event.chatState}")
        elif isinstance(event, pm.AcceptStatusEvent):
            if not event.sequenceList:
                raise BadRequest("AcceptStatusEvent.sequenceList is empty")
            if any(s < 0 or s >= dialog.next_seq for s in event.sequenceList):
                raise BadRequest("AcceptStatusEvent.sequenceList refers to unknown sequences")
        out = msgspec.to_builtins(event)
        assert isinstance(out, dict)
        return out

    # ------------------------------------------------------------------ reading events

    def events(
        self,
        actor: Actor,
        dialog_id: str,
        *,
        newer_than: int | None = None,
        from_seq: int | None = None,
        older_than: int | None = None,
        limit: int | None = None,
        conversation_id: str | None = None,
    ) -> tuple[Conversation, list[EventRecord]]:
        """Stored events of a dialog, in sequence order, filtered for the reader."""
        conv = self.conversation_of_dialog(actor.account_id, dialog_id)
        if conversation_id and conversation_id != conv.conv_id:
            raise BadRequest(f"dialog {dialog_id} is not in conversation {conversation_id}")
        self._authorize_read(actor, conv)
        records = self.account(actor.account_id).events.get(dialog_id, [])
        start = 0
        if from_seq is not None:
            start = max(from_seq, 0)
        if newer_than is not None and newer_than > 0:
            # QueryMessages: newerThanSequence 0 means "from the start" (protocol 4.2.9).
            start = max(start, newer_than + 1)
        stop = len(records) if older_than is None else max(0, min(older_than, len(records)))
        selected = records[start:stop]
        if actor.is_consumer:
            selected = [r for r in selected if r.audience == "ALL"]
        if limit is not None and limit >= 0:
            selected = selected[:limit] if older_than is None else selected[-limit:] if limit else []
        return conv, selected

    def check_dialog_read(self, actor: Actor, dialog_id: str, conversation_id: str | None) -> Conversation:
        conv = self.conversation_of_dialog(actor.account_id, dialog_id)
        if conversation_id and conversation_id != conv.conv_id:
            raise BadRequest(f"dialog {dialog_id} is not in conversation {conversation_id}")
        self._authorize_read(actor, conv)
        return conv

    # ------------------------------------------------------------------ conversation fields

    def update_fields(
        self,
        actor: Actor,
        conversation_id: str,
        fields: list[pm.ConversationField],
    ) -> str:
        """``cm.UpdateConversationField``: apply every field atomically; returns the OK string."""
        acc = self.account(actor.account_id)
        conv = self.conversation(acc.account_id, conversation_id)
        if not fields:
            raise BadRequest("conversationField is empty")
        if not self._is_self_join(actor, fields):
            self._authorize_read(actor, conv)
        before = copy.deepcopy(conv)
        plan = _FieldPlan(actor_authorized=self._is_participant_or_manager(conv, actor))
        try:
            for f in fields:
                self._apply_field(actor, acc, conv, f, plan)
        except Exception:
            # Restore in place so every holder of the object sees the old state.
            for name in conv.__struct_fields__:
                setattr(conv, name, getattr(before, name))
            raise
        self._commit_plan(acc, conv, plan)
        return plan.message or "OK"

    @staticmethod
    def _is_self_join(actor: Actor, fields: list[pm.ConversationField]) -> bool:
        return (
            actor.kind == "agent"
            and len(fields) == 1
            and isinstance(fields[0], pm.ParticipantsChangeField)
            and fields[0].type == "ADD"
        )

    def _apply_field(
        self, actor: Actor, acc: Account, conv: Conversation, f: pm.ConversationField, plan: _FieldPlan
    ) -> None:
        consumer = actor.is_consumer
        if isinstance(f, pm.ConversationStateField):
            if f.conversationState != m.CLOSE:
                raise BadRequest(f"conversationState {f.conversationState} cannot be set")
            if conv.stage == m.CLOSE or conv.main.state == m.CLOSE:
                raise BadRequest(f"conversation {conv.conv_id} is already closed")
            self._close_main(acc, conv, actor, "Closed by " + ("consumer" if consumer else "agent"), plan)
            plan.message = "OK Conversation resolved successfully"
        elif isinstance(f, pm.StageField):
            if f.conversationState != m.CLOSE:
                raise BadRequest(f"stage {f.conversationState} cannot be set")
            if conv.stage == m.CLOSE:
                raise BadRequest(f"conversation {conv.conv_id} is already closed")
            self._close_all(conv, actor, plan)
            plan.message = "OK Conversation resolved successfully"
        elif isinstance(f, pm.DialogChangeField):
            self._dialog_change(acc, conv, actor, f, plan)
        elif isinstance(f, pm.CSATRateField):
            if not consumer:
                raise Forbidden("only the consumer rates a conversation")
            if not 0 <= f.csatRate <= 5:
                raise BadRequest("csatRate must be between 1 and 5")
            if f.status not in ("FILLED", "PARTIALLY_FILLED", "SKIPPED"):
                raise BadRequest(f"unknown CSAT status {f.status}")
            conv.csat = {
                "csatRate": f.csatRate,
                "csatResolutionConfirmation": bool(f.csatResolutionConfirmation),
                "status": f.status,
            }
            plan.message = "OK CSAT rate set successfully"
        elif isinstance(f, pm.TTRField):
            if f.ttrType not in TTR_DEFAULTS:
                raise BadRequest(f"unknown ttrType {f.ttrType}")
            if f.value < 0:
                raise BadRequest("TTR value must be >= 0")
            conv.ttr_type = f.ttrType
            conv.ttr_value = f.value if (f.ttrType == "CUSTOM" or f.value) else TTR_DEFAULTS[f.ttrType]
            plan.message = "OK TTR updated successfully"
        elif consumer:
            raise Forbidden(f"consumers cannot change {type(f).__name__}")
        elif isinstance(f, pm.ParticipantsChangeField):
            self._participants_change(acc, conv, actor, f, plan)
        elif isinstance(f, pm.SkillField):
            self._require_participant_or_manager(conv, actor, plan)
            conv.skill_id = self._resolve_skill(acc, f.skill)
            plan.reroute = True
            plan.transfer = True
            plan.message = plan.message or "OK Skill updated successfully"
        elif isinstance(f, pm.ManualETTRField):
            conv.manual_ettr = f.time
            plan.message = "OK Manual ETTR updated successfully"
        elif isinstance(f, pm.DelayField):
            conv.delay = {"type": f.type, "tillWhen": f.tillWhen}
            plan.message = "OK Delay updated successfully"
        elif isinstance(f, pm.NoteField):
            conv.note = f.note
            plan.message = "OK Note updated successfully"
        elif isinstance(f, pm.TopicField):
            conv.topic = f.note
            plan.message = "OK Topic updated successfully"
        elif isinstance(f, pm.ConversationHandlerField):
            plan.message = "OK Conversation handler updated successfully"
        plan.changed = True

    def _is_participant_or_manager(self, conv: Conversation, actor: Actor) -> bool:
        if actor.kind == "app":
            return True
        user = self.account(actor.account_id).users.get(actor.id)
        if user is None:
            return False
        return user.is_manager or any(
            p.id == user.user_id and p.state == m.ACTIVE for d in conv.dialogs for p in d.participants
        )

    @staticmethod
    def _require_participant_or_manager(conv: Conversation, actor: Actor, plan: _FieldPlan) -> None:
        # Judged on the state *before* the request: a transfer removes the caller first and
        # then changes the skill, and must not lose its right half-way.
        if not plan.actor_authorized:
            raise Forbidden(f"agent {actor.id} is not a participant of conversation {conv.conv_id}")

    def _participants_change(
        self,
        acc: Account,
        conv: Conversation,
        actor: Actor,
        f: pm.ParticipantsChangeField,
        plan: _FieldPlan,
    ) -> None:
        target = acc.resolve_user(f.userId) if f.userId else acc.users.get(actor.id)
        if target is None:
            raise BadRequest(f"unknown user {f.userId}")
        if f.role not in m.AGENT_ROLES:
            raise BadRequest(f"role {f.role} cannot be changed this way")
        is_self = actor.kind == "agent" and target.user_id == actor.id
        if not is_self or f.type not in ("ADD", "REMOVE"):
            self._require_participant_or_manager(conv, actor, plan)
        if conv.stage == m.CLOSE:
            raise BadRequest(f"conversation {conv.conv_id} is closed")
        dialog = conv.open_dialog()
        if dialog is None:
            raise BadRequest(f"conversation {conv.conv_id} has no open dialog")
        dialog.last_update_ts = self.now_ms()
        current = [p for p in dialog.participants if p.id == target.user_id]
        if f.type == "ADD":
            if f.role == m.ASSIGNED_AGENT and any(
                p.role == m.ASSIGNED_AGENT and p.state == m.ACTIVE for p in dialog.participants
            ):
                raise BadRequest("the conversation already has an assigned agent")
            if any(p.role == f.role and p.state == m.ACTIVE for p in current):
                plan.message = "OK Agent added successfully"
                return
            dialog.participants = [
                p for p in dialog.participants if not (p.id == target.user_id and p.state == m.SUGGESTED)
            ]
            dialog.participants.append(Participant(id=target.user_id, role=f.role))
            if f.role == m.ASSIGNED_AGENT:
                plan.assigned = target.user_id
            plan.message = "OK Agent added successfully"
        elif f.type == "REMOVE":
            matching = [p for p in current if p.role == f.role]
            if not matching and f.role == m.ASSIGNED_AGENT and f.userId is None:
                matching = [p for p in dialog.participants if p.role == m.ASSIGNED_AGENT]
            if not matching and f.role == m.ASSIGNED_AGENT:
                # The transfer idiom REMOVE(ASSIGNED_AGENT, own id) names the caller.
                matching = [p for p in dialog.participants if p.role == m.ASSIGNED_AGENT]
            if not matching:
                raise BadRequest(f"{target.user_id} is not a {f.role} of conversation {conv.conv_id}")
            dialog.participants = [p for p in dialog.participants if p not in matching]
            if f.role == m.ASSIGNED_AGENT:
                plan.reroute = True
            plan.message = "OK Agent removed successfully"
        elif f.type == "SUGGEST":
            if f.role != m.ASSIGNED_AGENT:
                raise BadRequest("only ASSIGNED_AGENT can be suggested")
            dialog.participants = [
                p for p in dialog.participants if not (p.id == target.user_id and p.state == m.SUGGESTED)
            ]
            dialog.participants.append(
                Participant(id=target.user_id, role=m.ASSIGNED_AGENT, state=m.SUGGESTED)
            )
            plan.suggested = target.user_id
            plan.reroute = True
            plan.transfer = True
            plan.message = "OK Agent suggested successfully"
        elif f.type == "UPDATE":
            if not current:
                raise BadRequest(f"{target.user_id} is not a participant of conversation {conv.conv_id}")
            if f.role == m.ASSIGNED_AGENT and any(
                p.role == m.ASSIGNED_AGENT and p.id != target.user_id for p in dialog.participants
            ):
                raise BadRequest("the conversation already has an assigned agent")
            current[0].role = f.role
            current[0].state = m.ACTIVE
            if f.role == m.ASSIGNED_AGENT:
                plan.assigned = target.user_id
            plan.message = "OK Participant updated successfully"
        else:
            raise BadRequest(f"unknown ParticipantsChange type {f.type}")

    def _dialog_change(
        self, acc: Account, conv: Conversation, actor: Actor, f: pm.DialogChangeField, plan: _FieldPlan
    ) -> None:
        spec = f.dialog
        if f.type == "CREATE":
            if actor.is_consumer:
                raise Forbidden("consumers cannot create dialogs")
            if conv.stage == m.CLOSE:
                raise BadRequest(f"conversation {conv.conv_id} is closed")
            now = self.now_ms()
            dialog = Dialog(
                dialog_id=spec.dialogId or f.dialogId or new_dialog_id(),
                dialog_type=spec.dialogType or "OTHER",
                channel_type=spec.channelType or "MESSAGING",
                state=m.OPEN,
                creation_ts=now,
                participants=[Participant(id=conv.consumer_id, role=m.CONSUMER)],
                meta_data=spec.metaData,
                last_update_ts=now,
            )
            if dialog.dialog_id in acc.dialog_index:
                raise BadRequest(f"dialog {dialog.dialog_id} already exists")
            conv.dialogs.append(dialog)
            plan.new_dialogs.append(dialog.dialog_id)
            plan.message = "OK Dialog created successfully"
            return
        if f.type != "UPDATE":
            raise BadRequest(f"unknown DialogChange type {f.type}")
        dialog_id = spec.dialogId or f.dialogId
        found = conv.dialog(dialog_id) if dialog_id else None
        if found is None:
            raise NotFound(f"dialog {dialog_id} not found in conversation {conv.conv_id}")
        dialog = found
        if spec.state != m.CLOSE:
            raise BadRequest("a dialog can only be updated to state CLOSE")
        if dialog.state == m.CLOSE:
            raise BadRequest(f"dialog {dialog.dialog_id} is already closed")
        cause = spec.closedCause or ("Closed by consumer" if actor.is_consumer else "Closed by agent")
        if dialog.dialog_type == m.MAIN:
            self._close_main(acc, conv, actor, cause, plan, closed_by=spec.closedBy)
        else:
            self._close_dialog(dialog, actor, cause, spec.closedBy)
            if conv.open_dialog() is None:
                self._finish(conv, actor, plan)
        plan.message = "OK Dialog updated successfully"

    def _closer(self, actor: Actor, closed_by: str | None = None) -> str:
        if closed_by in ("AGENT", "CONSUMER", "SYSTEM", "TIMEOUT"):
            return closed_by
        if actor.is_consumer or actor.role == m.CONSUMER:
            return "CONSUMER"
        return "AGENT" if actor.kind in ("agent", "app") else "SYSTEM"

    def _close_dialog(self, dialog: Dialog, actor: Actor, cause: str, closed_by: str | None = None) -> None:
        now = self.now_ms()
        dialog.state = m.CLOSE
        dialog.end_ts = now
        dialog.closed_by = self._closer(actor, closed_by)
        dialog.closed_cause = cause
        dialog.last_update_ts = now

    def _close_main(
        self,
        acc: Account,
        conv: Conversation,
        actor: Actor,
        cause: str,
        plan: _FieldPlan,
        closed_by: str | None = None,
    ) -> None:
        main = conv.main
        if main.state == m.CLOSE:
            raise BadRequest(f"conversation {conv.conv_id} is already closed")
        self._close_dialog(main, actor, cause, closed_by)
        conv.close_reason = main.closed_by
        conv.awaiting_reply_since = None
        plan.cancel_routing = True
        skill = acc.skills.get(conv.skill_id)
        if skill is not None and skill.survey and "MULTI_DIALOG" in conv.features:
            now = self.now_ms()
            participants = [Participant(id=conv.consumer_id, role=m.CONSUMER)]
            if skill.survey_bot_user_id and skill.survey_bot_user_id in acc.users:
                participants.append(Participant(id=skill.survey_bot_user_id, role=m.AGENT))
            for p in main.participants:
                if p.role == m.ASSIGNED_AGENT and p.state == m.ACTIVE and p.id != skill.survey_bot_user_id:
                    participants.append(Participant(id=p.id, role=m.READER))
            survey = Dialog(
                dialog_id=new_dialog_id(),
                dialog_type=m.POST_SURVEY,
                channel_type="MESSAGING",
                state=m.OPEN,
                creation_ts=now,
                participants=participants,
                meta_data={"appInstallId": "post-conversation-survey", "skillId": conv.skill_id},
                last_update_ts=now,
            )
            conv.dialogs.append(survey)
            plan.new_dialogs.append(survey.dialog_id)
        else:
            for dialog in conv.dialogs[1:]:
                if dialog.state == m.OPEN:
                    self._close_dialog(dialog, actor, cause, closed_by)
            self._finish(conv, actor, plan)

    def _close_all(self, conv: Conversation, actor: Actor, plan: _FieldPlan) -> None:
        cause = "Closed by " + ("consumer" if actor.is_consumer else "agent")
        for dialog in conv.dialogs:
            if dialog.state == m.OPEN:
                self._close_dialog(dialog, actor, cause)
        conv.close_reason = conv.close_reason or self._closer(actor)
        conv.awaiting_reply_since = None
        plan.cancel_routing = True
        self._finish(conv, actor, plan)

    def _finish(self, conv: Conversation, actor: Actor, plan: _FieldPlan) -> None:
        conv.stage = m.CLOSE
        conv.end_ts = self.now_ms()
        conv.close_reason = conv.close_reason or self._closer(actor)
        plan.finished = True

    def _commit_plan(self, acc: Account, conv: Conversation, plan: _FieldPlan) -> None:
        for dialog_id in plan.new_dialogs:
            acc.dialog_index[dialog_id] = conv.conv_id
            acc.events.setdefault(dialog_id, [])
        if plan.finished and acc.open_conversation.get(conv.consumer_id) == conv.conv_id:
            del acc.open_conversation[conv.consumer_id]
        if plan.cancel_routing or plan.finished:
            self.router.cancel(acc, conv.conv_id)
        elif plan.assigned is not None:
            self.router.assigned_directly(acc, conv.conv_id, plan.assigned)
        if plan.changed or plan.new_dialogs:
            self._changed(conv)
        if (
            plan.reroute
            and conv.main.state == m.OPEN
            and not any(p.role == m.ASSIGNED_AGENT and p.state == m.ACTIVE for p in conv.main.participants)
        ):
            self.router.route(acc, conv, is_transfer=plan.transfer, suggested=plan.suggested)

    # ------------------------------------------------------------------ profiles

    def set_user_profile(self, actor: Actor, body: pm.SetUserProfileBody) -> str:
        if not actor.is_consumer:
            raise Forbidden("only consumers set their profile this way")
        consumer = self.consumer(actor.account_id, actor.id)
        profile = msgspec.to_builtins(body)
        assert isinstance(profile, dict)
        consumer.profile.update(profile)
        self._emit("consumer_changed", actor.account_id, consumer)
        return "OK User Profile set successfully"

    def get_user_profile(self, actor: Actor, target: str | None) -> dict[str, Any]:
        """Raw GetUserProfile body for a consumer or an agent (``None``: the caller)."""
        acc = self.account(actor.account_id)
        if target is None:
            target = actor.id
        user = acc.resolve_user(target)
        if user is not None:
            first, _, last = (user.full_name or user.nickname).partition(" ")
            return {
                "firstName": first,
                "lastName": last,
                "nickName": user.nickname,
                "userId": user.pid,
                "avatarUrl": "",
                "role": "AGENT",
                "backgndImgUri": "",
                "description": "",
            }
        consumer = acc.consumers.get(target)
        if consumer is None:
            raise NotFound(f"user {target} not found")
        if actor.is_consumer and actor.id != consumer.consumer_id:
            raise Forbidden("a consumer can only read its own profile")
        p = consumer.profile
        out: dict[str, Any] = {
            "firstName": p.get("firstName") or "",
            "lastName": p.get("lastName") or "",
            "nickName": p.get("nickName") or "",
            "userId": consumer.consumer_id,
            "avatarUrl": p.get("avatarUrl") or "",
            "role": "CONSUMER",
            "backgndImgUri": p.get("backgndImgUri") or "",
            "description": p.get("description") or "",
        }
        if p.get("privateData"):
            private = dict(p["privateData"])
            if "mail" in private and "email" not in private:
                private["email"] = private["mail"]
            out["privateData"] = private
        if p.get("authenticatedData"):
            out["authenticatedData"] = p["authenticatedData"]
        if consumer.claims:
            out["claims"] = consumer.claims
            out["acr"] = "loa1"
        return out

    # ------------------------------------------------------------------ agent state and rings

    def set_agent_state(self, actor: Actor, body: pm.SetAgentStateBody) -> AgentState:
        acc = self.account(actor.account_id)
        user = self._agent(actor)
        target = acc.resolve_user(body.agentUserId) if body.agentUserId else user
        if target is None:
            raise BadRequest(f"unknown agent {body.agentUserId}")
        if target.user_id != user.user_id and not user.is_manager:
            raise Forbidden("an agent can only set its own state")
        if body.availability not in pm.AGENT_STATES:
            raise BadRequest(f"unknown availability {body.availability}")
        state = AgentState(
            availability=body.availability,
            description=body.description or "",
            channels=body.channels or ["MESSAGING"],
        )
        acc.agent_states[target.user_id] = state
        self._emit("agent_state_changed", acc.account_id, target.user_id, state)
        self.router.agent_available(acc)
        return state

    def agent_state(self, account_id: str, user_id: str) -> AgentState:
        return self.account(account_id).agent_states.get(user_id) or AgentState()

    def update_ring_state(self, actor: Actor, body: pm.UpdateRingStateBody) -> None:
        acc = self.account(actor.account_id)
        self._agent(actor)
        self.router.update_ring(acc, actor.id, body.ringId, body.ringState)

    def routing_subscription(self, account_id: str, user_id: str, delta: int) -> None:
        """A socket of ``user_id`` added (+1) or dropped (-1) a routing-task subscription."""
        acc = self.account(account_id)
        count = acc.routing_listeners.get(user_id, 0) + delta
        if count > 0:
            acc.routing_listeners[user_id] = count
        else:
            acc.routing_listeners.pop(user_id, None)
        if delta > 0:
            self.router.agent_available(acc)

    # ------------------------------------------------------------------ derived values

    def effective_ttr(self, conv: Conversation) -> int:
        """Epoch ms by which an agent should answer, or -1 (closed / nothing pending)."""
        if conv.stage == m.CLOSE or conv.main.state == m.CLOSE:
            return -1
        if conv.manual_ettr:
            return conv.manual_ettr
        if conv.awaiting_reply_since is None:
            return -1
        start = conv.awaiting_reply_since
        if conv.delay and isinstance(conv.delay.get("tillWhen"), int):
            start = max(start, conv.delay["tillWhen"])
        return start + conv.ttr_value * 1000


@dataclass(slots=True)
class _FieldPlan:
    """What an UpdateConversationField request did, applied once all its fields succeeded."""

    message: str | None = None
    #: The caller was a participant (or a manager) when the request arrived.
    actor_authorized: bool = False
    changed: bool = False
    reroute: bool = False
    transfer: bool = False
    suggested: str | None = None
    assigned: str | None = None
    cancel_routing: bool = False
    finished: bool = False
    new_dialogs: list[str] = field(default_factory=list)
