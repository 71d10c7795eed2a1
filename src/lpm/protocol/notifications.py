"""Typed, dialect-neutral views of UMS notifications.

The brand dialect (v2.1) sends raw shapes — ``participants``/``participantsPId`` as role -> id-list
maps with agents named ``{account}.{userId}``, one event per ``.ams.ms.OnlineEventDistribution``
body — and the consumer dialect (v3) sends the public shapes.  The decoders here turn either into
the same structs, so the SDK's object model never looks at a dialect:

* a participant has ``user_id`` (the PID for agents, the consumer id for consumers) and
  ``agent_id`` (the old id ``{account}.{userId}`` on the brand dialect, else None);
* a messaging event has ``originator_id`` (PID / consumer id) and ``originator_agent_id``.

Unknown fields are ignored and enum-like values stay plain strings (an unknown value from the
server never fails decoding).  A body that is not the documented shape raises
:class:`NotificationError` with a message naming what is wrong.

Shapes LivePerson publishes besides the current ones are read too (issue 14; the frames are in
``tests/fixtures/frames/published/``):

* the consumer CSAT as ``conversationDetails.csat`` (``{csatRate, csatResolutionConfirmation,
  status}``), the brand's as a top-level ``csatRate``;
* conversation changes without ``stage`` (older frames: ``stage`` is then ``state``), without a
  ``dialogs`` array (the MAIN dialog then has no participants), with ``participantsPId`` maps and
  ``result.lastUpdateTime`` instead of ``metaDataLastUpdateTs``;
* dialog participants without ``state`` (the consumer dialect never sends it: ACTIVE);
* the earlier routing-task notification, whose rings carry ``convId``, ``consumerId`` and
  ``skillId`` and whose result has no ``conversationId``.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterator
from collections.abc import Sequence as ReadOnlyList
from typing import Annotated, Any, overload

import msgspec

#: The largest sequence a messaging event may carry.  UMS numbers each dialog's events from 0
#: with a 32-bit counter; a larger value is a protocol error (accepted, it would put every later
#: message of the dialog "in the past" and silence them).
MAX_SEQUENCE = 2**31 - 1
Sequence = Annotated[int, msgspec.Meta(ge=0, le=MAX_SEQUENCE)]


class NotificationError(ValueError):
    """A notification body that does not have the documented shape."""


# ---------------------------------------------------------------- normalized structs
#
# Every struct here is ``gc=False``: plain data decoded from the wire, which never refers back to
# anything holding it (no reference cycle to collect), so the cyclic garbage collector need not
# track the several of them each notification makes (fewer, shorter collections).


class ParticipantInfo(msgspec.Struct, frozen=True, gc=False):
    user_id: str
    role: str
    agent_id: str | None = None
    state: str = "ACTIVE"


class DialogInfo(msgspec.Struct, gc=False):
    dialog_id: str
    dialog_type: str
    channel_type: str
    state: str
    participants: list[ParticipantInfo]
    creation_ts: int | None = None
    end_ts: int | None = None
    last_update_ts: int | None = None
    closed_by: str | None = None
    closed_cause: str | None = None
    meta_data: dict[str, Any] | None = None


class MessagingEventInfo(msgspec.Struct, gc=False):
    """One messaging event (a ``changes[]`` entry or an OnlineEventDistribution body)."""

    dialog_id: str
    event: dict[str, Any]
    originator_id: str | None
    originator_role: str | None = None
    originator_agent_id: str | None = None
    sequence: int | None = None
    conversation_id: str | None = None
    server_ts: int | None = None
    audience: str = "ALL"
    metadata: list[Any] | None = None
    client_properties: dict[str, Any] | None = None

    @property
    def event_type(self) -> str:
        return str(self.event.get("type", ""))


class ConversationInfo(msgspec.Struct, gc=False):
    """The complete state of a conversation as one ExConversation change carries it."""

    conversation_id: str
    dialogs: list[DialogInfo]
    participants: list[ParticipantInfo]
    account_id: str | None = None
    skill_id: str | None = None
    state: str | None = None
    stage: str | None = None
    close_reason: str | None = None
    start_ts: int | None = None
    end_ts: int | None = None
    last_update_ts: int | None = None
    first_conversation: bool | None = None
    effective_ttr: int | None = None
    ttr_type: str | None = None
    ttr_value: int | None = None
    manual_ettr: int | None = None
    delay: dict[str, Any] | None = None
    #: The CSAT rate (1-5; 0 or None: not rated), from ``csat.csatRate`` or ``csatRate``.
    csat_rate: int | None = None
    #: The consumer's CSAT as sent (``{csatRate, csatResolutionConfirmation, status}``), if any.
    csat: dict[str, Any] | None = None
    note: str | None = None
    group_id: str | None = None
    context: dict[str, Any] | None = None
    campaign_info: dict[str, Any] | None = None
    handler_account_id: str | None = None
    handler_skill_id: str | None = None
    unread: dict[str, int] | None = None
    last_content_event: MessagingEventInfo | None = None
    #: The ``result`` exactly as received, as JSON (see :attr:`raw`).
    raw_json: msgspec.Raw | None = None

    @property
    def raw(self) -> dict[str, Any] | None:
        """The ``result`` exactly as received, every field (known to the decoder or not);
        decoded from :attr:`raw_json` on each read."""
        raw = self.raw_json
        return None if raw is None else _json_decode(raw)


class ConversationChange(msgspec.Struct, gc=False):
    type: str
    conversation: ConversationInfo
    #: The same number for consecutive live states of a conversation whose details (all but
    #: the update time, the unread counts, the effective TTR and the last content event) did
    #: not change; None when not known (see :func:`_remembered_change`).
    details_token: int | None = None

    @property
    def conversation_id(self) -> str:
        """The conversation's id."""
        return self.conversation.conversation_id

    @property
    def last_update_ts(self) -> int | None:
        """When the conversation last changed (epoch ms), if the change says."""
        return self.conversation.last_update_ts

    def digest(self) -> bytes:
        """:func:`state_digest` of the conversation's state."""
        return state_digest(self.conversation)


