"""The Messaging Interactions API (conversation history, CSDS service ``msgHist``).

Sources: the developer center's "Messaging Interactions API" pages -- Overview, "Conversations"
(``data-messaging-interactions-conversations.html``), "Get conversation by conversation ID" and
the Engagement Attributes appendix (repository ``LivePersonInc/developer-center``,
``pages/documents/data/messaging-interactions/``).  The filters, paging and record shapes below
follow them; what the emulator has no data for is said where it matters.

Endpoints (``POST``, JSON body, on the emulator's host like every service):

* ``/messaging_history/api/account/{acc}/conversations/search`` -- the filter search;
* ``/messaging_history/api/account/{acc}/conversations/conversation/search`` -- by
  ``{"conversationId": "..."}``; the same filters are accepted there too.

**Authorization** (the Overview page: "user login or a machine-to-machine authorization"):
``Authorization: Bearer <token>`` with an agentVep bearer of the account (managers see every
conversation, other agents those they took part in) or an AppJWT of one of the account's app
installs (OAuth 2.0 client credentials, from sentinel; sees every conversation).  401 without
a valid token, 404 for an unknown account.

**Query**: ``offset`` (default 0), ``limit`` (default 50, 1 to 100), ``sort`` (``start`` or
``end``, ``:asc`` or ``:desc``, comma-separated keys; default ``start:desc``, newest first: an
emulator choice), ``v`` (1 or 2: version 1 shows SDE values as text, 2 with their types).

**Body filters** (all optional but ``start``; the values of a list are ORed, filters ANDed):

* ``start {from, to}``: start time, epoch ms (numbers or numeric strings); ``from`` rounded down
  and ``to`` up to 10 minutes; ``to`` -1 or absent means now; at most 3 months (93 days) apart.
  Required unless ``conversationId`` is given.
* ``end {from, to}``: end time (closed conversations only).
* ``status``: ``OPEN`` / ``CLOSE``.  ``conversationId``: one id or a list of ids.
* ``skillIds``: any skill the conversation had (transfers included); ``latestSkillIds``: its
  current skill.
* ``agentIds``: any agent that took part (user id, ``acc.userId`` or PID); ``latestAgentIds``:
  the agent it was most recently assigned to; ``agentGroupIds``: every emulator agent is in
  group -1.
* ``keyword``: a word or phrase (quotes removed) in a message, case-insensitive.  ``summary``:
  the emulator keeps no summaries, so a non-empty one matches nothing.
* ``duration {from, to}``: seconds from start to end (to now while open).  ``csat {from, to}``:
  the consumer's CSAT rate.  ``mcs {from, to}``, ``alertedMcsValues``: the emulator scores
  nothing, MCS and alerted MCS are 0.  ``responseTime {from, to}``: the latest effective
  response due time.
* ``source``, ``device``: ``info.source`` / ``info.device`` (below).  ``messageContentTypes``: a
  message of one of these types (``TEXT_PLAIN``, ``HOSTED_FILE``...).
  ``latestConversationQueueState``: ``IN_QUEUE`` (no assigned agent) or ``ACTIVE``.
* ``sdeSearch {personalInfo, customerInfo, userUpdate}``: text in those SDEs (the consumer's
  profile for ``userUpdate``), ORed; other SDE types match nothing.
* ``contentToRetrieve``: the record sections to return (default: the page's default list).

A value of the wrong type, an unknown status or content type, a bad interval or paging value is
answered 400.  Unknown body fields are ignored.  Errors are JSON ``{"code", "message"}``.

**Response**: ``{"_metadata": {"count", "self", "next"?, "prev"?, "shardsStatusResult":
{"partialResult": false}}, "conversationHistoryRecords": [...]}`` where each link is ``{"rel",
"href"}`` (``next`` while records remain after this page, ``prev`` when ``offset`` > 0; the
Engagement History page shows the same links).  Each record (:mod:`lpm.emulator.history_records`):

* ``info``: start/end (``startTime`` text and ``startTimeL`` epoch ms; ``endTime`` "undefined" and
  ``endTimeL`` -1 while open), ``duration`` (ms), ids, latest agent and skill, ``status``,
  ``closeReason``, ``csatRate``, ``source`` (AGENT for a proactive conversation, APP for a
  connector's or an app's consumer, SHARK for a web messaging window), ``device`` and
  ``operatingSystem`` (from the consumer's client properties), ``latestQueueState``, ``mcs`` 0;
* ``messageRecords``: every content message of every dialog -- ``TEXT_PLAIN`` (``messageData.msg
  .text``), ``HOSTED_FILE`` (``messageData.file``), ``RICH_CONTENT`` (``messageData.richContent
  .content``, JSON text), quick replies in ``messageData.quickReplies.content``; ``messageId``
  ``ms::conv:{convId}::msg:{seq}`` (``ms::dialog:{dialogId}::msg:{seq}`` outside MAIN), ``seq``,
  ``dialogId``, ``participantId`` (consumer id or agent user id), ``sentBy`` (Consumer/Agent);
* ``agentParticipants`` (every agent that joined, with when and in which role),
  ``agentParticipantsActive``, ``agentParticipantsLeave``, ``consumerParticipants`` (profile and
  personal SDE names), ``transfers`` (reason ``Skill``, ``Agent``, ``Back2Q`` or ``TakeOver``, with
  source and target), ``interactions`` (each assignment), ``messageStatuses`` (each ACCEPT/READ of
  a message), ``conversationSurveys`` (the CSAT), ``sdes`` (``events`` of CUSTOMER_INFO and
  PERSONAL_INFO from the consumer's ``lp_sdes``), ``campaign``, ``responseTime`` and ``monitoring``
  when asked; ``messageScores`` and ``coBrowseSessions`` are empty.

Transfers, join and leave times are recorded while the emulator runs (a
:class:`~lpm.emulator.history_records.HistoryRecorder` sink); messages, statuses, SDEs and the
conversation itself come from the world and its database.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from lpm.emulator import entities as m
from lpm.emulator.entities import Actor, Conversation
from lpm.emulator.history_records import (
    CONTENT_TYPES,
    DEFAULT_CONTENT,
    HistoryRecorder,
    consumer_sdes,
    conversation_record,
    latest_agent,
    message_records,
    source_of,
)
from lpm.emulator.http_common import decode_body, json_response, query_int
from lpm.emulator.rest_v1 import guard
from lpm.emulator.world_errors import BadRequest, Forbidden, NotFound, Unauthorized
from lpm.protocol.frames import FrameError

if TYPE_CHECKING:
    from lpm.emulator.context import Context
    from lpm.emulator.extensions import Route
    from lpm.emulator.world import World

Handler = Callable[["Context", web.Request], Awaitable[web.StreamResponse]]

BASE = "/messaging_history/api/account/{account}/conversations"
DEFAULT_LIMIT = 50
MAX_LIMIT = 100
#: Start times are rounded to this many ms ("rounded to the last/next 10 minutes").
ROUNDING = 10 * 60 * 1000
#: The widest ``start`` interval ("three months").
MAX_INTERVAL = 93 * 24 * 3600 * 1000
STATUSES = frozenset({m.OPEN, m.CLOSE})
QUEUE_STATES = frozenset({"IN_QUEUE", "ACTIVE"})


# ---------------------------------------------------------------- the sink


def sink(ctx: Context) -> HistoryRecorder:
    """The history recorder of this emulator (added to the world's sinks by the app)."""
    return HistoryRecorder(ctx.world)


def recorder_of(ctx: Context) -> HistoryRecorder:
    """The running emulator's recorder (one is made when the world has none, e.g. unit tests)."""
    found = next((s for s in ctx.world.sinks if isinstance(s, HistoryRecorder)), None)
    if found is None:
        found = HistoryRecorder(ctx.world)
        ctx.world.sinks.append(found)
    return found


# ---------------------------------------------------------------- request parsing


@dataclass(frozen=True, slots=True)
class Interval:
    """An inclusive ``{from, to}`` range (None: open on that side)."""

    low: float | None
    high: float | None

    def __contains__(self, value: float) -> bool:
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)


