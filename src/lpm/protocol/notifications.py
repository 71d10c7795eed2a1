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

from collections.abc import Callable
from typing import Annotated, Any

import msgspec

#: The largest sequence a messaging event may carry.  UMS numbers each dialog's events from 0
#: with a 32-bit counter; a larger value is a protocol error (accepted, it would put every later
#: message of the dialog "in the past" and silence them).
MAX_SEQUENCE = 2**31 - 1
Sequence = Annotated[int, msgspec.Meta(ge=0, le=MAX_SEQUENCE)]


class NotificationError(ValueError):
    """A notification body that does not have the documented shape."""


# ---------------------------------------------------------------- normalized structs


class ParticipantInfo(msgspec.Struct, frozen=True):
    user_id: str
    role: str
    agent_id: str | None = None
    state: str = "ACTIVE"


class DialogInfo(msgspec.Struct):
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


class MessagingEventInfo(msgspec.Struct):
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


class ConversationInfo(msgspec.Struct):
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
    #: The ``result`` exactly as received.
    raw: dict[str, Any] | None = None


class ConversationChange(msgspec.Struct):
    type: str
    conversation: ConversationInfo


class RingInfo(msgspec.Struct):
    ring_id: str
    state: str
    expiration_ms: int | None = None
    expiration_ts: int | None = None
    weight: int | None = None


class RoutingTaskInfo(msgspec.Struct):
    conversation_id: str
    rings: list[RingInfo]
    consumer_id: str | None = None
    skill_id: str | None = None
    task_completed: bool = False
    account_id: str | None = None


class AgentStateInfo(msgspec.Struct):
    availability: str
    agent_id: str | None = None
    channels: list[str] | None = None
    description: str | None = None


# ---------------------------------------------------------------- wire structs (both dialects)


class _WireParticipantDetail(msgspec.Struct):
    id: str
    role: str
    state: str = "ACTIVE"


class _WireDialog(msgspec.Struct):
    dialogId: str
    participantsDetails: list[_WireParticipantDetail] = []
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


class _WireTTR(msgspec.Struct):
    ttrType: str | None = None
    value: int | None = None


class _WireHandler(msgspec.Struct):
    accountId: str | None = None
    skillId: str | None = None


class _WireV3Participant(msgspec.Struct):
    id: str
    role: str


class _WireDetails(msgspec.Struct):
    participants: Any = None
    participantsPId: dict[str, list[str]] | None = None
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


class _WireEvent(msgspec.Struct):
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


class _WireResult(msgspec.Struct):
    convId: str
    conversationDetails: _WireDetails | None = None
    effectiveTTR: int | None = None
    # Older frames stamp the result instead of conversationDetails.metaDataLastUpdateTs.
    lastUpdateTime: int | None = None
    numberOfunreadMessages: dict[str, int] | None = None
    lastContentEventNotification: _WireEvent | None = None


class _WireChange(msgspec.Struct):
    type: str
    result: _WireResult


class _WireExConversationBody(msgspec.Struct):
    changes: list[_WireChange]
    subscriptionId: str | None = None


class _WireMessagingBody(msgspec.Struct):
    changes: list[_WireEvent]
    dialogId: str | None = None


class _WireRing(msgspec.Struct):
    ringId: str
    ringState: str
    ringExpiration: int | None = None
    ringExpirationTs: int | None = None
    weight: int | None = None
    # The earlier notification names the conversation on each ring only.
    convId: str | None = None
    consumerId: str | None = None
    skillId: str | int | None = None


class _WireRoutingResult(msgspec.Struct):
    conversationId: str | None = None
    ringsDetails: list[_WireRing] = []
    consumerId: str | None = None
    skillId: str | int | None = None
    taskCompleted: bool = False
    brandId: str | None = None


class _WireRoutingChange(msgspec.Struct):
    type: str
    result: _WireRoutingResult


class _WireRoutingBody(msgspec.Struct):
    changes: list[_WireRoutingChange]
    subscriptionId: str | None = None


class _WireAgentStateResult(msgspec.Struct):
    availability: str
    agentUserId: str | None = None
    channels: list[str] | None = None
    description: str | None = None


class _WireAgentStateChange(msgspec.Struct):
    type: str
    result: _WireAgentStateResult


class _WireAgentStateBody(msgspec.Struct):
    changes: list[_WireAgentStateChange]
    subscriptionId: str | None = None


def _convert(raw: Any, kind: type[Any], what: str) -> Any:
    try:
        return msgspec.convert(raw, kind, strict=False)
    except msgspec.ValidationError as exc:
        raise NotificationError(f"invalid {what}: {exc}") from None


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


# ---------------------------------------------------------------- normalization


def _event(wire: _WireEvent, brand: bool) -> MessagingEventInfo:
    meta = wire.originatorMetadata or {}
    if brand:
        # Raw brand events: originatorId is the old id for agents; originatorPId the PID.
        originator = wire.originatorPId or meta.get("id") or wire.originatorId
        agent_id = wire.originatorId if wire.originatorId != originator else None
    else:
        originator = wire.originatorId or meta.get("id")
        agent_id = None
    return MessagingEventInfo(
        dialog_id=wire.dialogId,
        event=wire.event,
        originator_id=originator,
        originator_role=meta.get("role"),
        originator_agent_id=agent_id,
        sequence=wire.sequence,
        conversation_id=wire.conversationId,
        server_ts=wire.serverTimestamp,
        audience=wire.messageAudience or "ALL",
        metadata=wire.metadata,
        client_properties=wire.originatorClientProperties or meta.get("clientProperties"),
    )