def state_digest(info: ConversationInfo | msgspec.Raw) -> bytes:
    """A digest of a conversation's state (its ``result`` as received, when known): equal for
    equal states, so that a notification repeating the state last applied is recognised.
    SHA-256 (hardware-assisted on current CPUs: the fastest of hashlib's here), 128 bits kept,
    as bytes (a hex string would cost a third more on every notification)."""
    if type(info) is not msgspec.Raw:
        # The result as received when available: it holds every field UMS sent, known to the
        # decoder or not, and hashing its JSON as it is costs no re-encoding.
        raw = info.raw_json
        payload: Any = raw if raw is not None else msgspec.json.encode(info, order="sorted")
    else:
        payload = info
    return hashlib.sha256(payload).digest()[:16]


class RingInfo(msgspec.Struct, gc=False):
    ring_id: str
    state: str
    expiration_ms: int | None = None
    expiration_ts: int | None = None
    weight: int | None = None


class RoutingTaskInfo(msgspec.Struct, gc=False):
    conversation_id: str
    rings: list[RingInfo]
    consumer_id: str | None = None
    skill_id: str | None = None
    task_completed: bool = False
    account_id: str | None = None


class AgentStateInfo(msgspec.Struct, gc=False):
    availability: str
    agent_id: str | None = None
    channels: list[str] | None = None
    description: str | None = None


# ---------------------------------------------------------------- wire structs (both dialects)


class _WireParticipantDetail(msgspec.Struct, gc=False):
    id: str
    role: str
    state: str = "ACTIVE"


class _WireDialog(msgspec.Struct, gc=False):
    dialogId: str
    # A list[_WireParticipantDetail], read by _dialog_members (see _conversation_participants).
    participantsDetails: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    dialogType: str = "MAIN"
    channelType: str = "MESSAGING"
    state: str = "OPEN"
    creationTs: int | None = None
    endTs: int | None = None
    metaDataLastUpdateTs: int | None = None
    closedBy: str | None = None
    closedCause: str | None = None
    metaData: dict[str, Any] | None = None
    # COBROWSE dialogs list bare ids instead of participantsDetails
    participants: list[Any] | None = None


class _WireTTR(msgspec.Struct, gc=False):
    ttrType: str | None = None
    value: int | None = None


class _WireHandler(msgspec.Struct, gc=False):
    accountId: str | None = None
    skillId: str | None = None


class _WireV3Participant(msgspec.Struct, gc=False):
    id: str
    role: str


class _WireDetails(msgspec.Struct, gc=False):
    # Any / dict[str, list[str]] | None, as JSON: read by _conversation_participants, which
    # remembers what recent ones meant (they repeat in every notification of a conversation).
    participants: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    participantsPId: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    dialogs: list[_WireDialog] = []
    skillId: str | int | None = None
    brandId: str | None = None
    state: str | None = None
    stage: str | None = None
    closeReason: str | None = None
    startTs: int | None = None
    endTs: int | None = None
    metaDataLastUpdateTs: int | None = None
    firstConversation: bool | None = None
    csatRate: int | None = None
    csat: dict[str, Any] | None = None
    ttr: _WireTTR | None = None
    delay: dict[str, Any] | None = None
    manualETTR: int | None = None
    note: str | None = None
    groupId: str | int | None = None
    context: dict[str, Any] | None = None
    campaignInfo: dict[str, Any] | None = None
    conversationHandlerDetails: _WireHandler | None = None


class _WireEvent(msgspec.Struct, gc=False):
    event: dict[str, Any]
    # Optional per change: a MessagingEventNotification may carry it once, on the body.
    dialogId: str = ""
    sequence: Sequence | None = None
    originatorId: str | None = None
    originatorPId: str | None = None
    originatorMetadata: dict[str, Any] | None = None
    originatorClientProperties: dict[str, Any] | None = None
    serverTimestamp: int | None = None
    conversationId: str | None = None
    messageAudience: str | None = None
    metadata: list[Any] | None = None


class _WireSingleEvent(_WireEvent):
    """An event body that may turn out to be a ``{changes}`` body (then decoded as one)."""

    changes: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


class _WireResult(msgspec.Struct, gc=False):
    convId: str
    conversationDetails: _WireDetails | None = None
    effectiveTTR: int | None = None
    # Older frames stamp the result instead of conversationDetails.metaDataLastUpdateTs.
    lastUpdateTime: int | None = None
    numberOfunreadMessages: dict[str, int] | None = None
    lastContentEventNotification: _WireEvent | None = None


