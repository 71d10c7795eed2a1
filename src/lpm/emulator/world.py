"""The emulator's world: one consistent model of accounts, conversations, dialogs and routing.

Plain Python with no I/O: every face (both WebSocket dialects, UMS REST, Send API, webhooks)
calls the operations here with an :class:`~lpm.emulator.entities.Actor` and turns
:class:`~lpm.emulator.world_errors.WorldError` into its own wire error.  Changes are announced to
the store and to :class:`~lpm.emulator.sinks.WorldSink` objects (socket fan-out, webhooks)
*after* an operation has succeeded, so a refused request never leaks a half-applied change.
Time comes from an injected clock and timers from an injected scheduler so unit tests can drive
the model without sockets or sleeps.

The entities are in :mod:`~lpm.emulator.entities`, rings in :mod:`~lpm.emulator.ring_routing`
and UpdateConversationField (fields, closing) in :mod:`~lpm.emulator.conversation_fields`.
What is left here (about 600 lines) is one piece on purpose: identities, agent sessions,
conversation creation, publishing, reads, profiles and agent state all keep the same account
indexes (``open_conversation``, ``dialog_index``, ``events``) and the same announce-after-commit
order; splitting them would spread those invariants over several files.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from lpm.emulator import entities as m
from lpm.emulator.conversation_fields import ConversationFields
from lpm.emulator.entities import (
    TTR_DEFAULTS,
    Account,
    Actor,
    AgentSession,
    AgentState,
    Consumer,
    Conversation,
    Dialog,
    EventRecord,
    Participant,
    RoutingTask,
    User,
)
from lpm.emulator.ring_routing import ACCEPTED, Router
from lpm.emulator.scheduling import Scheduler
from lpm.emulator.sinks import NullStore, WorldSink
from lpm.emulator.token_issuer import record_issued
from lpm.emulator.world_errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized
from lpm.protocol import requests as pm

SKILL_ANY = "-1"


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
        self.accounts: dict[str, Account] = {}
        self.sinks: list[WorldSink] = []
        self.store: NullStore = NullStore()
        self.sessions: dict[str, AgentSession] = {}
        self.router = Router(
            clock=clock, scheduler=scheduler, ring_expiry=ring_expiry, on_change=self._routing_changed
        )
        self._fields = ConversationFields(self)
        #: Accept what the platform refuses (``Settings.lenient``; docs/emulator.md "Strictness"):
        #: skill names for ids, PIDs for agent user ids, hosted files never uploaded...
        self.lenient = False
        #: Relative paths of the files uploaded to the storage face (hosted-file messages must
        #: name one of them unless lenient).
        self.uploaded: set[str] = set()

    # ------------------------------------------------------------------ setup and lookup

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def add_account(self, account_id: str) -> Account:
        """The account of this id, created empty when it is new (worlds are set up once)."""
        return self.accounts.setdefault(account_id, Account(account_id))

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

    def changed(self, conv: Conversation) -> None:
        """Stamp ``conv``'s update time and announce it (after a successful operation only)."""
        conv.last_update_ts = max(self.now_ms(), conv.last_update_ts + 1)
        self._emit("conversation_changed", conv)

    def _routing_changed(self, account_id: str, task: RoutingTask) -> None:
        self._emit("routing_task_changed", account_id, task)

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
        self.changed(conv)
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

    def authorize_read(self, actor: Actor, conv: Conversation) -> None:
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

    def resolve_skill(self, acc: Account, skill: str | int | None) -> str:
        """A skill id of the account (``-1``: any).  The platform takes ids only; a skill's name
        is accepted in its place only when lenient."""
        if skill is None or str(skill) in ("", SKILL_ANY):
            return SKILL_ANY
        key = str(skill)
        if key in acc.skills:
            return key
        for s in acc.skills.values():
            if s.name == key:
                if self.lenient:
                    return s.skill_id
                raise BadRequest(f"unknown skill {key} (skills are named by id: {s.name} is {s.skill_id})")
        raise BadRequest(f"unknown skill {key}")

    def resolve_agent_user_id(self, acc: Account, any_id: str, what: str) -> User:
        """The agent an ``agentUserId`` / ``agentId`` names: its old id ``{account}.{userId}`` (what
        the platform and node-agent-sdk use) or its numeric user id; a PID or a login name only
        when lenient."""
        user = acc.resolve_user(any_id)
        if user is None:
            raise BadRequest(f"unknown agent {any_id}")
        if not self.lenient and any_id not in (user.user_id, acc.old_id(user.user_id)):
            raise BadRequest(f"{what} must be the agent's user id {acc.old_id(user.user_id)}, not {any_id}")
        return user

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
        skill_id = self.resolve_skill(acc, body.skillId)
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
        conv.client_properties = m.server_client_properties(actor.client_properties, body.conversationContext)
        self.changed(conv)
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
            skill_id=self.resolve_skill(acc, body.skillId),
            channel=body.channelType,
            ttr_def=body.ttrDefName,
            context=body.conversationContext or {"type": "ProactiveContext"},
            campaign=None,
            features=[],
        )
        conv.main.participants.append(Participant(id=user.user_id, role=m.ASSIGNED_AGENT))
        self.changed(conv)
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
        stored = acc.events.setdefault(dialog.dialog_id, [])
        stored.append(record)
        m.count_unread(conv, dialog, record, stored)
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
            self.changed(conv)
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
                if not self.lenient and msg["relativePath"] not in self.uploaded:
                    raise BadRequest(f"relativePath {str(msg['relativePath'])[:60]} was never uploaded")
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
        self.authorize_read(actor, conv)
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
        self.authorize_read(actor, conv)
        return conv

    # ------------------------------------------------------------------ conversation fields

    def update_fields(self, actor: Actor, conversation_id: str, fields: list[pm.ConversationField]) -> str:
        """``cm.UpdateConversationField``: apply every field atomically; returns the OK string
        (see :mod:`lpm.emulator.conversation_fields`)."""
        return self._fields.update(actor, conversation_id, fields)

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
            if not actor.is_consumer and user.user_id == actor.id:
                # An agent's own profile is its old id (Messaging Agent API getting started).
                return {"userId": acc.old_id(user.user_id)}
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
        target = user
        if body.agentUserId:
            target = self.resolve_agent_user_id(acc, body.agentUserId, "agentUserId")
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
        task, ring = self.router.update_ring(acc, actor.id, body.ringId, body.ringState)
        if ring.state == ACCEPTED:
            self._assign(acc.conversations[task.conv_id], ring.user_id)

    def _assign(self, conv: Conversation, user_id: str) -> None:
        """An accepted ring: ``user_id`` becomes the ASSIGNED_AGENT of MAIN (replacing the one
        there, and its own MANAGER/READER seat)."""
        main = conv.main
        main.participants = [
            p
            for p in main.participants
            if p.role != m.ASSIGNED_AGENT and not (p.id == user_id and p.role in (m.MANAGER, m.READER))
        ]
        main.participants.append(Participant(id=user_id, role=m.ASSIGNED_AGENT))
        main.last_update_ts = self.now_ms()
        self.changed(conv)

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
