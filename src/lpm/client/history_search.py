"""Conversation history search: LivePerson's Messaging Interactions API, typed and paged.

:meth:`lpm.BrandRestConnection.search_conversations` searches the account's conversations, open
and closed, with the filters of a :class:`HistoryQuery`, and yields :class:`HistoryPage` objects
page by page (or, with :meth:`HistorySearch.records`, one
:class:`ConversationHistoryRecord` after another)::

    query = HistoryQuery(start_from=time.time() - 3600, keyword="refund", status=["CLOSE"])
    async for page in conn.search_conversations(query, page_size=50):
        print(page.count, "conversations match")
        for record in page.records:
            print(record.conversation_id, [m.text for m in record.message_records])

The request is ``POST https://{msgHist}/messaging_history/api/account/{account}/conversations/
search?offset&limit&sort`` with the filters as its JSON body and the connection's bearer
(developer center, "Messaging Interactions API - Conversations"); the next page is asked for
while the answer's ``_metadata`` has a ``next`` link.  Records are read leniently, as the SDK
reads every notification: every field is optional, unknown fields are ignored, and a section the
search did not ask for (``content_to_retrieve``) is empty or None.  Times come both as text
(``time``) and epoch milliseconds (``time_l``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from lpm.errors import ConfigurationError, ProtocolError

__all__ = [
    "SEARCH_PATH",
    "AgentParticipant",
    "ConsumerParticipant",
    "ConversationHistoryRecord",
    "HistoryInfo",
    "HistoryPage",
    "HistoryQuery",
    "HistorySearch",
    "Interaction",
    "MessageRecord",
    "MessageStatus",
    "SdeEvent",
    "Sdes",
    "Survey",
    "SurveyAnswer",
    "Transfer",
]

#: The search's path on the ``msgHist`` service (``{accountId}`` filled in).
SEARCH_PATH = "/messaging_history/api/account/{accountId}/conversations/search"
#: Conversations per page unless told otherwise, and the most the API serves per page.
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100
#: Safety stop for paging.
MAX_PAGES = 100_000

Id = int | str | None


class _Record(msgspec.Struct, rename="camel", kw_only=True, omit_defaults=True):
    """Base of the history's records: camelCase on the wire, every field optional."""


class HistoryInfo(_Record):
    """A conversation's ``info``: times, status, latest agent and skill, CSAT, device."""

    conversation_id: str = ""
    brand_id: str | None = None
    #: ``OPEN`` or ``CLOSE``.
    status: str | None = None
    start_time: str | None = None
    #: Start time, epoch milliseconds.
    start_time_l: int | None = None
    end_time: str | None = None
    #: End time, epoch milliseconds (-1 while open).
    end_time_l: int | None = None
    #: Milliseconds from start to end (to the search's time while open).
    duration: int | None = None
    close_reason: str | None = None
    close_reason_description: str | None = None
    first_conversation: bool | None = None
    csat_rate: float | None = None
    mcs: int | None = None
    alerted_mcs: int | None = msgspec.field(default=None, name="alertedMCS")
    source: str | None = None
    device: str | None = None
    browser: str | None = None
    operating_system: str | None = None
    latest_skill_id: Id = None
    latest_skill_name: str | None = None
    latest_agent_id: Id = None
    latest_agent_login_name: str | None = None
    latest_agent_nickname: str | None = None
    latest_agent_full_name: str | None = None
    agent_deleted: bool | None = None
    latest_agent_group_id: Id = None
    latest_agent_group_name: str | None = None
    #: ``IN_QUEUE`` or ``ACTIVE``.
    latest_queue_state: str | None = None
    is_partial: bool | None = None


class MessageRecord(_Record):
    """One message of a conversation (``messageRecords``)."""

    #: ``TEXT_PLAIN``, ``HOSTED_FILE``, ``RICH_CONTENT``, ``TEXT_HTML``...
    type: str | None = None
    #: ``{"msg": {"text"}}``, ``{"file": {...}}``, ``{"richContent": {"content"}}``, and
    #: ``quickReplies`` beside them.
    message_data: dict[str, Any] = {}
    message_id: str | None = None
    seq: int | None = None
    dialog_id: str | None = None
    participant_id: str | None = None
    source: str | None = None
    time: str | None = None
    time_l: int | None = None
    device: str | None = None
    #: ``Consumer`` or ``Agent``.
    sent_by: str | None = None
    context_data: dict[str, Any] | None = None

    @property
    def text(self) -> str | None:
        """The text of a text message (None for files and rich content)."""
        msg = self.message_data.get("msg")
        text = msg.get("text") if isinstance(msg, dict) else None
        return text if isinstance(text, str) else None

    @property
    def file(self) -> dict[str, Any] | None:
        """A hosted file's ``{relativePath, fileType, caption?}`` (None for other messages)."""
        file = self.message_data.get("file")
        return file if isinstance(file, dict) else None