@dataclass(slots=True)
class Query:
    """A parsed search."""

    start: Interval | None = None
    end: Interval | None = None
    status: frozenset[str] | None = None
    conversation_ids: frozenset[str] | None = None
    skill_ids: frozenset[str] | None = None
    latest_skill_ids: frozenset[str] | None = None
    agent_ids: frozenset[str] | None = None
    latest_agent_ids: frozenset[str] | None = None
    agent_group_ids: frozenset[str] | None = None
    keyword: str | None = None
    summary: str | None = None
    duration: Interval | None = None
    csat: Interval | None = None
    mcs: Interval | None = None
    alerted_mcs: frozenset[str] | None = None
    source: frozenset[str] | None = None
    device: frozenset[str] | None = None
    content_types: frozenset[str] | None = None
    queue_state: str | None = None
    sde_search: dict[str, str] = field(default_factory=dict)
    response_time: Interval | None = None
    content: tuple[str, ...] = DEFAULT_CONTENT


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool):
        raise BadRequest(f"{what} must be a number")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise BadRequest(f"{what} must be a number")


def _interval(body: dict[str, Any], name: str) -> Interval | None:
    raw = body.get(name)
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise BadRequest(f"{name} must be an object {{from, to}}")
    low = _number(raw["from"], f"{name}.from") if raw.get("from") is not None else None
    high = _number(raw["to"], f"{name}.to") if raw.get("to") is not None else None
    if low is None and high is None:
        raise BadRequest(f"{name} needs from or to")
    if low is not None and high is not None and low > high:
        raise BadRequest(f"{name}.from is after {name}.to")
    return Interval(low, high)


