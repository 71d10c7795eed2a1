"""Benchmark hooks: ``/_emulator/bench/...``, bulk state for ``make bench`` (see docs/performance.md).

Served, like the fault API, only when the emulator runs with ``faults=True``; otherwise 404.
Preparing 10,000 conversations through sockets would measure the setup, not the client, so
these endpoints build the state in the world directly (through the world's own operations, so
the conversations are exactly what a socket would have created).

``POST /_emulator/bench/conversations``
    ``{"count": N, "messages": M, "agent"?: "bot", "skill_id"?: "11", "account_id"?}`` creates
    ``N`` consumers, each with an open conversation whose assigned agent is ``agent`` (login name
    or user id) and ``M`` consumer messages in its history.  Answers ``{"conversations": [ids]}``
    (the main dialog id equals the conversation id).

``POST /_emulator/bench/stream``
    ``{"events": E, "conversations"?: [ids], "hold"?: true, "account_id"?}`` publishes ``E``
    consumer text messages round-robin over the given conversations (default: every open
    conversation of the account).  With ``hold`` the notifications are generated first and only
    then handed to the sockets' writers, so the client receives one uninterrupted burst whose
    rate is bounded by the client, not by the emulator's publishing.  Answers
    ``{"published": E, "seconds": s}``.

``POST /_emulator/bench/consumers``
    ``{"count": N, "agent"?: "bot", "account_id"?}`` creates ``N`` consumers with an open
    conversation assigned to ``agent``, and answers a consumer JWT per conversation and a bearer
    for the agent: ``{"consumers": [{"consumer_id", "conversation_id", "jwt"}], "bearer": s}``
    (the emulator capacity scenario drives raw sockets with them).  Tokens are test credentials
    of a local emulator; the caller must not log them.

``GET /_emulator/bench/upgrades``
    What the latest WebSocket upgrades (up to 1,000, oldest first) negotiated:
    ``{"upgrades": [{"face": "brand" | "consumer", "time": epoch, "offered": header | null,
    "answered": header | null, "user_agent": header | null}]}`` where ``offered`` is the
    ``Sec-WebSocket-Extensions`` the client sent and ``answered`` the one the emulator sent back
    (null: no extension, e.g. no permessage-deflate).  The benchmarks check from it that each
    client ran with the compression setting it claims.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from lpm.emulator.entities import Actor
from lpm.emulator.http_common import decode_body, json_response
from lpm.protocol import requests as pm
from lpm.protocol.frames import FrameError

if TYPE_CHECKING:
    from lpm.emulator.context import Context
    from lpm.emulator.entities import User

PREFIX = "/_emulator/bench"
#: Upper bounds that keep a typo from exhausting memory.
_MAX_CONVERSATIONS = 100_000
_MAX_EVENTS = 1_000_000


class _BadInput(Exception):
    """The bench request is invalid (answered 400)."""


def _int(raw: dict[str, Any], key: str, default: int | None, high: int) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
        raise _BadInput(f"{key} must be an integer between 0 and {high}")
    return value


def _account(ctx: Context, raw: dict[str, Any]) -> str:
    account_id = str(raw.get("account_id") or next(iter(ctx.world.accounts)))
    if account_id not in ctx.world.accounts:
        raise _BadInput(f"unknown account {account_id}")
    return account_id


def _agent(ctx: Context, account_id: str, raw: dict[str, Any]) -> User:
    name = str(raw.get("agent") or "bot")
    user = ctx.world.account(account_id).resolve_user(name)
    if user is None:
        raise _BadInput(f"unknown agent {name}")
    return user


def _text_event(dialog_id: str, text: str) -> pm.PublishEventBody:
    return pm.PublishEventBody(dialogId=dialog_id, event=pm.ContentEvent(message=text))


def _open_conversations(ctx: Context, account_id: str, user: User, count: int) -> list[tuple[str, str]]:
    """``count`` new (consumer id, conversation id) pairs, each assigned to ``user``."""
    world = ctx.world
    agent = Actor(account_id, "agent", user.user_id)
    skill = str(next(iter(world.account(account_id).skills), "")) or None
    out = []
    for _ in range(count):
        consumer = world.add_consumer(account_id, "unauthenticated")
        body = pm.AgentRequestConversationBody(consumerId=consumer.consumer_id, skillId=skill)
        conv = world.agent_request_conversation(agent, body)
        out.append((consumer.consumer_id, conv.conv_id))
    return out


def _conversations(ctx: Context, raw: dict[str, Any]) -> dict[str, Any]:
    account_id = _account(ctx, raw)
    user = _agent(ctx, account_id, raw)
    count = _int(raw, "count", None, _MAX_CONVERSATIONS)
    messages = _int(raw, "messages", 0, 1000)
    pairs = _open_conversations(ctx, account_id, user, count)
    world = ctx.world
    for consumer_id, conv_id in pairs:
        actor = Actor(account_id, "consumer", consumer_id)
        for i in range(messages):
            world.publish(actor, _text_event(conv_id, f"history message {i}"))
    return {"conversations": [conv_id for _, conv_id in pairs]}


def _stream(ctx: Context, raw: dict[str, Any]) -> dict[str, Any]:
    account_id = _account(ctx, raw)
    events = _int(raw, "events", None, _MAX_EVENTS)
    acc = ctx.world.account(account_id)
    ids = raw.get("conversations")
    if ids is None:
        ids = list(acc.open_conversation.values())
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise _BadInput("conversations must be a non-empty list of conversation ids")
    targets = []
    for conv_id in ids:
        conv = acc.conversations.get(conv_id)
        if conv is None:
            raise _BadInput(f"unknown conversation {conv_id}")
        targets.append((Actor(account_id, "consumer", conv.consumer_id), conv_id))
    sessions = list(ctx.hub.sessions_of_account(account_id)) if raw.get("hold") else []
    for session in sessions:
        # Hold every notification until all are generated (see the module docstring); nothing
        # else runs meanwhile: this loop never awaits.
        session._held = []
    start = time.perf_counter()
    try:
        world = ctx.world
        for i in range(events):
            actor, conv_id = targets[i % len(targets)]
            world.publish(actor, _text_event(conv_id, f"bench event {i}"))
    finally:
        for session in sessions:
            held, session._held = session._held or [], None
            for data in held:
                session._out.put_nowait(data)
    return {"published": events, "seconds": round(time.perf_counter() - start, 3)}


def _consumers(ctx: Context, raw: dict[str, Any]) -> dict[str, Any]:
    account_id = _account(ctx, raw)
    user = _agent(ctx, account_id, raw)
    count = _int(raw, "count", None, _MAX_CONVERSATIONS)
    pairs = _open_conversations(ctx, account_id, user, count)
    consumers = [
        {
            "consumer_id": consumer_id,
            "conversation_id": conv_id,
            "jwt": ctx.tokens.issue_consumer(account_id, consumer_id, ttl=3600),
        }
        for consumer_id, conv_id in pairs
    ]
    bearer = ctx.world.login(account_id, user, ttl=3600).bearer
    return {"consumers": consumers, "bearer": bearer}


def _upgrades(ctx: Context, raw: dict[str, Any]) -> dict[str, Any]:
    return {"upgrades": list(ctx.upgrades)}


def _handler(action: Any) -> Any:
    async def handler(ctx: Context, request: web.Request) -> web.StreamResponse:
        if not ctx.faults.enabled:
            raise web.HTTPNotFound()
        raw_bytes = await request.read()
        try:
            raw = decode_body(raw_bytes) if raw_bytes.strip() else {}
            if not isinstance(raw, dict):
                raise _BadInput("body must be a JSON object")
            return json_response(action(ctx, raw))
        except (_BadInput, FrameError) as exc:
            return json_response({"error": str(exc)}, status=400)

    return handler


def routes(ctx: Context) -> list[tuple[str, str, Any]]:
    """The bench routes (registered always; they answer 404 unless faults are enabled)."""
    return [
        ("POST", f"{PREFIX}/conversations", _handler(_conversations)),
        ("POST", f"{PREFIX}/stream", _handler(_stream)),
        ("POST", f"{PREFIX}/consumers", _handler(_consumers)),
        ("GET", f"{PREFIX}/upgrades", _handler(_upgrades)),
    ]