class _WireChange(msgspec.Struct, gc=False):
    type: str
    result: _WireResult


class _WireExConversationBody(msgspec.Struct, gc=False):
    changes: list[_WireChange]
    subscriptionId: str | None = None


class _WireRawChange(msgspec.Struct, gc=False):
    type: str
    # Each result is decoded on its own: its JSON is the conversation's state as received (the
    # digest a conversation compares, ConversationInfo.raw).
    result: msgspec.Raw


class _WireRawExConversationBody(msgspec.Struct, gc=False):
    changes: list[_WireRawChange]
    subscriptionId: str | None = None


class _WireMessagingBody(msgspec.Struct, gc=False):
    changes: list[_WireEvent]
    dialogId: str | None = None


class _WireRing(msgspec.Struct, gc=False):
    ringId: str
    ringState: str
    ringExpiration: int | None = None
    ringExpirationTs: int | None = None
    weight: int | None = None
    # The earlier notification names the conversation on each ring only.
    convId: str | None = None
    consumerId: str | None = None
    skillId: str | int | None = None


class _WireRoutingResult(msgspec.Struct, gc=False):
    conversationId: str | None = None
    ringsDetails: list[_WireRing] = []
    consumerId: str | None = None
    skillId: str | int | None = None
    taskCompleted: bool = False
    brandId: str | None = None


class _WireRoutingChange(msgspec.Struct, gc=False):
    type: str
    result: _WireRoutingResult


class _WireRoutingBody(msgspec.Struct, gc=False):
    changes: list[_WireRoutingChange]
    subscriptionId: str | None = None


class _WireAgentStateResult(msgspec.Struct, gc=False):
    availability: str
    agentUserId: str | None = None
    channels: list[str] | None = None
    description: str | None = None


class _WireAgentStateChange(msgspec.Struct, gc=False):
    type: str
    result: _WireAgentStateResult


class _WireAgentStateBody(msgspec.Struct, gc=False):
    changes: list[_WireAgentStateChange]
    subscriptionId: str | None = None


_json_decode = msgspec.json.Decoder().decode
_json_encode = msgspec.json.Encoder().encode
_DECODERS: dict[Any, msgspec.json.Decoder[Any]] = {}


def _convert(raw: Any, kind: Any, what: str) -> Any:
    """``raw`` (Python objects, or JSON as :class:`msgspec.Raw`: a socket's notification body)
    as ``kind``, with the same lax rules either way (``strict=False``: numbers in strings...)."""
    if type(raw) is msgspec.Raw:
        decoder = _DECODERS.get(kind)
        if decoder is None:
            decoder = _DECODERS[kind] = msgspec.json.Decoder(kind, strict=False)
        try:
            return decoder.decode(raw)
        except msgspec.DecodeError as exc:  # ValidationError included
            raise NotificationError(f"invalid {what}: {exc}") from None
    try:
        return msgspec.convert(raw, kind, strict=False)
    except msgspec.ValidationError as exc:
        raise NotificationError(f"invalid {what}: {exc}") from None


def as_json(body: Any) -> msgspec.Raw:
    """A body as JSON (:class:`msgspec.Raw`), as a socket delivers it (a body that came as
    Python objects, from webhooks or a test, is encoded)."""
    if type(body) is msgspec.Raw:
        return body
    return msgspec.Raw(_json_encode(body))


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


# ---------------------------------------------------------------- normalization


def _event(wire: _WireEvent, brand: bool) -> MessagingEventInfo:
    meta = wire.originatorMetadata
    originator_id = wire.originatorId
    if brand:
        # Raw brand events: originatorId is the old id for agents; originatorPId the PID.
        originator = wire.originatorPId or (meta.get("id") if meta else None) or originator_id
        agent_id = originator_id if originator_id != originator else None
    else:
        originator = originator_id or (meta.get("id") if meta else None)
        agent_id = None
    # Positional: the fields of MessagingEventInfo in order (this runs for every event).
    return MessagingEventInfo(
        wire.dialogId,
        wire.event,
        originator,
        meta.get("role") if meta else None,
        agent_id,
        wire.sequence,
        wire.conversationId,
        wire.serverTimestamp,
        wire.messageAudience or "ALL",
        wire.metadata,
        wire.originatorClientProperties or (meta.get("clientProperties") if meta else None),
    )


def _brand_id_map(participants: Any, pids: Any) -> dict[str, str]:
    """Old id -> PID, pairing ``participants[role][i]`` with ``participantsPId[role][i]``."""
    mapping: dict[str, str] = {}
    old = participants if isinstance(participants, dict) else {}
    pids = pids if isinstance(pids, dict) else {}
    for role, ids in old.items():
        role_pids = pids.get(role) or []
        if not isinstance(ids or [], list) or not isinstance(role_pids, list):
            raise NotificationError(f"the participants of role {str(role)[:40]!r} are not a list")
        if ids:
            for old_id, pid in zip(ids, role_pids, strict=False):
                mapping[str(old_id)] = pid
    return mapping


