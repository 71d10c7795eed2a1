"""Fan-out of world changes to live WebSocket sessions, with each session's subscriptions.

The hub is a :class:`~lpm.emulator.sinks.WorldSink`.  It indexes sessions by consumer and by
agent so a change reaches only the sockets that may see it:

* ExConversation subscriptions get an UPSERT (complete state) when a conversation matches their
  filter and a DELETE when a conversation they were shown stops matching.  Consumers only ever
  match their own conversations.
* Messaging events go to consumer sockets subscribed to the dialog (private messages never) and
  to every brand socket of an agent taking part in the conversation, without a subscription.
* Routing-task changes go to the rung agents' routing subscriptions; agent-state changes to
  agent-state subscriptions.

The hub needs little of a socket session: :class:`SocketSession` says what (its identity, its
subscriptions, queueing a notification, closing).  :class:`~lpm.emulator.ws_session.Session`
provides it; tests may pass anything else that does.
"""

from __future__ import annotations

import contextlib
import gc
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from lpm.emulator import entities as m
from lpm.emulator import render
from lpm.emulator.entities import Actor, AgentState, Consumer, Conversation, EventRecord, RoutingTask
from lpm.emulator.ring_routing import WAITING
from lpm.emulator.world import World
from lpm.protocol import requests as pm
from lpm.protocol.types import Notif


@dataclass(slots=True)
class ConversationSubscription:
    """One SubscribeExConversations of one session."""

    subscription_id: str
    conv_state: frozenset[str] | None
    stage: frozenset[str] | None
    agent_user_ids: frozenset[str] | None
    consumer_id: str | None
    min_ts: int | None
    max_ts: int | None
    known: set[str] = field(default_factory=set)

    def matches(self, conv: Conversation) -> bool:
        if self.conv_state is not None and conv.state not in self.conv_state:
            return False
        if self.stage is not None and conv.stage not in self.stage:
            return False
        if self.consumer_id is not None and conv.consumer_id != self.consumer_id:
            return False
        if self.min_ts is not None and conv.last_update_ts < self.min_ts:
            return False
        if self.max_ts is not None and conv.last_update_ts > self.max_ts:
            return False
        if self.agent_user_ids is not None:
            return any(
                p.id in self.agent_user_ids and p.role != m.CONSUMER
                for d in conv.dialogs
                for p in d.participants
            )
        return True


@dataclass(slots=True)
class RoutingSubscription:
    subscription_id: str
    skill_id: str | None = None
    conversation_id: str | None = None

    def matches(self, task: RoutingTask) -> bool:
        if self.skill_id is not None and task.skill_id != self.skill_id:
            return False
        return self.conversation_id is None or task.conv_id == self.conversation_id


@dataclass(slots=True)
class AgentStateSubscription:
    subscription_id: str
    #: None: every agent of the account (managers); otherwise one user id.
    user_id: str | None
    availability: str | None = None


class SocketSession(Protocol):
    """What the hub needs of one socket session."""

    #: Who is on the socket (None: not authenticated yet).
    @property
    def actor(self) -> Actor | None: ...

    #: Brand dialect (v2.1 raw shapes) rather than consumer (v3).
    @property
    def brand(self) -> bool: ...

    #: The session's subscriptions by id; the hub adds to and reads them.
    @property
    def conv_subs(self) -> dict[str, ConversationSubscription]: ...

    @property
    def dialog_subs(self) -> set[str]: ...

    @property
    def routing_subs(self) -> dict[str, RoutingSubscription]: ...

    @property
    def agent_state_subs(self) -> dict[str, AgentStateSubscription]: ...

    #: Epoch seconds when the identity expires (None: never), read when it is needed.
    @property
    def expires_at(self) -> Callable[[], float | None]: ...

    def notify(self, notif: Notif, body: Any) -> None:
        """Queue a notification (never blocks)."""

    def close_with(self, code: int, reason: str = "") -> None:
        """Close the socket with ``code`` once what is queued has been written."""

    def auth_close_code(self) -> int:
        """The close code of an expired identity (4401 or 4407)."""


