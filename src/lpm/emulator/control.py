"""Fault-injection control API: ``/_emulator/...`` on the emulator's own port.

Served only when the emulator runs with ``faults=True`` (``lpm emulator --faults``); otherwise every
route answers 404 as if it did not exist.  Requests and answers are JSON objects; a bad body
(malformed JSON, an unknown key, a value of the wrong type or out of range, an unknown account,
agent or consumer) answers 400 ``{"error": "..."}``.  Unknown keys are refused on purpose: a
misspelt filter (``"acount_id"``) would otherwise select every socket.

Faults are global to the emulator and armed faults are consumed in the order they were armed.
The HTTP middleware never applies faults to ``/_emulator`` itself.

Sockets
    ``POST /_emulator/sockets/close`` ``{"code": 4401, "reason"?: str, <filters>}`` closes the
    matching WebSocket sessions with a close frame carrying ``code`` (1000-1003, 1007-1014 or
    3000-4999; e.g. 1011 server error, 4401 unauthorized, 4407 unauthenticated identity).  1006 is
    not a code a server can send: clients report it when the TCP connection ends without a close
    frame, which is what ``sockets/drop`` does.  Answers ``{"closed": n}``.

    ``POST /_emulator/sockets/drop`` ``{<filters>}`` drops the TCP connection of the matching
    sessions without a close frame (clients see 1006).  Answers ``{"dropped": n}``.

    Filters, all optional and combined with AND: ``account_id``; ``user_id`` (an agent, by numeric
    id, login name or PID; selects brand sessions of that agent); ``consumer_id`` (selects that
    consumer's sessions); ``dialect`` (``"brand"`` or ``"consumer"``).  ``user_id`` and
    ``consumer_id`` exclude each other.  No filter selects every authenticated session; a consumer
    socket still waiting for its ``InitConnection`` is not a session yet and is never selected.

WebSocket requests
    ``POST /_emulator/requests`` ``{"count": N, "action": "delay"|"refuse"|"drop", "delay": s,
    "status": 503}`` makes the next ``N`` requests on any socket be answered ``delay`` seconds
    late, refused with a string-bodied response of code ``status`` (400-599), or never answered
    (clients time out).  A delayed request holds its socket's reader, as a slow server would;
    when ``sockets/drop`` drops its socket meanwhile, it (and any request read behind it) is
    handled at once, so its fate is settled before its client can reconnect.
    Answers ``{"armed": {...}, "pending": n}`` (``n`` requests still to be hit).

HTTP
    ``POST /_emulator/http`` ``{"target": ..., "count": N, "action": "refuse"|"delay"|"drop",
    "status": 503, "delay": s}`` arms faults for the next ``N`` HTTP calls of one target:
    ``login``, ``refresh``, ``logout`` (agentVep), ``idp`` (consumer signup/authenticate/authorize),
    ``csds``, ``sentinel``, ``http`` (every other path, WebSocket upgrades included) or ``any``
    (whatever path comes first).  ``refuse`` answers ``status`` (400-599; 429 adds
    ``Retry-After: 1``) with ``{"error": {"message", "internalCode"}}``; ``drop`` aborts the TCP
    connection; ``delay`` answers normally ``delay`` seconds late.  Answers like ``/requests``.

Tokens
    ``POST /_emulator/tokens/expire`` ``{"account_id"?, "user_id"?, "consumer_id"?}`` makes
    identities expire now.  Agents: the matching agentVep login sessions expire, so their
    sockets close with 4401, their bearer is refused at the WebSocket upgrade (HTTP 401) and
    ``refresh`` answers 401; a new login works.  Consumers: their sockets close with 4401
    (authenticated) or 4407 (anonymous/unauthenticated) and every LP consumer JWT issued to them
    before now is refused from then on, exactly as an expired token would be; a token issued
    afterwards (new ``signup``/``authenticate``) works.  With ``user_id`` only agents are
    affected, with ``consumer_id`` only consumers, with neither both (of ``account_id``, or of
    every account).  Answers ``{"expired_sessions": n, "closed_sockets": m}`` (``n`` agent
    sessions).  Refusing old consumer tokens at the socket relies on
    :func:`check_consumer_token` being called by the consumer socket's authentication.

Upgrades
    ``POST /_emulator/upgrades/stall`` ``{"count": N}`` (default 1): the next ``N`` WebSocket
    upgrades are held without an answer (TLS and TCP are accepted: the client hangs until its
    own timeout).  ``POST /_emulator/upgrades/release`` lets held upgrades proceed and disarms
    stalls not yet used.  Answer ``{"stall_upgrades": n}`` (stalls still armed).

Routing
    ``POST /_emulator/rings/expire`` ``{"account_id"?}`` expires every WAITING ring now (of one
    account, or all): the ring becomes EXPIRED and the next agent is rung, as after
    ``ring_expiry``.  Answers ``{"expired": n}``.

Shifts
    ``POST /_emulator/shifts`` ``{"account_id"?, "skill_id", "on_shift": bool, "next_on"?: ms | null,
    "next_off"?: ms | null}`` sets a skill's shift status, what ``GET .../shift-status`` answers
    (:mod:`lpm.emulator.http_shift_status`; ``next_on`` / ``next_off`` are epoch milliseconds and
    become null when absent).  The account defaults to the only one of the world.  Answers the
    skill's new status ``{"skillId", "onShift", "nextOn", "nextOff"}``.  ``GET /_emulator/shifts``
    answers ``{"<account>": [<status of each skill>]}``.

Housekeeping
    ``POST /_emulator/reset`` disarms every pending fault and releases stalled upgrades (token
    expiries are not undone: clients get new tokens).  ``GET /_emulator/state`` answers counts
    for debugging: sessions by dialect, conversations open/closed, agent sessions and waiting
    rings per account, pending faults.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from lpm.emulator import entities as m
from lpm.emulator import http_shift_status
from lpm.emulator.faults import RequestFault
from lpm.emulator.http_common import NotAJsonObject, json_response, read_json_object
from lpm.emulator.ring_routing import WAITING
from lpm.emulator.world_errors import Unauthorized

if TYPE_CHECKING:
    from lpm.emulator.context import Context
    from lpm.emulator.ws_session import Session

PREFIX = "/_emulator"
#: Targets of ``/_emulator/http``; the names the app's fault middleware looks up.
HTTP_TARGETS = ("login", "refresh", "logout", "idp", "csds", "sentinel", "http", "any")
#: Close codes reserved by RFC 6455 for endpoints to report, never to send.
_UNSENDABLE_CODES = frozenset({1004, 1005, 1006, 1015})
_FILTER_KEYS = frozenset({"account_id", "user_id", "consumer_id", "dialect"})
#: Longest close reason: a control frame payload is at most 125 bytes, two of them the code.
_MAX_REASON_BYTES = 123

Handler = Callable[["Context", web.Request], Awaitable[web.StreamResponse]]
_Action = Callable[["Context", "_Body"], dict[str, Any]]


class _BadInput(Exception):
    """The control request is invalid (answered 400)."""


# ---------------------------------------------------------------- consumer token revocation


@dataclass(slots=True)
class _Revocations:
    """Consumer token expiries of one emulator.

    Consumer JWTs are self-contained, so "expired" is decided by when a token was issued: its
    ``iat`` against the second of the expiry.  ``iat`` has a one-second resolution, so a token
    issued in the very second of the expiry is ambiguous; those that were already used on a
    socket are known by their ``jti`` (kept for a couple of seconds in ``recent``) and revoked
    outright in the token service.
    """

    #: Held strongly: the registry is keyed by ``id(ctx)``, which must not be reused meanwhile.
    ctx: Context
    #: (account id, consumer id, or None for every consumer) -> first epoch second still valid.
    valid_from: dict[tuple[str, str | None], int] = field(default_factory=dict)
    #: iat -> {jti: (account id, consumer id)} of tokens seen by socket authentication.
    recent: dict[int, dict[str, tuple[str, str]]] = field(default_factory=dict)

    def remember(self, account_id: str, consumer_id: str, jti: str, iat: int, now: float) -> None:
        # Buckets by second make pruning O(buckets) however many sockets authenticate.
        for second in [s for s in self.recent if s < int(now) - 2]:
            del self.recent[second]
        self.recent.setdefault(iat, {})[jti] = (account_id, consumer_id)

    def expire(self, account_id: str, consumer_id: str | None, now: float) -> None:
        key = (account_id, consumer_id)
        self.valid_from[key] = max(self.valid_from.get(key, 0), math.floor(now))
        for bucket in self.recent.values():
            for jti, (acc, cid) in bucket.items():
                if acc == account_id and consumer_id in (None, cid):
                    self.ctx.tokens.revoked.add(jti)

    def cutoff(self, account_id: str, consumer_id: str) -> int:
        return max(
            self.valid_from.get((account_id, consumer_id), 0), self.valid_from.get((account_id, None), 0)
        )


_REVOCATIONS: dict[int, _Revocations] = {}


def _revocations(ctx: Context) -> _Revocations:
    # Context is a slotted, unhashable dataclass: neither a dict key nor weakly referenceable,
    # hence a registry by id() cleaned up by shutdown().
    state = _REVOCATIONS.get(id(ctx))
    if state is None or state.ctx is not ctx:
        state = _REVOCATIONS[id(ctx)] = _Revocations(ctx)
    return state


def check_consumer_token(ctx: Context, account_id: str, claims: dict[str, Any]) -> None:
    """Refuse (:class:`Unauthorized`, "token expired") an LP consumer JWT issued before its
    consumer was expired by ``/_emulator/tokens/expire``; remember accepted ones.

    Meant for the consumer socket's authentication, after the JWT's signature was verified.
    Does nothing when the fault API is disabled.
    """
    if not ctx.faults.enabled:
        return
    state = _revocations(ctx)
    consumer_id = str(claims.get("sub"))
    iat = claims.get("iat")
    if not isinstance(iat, int | float) or isinstance(iat, bool):
        return
    if iat < state.cutoff(account_id, consumer_id):
        raise Unauthorized("token expired")
    jti = claims.get("jti")
    if isinstance(jti, str):
        state.remember(account_id, consumer_id, jti, int(iat), ctx.world.clock())


# ---------------------------------------------------------------- request bodies


class _Body:
    """A control request's JSON object, with typed getters that raise :class:`_BadInput`."""

    def __init__(self, raw: dict[str, Any], allowed: frozenset[str]) -> None:
        unknown = sorted(set(raw) - allowed)
        if unknown:
            expected = ", ".join(sorted(allowed)) or "no keys"
            raise _BadInput(f"unknown key(s) {', '.join(unknown)}; expected {expected}")
        self.raw = raw

    def text(self, key: str) -> str | None:
        """A string (ids may also come as JSON numbers) or None when absent."""
        value = self.raw.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise _BadInput(f"{key} must be a string")
        return str(value)

    def integer(self, key: str, default: int | None, low: int, high: int) -> int:
        value = self.raw.get(key, default)
        if value is None:
            raise _BadInput(f"{key} is required")
        if isinstance(value, bool) or not isinstance(value, int):
            raise _BadInput(f"{key} must be an integer")
        if not low <= value <= high:
            raise _BadInput(f"{key} must be between {low} and {high}")
        return value

    def number(self, key: str, default: float, low: float, high: float) -> float:
        value = self.raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise _BadInput(f"{key} must be a number of seconds")
        if not low <= value <= high:
            raise _BadInput(f"{key} must be between {low} and {high}")
        return float(value)

    def choice(self, key: str, options: Iterable[str], default: str | None = None) -> str:
        value = self.raw.get(key, default)
        options = tuple(options)
        if value not in options:
            if value is None:
                raise _BadInput(f"{key} is required: one of {', '.join(options)}")
            raise _BadInput(f"{key} must be one of {', '.join(options)}")
        return str(value)