def _participant(raw_id: str, role: str, state: str, id_map: dict[str, str] | None) -> ParticipantInfo:
    # Positional: user_id, role, agent_id, state.
    if id_map is None or role == "CONSUMER":
        return ParticipantInfo(raw_id, role, None, state)
    pid = id_map.get(raw_id)
    if pid is None and "." not in raw_id:
        # Already a PID (e.g. SUGGESTED agents missing from participantsPId keep the raw id).
        return ParticipantInfo(raw_id, role, None, state)
    return ParticipantInfo(pid or raw_id, role, raw_id, state)


_BODY = "ExConversationChangeNotification body"
_pids_decoder = msgspec.json.Decoder(dict[str, list[str]] | None, strict=False)
_details_decoder = msgspec.json.Decoder(list[_WireParticipantDetail], strict=False)
#: Recent participant lists (conversation and dialog), by their JSON: every notification of a
#: conversation repeats them, and what they mean (PIDs paired with old ids) is worked out once.
#: ParticipantInfo is frozen, so the same objects may be handed out again (in new lists).
_PARTICIPANTS: dict[tuple[bytes, bytes, bool], tuple[tuple[ParticipantInfo, ...], dict[str, str] | None]] = {}
_MEMBERS: dict[tuple[bytes, tuple[bytes, bytes, bool]], tuple[ParticipantInfo, ...]] = {}
#: Entries kept at most (each cache is emptied when full: the recent ones come back at once);
#: about 2.5 KB a conversation for both.  Only notifications of a few changes are remembered (the
#: live updates that repeat them): a snapshot's thousands of conversations would only churn them.
MAX_REMEMBERED_PARTICIPANTS = 1024
REMEMBERED_UP_TO_CHANGES = 4


def _where(index: int | None) -> str:
    """Where the ``index``-th change's ``conversationDetails`` are in the body (None: a lone
    result), for error messages (made only then: this is per change)."""
    return ("$" if index is None else f"$.changes[{index}].result") + ".conversationDetails"


def _decode_part(raw: msgspec.Raw, decoder: msgspec.json.Decoder[Any], index: int | None, part: str) -> Any:
    """A part of a conversation change left as JSON, decoded; errors name it (``part``, below the
    change's ``conversationDetails``) as if the whole body had been decoded in one piece."""
    try:
        return decoder.decode(raw)
    except msgspec.DecodeError as exc:
        path = _where(index) + part
        detail = str(exc)
        detail = detail.replace("at `$", f"at `{path}", 1) if "at `$" in detail else f"{detail} - at `{path}`"
        raise NotificationError(f"invalid {_BODY}: {detail}") from None


def _conversation_participants(
    details: _WireDetails, brand: bool, index: int | None, remember: bool
) -> tuple[list[ParticipantInfo], dict[str, str] | None, tuple[bytes, bytes, bool]]:
    """(participants, brand old id -> PID map, cache key) of a conversation's details
    (``remember``: keep them for the next notification of the conversation)."""
    raw, raw_pids = details.participants, details.participantsPId
    key = (
        b"" if raw is msgspec.UNSET else bytes(raw),
        b"" if raw_pids is msgspec.UNSET else bytes(raw_pids),
        brand,
    )
    known = _PARTICIPANTS.get(key)
    if known is None:
        value = None if raw is msgspec.UNSET else _json_decode(raw)
        pids = (
            None
            if raw_pids is msgspec.UNSET
            else _decode_part(raw_pids, _pids_decoder, index, ".participantsPId")
        )
        known = _normalize_participants(value, pids, brand)
        if remember:
            if len(_PARTICIPANTS) >= MAX_REMEMBERED_PARTICIPANTS:
                _PARTICIPANTS.clear()
            _PARTICIPANTS[key] = known
    return list(known[0]), known[1], key


def _normalize_participants(
    value: Any, pids: dict[str, list[str]] | None, brand: bool
) -> tuple[tuple[ParticipantInfo, ...], dict[str, str] | None]:
    if brand:
        id_map = _brand_id_map(value, pids)
        participants = []
        old = value if isinstance(value, dict) else {}
        for role, ids in old.items():
            for raw_id in _role_ids(ids, role):
                participants.append(_participant(str(raw_id), role, "ACTIVE", id_map))
        return tuple(participants), id_map
    if isinstance(value, list):
        wire_participants = _convert(value, list[_WireV3Participant], "participants")
        return tuple(ParticipantInfo(p.id, p.role) for p in wire_participants), None
    # Older v3 traces: a role -> ids map (``participantsPId``, or ``participants`` as a map).
    role_map = pids or (value if isinstance(value, dict) else {})
    mapped = tuple(
        ParticipantInfo(str(pid), role) for role, ids in role_map.items() for pid in _role_ids(ids, role)
    )
    return mapped, None


def _role_ids(ids: Any, role: str) -> list[Any]:
    """The ids of one role in a role -> ids map (none for null); anything but a list is a
    :class:`NotificationError` (a fuzzed ``true`` used to escape as a ``TypeError``)."""
    if ids is None:
        return []
    if not isinstance(ids, list):
        raise NotificationError(f"invalid participants: the ids of role {role!r} are not a list")
    return ids