def _brand_id_map(details: _WireDetails) -> dict[str, str]:
    """Old id -> PID, pairing ``participants[role][i]`` with ``participantsPId[role][i]``."""
    mapping: dict[str, str] = {}
    old = details.participants if isinstance(details.participants, dict) else {}
    pids = details.participantsPId if isinstance(details.participantsPId, dict) else {}
    for role, ids in old.items():
        role_pids = pids.get(role) or []
        if not isinstance(ids or [], list) or not isinstance(role_pids, list):
            raise NotificationError(f"the participants of role {str(role)[:40]!r} are not a list")
        for i, old_id in enumerate(ids or []):
            if i < len(role_pids):
                mapping[str(old_id)] = role_pids[i]
    return mapping


def _participant(raw_id: str, role: str, state: str, id_map: dict[str, str] | None) -> ParticipantInfo:
    if id_map is None or role == "CONSUMER":
        return ParticipantInfo(user_id=raw_id, role=role, state=state)
    pid = id_map.get(raw_id)
    if pid is None and "." not in raw_id:
        # Already a PID (e.g. SUGGESTED agents missing from participantsPId keep the raw id).
        return ParticipantInfo(user_id=raw_id, role=role, state=state)
    return ParticipantInfo(user_id=pid or raw_id, role=role, state=state, agent_id=raw_id)


def _conversation(result: _WireResult, raw: dict[str, Any] | None, brand: bool) -> ConversationInfo:
    details = result.conversationDetails
    if details is None:
        raise NotificationError(f"conversation {result.convId} is missing conversationDetails")
    id_map = _brand_id_map(details) if brand else None
    if brand:
        participants = []
        old = details.participants if isinstance(details.participants, dict) else {}
        for role, ids in old.items():
            for raw_id in ids or []:
                participants.append(_participant(str(raw_id), role, "ACTIVE", id_map))
    elif isinstance(details.participants, list):
        wire_participants = _convert(details.participants, list[_WireV3Participant], "participants")
        participants = [ParticipantInfo(user_id=p.id, role=p.role) for p in wire_participants]
    else:
        # Older v3 traces: a role -> ids map (``participantsPId``, or ``participants`` as a map).
        role_map = details.participantsPId or (
            details.participants if isinstance(details.participants, dict) else {}
        )
        participants = [
            ParticipantInfo(user_id=str(pid), role=role)
            for role, ids in role_map.items()
            for pid in ids or []
        ]
    dialogs = []
    for d in details.dialogs:
        if d.channelType == "COBROWSE" and not d.participantsDetails:
            members: list[ParticipantInfo] = []
        else:
            members = [_participant(p.id, p.role, p.state, id_map) for p in d.participantsDetails]
        dialogs.append(
            DialogInfo(
                dialog_id=d.dialogId,
                dialog_type=d.dialogType,
                channel_type=d.channelType,
                state=d.state,
                participants=members,
                creation_ts=d.creationTs,
                end_ts=d.endTs,
                last_update_ts=d.metaDataLastUpdateTs,
                closed_by=d.closedBy,
                closed_cause=d.closedCause,
                meta_data=d.metaData,
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
    return ConversationInfo(
        conversation_id=result.convId,
        dialogs=dialogs,
        participants=participants,
        account_id=details.brandId,
        skill_id=_str(details.skillId),
        state=details.state,
        # ``stage`` came after ``state``: without it, ``state`` was the whole conversation's.
        stage=details.stage if details.stage is not None else details.state,
        close_reason=details.closeReason,
        start_ts=details.startTs,
        end_ts=details.endTs,
        last_update_ts=last_update,
        first_conversation=details.firstConversation,
        effective_ttr=result.effectiveTTR,
        ttr_type=details.ttr.ttrType if details.ttr else None,
        ttr_value=details.ttr.value if details.ttr else None,
        manual_ettr=details.manualETTR,
        delay=details.delay,
        csat_rate=csat_rate,
        csat=csat,
        note=details.note,
        group_id=_str(details.groupId),
        context=details.context,
        campaign_info=details.campaignInfo,
        handler_account_id=handler.accountId if handler else None,
        handler_skill_id=_str(handler.skillId) if handler else None,
        unread=result.numberOfunreadMessages,
        last_content_event=_event(result.lastContentEventNotification, brand)
        if result.lastContentEventNotification
        else None,
        raw=raw,
    )


def decode_conversation_changes(body: Any, *, brand: bool) -> tuple[str | None, list[ConversationChange]]:
    """(subscriptionId, changes) of an ExConversationChangeNotification body of either dialect."""
    wire = _convert(body, _WireExConversationBody, "ExConversationChangeNotification body")
    raw_changes = body.get("changes", []) if isinstance(body, dict) else []
    changes = []
    for i, change in enumerate(wire.changes):
        raw = (
            raw_changes[i].get("result")
            if i < len(raw_changes) and isinstance(raw_changes[i], dict)
            else None
        )
        changes.append(
            ConversationChange(type=change.type, conversation=_conversation(change.result, raw, brand))
        )
    return wire.subscriptionId, changes


def decode_messaging_events(
    body: Any, *, brand: bool, on_invalid: Callable[[NotificationError], None] | None = None
) -> list[MessagingEventInfo]:
    """Events of a consumer ``ms.MessagingEventNotification`` (``changes`` array) or of a brand
    ``.ams.ms.OnlineEventDistribution`` (one event) / ``QueryMessages`` response (array).

    With ``on_invalid``, an event that is not the documented shape (an out-of-range sequence,
    say) is handed to it and the valid events of the same body are still returned; without it,
    the first one raises :class:`NotificationError`.
    """
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
