"""Test harness for the SDK object model: a real emulator world, its real notification bodies, and
a recording ConnectionActions.

* The *world* (``lpm.emulator.world.World``) plays UMS, driven without sockets and with a fake
  clock, exactly as ``test_world.py`` drives it.
* :class:`FakeConnection` is the one test double: a small recording implementation of
  ``ConnectionActions`` (plus the subscription registry and cache a connection provides).  It
  records every call and returns scripted values; :func:`wire_to_world` scripts it to perform
  the SDK's requests on the world, so field lists and events are checked by the world's rules.
* :class:`Link` is a world sink that renders every change into the notification bodies a socket
  would carry (``lpm.emulator.render``) and, on :meth:`Link.flush`, decodes them with
  ``lpm.protocol.notifications`` and hands them to the fake connection's subscriptions and cache —
  what the real connection's reader does.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from lpm.client.events import EventEmitter
from lpm.client.model.cache import ConversationCache
from lpm.emulator import render
from lpm.emulator.entities import Actor, AgentState, Consumer, Conversation, EventRecord, RoutingTask
from lpm.emulator.world import World
from lpm.protocol import requests as pm
from lpm.protocol.notifications import (
    MessagingEventInfo,
    decode_conversation_changes,
    decode_messaging_events,
    decode_routing_tasks,
)
from tests.worldkit import FakeScheduler, FakeTimer, make_world  # noqa: F401 - re-exported

ACC = "12345678"
AGENT = "1001"  # skills sales (11) + support (12) in tests.worldkit.unit_world, manager
BOT = "2001"  # skill sales (11)
SURVEY_BOT = "2002"  # the survey bot of support (12)
AGENT_OLD = f"{ACC}.{AGENT}"
BOT_OLD = f"{ACC}.{BOT}"
CLOSE = {"field": "ConversationStateField", "conversationState": "CLOSE"}


# ---------------------------------------------------------------- the world


def pid(world: World, user_id: str) -> str:
    return world.accounts[ACC].users[user_id].pid


def new_consumer(world: World) -> Actor:
    c = world.add_consumer(ACC, "anonymous")
    return Actor(ACC, "consumer", c.consumer_id)


def agent(user_id: str = AGENT) -> Actor:
    return Actor(ACC, "agent", user_id)


def online(world: World, user_id: str, availability: str = "ONLINE") -> None:
    world.set_agent_state(agent(user_id), pm.SetAgentStateBody(availability=availability))
    world.routing_subscription(ACC, user_id, +1)


def open_conv(world: World, who: Actor, skill: str = "11", features: tuple[str, ...] = ()) -> Conversation:
    return world.request_conversation(
        who, pm.ConsumerRequestConversationBody(skillId=skill), features=features
    )


def text(world: World, who: Actor, dialog_id: str, message: str, audience: str = "ALL") -> int:
    body = pm.PublishEventBody(
        dialogId=dialog_id, event=pm.ContentEvent(message=message), messageAudience=audience
    )
    return world.publish(who, body)


def status(world: World, who: Actor, dialog_id: str, kind: str, sequences: list[int]) -> int:
    event = pm.AcceptStatusEvent(status=kind, sequenceList=sequences)
    return world.publish(who, pm.PublishEventBody(dialogId=dialog_id, event=event))


def typing(world: World, who: Actor, dialog_id: str, chat_state: str = "COMPOSING") -> None:
    world.publish(who, pm.PublishEventBody(dialogId=dialog_id, event=pm.ChatStateEvent(chatState=chat_state)))


def waiting_ring(world: World, conv: Conversation) -> Any:
    task = world.accounts[ACC].tasks[conv.conv_id]
    return next(r for r in task.rings if r.state == "WAITING")


def accept(world: World, conv: Conversation) -> str:
    ring = waiting_ring(world, conv)
    world.update_ring_state(
        agent(ring.user_id), pm.UpdateRingStateBody(ringId=ring.ring_id, ringState="ACCEPTED")
    )
    return str(ring.user_id)


def field_update(world: World, who: Actor, conv: Conversation, *fields: dict[str, Any]) -> str:
    body = pm.parse_update_conversation_field(
        {"conversationId": conv.conv_id, "conversationField": list(fields)}
    )
    return world.update_fields(who, conv.conv_id, body.conversationField)


# ---------------------------------------------------------------- bodies as a socket carries them


def conversation_body(
    world: World, sub_id: str, changes: list[tuple[str, Conversation]], *, brand: bool
) -> dict[str, Any]:
    """An ExConversationChangeNotification body (a deep copy: later world changes don't leak in)."""
    body = {
        "subscriptionId": sub_id,
        "changes": [
            {"type": kind, "result": render.conversation_result(world, conv, brand=brand)}
            for kind, conv in changes
        ],
    }
    return msgspec.json.decode(msgspec.json.encode(body))  # type: ignore[no-any-return]


def event_infos(world: World, records: list[EventRecord], *, brand: bool) -> list[MessagingEventInfo]:
    acc = world.accounts[ACC]
    if brand:
        return [
            info
            for r in records
            for info in decode_messaging_events(render.event_change(acc, r, brand=True), brand=True)
        ]
    body = {
        "dialogId": records[0].dialog_id,
        "changes": [render.event_change(acc, r, brand=False) for r in records],
    }
    return decode_messaging_events(body, brand=False)


# ---------------------------------------------------------------- the recording connection


@dataclass
class Call:
    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


UPLOAD_URL = {
    "relativePath": "/v1/AUTH_async-images/12345678/upload.PNG",
    "queryParams": {"temp_url_sig": "sig", "temp_url_expires": "1700000060"},
}


class FakeConnection(EventEmitter):
    """Recording ``ConnectionActions`` with scripted results (``scripts[name] = callable``)."""

    def __init__(
        self,
        *,
        brand: bool,
        user_id: str | None,
        agent_id: str | None = None,
        cache_duration: float = 600.0,
    ) -> None:
        super().__init__()
        self.account_id = ACC
        self._brand = brand
        self._user_id = user_id
        self._agent_id = agent_id
        self.calls: list[Call] = []
        self.errors: list[BaseException] = []
        self.scripts: dict[str, Callable[..., Any]] = {}
        self.conversations = ConversationCache(self, cache_duration=cache_duration)
        self.subscriptions: dict[str, Any] = {}
        self.routing: dict[str, Any] = {}
        self.retired: set[str] = set()
        self._ids = itertools.count(1)
        self._error_sink = self.report_error

    # identity
    @property
    def is_brand(self) -> bool:
        return self._brand

    @property
    def agent_id(self) -> str | None:
        return self._agent_id

    @property
    def user_id(self) -> str | None:
        return self._user_id

    def report_error(self, error: BaseException) -> None:
        self.errors.append(error)

    # recording
    def called(self, name: str) -> list[Call]:
        return [c for c in self.calls if c.name == name]

    async def _record(self, name: str, default: Any, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(Call(name, args, kwargs))
        script = self.scripts.get(name)
        if script is None:
            return default() if callable(default) else default
        result = script(*args, **kwargs)
        return await result if inspect.isawaitable(result) else result

    async def publish_event(
        self,
        conversation_id: str,
        dialog_id: str,
        event: dict[str, Any],
        *,
        audience: str = "ALL",
        metadata: Any = None,
    ) -> int:
        return int(
            await self._record(
                "publish_event", 0, conversation_id, dialog_id, event, audience=audience, metadata=metadata
            )
        )

    async def update_conversation_field(
        self, conversation_id: str, fields: list[dict[str, Any]], *, metadata: Any = None
    ) -> Any:
        return await self._record(
            "update_conversation_field",
            "OK Conversation resolved successfully",
            conversation_id,
            fields,
            metadata=metadata,
        )

    async def wait_for_conversation(self, conversation_id: str, timeout: float | None = None) -> Any:
        """As the connection does: the conversation once announced (its ``conversation`` event)."""
        known = self.conversations.get(conversation_id)
        if known is not None and known.announced:
            return known
        return await self.wait_for(
            "conversation", lambda c: c.conversation_id == conversation_id, timeout=timeout or 10
        )

    async def query_messages(
        self,
        conversation_id: str,
        dialog_id: str,
        *,
        max_quantity: int | None = None,
        newer_than: int | None = None,
        older_than: int | None = None,
    ) -> list[MessagingEventInfo]:
        result: list[MessagingEventInfo] = await self._record(
            "query_messages",
            list,
            conversation_id,
            dialog_id,
            max_quantity=max_quantity,
            newer_than=newer_than,
            older_than=older_than,
        )
        return result

    async def subscribe_messaging_events(self, conversation_id: str, dialog_id: str, from_seq: int) -> None:
        await self._record("subscribe_messaging_events", None, conversation_id, dialog_id, from_seq)

    async def subscribe_conversations(self, query: dict[str, Any]) -> str:
        return str(await self._record("subscribe_conversations", lambda: f"sub-{next(self._ids)}", query))

    async def unsubscribe_conversations(self, subscription_id: str) -> None:
        self.unregister_conversation_subscription(subscription_id)
        await self._record("unsubscribe_conversations", None, subscription_id)

    async def subscribe_routing_tasks(self, query: dict[str, Any]) -> str:
        return str(await self._record("subscribe_routing_tasks", lambda: f"rsub-{next(self._ids)}", query))

    async def update_ring_state(self, ring_id: str, ring_state: str) -> None:
        await self._record("update_ring_state", None, ring_id, ring_state)

    async def get_user_profile(self, user_id: str | None) -> Any:
        return await self._record("get_user_profile", dict, user_id)

    async def generate_upload_url(self, file_size: int, file_type: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._record(
            "generate_upload_url", lambda: dict(UPLOAD_URL), file_size, file_type
        )
        return result

    async def generate_download_url(self, relative_path: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._record(
            "generate_download_url", lambda: {**UPLOAD_URL, "relativePath": relative_path}, relative_path
        )
        return result

    async def put_file(self, relative_path: str, query: dict[str, str], data: bytes) -> None:
        await self._record("put_file", None, relative_path, query, data)

    async def get_file(self, relative_path: str, query: dict[str, str]) -> bytes:
        return bytes(await self._record("get_file", b"", relative_path, query))

    # what the connection keeps for subscriptions
    def register_conversation_subscription(self, subscription: Any, old_id: str | None = None) -> None:
        if old_id is not None:
            self.subscriptions.pop(old_id, None)
            self.retired.add(old_id)
        self.subscriptions[subscription.subscription_id] = subscription

    def unregister_conversation_subscription(self, subscription_id: str) -> None:
        self.retired.add(subscription_id)
        self.subscriptions.pop(subscription_id, None)

    def register_routing_subscription(self, subscription: Any, old_id: str | None = None) -> None:
        if old_id is not None:
            self.routing.pop(old_id, None)
        self.routing[subscription.subscription_id] = subscription

    # what the connection's reader does with notification frames
    def deliver_conversations(self, body: dict[str, Any]) -> None:
        sub_id, changes = decode_conversation_changes(body, brand=self._brand)
        sub = self.subscriptions.get(sub_id or "")
        if sub is not None:
            sub.handle_notification(changes)
        elif sub_id not in self.retired:
            raise AssertionError(f"notification for unknown subscription {sub_id}")

    def deliver_events(self, events: list[MessagingEventInfo]) -> None:
        self.conversations.handle_messaging_events(events)

    def deliver_routing(self, body: dict[str, Any]) -> None:
        sub_id, tasks = decode_routing_tasks(body)
        sub = self.routing.get(sub_id or "")
        if sub is not None:
            sub.handle_notification(tasks)

    def drop_socket(self) -> None:
        """What the connection does when the socket is lost."""
        for sub in list(self.subscriptions.values()):
            sub.mark_disconnected()
        for sub in list(self.routing.values()):
            sub.mark_disconnected()


def wire_to_world(fake: FakeConnection, world: World, actor: Actor) -> None:
    """Script the fake so the SDK's requests are performed on the world as ``actor``."""
    acc = world.accounts[ACC]

    def publish_event(
        conversation_id: str,
        dialog_id: str,
        event: dict[str, Any],
        *,
        audience: str = "ALL",
        metadata: Any = None,
    ) -> int:
        body = pm.parse_body(
            pm.PublishEventBody,
            {
                "conversationId": conversation_id,
                "dialogId": dialog_id,
                "event": event,
                "messageAudience": audience,
            },
        )
        return world.publish(actor, body, metadata)

    def update_conversation_field(
        conversation_id: str, fields: list[dict[str, Any]], *, metadata: Any = None
    ) -> str:
        body = pm.parse_update_conversation_field(
            {"conversationId": conversation_id, "conversationField": fields}
        )
        return world.update_fields(actor, conversation_id, body.conversationField)

    def query_messages(
        conversation_id: str,
        dialog_id: str,
        *,
        max_quantity: int | None = None,
        newer_than: int | None = None,
        older_than: int | None = None,
    ) -> list[MessagingEventInfo]:
        _, records = world.events(
            actor, dialog_id, newer_than=newer_than, older_than=older_than, limit=max_quantity
        )
        raw = [render.event_change(acc, r, brand=True) for r in records]
        return decode_messaging_events(raw, brand=True)

    def update_ring_state(ring_id: str, ring_state: str) -> None:
        body = pm.parse_body(pm.UpdateRingStateBody, {"ringId": ring_id, "ringState": ring_state})
        world.update_ring_state(actor, body)

    fake.scripts.update(
        publish_event=publish_event,
        update_conversation_field=update_conversation_field,
        query_messages=query_messages,
        update_ring_state=update_ring_state,
    )


# ---------------------------------------------------------------- the link (a tiny hub)


class Link:
    """Carries world changes to one fake connection, as notification bodies, when flushed.

    Like the emulator's hub: conversation changes go to every registered conversation
    subscription whose ``stage`` / ``state`` filter matches (UPSERT), or that knew the
    conversation (DELETE); consumers only see their own conversations.  Messaging events go to
    the cache: brands get the events of conversations they take part in, consumers the ``ALL``
    events of dialogs they subscribed to.  Routing changes go to routing subscriptions.
    """

    def __init__(self, world: World, fake: FakeConnection, *, consumer_id: str | None = None) -> None:
        self.world = world
        self.fake = fake
        self.consumer_id = consumer_id
        self.pending: list[tuple[str, Any]] = []
        self.known: dict[str, set[str]] = {}
        world.sinks.append(self)
        # The fake storage (put_file) holds the one file the harness uploads: the world refuses
        # hosted-file messages naming a file never uploaded.
        world.uploaded.add(UPLOAD_URL["relativePath"])

    # WorldSink
    def conversation_changed(self, conv: Conversation) -> None:
        if self.consumer_id is not None and conv.consumer_id != self.consumer_id:
            return
        result = render.conversation_result(self.world, conv, brand=self.fake.is_brand)
        self.pending.append(("conv", (conv.conv_id, conv.state, conv.stage, result)))

    def messaging_event(self, conv: Conversation, record: EventRecord) -> None:
        if self.consumer_id is not None:
            if conv.consumer_id != self.consumer_id or record.audience != "ALL":
                return
            if record.dialog_id not in {c.args[1] for c in self.fake.called("subscribe_messaging_events")}:
                return
        elif self.fake.agent_id is not None:
            user_id = self.fake.agent_id.split(".", 1)[1]
            if not any(p.id == user_id and p.state == "ACTIVE" for d in conv.dialogs for p in d.participants):
                return
        self.pending.append(("event", record))

    def routing_task_changed(self, account_id: str, task: RoutingTask) -> None:
        if self.fake.agent_id is None:
            return
        user_id = self.fake.agent_id.split(".", 1)[1]
        if any(r.user_id == user_id for r in task.rings):
            self.pending.append(
                ("routing", render.routing_task_result(self.world.accounts[ACC], task, user_id))
            )

    def agent_state_changed(self, account_id: str, user_id: str, state: AgentState) -> None:
        pass

    def consumer_changed(self, account_id: str, consumer: Consumer) -> None:
        pass

    def replay(self, dialog_id: str, from_seq: int) -> None:
        """The server's answer to SubscribeMessagingEvents: stored events from ``from_seq``."""
        records = self.world.accounts[ACC].events.get(dialog_id, [])
        for record in records[from_seq:]:
            if record.audience == "ALL":
                self.pending.append(("event", record))

    def _conversation_changes(self, item: tuple[str, str, str, dict[str, Any]]) -> None:
        cid, state, stage, result = item
        for sub_id, sub in list(self.fake.subscriptions.items()):
            if getattr(sub, "parent", None) is not None:
                continue  # limit-break pages only get their snapshot
            known = self.known.setdefault(sub_id, set())
            if matches(sub.query, state=state, stage=stage):
                known.add(cid)
                kind = "UPSERT"
            elif cid in known:
                known.discard(cid)
                kind = "DELETE"
            else:
                continue
            body = {"subscriptionId": sub_id, "changes": [{"type": kind, "result": result}]}
            self.fake.deliver_conversations(msgspec.json.decode(msgspec.json.encode(body)))

    async def flush(self) -> None:
        """Deliver everything pending, in order, then let background steps run."""
        while self.pending:
            kind, item = self.pending.pop(0)
            if kind == "conv":
                self._conversation_changes(item)
            elif kind == "event":
                self.fake.deliver_events(event_infos(self.world, [item], brand=self.fake.is_brand))
            else:
                for sub_id in list(self.fake.routing):
                    self.fake.deliver_routing(
                        {"subscriptionId": sub_id, "changes": [{"type": "UPSERT", "result": item}]}
                    )
            await settle()
        await settle()

    def serve(self, *, cap: int = 1000) -> None:
        """Script ``subscribe_conversations`` like UMS: a new id, then (right after the response)
        a snapshot of the newest ``cap`` matching conversations, oldest first."""
        ids = itertools.count(1)

        def subscribe_conversations(query: dict[str, Any]) -> str:
            sub_id = f"sub-{next(ids)}"
            convs = [
                c
                for c in self.world.accounts[ACC].conversations.values()
                if (self.consumer_id is None or c.consumer_id == self.consumer_id) and wire_matches(query, c)
            ]
            convs.sort(key=lambda c: c.last_update_ts)
            convs = convs[-cap:]
            self.known[sub_id] = {c.conv_id for c in convs}
            body = conversation_body(
                self.world, sub_id, [("UPSERT", c) for c in convs], brand=self.fake.is_brand
            )
            asyncio.get_running_loop().call_soon(self.fake.deliver_conversations, body)
            return sub_id

        self.fake.scripts["subscribe_conversations"] = subscribe_conversations


def _as_set(value: Any) -> set[str] | None:
    if value is None:
        return None
    return {value} if isinstance(value, str) else set(value)


def matches(query: dict[str, Any], *, state: str, stage: str) -> bool:
    """Does a Python-named subscription query's state/stage filter match?"""
    states, stages = _as_set(query.get("state")), _as_set(query.get("stage"))
    return (states is None or state in states) and (stages is None or stage in stages)


def wire_matches(query: dict[str, Any], conv: Conversation) -> bool:
    """Does a wire SubscribeExConversations body match the conversation?"""
    states, stages = _as_set(query.get("convState")), _as_set(query.get("stage"))
    if states is not None and conv.state not in states:
        return False
    if stages is not None and conv.stage not in stages:
        return False
    low, high = query.get("minLastUpdatedTime"), query.get("maxLastUpdatedTime")
    if low is not None and conv.last_update_ts < low:
        return False
    return high is None or conv.last_update_ts <= high


async def settle(rounds: int = 10) -> None:
    """Let the subscriptions' background steps run."""
    for _ in range(rounds):
        await asyncio.sleep(0)


def snapshot(
    world: World, fake: FakeConnection, sub_id: str, *, consumer_id: str | None = None
) -> dict[str, Any]:
    """The first notification of a subscription: every (matching) conversation, oldest first."""
    convs = sorted(world.accounts[ACC].conversations.values(), key=lambda c: c.last_update_ts)
    if consumer_id is not None:
        convs = [c for c in convs if c.consumer_id == consumer_id]
    return conversation_body(world, sub_id, [("UPSERT", c) for c in convs], brand=fake.is_brand)


class Events:
    """Records events of emitters: ``rec.watch(obj, "name", ...)`` then ``rec.names``."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, tuple[Any, ...]]] = []

    def watch(self, emitter: EventEmitter, *names: str, prefix: str = "") -> None:
        for name in names:
            emitter.on(name, self._recorder(prefix + name))

    def _recorder(self, name: str) -> Callable[..., None]:
        def record(*args: Any) -> None:
            self.seen.append((name, args))

        return record

    @property
    def names(self) -> list[str]:
        return [n for n, _ in self.seen]

    def args(self, name: str) -> list[tuple[Any, ...]]:
        return [a for n, a in self.seen if n == name]

    def clear(self) -> None:
        self.seen.clear()