def _dialog_members(
    raw: msgspec.Raw | msgspec.UnsetType,
    id_map: dict[str, str] | None,
    key: tuple[bytes, bytes, bool],
    index: int | None,
    dialog: int,
    remember: bool,
) -> list[ParticipantInfo]:
    """A dialog's participants (``participantsDetails``), with the conversation's id map."""
    if raw is msgspec.UNSET:
        return []
    member_key = (bytes(raw), key)
    known = _MEMBERS.get(member_key)
    if known is None:
        wire = _decode_part(raw, _details_decoder, index, f".dialogs[{dialog}].participantsDetails")
        known = tuple(_participant(p.id, p.role, p.state, id_map) for p in wire)
        if not remember:
            return list(known)
        if len(_MEMBERS) >= MAX_REMEMBERED_PARTICIPANTS:
            _MEMBERS.clear()
        _MEMBERS[member_key] = known
    members = RememberedParticipants(known)
    members.source = known
    return members


class RememberedParticipants(list[ParticipantInfo]):
    """A dialog's participants as a notification lists them, and ``source``: the remembered
    tuple they were copied from (the same object for every notification listing the same
    participants), which lets a dialog see at once that they did not change."""

    __slots__ = ("source",)

    source: tuple[ParticipantInfo, ...]


def _conversation(
    result: _WireResult, raw: msgspec.Raw | None, brand: bool, index: int | None = None, remember: bool = True
) -> ConversationInfo:
    details = result.conversationDetails
    if details is None:
        raise NotificationError(f"conversation {result.convId} is missing conversationDetails")
    participants, id_map, key = _conversation_participants(details, brand, index, remember)
    dialogs = []
    for j, d in enumerate(details.dialogs):
        # (A COBROWSE dialog lists bare ids in ``participants``, no participantsDetails: none.)
        members = _dialog_members(d.participantsDetails, id_map, key, index, j, remember)
        # Positional: the fields of DialogInfo in order.
        dialogs.append(
            DialogInfo(
                d.dialogId,
                d.dialogType,
                d.channelType,
                d.state,
                members,
                d.creationTs,
                d.endTs,
                d.metaDataLastUpdateTs,
                d.closedBy,
                d.closedCause,
                d.metaData,
            )
        )
    handler = details.conversationHandlerDetails
    csat = details.csat if isinstance(details.csat, dict) else None
    csat_rate = details.csatRate
    if csat is not None and isinstance(csat.get("csatRate"), int) and not isinstance(csat["csatRate"], bool):
        csat_rate = csat["csatRate"]
    last_update = details.metaDataLastUpdateTs
    if last_update is None:
        last_update = result.lastUpdateTime
    ttr = details.ttr
    last_event = result.lastContentEventNotification
    skill_id = details.skillId
    group_id = details.groupId
    # Positional, in the order of ConversationInfo's fields (test_golden_frames pins the mapping).
    return ConversationInfo(
        result.convId,
        dialogs,
        participants,
        details.brandId,
        skill_id if skill_id is None or type(skill_id) is str else str(skill_id),
        details.state,
        # ``stage`` came after ``state``: without it, ``state`` was the whole conversation's.
        details.stage if details.stage is not None else details.state,
        details.closeReason,
        details.startTs,
        details.endTs,
        last_update,
        details.firstConversation,
        result.effectiveTTR,
        ttr.ttrType if ttr else None,
        ttr.value if ttr else None,
        details.manualETTR,
        details.delay,
        csat_rate,
        csat,
        details.note,
        group_id if group_id is None or type(group_id) is str else str(group_id),
        details.context,
        details.campaignInfo,
        handler.accountId if handler else None,
        _str(handler.skillId) if handler else None,
        result.numberOfunreadMessages,
        _event(last_event, brand) if last_event else None,
        raw,
    )


def decode_conversation_changes(body: Any, *, brand: bool) -> tuple[str | None, list[ConversationChange]]:
    """(subscriptionId, changes) of an ExConversationChangeNotification body of either dialect
    (Python objects, or JSON as :class:`msgspec.Raw`)."""
    wire = _convert(as_json(body), _WireRawExConversationBody, _BODY)
    return wire.subscriptionId, [
        change.materialize() if isinstance(change, LiveConversationChange) else change
        for change in _decoded_changes(wire.changes, brand)
    ]


def decode_conversation_changes_lazily(
    body: Any, *, brand: bool
) -> tuple[str | None, ReadOnlyList[AnyConversationChange]]:
    """:func:`decode_conversation_changes` for whoever applies the changes one after the other:
    a notification of many changes (a snapshot: thousands) comes as :class:`ConversationChanges`,
    each change decoded when it is read, so that they are not all built at once.  Only the
    envelope is checked here: a change that is not the documented shape raises
    :class:`NotificationError` when it is read.  A live update repeating the details its
    conversation had comes as a :class:`LiveConversationChange`."""
    wire = _convert(as_json(body), _WireRawExConversationBody, _BODY)
    if len(wire.changes) <= REMEMBERED_UP_TO_CHANGES:
        return wire.subscriptionId, _decoded_changes(wire.changes, brand)
    return wire.subscriptionId, ConversationChanges(wire.changes, brand)