async def _read_body(request: web.Request) -> dict[str, Any]:
    try:
        return await read_json_object(request)
    except NotAJsonObject as exc:
        if exc.decode_error is not None:
            raise _BadInput(f"body is not JSON: {exc.decode_error}") from None
        raise _BadInput("body must be a JSON object") from None


def _handler(action: _Action, allowed: Iterable[str] = ()) -> Handler:
    """An aiohttp handler around ``action``: 404 unless faults are enabled, body parsing, 400s."""
    keys = frozenset(allowed)

    async def handler(ctx: Context, request: web.Request) -> web.StreamResponse:
        if not ctx.faults.enabled:
            # Indistinguishable from a path that does not exist, as on the real platform.
            raise web.HTTPNotFound()
        try:
            body = _Body(await _read_body(request), keys)
            return json_response(action(ctx, body))
        except _BadInput as exc:
            return json_response({"error": str(exc)}, status=400)

    return handler


# ---------------------------------------------------------------- selection


@dataclass(frozen=True, slots=True)
class _Selector:
    """Which identities a request targets; None fields do not filter."""

    account_ids: frozenset[str]
    #: (account id, user id) pairs of the named agent.
    agents: frozenset[tuple[str, str]] | None
    #: (account id, consumer id) pairs of the named consumer.
    consumers: frozenset[tuple[str, str]] | None
    dialect: str | None = None

    def matches(self, session: Session) -> bool:
        actor = session.actor
        if actor is None or actor.account_id not in self.account_ids:
            return False
        if self.dialect is not None and session.dialect.value != self.dialect:
            return False
        key = (actor.account_id, actor.id)
        if self.agents is not None and (actor.is_consumer or key not in self.agents):
            return False
        return self.consumers is None or (actor.is_consumer and key in self.consumers)