class AgentParticipant(_Record):
    """An agent who took part (``agentParticipants`` and its Active / Leave variants)."""

    agent_id: Id = None
    agent_login_name: str | None = None
    agent_nickname: str | None = None
    agent_full_name: str | None = None
    agent_deleted: bool | None = None
    #: When it joined (or, in ``agentParticipantsLeave``, left).
    time: str | None = None
    time_l: int | None = None
    #: Its role in the conversation (``ASSIGNED_AGENT``, ``MANAGER``...).
    role: str | None = None
    user_type: str | None = None
    #: ``Human``, ``Bot`` or ``System``.
    user_type_name: str | None = None
    agent_group_id: Id = None
    agent_group_name: str | None = None
    permission: str | None = None
    dialog_id: str | None = None


class ConsumerParticipant(_Record):
    """The consumer (``consumerParticipants``)."""

    participant_id: str | None = None
    time: str | None = None
    time_l: int | None = None
    join_time: str | None = None
    join_time_l: int | None = None
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    email: str | None = None
    token: str | None = None
    avatar_url: str | None = msgspec.field(default=None, name="avatarURL")
    consumer_name: str | None = None
    dialog_id: str | None = None


class Transfer(_Record):
    """A transfer (reason ``Skill``, ``Agent``, ``Back2Q`` or ``TakeOver``)."""

    time: str | None = None
    time_l: int | None = None
    reason: str | None = None
    by: Id = None
    source_skill_id: Id = None
    source_skill_name: str | None = None
    target_skill_id: Id = None
    target_skill_name: str | None = None
    source_agent_id: Id = None
    source_agent_login_name: str | None = None
    source_agent_nickname: str | None = None
    source_agent_full_name: str | None = None
    assigned_agent_id: Id = None
    assigned_agent_login_name: str | None = None
    assigned_agent_nickname: str | None = None
    assigned_agent_full_name: str | None = None
    context_data: dict[str, Any] | None = None


class Interaction(_Record):
    """An assignment of the conversation to an agent (``interactions``)."""

    assigned_agent_id: Id = None
    assigned_agent_login_name: str | None = None
    assigned_agent_nickname: str | None = None
    assigned_agent_full_name: str | None = None
    interaction_time: str | None = None
    interaction_time_l: int | None = None
    interactive_sequence: int | None = None
    dialog_id: str | None = None


class MessageStatus(_Record):
    """A message's delivery status as one participant reported it (``messageStatuses``)."""

    message_id: str | None = None
    seq: int | None = None
    time: str | None = None
    time_l: int | None = None
    participant_id: str | None = None
    #: ``Consumer`` or ``Agent``.
    participant_type: str | None = None
    #: ``ACCEPT``, ``READ``...
    message_delivery_status: str | None = None
    dialog_id: str | None = None


class SurveyAnswer(_Record):
    """One question of a survey and its answer."""

    question: str | None = None
    answer: str | None = None


class Survey(_Record):
    """A survey of the conversation (``conversationSurveys``)."""

    survey_type: str | None = None
    survey_status: str | None = None
    survey_data: list[SurveyAnswer] = []


class SdeEvent(_Record):
    """One engagement attribute (SDE) event: its ``sde_type`` and the payload of that type (e.g.
    ``customer_info`` for ``CUSTOMER_INFO``, ``personal_info`` for ``PERSONAL_INFO``)."""

    sde_type: str | None = None
    server_time_stamp: Id = None
    customer_info: dict[str, Any] | None = None
    personal_info: dict[str, Any] | None = None
    user_update: dict[str, Any] | None = None
    marketing_campaign_info: dict[str, Any] | None = None
    lead: dict[str, Any] | None = None
    purchase: dict[str, Any] | None = None
    viewed_product: dict[str, Any] | None = None
    cart_status: dict[str, Any] | None = None
    service_activity: dict[str, Any] | None = None
    visitor_error: dict[str, Any] | None = None
    search_content: dict[str, Any] | None = None