def _decoded_changes(
    changes: list[_WireRawChange], brand: bool
) -> list[ConversationChange | LiveConversationChange]:
    """Every change decoded now (the participants of a few are remembered for the next ones,
    and so are the details of their conversations: see :func:`_remembered_change`)."""
    if len(changes) > REMEMBERED_UP_TO_CHANGES:
        return [
            ConversationChange(change.type, _decode_result(change.result, brand, i, False))
            for i, change in enumerate(changes)
        ]
    return [_remembered_change(change.type, change.result, brand, i) for i, change in enumerate(changes)]


#: Numbers the states of conversations' details (see :attr:`ConversationChange.details_token`).
_details_tokens = itertools.count(1)
#: Conversation id and dialect -> (the details last decoded, the conversation built from them,
#: their token); emptied when full, like the participants' caches.
_DETAILS: dict[tuple[str, bool], tuple[_WireDetails, ConversationInfo, int]] = {}


def _remembered_change(
    type_: str, raw: msgspec.Raw, brand: bool, index: int
) -> ConversationChange | LiveConversationChange:
    """A change of a live update, which mostly repeats the details the previous notification of
    its conversation had (a new message changes only the update time, the unread counts and the
    last content event): then it is a :class:`LiveConversationChange` with that notification's
    details token, and no participant, dialog or conversation is built for it unless asked."""
    result = _decode_wire_result(raw, index)
    details = result.conversationDetails
    if details is None:
        return ConversationChange(type_, _conversation(result, raw, brand, index, True))
    key = (result.convId, brand)
    known = _DETAILS.get(key)
    if known is not None:
        known_details, known_info, token = known
        # Equal but for the update stamp: compared once, with the stamp set aside meanwhile
        # (the decoded details are this function's own).
        stamp = details.metaDataLastUpdateTs
        details.metaDataLastUpdateTs = known_details.metaDataLastUpdateTs
        same = details == known_details
        details.metaDataLastUpdateTs = stamp
        if same:
            return LiveConversationChange(type_, result, raw, brand, known_info, token)
    info = _conversation(result, raw, brand, index, True)
    token = next(_details_tokens)
    if len(_DETAILS) >= MAX_REMEMBERED_PARTICIPANTS:
        _DETAILS.clear()
    # Kept with lists of its own (the one returned is the application's to change), and without
    # what every notification brings anew: the frame's JSON, above all, stays unreferenced.
    kept = msgspec.structs.replace(
        info,
        dialogs=[_own_lists(dialog) for dialog in info.dialogs],
        participants=list(info.participants),
        last_content_event=None,
        raw_json=None,
    )
    _DETAILS[key] = (details, kept, token)
    return ConversationChange(type_, info, token)


class LiveConversationChange:
    """A live update whose conversation's details (all but the update time, the unread counts,
    the effective TTR and the last content event) repeat those of the notification before it.

    Read like a :class:`ConversationChange`; what a new message changes is at hand as
    attributes (named as :class:`ConversationInfo`'s fields), and the whole conversation is built
    only when :attr:`conversation` is read (a conversation that applied these details last needs
    none of it: see ``Conversation._apply_change``)."""

    __slots__ = (
        "_conversation",
        "_known",
        "conversation_id",
        "details_token",
        "effective_ttr",
        "last_content_event",
        "last_update_ts",
        "raw",
        "type",
        "unread",
    )

    def __init__(
        self,
        type_: str,
        result: _WireResult,
        raw: msgspec.Raw,
        brand: bool,
        known: ConversationInfo,
        token: int,
    ) -> None:
        self.type = type_
        #: The ``result`` as received (JSON).
        self.raw = raw
        self.details_token: int = token
        #: The conversation's id (the remembered conversation's string: one object for all).
        self.conversation_id: str = known.conversation_id
        details = result.conversationDetails
        stamp = details.metaDataLastUpdateTs if details is not None else None
        self.last_update_ts: int | None = result.lastUpdateTime if stamp is None else stamp
        self.effective_ttr: int | None = result.effectiveTTR
        self.unread: dict[str, int] | None = result.numberOfunreadMessages
        last_event = result.lastContentEventNotification
        self.last_content_event: MessagingEventInfo | None = _event(last_event, brand) if last_event else None
        self._known = known
        self._conversation: ConversationInfo | None = None

    @property
    def conversation(self) -> ConversationInfo:
        """The conversation: the remembered one with this update's values (built on first read)."""
        conversation = self._conversation
        if conversation is None:
            known = self._known
            conversation = self._conversation = msgspec.structs.replace(
                known,
                # Lists of their own, as a decoded notification has: an application changing
                # one notification's lists does not change the next one's.
                dialogs=[_own_lists(dialog) for dialog in known.dialogs],
                participants=list(known.participants),
                last_update_ts=self.last_update_ts,
                effective_ttr=self.effective_ttr,
                unread=self.unread,
                last_content_event=self.last_content_event,
                raw_json=self.raw,
            )
        return conversation

    def digest(self) -> bytes:
        """:func:`state_digest` of the conversation's state (from the JSON)."""
        return state_digest(self.raw)

    def materialize(self) -> ConversationChange:
        """The change as a :class:`ConversationChange`."""
        return ConversationChange(self.type, self.conversation, self.details_token)