def _selector(ctx: Context, body: _Body, *, with_dialect: bool) -> _Selector:
    world = ctx.world
    account_id = body.text("account_id")
    if account_id is not None and account_id not in world.accounts:
        raise _BadInput(f"unknown account {account_id}")
    accounts = [world.accounts[account_id]] if account_id is not None else list(world.accounts.values())
    user = body.text("user_id")
    consumer = body.text("consumer_id")
    if user is not None and consumer is not None:
        raise _BadInput("give user_id or consumer_id, not both")
    agents = None
    if user is not None:
        found = {(acc.account_id, u.user_id) for acc in accounts if (u := acc.resolve_user(user)) is not None}
        if not found:
            raise _BadInput(f"unknown agent {user}")
        agents = frozenset(found)
    consumers = None
    if consumer is not None:
        consumers = frozenset((acc.account_id, consumer) for acc in accounts if consumer in acc.consumers)
        if not consumers:
            raise _BadInput(f"unknown consumer {consumer}")
    dialect = body.choice("dialect", ("brand", "consumer", "any"), "any") if with_dialect else "any"
    return _Selector(
        account_ids=frozenset(acc.account_id for acc in accounts),
        agents=agents,
        consumers=consumers,
        dialect=None if dialect == "any" else dialect,
    )