class Sdes(_Record):
    """``sdes``: the engagement attributes the brand reported."""

    events: list[SdeEvent] = []


class ConversationHistoryRecord(_Record):
    """One conversation of a search (``conversationHistoryRecords``)."""

    info: HistoryInfo = msgspec.field(default_factory=HistoryInfo)
    campaign: dict[str, Any] | None = None
    message_records: list[MessageRecord] = []
    agent_participants: list[AgentParticipant] = []
    agent_participants_active: list[AgentParticipant] = []
    agent_participants_leave: list[AgentParticipant] = []
    consumer_participants: list[ConsumerParticipant] = []
    #: The singular spelling an early example of the documentation uses.
    consumer_participant: list[ConsumerParticipant] = []
    transfers: list[Transfer] = []
    interactions: list[Interaction] = []
    message_scores: list[dict[str, Any]] = []
    message_statuses: list[MessageStatus] = []
    conversation_surveys: list[Survey] = []
    co_browse_sessions: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None
    sdes: Sdes | None = None
    un_auth_sdes: Sdes | None = msgspec.field(default=None, name="unAuthSdes")
    response_time: dict[str, Any] | None = None
    monitoring: dict[str, Any] | None = None

    @property
    def conversation_id(self) -> str:
        """``info.conversation_id``."""
        return self.info.conversation_id

    @property
    def consumers(self) -> list[ConsumerParticipant]:
        """The consumer participants under either spelling."""
        return self.consumer_participants or self.consumer_participant


# ---------------------------------------------------------------- the query


def _epoch_ms(value: int | float | dt.datetime, what: str) -> int:
    """Epoch milliseconds of a datetime or a number of **seconds** (``time.time()``)."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ConfigurationError(f"{what} must be an aware datetime (with a tzinfo)")
        return int(value.timestamp() * 1000)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"{what} must be a datetime or epoch seconds, got {value!r}")
    return int(value * 1000)


def _ids(values: Sequence[str | int] | str | None, what: str) -> list[str] | None:
    if values is None:
        return None
    if isinstance(values, str):
        return [values]
    out = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise ConfigurationError(f"{what} must hold ids (strings or numbers), got {value!r}")
        out.append(str(value))
    return out


@dataclass(slots=True)
class HistoryQuery:
    """The filters of a conversation history search.

    Times are aware :class:`datetime.datetime` objects or epoch **seconds** (the SDK's unit; the
    wire's milliseconds are made here).  ``start_from`` is required (the API rounds the start
    range to 10 minutes and serves at most three months at once); ``start_to`` None means now.
    Every other filter is optional; lists are ORed and filters ANDed.  ``extra`` adds any other
    documented filter as its wire JSON (e.g. ``{"csat": {"from": 4, "to": 5}}``).
    """

    start_from: int | float | dt.datetime
    start_to: int | float | dt.datetime | None = None
    end_from: int | float | dt.datetime | None = None
    end_to: int | float | dt.datetime | None = None
    #: ``OPEN`` and/or ``CLOSE``.
    status: Sequence[str] | None = None
    conversation_ids: Sequence[str] | str | None = None
    #: Any skill through the conversation's life.
    skill_ids: Sequence[str | int] | None = None
    latest_skill_ids: Sequence[str | int] | None = None
    #: Any agent that took part.
    agent_ids: Sequence[str | int] | None = None
    latest_agent_ids: Sequence[str | int] | None = None
    #: A word or phrase in the messages.
    keyword: str | None = None
    #: ``{"personalInfo": ..., "customerInfo": ..., "userUpdate": ...}``.
    sde_search: Mapping[str, str] | None = None
    #: The record sections wanted (``messageRecords``, ``agentParticipants``, ``sdes``...).
    content_to_retrieve: Sequence[str] | None = None
    #: ``start:desc``, ``start:asc``, ``end:desc`` or ``end:asc``.
    sort: str = "start:desc"
    extra: Mapping[str, Any] | None = field(default=None)

    def body(self) -> dict[str, Any]:
        """The request's JSON body (:class:`~lpm.errors.ConfigurationError` for a bad value)."""
        start: dict[str, Any] = {"from": _epoch_ms(self.start_from, "start_from")}
        start["to"] = -1 if self.start_to is None else _epoch_ms(self.start_to, "start_to")
        body: dict[str, Any] = {"start": start}
        if self.end_from is not None or self.end_to is not None:
            end: dict[str, Any] = {}
            if self.end_from is not None:
                end["from"] = _epoch_ms(self.end_from, "end_from")
            if self.end_to is not None:
                end["to"] = _epoch_ms(self.end_to, "end_to")
            body["end"] = end
        lists = (
            ("status", self.status),
            ("skillIds", self.skill_ids),
            ("latestSkillIds", self.latest_skill_ids),
            ("agentIds", self.agent_ids),
            ("latestAgentIds", self.latest_agent_ids),
            ("contentToRetrieve", self.content_to_retrieve),
        )
        for name, values in lists:
            ids = _ids(values, name)
            if ids is not None:
                body[name] = ids
        conversations = _ids(self.conversation_ids, "conversation_ids")
        if conversations is not None:
            body["conversationId"] = conversations[0] if len(conversations) == 1 else conversations
        if self.keyword is not None:
            body["keyword"] = self.keyword
        if self.sde_search is not None:
            body["sdeSearch"] = dict(self.sde_search)
        if self.extra:
            body.update(self.extra)
        return body