def _own_lists(dialog: DialogInfo) -> DialogInfo:
    """``dialog`` with a participants list of its own (the same participants, remembered as
    coming from the same source: see :class:`RememberedParticipants`)."""
    members = dialog.participants
    copy: list[ParticipantInfo]
    if type(members) is RememberedParticipants:
        remembered = copy = RememberedParticipants(members)
        remembered.source = members.source
    else:
        copy = list(members)
    return msgspec.structs.replace(dialog, participants=copy)


def _decode_result(raw: msgspec.Raw, brand: bool, index: int | None, remember: bool) -> ConversationInfo:
    """The conversation of one change's ``result`` (``index``: its place in the body, for errors)."""
    return _conversation(_decode_wire_result(raw, index), raw, brand, index, remember)


def _decode_wire_result(raw: msgspec.Raw, index: int | None) -> _WireResult:
    try:
        return _result_decoder.decode(raw)
    except msgspec.DecodeError as exc:
        # Named as if the body had been decoded in one piece.
        path = "$" if index is None else f"$.changes[{index}].result"
        detail = str(exc).replace("at `$", f"at `{path}", 1)
        if "at `$" not in detail:
            detail += f" - at `{path}`"
        raise NotificationError(f"invalid {_BODY}: {detail}") from None


class _WireHeadDetails(msgspec.Struct, gc=False):
    metaDataLastUpdateTs: int | None = None


class _WireHead(msgspec.Struct, gc=False):
    """What a conversation change says before it is decoded: whose it is and when it changed."""

    convId: str
    conversationDetails: _WireHeadDetails | None = None
    lastUpdateTime: int | None = None


_head_decoder = msgspec.json.Decoder(_WireHead, strict=False)


class LazyConversationChange:
    """A change of :class:`ConversationChanges`: read like a :class:`ConversationChange`, its
    conversation decoded on first use (its id, update time and digest need no decoding)."""

    __slots__ = ("_brand", "_conversation", "_head", "_index", "raw", "type")

    #: Never known for a change of many (a snapshot): its conversation is applied in full.
    details_token: int | None = None

    def __init__(self, type_: str, raw: msgspec.Raw, brand: bool, index: int) -> None:
        self.type = type_
        #: The ``result`` as received (JSON).
        self.raw = raw
        self._brand = brand
        self._index = index
        self._conversation: ConversationInfo | None = None
        self._head: _WireHead | None = None

    @property
    def conversation(self) -> ConversationInfo:
        """The decoded conversation (raises :class:`NotificationError` when it is not the
        documented shape)."""
        conversation = self._conversation
        if conversation is None:
            conversation = self._conversation = _decode_result(self.raw, self._brand, self._index, False)
        return conversation

    def _read_head(self) -> _WireHead:
        head = self._head
        if head is None:
            try:
                head = _head_decoder.decode(self.raw)
            except msgspec.DecodeError:
                # The decoder of the whole result names what is wrong (it raises).
                conversation = self.conversation
                head = _WireHead(conversation.conversation_id, None, conversation.last_update_ts)
            self._head = head
        return head

    @property
    def conversation_id(self) -> str:
        """The conversation's id."""
        if self._conversation is not None:
            return self._conversation.conversation_id
        return self._read_head().convId

    @property
    def last_update_ts(self) -> int | None:
        """When the conversation last changed (epoch ms), as :attr:`ConversationInfo.last_update_ts`."""
        if self._conversation is not None:
            return self._conversation.last_update_ts
        head = self._read_head()
        details = head.conversationDetails
        stamp = details.metaDataLastUpdateTs if details is not None else None
        return head.lastUpdateTime if stamp is None else stamp

    def digest(self) -> bytes:
        """:func:`state_digest` of the conversation's state (from the JSON, nothing decoded)."""
        return state_digest(self.raw)

    def materialize(self) -> ConversationChange:
        """The change as a :class:`ConversationChange`."""
        return ConversationChange(self.type, self.conversation)


AnyConversationChange = ConversationChange | LazyConversationChange | LiveConversationChange


class ConversationChanges(ReadOnlyList[LazyConversationChange]):
    """The changes of a notification of many (see :func:`decode_conversation_changes_lazily`):
    each item is a new :class:`LazyConversationChange`, so a change read, applied and dropped is
    not kept by the notification."""

    __slots__ = ("_brand", "_wire")

    def __init__(self, wire: list[_WireRawChange], brand: bool) -> None:
        self._wire = wire
        self._brand = brand

    def __len__(self) -> int:
        return len(self._wire)

    @overload
    def __getitem__(self, index: int) -> LazyConversationChange: ...
    @overload
    def __getitem__(self, index: slice) -> list[LazyConversationChange]: ...
    def __getitem__(self, index: int | slice) -> LazyConversationChange | list[LazyConversationChange]:
        if isinstance(index, slice):
            return [self[i] for i in range(len(self._wire))[index]]
        if index < 0:
            index += len(self._wire)
        change = self._wire[index]
        return LazyConversationChange(change.type, change.result, self._brand, index)

    def __iter__(self) -> Iterator[LazyConversationChange]:
        brand = self._brand
        for i, change in enumerate(self._wire):
            yield LazyConversationChange(change.type, change.result, brand, i)

    def materialize(self) -> list[ConversationChange]:
        """Every change decoded, as :func:`decode_conversation_changes` returns them."""
        return [change.materialize() for change in self]