class FrameTap(Protocol):
    """What watches the sockets for the web UI (:mod:`lpm.emulator.ui.capture`): every frame in
    and out, and sessions coming and going.  The hub has none unless the UI runs, and a session
    checks for one once per frame, so without the UI nothing else happens."""

    #: ``(session id, request id)`` of the request being handled right now (None: none).
    cause: tuple[int, str | None] | None

    def inbound(self, session: Any, data: str) -> None: ...

    def outbound(self, session: Any, data: bytes) -> None: ...

    def attached(self, session: Any) -> None: ...

    def detached(self, session: Any) -> None: ...


S = TypeVar("S", bound=SocketSession)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic garbage collector paused meanwhile (then as it was).  A snapshot renders and
    encodes tens of thousands of short-lived dicts and lists, none in a reference cycle (freed as
    soon as the frame is encoded), and the collections they set off traverse the whole world
    each time: at 10,000 conversations they took two to three times as long as the rendering."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class Hub(Generic[S]):
    """Routes committed world changes to sessions."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.sessions: set[S] = set()
        self._by_consumer: dict[tuple[str, str], set[S]] = {}
        self._by_agent: dict[tuple[str, str], set[S]] = {}
        self._by_account: dict[str, set[S]] = {}
        # Brand sessions only: a conversation change concerns every brand session of the account
        # but only its own consumer's sessions, and walking every consumer socket of the account
        # on each change made a busy account quadratic.
        self._brand_by_account: dict[str, set[S]] = {}
        #: The web UI's frame capture (None unless the UI runs; see :class:`FrameTap`).
        self.tap: FrameTap | None = None

    # ---------------------------------------------------------------- registration

    def attach(self, session: S) -> None:
        actor = session.actor
        assert actor is not None
        self.sessions.add(session)
        index = self._by_consumer if actor.is_consumer else self._by_agent
        index.setdefault((actor.account_id, actor.id), set()).add(session)
        self._by_account.setdefault(actor.account_id, set()).add(session)
        if not actor.is_consumer:
            self._brand_by_account.setdefault(actor.account_id, set()).add(session)
        if self.tap is not None:
            self.tap.attached(session)

    def detach(self, session: S) -> None:
        actor = session.actor
        self.sessions.discard(session)
        if self.tap is not None:
            self.tap.detached(session)
        if actor is None:
            return
        index = self._by_consumer if actor.is_consumer else self._by_agent
        key = (actor.account_id, actor.id)
        peers = index.get(key)
        if peers is not None:
            peers.discard(session)
            if not peers:
                del index[key]
        account_peers = self._by_account.get(actor.account_id)
        if account_peers is not None:
            account_peers.discard(session)
        brand_peers = self._brand_by_account.get(actor.account_id)
        if brand_peers is not None:
            brand_peers.discard(session)
        if session.routing_subs:
            self.world.routing_subscription(actor.account_id, actor.id, -len(session.routing_subs))
            session.routing_subs.clear()

    def sessions_of_account(self, account_id: str) -> Iterable[S]:
        return list(self._by_account.get(account_id, ()))

    # ---------------------------------------------------------------- subscriptions

    def subscribe_conversations(
        self, session: S, body: pm.SubscribeExConversationsBody
    ) -> ConversationSubscription:
        actor = session.actor
        assert actor is not None
        acc = self.world.account(actor.account_id)
        agent_ids: frozenset[str] | None = None
        if body.agentIds is not None:
            resolved = set()
            for any_id in body.agentIds:
                user = acc.resolve_user(any_id)
                resolved.add(user.user_id if user else any_id)
            agent_ids = frozenset(resolved)
        consumer_id = body.consumerId
        if actor.is_consumer:
            consumer_id = actor.id  # consumers only ever see their own conversations
            agent_ids = None
        sub = ConversationSubscription(
            subscription_id=body.subscriptionId or str(uuid.uuid4()),
            conv_state=frozenset(body.convState) if body.convState else None,
            stage=frozenset(body.stage) if body.stage else None,
            agent_user_ids=agent_ids,
            consumer_id=consumer_id,
            min_ts=body.minLastUpdatedTime,
            max_ts=body.maxLastUpdatedTime,
        )
        session.conv_subs[sub.subscription_id] = sub
        return sub

    def snapshot(self, session: S, sub: ConversationSubscription, limit: int) -> None:
        """Send the subscription's first notification: the matching conversations, most recent
        ``limit`` of them in ascending update order (``changes`` may be empty)."""
        actor = session.actor
        assert actor is not None
        acc = self.world.account(actor.account_id)
        if sub.consumer_id is not None:
            candidates: Iterable[Conversation] = [
                c for c in acc.conversations.values() if c.consumer_id == sub.consumer_id
            ]
        else:
            candidates = acc.conversations.values()
        matching = sorted((c for c in candidates if sub.matches(c)), key=lambda c: c.last_update_ts)
        matching = matching[-limit:] if limit else []
        brand = session.brand
        with _collector_paused():
            changes = []
            for conv in matching:
                sub.known.add(conv.conv_id)
                result = render.conversation_result(self.world, conv, brand=brand)
                changes.append({"type": "UPSERT", "result": self._readable(session, conv, result)})
            session.notify(
                Notif.EX_CONVERSATION_CHANGE, {"subscriptionId": sub.subscription_id, "changes": changes}
            )

    def _readable(self, session: S, conv: Conversation, result: dict[str, Any]) -> dict[str, Any]:
        """``result`` as ``session`` may see it: an agent who is neither a manager nor a
        participant sees the conversation's metadata but not its last message (non-participants
        may not read a conversation; docs/emulator.md "Roles")."""
        actor = session.actor
        if actor is None or actor.is_consumer or "lastContentEventNotification" not in result:
            return result
        user = self.world.accounts[actor.account_id].users.get(actor.id)
        if user is not None and user.is_manager:
            return result
        if any(p.id == actor.id and p.role != m.CONSUMER for d in conv.dialogs for p in d.participants):
            return result
        return {k: v for k, v in result.items() if k != "lastContentEventNotification"}

    # ---------------------------------------------------------------- WorldSink

    def _conversation_audience(self, conv: Conversation) -> list[S]:
        """The sessions a change of ``conv`` may concern: the account's brand sessions, the
        consumer's, and after a step-up those of the identity it stepped up from (which must
        forget the conversation)."""
        sessions = list(self._brand_by_account.get(conv.account_id, ()))
        sessions.extend(self._by_consumer.get((conv.account_id, conv.consumer_id), ()))
        consumer = self.world.accounts[conv.account_id].consumers.get(conv.consumer_id)
        previous = consumer.stepped_up_from if consumer is not None else None
        if previous is not None:
            sessions.extend(self._by_consumer.get((conv.account_id, previous), ()))
        return sessions

    def conversation_changed(self, conv: Conversation) -> None:
        rendered: dict[bool, dict[str, Any]] = {}
        for session in self._conversation_audience(conv):
            if not session.conv_subs:
                continue
            actor = session.actor
            assert actor is not None
            if actor.is_consumer and actor.id != conv.consumer_id:
                # Forget conversations a consumer lost (step-up moved them to another identity).
                self._drop_from_subscriptions(session, conv)
                continue
            for sub in session.conv_subs.values():
                if sub.matches(conv):
                    sub.known.add(conv.conv_id)
                    change_type = "UPSERT"
                elif conv.conv_id in sub.known:
                    sub.known.discard(conv.conv_id)
                    change_type = "DELETE"
                else:
                    continue
                # A DELETE carries the complete state too: node-agent-sdk's transformer (and
                # lp-messaging-sdk) read conversationDetails on every change.
                brand = session.brand
                result = rendered.get(brand)
                if result is None:
                    result = rendered[brand] = render.conversation_result(self.world, conv, brand=brand)
                change = {"type": change_type, "result": self._readable(session, conv, result)}
                session.notify(
                    Notif.EX_CONVERSATION_CHANGE, {"subscriptionId": sub.subscription_id, "changes": [change]}
                )

    def _drop_from_subscriptions(self, session: S, conv: Conversation) -> None:
        for sub in session.conv_subs.values():
            if conv.conv_id in sub.known:
                sub.known.discard(conv.conv_id)
                session.notify(
                    Notif.EX_CONVERSATION_CHANGE,
                    {
                        "subscriptionId": sub.subscription_id,
                        "changes": [
                            {
                                "type": "DELETE",
                                "result": render.conversation_result(self.world, conv, brand=False),
                            }
                        ],
                    },
                )

    def messaging_event(self, conv: Conversation, record: EventRecord) -> None:
        acc = self.world.accounts[conv.account_id]
        if record.audience == "ALL":
            consumer_body: dict[str, Any] | None = None
            for session in self._by_consumer.get((conv.account_id, conv.consumer_id), ()):
                if record.dialog_id in session.dialog_subs:
                    if consumer_body is None:
                        consumer_body = render.messaging_body(acc, [record])
                    session.notify(Notif.MESSAGING_EVENT, consumer_body)
        brand_body: dict[str, Any] | None = None
        seen: set[str] = set()
        for dialog in conv.dialogs:
            for p in dialog.participants:
                if p.role == m.CONSUMER or p.state != m.ACTIVE or p.id in seen:
                    continue
                seen.add(p.id)
                for session in self._by_agent.get((conv.account_id, p.id), ()):
                    if brand_body is None:
                        brand_body = render.event_change(acc, record, brand=True)
                    session.notify(Notif.MESSAGING_EVENT, brand_body)

    def routing_task_changed(self, account_id: str, task: RoutingTask) -> None:
        acc = self.world.accounts[account_id]
        for user_id in {r.user_id for r in task.rings}:
            for session in self._by_agent.get((account_id, user_id), ()):
                for sub in session.routing_subs.values():
                    if sub.matches(task):
                        result = render.routing_task_result(acc, task, user_id)
                        session.notify(
                            Notif.ROUTING_TASK,
                            {
                                "subscriptionId": sub.subscription_id,
                                "changes": [{"type": "UPSERT", "result": result}],
                            },
                        )

    def send_routing_snapshot(self, session: S, sub: RoutingSubscription) -> None:
        actor = session.actor
        assert actor is not None
        acc = self.world.account(actor.account_id)
        changes = []
        for task in acc.tasks.values():
            if sub.matches(task) and any(r.user_id == actor.id and r.state == WAITING for r in task.rings):
                changes.append({"type": "UPSERT", "result": render.routing_task_result(acc, task, actor.id)})
        session.notify(Notif.ROUTING_TASK, {"subscriptionId": sub.subscription_id, "changes": changes})

    def agent_state_changed(self, account_id: str, user_id: str, state: AgentState) -> None:
        acc = self.world.accounts[account_id]
        for session in self._by_account.get(account_id, ()):
            for sub in session.agent_state_subs.values():
                if sub.user_id is not None and sub.user_id != user_id:
                    continue
                if sub.availability and state.availability != sub.availability:
                    continue
                self._send_agent_state(session, sub, acc, user_id, state)

    def send_agent_state(self, session: S, sub: AgentStateSubscription) -> None:
        actor = session.actor
        assert actor is not None
        acc = self.world.account(actor.account_id)
        users = [sub.user_id] if sub.user_id else list(acc.users)
        for user_id in users:
            self._send_agent_state(
                session, sub, acc, user_id, self.world.agent_state(acc.account_id, user_id)
            )

    def _send_agent_state(
        self, session: S, sub: AgentStateSubscription, acc: Any, user_id: str, state: AgentState
    ) -> None:
        result = render.agent_state_result(acc, user_id, state)
        session.notify(
            Notif.AGENT_STATE,
            {"subscriptionId": sub.subscription_id, "changes": [{"type": "UPSERT", "result": result}]},
        )

    def consumer_changed(self, account_id: str, consumer: Consumer) -> None:
        """Profiles are read on demand; nothing to push."""

    # ---------------------------------------------------------------- enforcement

    def close_expired(self, account_id: str) -> int:
        """Close (4401/4407) every socket of the account whose identity has expired."""
        now = self.world.clock()
        closed = 0
        for session in self.sessions_of_account(account_id):
            expires = session.expires_at()
            if expires is not None and expires <= now:
                session.close_with(session.auth_close_code(), "token expired")
                closed += 1
        return closed