# ---------------------------------------------------------------- paging


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """One page of a search: its records and where it stands."""

    records: list[ConversationHistoryRecord]
    #: How many conversations match the search (every page).
    count: int
    offset: int
    #: The offset of the next page (None on the last one).
    next_offset: int | None
    #: The answer's ``_metadata`` as sent (links, shards status).
    metadata: dict[str, Any]


#: Fetches one page: ``(body, query parameters) -> the answer's JSON``.
PageFetcher = Callable[[dict[str, Any], dict[str, str]], Awaitable[Any]]


def decode_page(answer: Any, offset: int) -> HistoryPage:
    """A search answer as a :class:`HistoryPage` (:class:`~lpm.errors.ProtocolError` when it is not
    one)."""
    if not isinstance(answer, Mapping):
        raise ProtocolError("conversation history search answered without an object", frame=answer)
    metadata = answer.get("_metadata")
    metadata = dict(metadata) if isinstance(metadata, Mapping) else {}
    raw = answer.get("conversationHistoryRecords") or []
    try:
        records = msgspec.convert(raw, list[ConversationHistoryRecord], strict=False)
    except msgspec.ValidationError as exc:
        raise ProtocolError(f"unexpected conversation history record: {exc}", frame=answer) from None
    count = metadata.get("count")
    count = count if isinstance(count, int) and not isinstance(count, bool) else len(records)
    has_next = isinstance(metadata.get("next"), Mapping) and bool(records)
    next_offset = offset + len(records) if has_next else None
    return HistoryPage(records, count, offset, next_offset, metadata)


class HistorySearch:
    """A conversation history search: an async iterator of :class:`HistoryPage` (each page is
    fetched when the previous one has been consumed), or of records with :meth:`records`."""

    def __init__(
        self, fetch: PageFetcher, query: HistoryQuery, *, page_size: int = DEFAULT_PAGE_SIZE
    ) -> None:
        valid = isinstance(page_size, int) and not isinstance(page_size, bool)
        if not valid or not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ConfigurationError(
                f"page_size must be an integer from 1 to {MAX_PAGE_SIZE}, got {page_size!r}"
            )
        if not isinstance(query, HistoryQuery):
            raise ConfigurationError(f"query must be a HistoryQuery, got {type(query).__name__}")
        self.query = query
        self.page_size = page_size
        self._body = query.body()
        self._fetch = fetch

    def __aiter__(self) -> AsyncIterator[HistoryPage]:
        return self.pages()

    async def pages(self) -> AsyncIterator[HistoryPage]:
        """Every page, first to last."""
        offset = 0
        for _ in range(MAX_PAGES):
            params = {"offset": str(offset), "limit": str(self.page_size), "sort": self.query.sort}
            page = decode_page(await self._fetch(self._body, params), offset)
            yield page
            if page.next_offset is None:
                return
            offset = page.next_offset

    async def records(self) -> AsyncIterator[ConversationHistoryRecord]:
        """Every matching conversation's record, page after page."""
        async for page in self.pages():
            for record in page.records:
                yield record