def _sessions(ctx: Context, selector: _Selector) -> list[Session]:
    # Sorted for a stable order: closes are queued in the same order run after run.
    return sorted((s for s in ctx.hub.sessions if selector.matches(s)), key=lambda s: s.id)


# ---------------------------------------------------------------- actions


def _close_sockets(ctx: Context, body: _Body) -> dict[str, Any]:
    code = body.integer("code", None, 1000, 4999)
    if code == 1006:
        raise _BadInput(
            "1006 cannot be sent in a close frame; use /_emulator/sockets/drop (clients see 1006)"
        )
    if code in _UNSENDABLE_CODES or 1016 <= code <= 2999:
        raise _BadInput(f"close code {code} is reserved; use 1000-1003, 1007-1014 or 3000-4999")
    reason = body.text("reason") or "closed by fault injection"
    if len(reason.encode()) > _MAX_REASON_BYTES:
        raise _BadInput(f"reason must be at most {_MAX_REASON_BYTES} bytes")
    sessions = _sessions(ctx, _selector(ctx, body, with_dialect=True))
    for session in sessions:
        session.close_with(code, reason)
    return {"closed": len(sessions)}


def _drop_sockets(ctx: Context, body: _Body) -> dict[str, Any]:
    sessions = _sessions(ctx, _selector(ctx, body, with_dialect=True))
    for session in sessions:
        session.abort()
    return {"dropped": len(sessions)}


def _fault(body: _Body, actions: tuple[str, ...]) -> RequestFault:
    action = body.choice("action", actions)
    return RequestFault(
        count=body.integer("count", 1, 1, 1_000_000),
        action=action,
        delay=body.number("delay", 1.0 if action == "delay" else 0.0, 0.0, 3600.0),
        status=body.integer("status", 503, 400, 599),
    )