def _start(body: dict[str, Any], now: int) -> Interval:
    raw = body.get("start")
    if not isinstance(raw, dict) or raw.get("from") is None:
        raise BadRequest("start {from, to} (epoch milliseconds) is required")
    low = _number(raw["from"], "start.from")
    high = _number(raw["to"], "start.to") if raw.get("to") is not None else -1.0
    if high == -1:
        high = float(now)
    if low > high:
        raise BadRequest("start.from is after start.to")
    low = low // ROUNDING * ROUNDING
    high = -(-high // ROUNDING) * ROUNDING
    if high - low > MAX_INTERVAL:
        raise BadRequest("start covers more than three months: larger intervals are rejected")
    return Interval(low, high)


def _ids(body: dict[str, Any], name: str) -> frozenset[str] | None:
    raw = body.get(name)
    if raw is None:
        return None
    if isinstance(raw, str | int) and not isinstance(raw, bool):
        raw = [raw]
    if not isinstance(raw, list) or not all(
        isinstance(v, str | int) and not isinstance(v, bool) for v in raw
    ):
        raise BadRequest(f"{name} must be a list of ids")
    return frozenset(str(v) for v in raw)


def _text(body: dict[str, Any], name: str) -> str | None:
    raw = body.get(name)
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise BadRequest(f"{name} must be a string")
    return raw


def _phrase(raw: str | None) -> str | None:
    if raw is None:
        return None
    text = raw.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    return text.casefold() or None


def parse_query(body: Any, now: int) -> Query:
    """The search a request body asks for (:class:`BadRequest` when malformed)."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object of filters")
    query = Query()
    query.conversation_ids = _ids(body, "conversationId")
    if query.conversation_ids is None or "start" in body:
        query.start = _start(body, now)
    query.end = _interval(body, "end")
    query.status = _ids(body, "status")
    if query.status is not None and not query.status <= STATUSES:
        raise BadRequest("status values are OPEN and CLOSE")
    query.skill_ids = _ids(body, "skillIds")
    query.latest_skill_ids = _ids(body, "latestSkillIds")
    query.agent_ids = _ids(body, "agentIds")
    query.latest_agent_ids = _ids(body, "latestAgentIds")
    query.agent_group_ids = _ids(body, "agentGroupIds")
    query.keyword = _phrase(_text(body, "keyword"))
    query.summary = _phrase(_text(body, "summary"))
    query.duration = _interval(body, "duration")
    query.csat = _interval(body, "csat")
    query.mcs = _interval(body, "mcs")
    query.alerted_mcs = _ids(body, "alertedMcsValues")
    query.source = _ids(body, "source")
    query.device = _ids(body, "device")
    query.content_types = _ids(body, "messageContentTypes")
    query.queue_state = _text(body, "latestConversationQueueState")
    if query.queue_state is not None and query.queue_state not in QUEUE_STATES:
        raise BadRequest("latestConversationQueueState is IN_QUEUE or ACTIVE")
    sde = body.get("sdeSearch")
    if sde is not None:
        if not isinstance(sde, dict) or not all(isinstance(v, str) for v in sde.values()):
            raise BadRequest("sdeSearch must be an object of texts")
        query.sde_search = {k: p for k, v in sde.items() if (p := _phrase(v)) is not None}
    query.response_time = _interval(body, "responseTime")
    content = _ids(body, "contentToRetrieve")
    if content is not None:
        unknown = content - CONTENT_TYPES
        if unknown:
            raise BadRequest(f"unknown contentToRetrieve {', '.join(sorted(unknown))}")
        query.content = tuple(sorted(content))
    return query


# ---------------------------------------------------------------- matching


def _agent_keys(world: World, account_id: str, user_id: str) -> set[str]:
    acc = world.accounts[account_id]
    user = acc.users.get(user_id)
    keys = {user_id, acc.old_id(user_id)}
    if user is not None:
        keys.add(user.pid)
    return keys


def _searchable(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str).casefold()


def matches(world: World, recorder: HistoryRecorder, conv: Conversation, q: Query) -> bool:
    """Whether ``conv`` passes every filter of ``q``."""
    acc = world.accounts[conv.account_id]
    now = world.now_ms()
    closed = conv.stage == m.CLOSE
    if q.conversation_ids is not None and conv.conv_id not in q.conversation_ids:
        return False
    if q.start is not None and conv.start_ts not in q.start:
        return False
    if q.end is not None and (not closed or conv.end_ts is None or conv.end_ts not in q.end):
        return False
    if q.status is not None and (m.CLOSE if closed else m.OPEN) not in q.status:
        return False
    trail = recorder.trail(conv)
    if q.skill_ids is not None and not q.skill_ids & ({conv.skill_id} | set(trail.skills)):
        return False
    if q.latest_skill_ids is not None and conv.skill_id not in q.latest_skill_ids:
        return False
    agents = {who[0] for who in trail.joined}
    if q.agent_ids is not None and not any(
        q.agent_ids & _agent_keys(world, conv.account_id, a) for a in agents
    ):
        return False
    latest = latest_agent(trail)
    if q.latest_agent_ids is not None and (
        latest is None or not q.latest_agent_ids & _agent_keys(world, conv.account_id, latest)
    ):
        return False
    if q.agent_group_ids is not None and not (agents and "-1" in q.agent_group_ids):
        return False
    if q.summary is not None:
        return False
    end = conv.end_ts if closed and conv.end_ts is not None else now
    if q.duration is not None and (end - conv.start_ts) / 1000 not in q.duration:
        return False
    rate = conv.csat.get("csatRate") if conv.csat else None
    if q.csat is not None and (not isinstance(rate, int | float) or rate not in q.csat):
        return False
    if q.mcs is not None and 0 not in q.mcs:
        return False
    if q.alerted_mcs is not None and "0" not in q.alerted_mcs:
        return False
    if q.source is not None and source_of(acc, conv) not in q.source:
        return False
    device = str((conv.client_properties or {}).get("deviceFamily") or "NA")
    if q.device is not None and device not in q.device:
        return False
    if q.queue_state is not None:
        assigned = any(p.role == m.ASSIGNED_AGENT and p.state == m.ACTIVE for p in conv.main.participants)
        if ("ACTIVE" if assigned else "IN_QUEUE") != q.queue_state:
            return False
    if q.response_time is not None and world.effective_ttr(conv) not in q.response_time:
        return False
    if q.keyword is not None or q.content_types is not None:
        records = message_records(acc, conv)
        if q.content_types is not None and not any(r["type"] in q.content_types for r in records):
            return False
        if q.keyword is not None and not any(q.keyword in _searchable(r["messageData"]) for r in records):
            return False
    return not q.sde_search or _sde_match(acc.consumers.get(conv.consumer_id), q.sde_search)


def _sde_match(consumer: m.Consumer | None, search: dict[str, str]) -> bool:
    sdes = consumer_sdes(consumer)
    sources = {
        "personalInfo": [s["personal"] for s in sdes if s.get("type") == "personal"],
        "customerInfo": [s["info"] for s in sdes if s.get("type") == "ctmrinfo"],
        "userUpdate": [consumer.profile] if consumer is not None and consumer.profile else [],
    }
    return any(phrase in _searchable(sources.get(kind, [])) for kind, phrase in search.items())


# ---------------------------------------------------------------- the handler


def authenticate(ctx: Context, request: web.Request) -> Actor:
    """The caller: an agent (agentVep bearer) or an app install (AppJWT) of the path's account."""
    account_id = request.match_info["account"]
    token = request.headers.get("Authorization", "").strip()
    if token[:7].lower() == "bearer ":
        token = token[7:].strip()
    if not token:
        raise Unauthorized("Authorization: Bearer <agent bearer or AppJWT> is required")
    acc = ctx.world.accounts.get(account_id)
    if acc is None:
        raise NotFound(f"unknown account {account_id}")
    session = ctx.world.session(token)
    if session is not None:
        if session.account_id != account_id or session.user_id not in acc.users:
            raise Unauthorized(f"the bearer token is not valid for account {account_id}")
        return Actor(account_id, "agent", session.user_id)
    claims = ctx.tokens.verify_app_jwt(token, account_id)
    client_id = str(claims.get("azp") or claims["sub"])
    if client_id not in acc.app_installs:
        raise Unauthorized("the app install of this AppJWT no longer exists")
    return Actor(account_id, "app", client_id)


def _paging(request: web.Request) -> tuple[int, int, list[tuple[str, bool]], bool]:
    """(offset, limit, sort keys as (key, descending), typed SDEs) of the query string."""
    offset = query_int(request, "offset", 0, 0)
    limit = query_int(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    keys: list[tuple[str, bool]] = []
    for part in (request.query.get("sort") or "start:desc").split(","):
        key, _, order = part.strip().partition(":")
        order = order or "asc"
        if key not in ("start", "end") or order not in ("asc", "desc"):
            raise BadRequest("sort is start or end, :asc or :desc (e.g. start:desc)")
        keys.append((key, order == "desc"))
    version = request.query.get("v") or "1"
    if version not in ("1", "2", "1.0", "2.0"):
        raise BadRequest("v is 1 or 2")
    return offset, limit, keys, version.startswith("2")


def _sorted(convs: list[Conversation], keys: list[tuple[str, bool]]) -> list[Conversation]:
    out = sorted(convs, key=lambda c: c.conv_id)
    for key, descending in reversed(keys):
        if key == "start":
            out.sort(key=lambda c: c.start_ts, reverse=descending)
        else:
            # Open conversations have not ended: after every ended one.
            def end_of(c: Conversation) -> float:
                return c.end_ts if c.stage == m.CLOSE and c.end_ts is not None else float("inf")

            out.sort(key=end_of, reverse=descending)
    return out


def _visible(ctx: Context, recorder: HistoryRecorder, actor: Actor, conv: Conversation) -> bool:
    """Managers and apps see every conversation, an agent those it takes or took part in."""
    try:
        ctx.world.authorize_read(actor, conv)
    except (Forbidden, Unauthorized):
        return actor.kind == "agent" and any(who[0] == actor.id for who in recorder.trail(conv).joined)
    return True


def _link(request: web.Request, rel: str, offset: int, limit: int) -> dict[str, str]:
    url = request.url.update_query(offset=str(offset), limit=str(limit))
    return {"rel": rel, "href": str(url)}


async def search(ctx: Context, request: web.Request) -> web.StreamResponse:
    """``POST .../conversations/search`` and ``.../conversations/conversation/search``."""
    actor = authenticate(ctx, request)
    offset, limit, keys, typed = _paging(request)
    raw = await request.read()
    try:
        body = decode_body(raw) if raw.strip() else None
    except FrameError as exc:
        raise BadRequest(f"malformed JSON: {exc}") from None
    by_id = request.path.endswith("/conversation/search")
    if body is None:
        raise BadRequest("a JSON body of filters is required")
    query = parse_query(body, ctx.world.now_ms())
    if by_id and query.conversation_ids is None:
        raise BadRequest("conversationId is required")
    recorder = recorder_of(ctx)
    acc = ctx.world.accounts[actor.account_id]
    found: list[Conversation] = []
    for conv in acc.conversations.values():
        if _visible(ctx, recorder, actor, conv) and matches(ctx.world, recorder, conv, query):
            found.append(conv)
    page = _sorted(found, keys)[offset : offset + limit]
    metadata: dict[str, Any] = {"count": len(found), "self": _link(request, "self", offset, limit)}
    if offset + limit < len(found):
        metadata["next"] = _link(request, "next", offset + limit, limit)
    if offset > 0:
        metadata["prev"] = _link(request, "prev", max(0, offset - limit), limit)
    metadata["shardsStatusResult"] = {"partialResult": False}
    records = [
        conversation_record(ctx.world, recorder, conv, content=query.content, typed_sdes=typed)
        for conv in page
    ]
    return json_response({"_metadata": metadata, "conversationHistoryRecords": records})


def routes(ctx: Context) -> list[Route]:
    """The Messaging Interactions API routes."""
    return [
        ("POST", BASE + "/search", guard(search)),
        ("POST", BASE + "/conversation/search", guard(search)),
    ]