_result_decoder = msgspec.json.Decoder(_WireResult, strict=False)
_single_event_decoder = msgspec.json.Decoder(_WireSingleEvent, strict=False)
_event_list_decoder = msgspec.json.Decoder(list[_WireEvent], strict=False)


def decode_messaging_events(
    body: Any, *, brand: bool, on_invalid: Callable[[NotificationError], None] | None = None
) -> list[MessagingEventInfo]:
    """Events of a consumer ``ms.MessagingEventNotification`` (``changes`` array) or of a brand
    ``.ams.ms.OnlineEventDistribution`` (one event) / ``QueryMessages`` response (array).

    With ``on_invalid``, an event that is not the documented shape (an out-of-range sequence,
    say) is handed to it and the valid events of the same body are still returned; without it,
    the first one raises :class:`NotificationError`.
    """
    if type(body) is msgspec.Raw:
        # A socket's body, still JSON.  The usual one (a brand's OnlineEventDistribution: one
        # event) is decoded straight into its struct; any other shape, or a body that does not
        # decode, takes the general path below, which names what is wrong.
        try:
            single = _single_event_decoder.decode(body)
        except msgspec.DecodeError:
            single = None
        if single is not None and single.changes is msgspec.UNSET:
            return [_event(single, brand)]
        body = _json_decode(body)
    if isinstance(body, list):
        try:
            wires = _convert(body, list[_WireEvent], "messaging events")
        except NotificationError:
            if on_invalid is None or not body:
                raise
            wires = _each_valid(body, on_invalid)
        return [_event(w, brand) for w in wires]
    if isinstance(body, dict) and "changes" in body:
        try:
            wire = _convert(body, _WireMessagingBody, "MessagingEventNotification body")
        except NotificationError:
            changes = body.get("changes")
            if on_invalid is None or not isinstance(changes, list) or not changes:
                raise
            head = _convert({**body, "changes": []}, _WireMessagingBody, "MessagingEventNotification body")
            wire = _WireMessagingBody(changes=_each_valid(changes, on_invalid), dialogId=head.dialogId)
        out = []
        for w in wire.changes:
            if not w.dialogId and wire.dialogId:
                w.dialogId = wire.dialogId
            out.append(_event(w, brand))
        return out
    return [_event(_convert(body, _WireEvent, "OnlineEventDistribution body"), brand)]


def decode_query_messages(answer: Any, *, brand: bool) -> list[MessagingEventInfo]:
    """The events of a ``ms.QueryMessages`` answer (its body: a list of events, as Python objects
    or as JSON); an answer that is not a list has none."""
    if type(answer) is msgspec.Raw:
        try:
            return [_event(w, brand) for w in _event_list_decoder.decode(answer)]
        except msgspec.DecodeError:
            answer = _json_decode(answer)  # the general path says what is wrong
    return decode_messaging_events(answer if isinstance(answer, list) else [], brand=brand)


def _each_valid(raw_events: list[Any], on_invalid: Callable[[NotificationError], None]) -> list[_WireEvent]:
    """The slow path of a body with a bad event: each event decoded alone, the bad ones reported."""
    valid = []
    for i, raw in enumerate(raw_events):
        try:
            valid.append(_convert(raw, _WireEvent, f"messaging event #{i}"))
        except NotificationError as exc:
            on_invalid(exc)
    return valid


def decode_routing_tasks(body: Any) -> tuple[str | None, list[tuple[str, RoutingTaskInfo]]]:
    """(subscriptionId, [(change type, task)]) of a RoutingTaskNotification body."""
    wire = _convert(body, _WireRoutingBody, "RoutingTaskNotification body")
    out = []
    for i, change in enumerate(wire.changes):
        r = change.result
        first = r.ringsDetails[0] if r.ringsDetails else None
        conversation_id = r.conversationId or (first.convId if first is not None else None)
        if not conversation_id:
            raise NotificationError(f"routing task change #{i} names no conversation")
        rings = [
            RingInfo(
                ring_id=ring.ringId,
                state=ring.ringState,
                expiration_ms=ring.ringExpiration,
                expiration_ts=ring.ringExpirationTs,
                weight=ring.weight,
            )
            for ring in r.ringsDetails
        ]
        out.append(
            (
                change.type,
                RoutingTaskInfo(
                    conversation_id=conversation_id,
                    rings=rings,
                    consumer_id=r.consumerId or (first.consumerId if first is not None else None),
                    skill_id=_str(r.skillId if r.skillId is not None else (first.skillId if first else None)),
                    task_completed=r.taskCompleted,
                    account_id=r.brandId,
                ),
            )
        )
    return wire.subscriptionId, out


def decode_agent_states(body: Any) -> tuple[str | None, list[AgentStateInfo]]:
    wire = _convert(body, _WireAgentStateBody, "AgentStateNotification body")
    return wire.subscriptionId, [
        AgentStateInfo(
            availability=c.result.availability,
            agent_id=c.result.agentUserId,
            channels=c.result.channels,
            description=c.result.description,
        )
        for c in wire.changes
    ]