def _fault_json(fault: RequestFault) -> dict[str, Any]:
    return {"count": fault.count, "action": fault.action, "delay": fault.delay, "status": fault.status}


def _arm_requests(ctx: Context, body: _Body) -> dict[str, Any]:
    fault = _fault(body, ("delay", "refuse", "drop"))
    ctx.faults.ws.append(fault)
    return {"armed": _fault_json(fault), "pending": sum(f.count for f in ctx.faults.ws)}


def _arm_http(ctx: Context, body: _Body) -> dict[str, Any]:
    target = body.choice("target", HTTP_TARGETS)
    fault = _fault(body, ("refuse", "delay", "drop"))
    queue = ctx.faults.http.setdefault(target, [])
    queue.append(fault)
    return {"target": target, "armed": _fault_json(fault), "pending": sum(f.count for f in queue)}


def _expire_tokens(ctx: Context, body: _Body) -> dict[str, Any]:
    selector = _selector(ctx, body, with_dialect=False)
    world = ctx.world
    now = world.clock()
    expired = 0
    if selector.consumers is None:
        # Agents (unless only a consumer was named).
        for agent_session in list(world.sessions.values()):
            if agent_session.account_id not in selector.account_ids or agent_session.expires_at <= now:
                continue
            if selector.agents is not None and (agent_session.account_id, agent_session.user_id) not in (
                selector.agents
            ):
                continue
            agent_session.expires_at = now
            # Persisted like a refresh would be, so an expired session stays expired after a restart.
            world.store.session_changed(agent_session, agent_session.bearer)
            expired += 1
    closed = 0
    if expired:
        for account_id in sorted(selector.account_ids):
            closed += ctx.hub.close_expired(account_id)
    if selector.agents is None:
        # Consumers (unless only an agent was named).
        revocations = _revocations(ctx)
        if selector.consumers is None:
            for account_id in selector.account_ids:
                revocations.expire(account_id, None, now)
        else:
            for account_id, consumer_id in selector.consumers:
                revocations.expire(account_id, consumer_id, now)
        consumer_selector = _Selector(selector.account_ids, None, selector.consumers)
        for session in _sessions(ctx, consumer_selector):
            if session.actor is not None and session.actor.is_consumer:
                session.close_with(session.auth_close_code(), "token expired")
                closed += 1
    return {"expired_sessions": expired, "closed_sockets": closed}


def _epoch_ms(body: _Body, key: str) -> int | None:
    value = body.raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _BadInput(f"{key} must be epoch milliseconds (an integer >= 0) or null")
    return value


def _set_shift(ctx: Context, body: _Body) -> dict[str, Any]:
    account_id = body.text("account_id")
    accounts = ctx.world.accounts
    if account_id is None:
        if len(accounts) != 1:
            raise _BadInput("account_id is required: the world has several accounts")
        account_id = next(iter(accounts))
    acc = accounts.get(account_id)
    if acc is None:
        raise _BadInput(f"unknown account {account_id}")
    skill_id = body.text("skill_id")
    if skill_id is None:
        raise _BadInput("skill_id is required")
    skill = acc.skills.get(skill_id)
    if skill is None:
        raise _BadInput(f"unknown skill {skill_id}")
    on_shift = body.raw.get("on_shift")
    if not isinstance(on_shift, bool):
        raise _BadInput("on_shift must be true or false")
    skill.on_shift = on_shift
    skill.next_on = _epoch_ms(body, "next_on")
    skill.next_off = _epoch_ms(body, "next_off")
    return http_shift_status.shift_item(skill)


def _shifts(ctx: Context, body: _Body) -> dict[str, Any]:
    return {acc.account_id: http_shift_status.shift_status(acc) for acc in ctx.world.accounts.values()}


def _stall_upgrades(ctx: Context, body: _Body) -> dict[str, Any]:
    ctx.faults.stall_upgrades += body.integer("count", 1, 1, 1_000_000)
    return {"stall_upgrades": ctx.faults.stall_upgrades}


def _release_upgrades(ctx: Context, body: _Body) -> dict[str, Any]:
    # "Release" means the network is healthy again: stalls not yet used go too.
    ctx.faults.stall_upgrades = 0
    ctx.faults.release()
    return {"stall_upgrades": 0}


def _expire_rings(ctx: Context, body: _Body) -> dict[str, Any]:
    account_id = body.text("account_id")
    world = ctx.world
    if account_id is not None and account_id not in world.accounts:
        raise _BadInput(f"unknown account {account_id}")
    accounts = [world.accounts[account_id]] if account_id is not None else list(world.accounts.values())
    expired = 0
    for acc in accounts:
        # Counted before: expiring re-rings the next agent, whose new WAITING ring stays.
        expired += sum(1 for task in acc.tasks.values() for ring in task.rings if ring.state == WAITING)
        world.router.expire_all(acc)
    return {"expired": expired}


def _reset(ctx: Context, body: _Body) -> dict[str, Any]:
    ctx.faults.reset()
    return {"reset": True}


def _state(ctx: Context, body: _Body) -> dict[str, Any]:
    world = ctx.world
    now = world.clock()
    sessions = {"brand": 0, "consumer": 0}
    per_account: dict[str, dict[str, Any]] = {}
    for acc in world.accounts.values():
        open_ = sum(1 for c in acc.conversations.values() if c.stage == m.OPEN)
        per_account[acc.account_id] = {
            "sessions": {"brand": 0, "consumer": 0},
            "conversations": {"open": open_, "closed": len(acc.conversations) - open_},
            "agent_sessions": sum(
                1 for s in world.sessions.values() if s.account_id == acc.account_id and s.expires_at > now
            ),
            "waiting_rings": sum(
                1 for task in acc.tasks.values() for ring in task.rings if ring.state == WAITING
            ),
            "consumers": len(acc.consumers),
        }
    for session in ctx.hub.sessions:
        sessions[session.dialect.value] += 1
        account = per_account.get(session.account_id)
        if account is not None:
            account["sessions"][session.dialect.value] += 1
    faults = ctx.faults
    return {
        "faults_enabled": faults.enabled,
        "sessions": sessions,
        "accounts": per_account,
        "faults": {
            "ws": [_fault_json(f) for f in faults.ws],
            "http": {
                target: [_fault_json(f) for f in queue] for target, queue in faults.http.items() if queue
            },
            "stall_upgrades": faults.stall_upgrades,
        },
    }


# ---------------------------------------------------------------- face interface


def routes(ctx: Context) -> list[tuple[str, str, Handler]]:
    """The control routes (registered always; they answer 404 unless faults are enabled)."""
    filters = _FILTER_KEYS
    ids = frozenset({"account_id", "user_id", "consumer_id"})
    fault_keys = frozenset({"count", "action", "delay", "status"})
    return [
        ("POST", f"{PREFIX}/sockets/close", _handler(_close_sockets, filters | {"code", "reason"})),
        ("POST", f"{PREFIX}/sockets/drop", _handler(_drop_sockets, filters)),
        ("POST", f"{PREFIX}/requests", _handler(_arm_requests, fault_keys)),
        ("POST", f"{PREFIX}/http", _handler(_arm_http, fault_keys | {"target"})),
        ("POST", f"{PREFIX}/tokens/expire", _handler(_expire_tokens, ids)),
        ("POST", f"{PREFIX}/upgrades/stall", _handler(_stall_upgrades, {"count"})),
        ("POST", f"{PREFIX}/upgrades/release", _handler(_release_upgrades)),
        ("POST", f"{PREFIX}/rings/expire", _handler(_expire_rings, {"account_id"})),
        (
            "POST",
            f"{PREFIX}/shifts",
            _handler(_set_shift, {"account_id", "skill_id", "on_shift", "next_on", "next_off"}),
        ),
        ("GET", f"{PREFIX}/shifts", _handler(_shifts)),
        ("POST", f"{PREFIX}/reset", _handler(_reset)),
        ("GET", f"{PREFIX}/state", _handler(_state)),
    ]


async def shutdown(ctx: Context) -> None:
    """Forget this emulator's token expiries."""
    _REVOCATIONS.pop(id(ctx), None)
