"""Turns world entities into notification bodies of each dialect.

Three views of a conversation, each held to the frames LivePerson publishes (issue 14; the
corpus is ``tests/fixtures/frames/published/``, its allowances list where they still differ):

* **brand** (the v2.1 socket): the *raw* shapes node-agent-sdk's Transformer expects:
  ``participants`` and ``participantsPId`` as role -> id-list maps, agents named by their old id
  ``{account}.{userId}`` in ``participants`` / dialog ``participantsDetails`` (with their
  ``state``: ACTIVE or SUGGESTED) / ``originatorId``, ``originatorPId`` beside it, one event per
  ``.ams.ms.OnlineEventDistribution`` body, and the brand-only fields: ``csatRate``,
  ``firstConversation``, ``note``, ``groupId``, ``conversationHandlerDetails``,
  ``numberOfunreadMessages`` (per participant), ``lastContentEventNotification`` and the
  ``context`` with the consumer's ``clientProperties`` (server-filled: see
  :func:`lpm.emulator.entities.server_client_properties`);
* **public** (webhooks and UMS REST, which serve the brand in the public v3 shapes):
  ``participants`` as an array of ``{id, role}`` with agents named by PID, dialog participants
  without ``state``, the CSAT as ``csat``, events with their ``messageAudience`` but without
  the originator's client properties, plus what the brand may read (``context``,
  ``campaignInfo``, ``firstConversation``, ``note``, ``lastContentEventNotification``);
* **consumer** (the v3 socket): the public shapes only, as the Messaging Window API pages show
  them: no ``context``, ``campaignInfo``, ``csatRate``, ``firstConversation``,
  ``conversationHandlerDetails``, ``lastContentEventNotification``, note or topic, and events
  without the originator's client properties or the audience (a consumer gets ``ALL`` only).

Every view shows the conversation's CONTROLLER (the platform's own participant of the MAIN
dialog, present in every published snapshot): one per account, :data:`CONTROLLER_USER_ID`.
"""

from __future__ import annotations

import functools
import uuid
from typing import Any

from lpm.emulator import entities as m
from lpm.emulator.entities import Account, Conversation, Dialog, EventRecord, RoutingTask
from lpm.emulator.world import World

#: The CONTROLLER's user id (its old id is ``{account}.0``; its PID :func:`controller_pid`).
CONTROLLER_USER_ID = "0"

BRAND = "brand"
PUBLIC = "public"
CONSUMER = "consumer"


@functools.lru_cache(maxsize=1024)
def controller_pid(account_id: str) -> str:
    """The PID of an account's CONTROLLER (stable across restarts).  Remembered: every rendered
    conversation names it twice, and a UUID5 each time was a third of a 10,000-conversation
    snapshot's rendering."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"lpm-emulator/{account_id}/controller"))


def _view(brand: bool, public: bool) -> str:
    return BRAND if brand else PUBLIC if public else CONSUMER


def _agent_ids(acc: Account, participant_id: str, role: str) -> tuple[str, str]:
    """(old id, pid) of a participant; consumers keep their id in both forms."""
    if role == m.CONSUMER:
        return participant_id, participant_id
    if role == m.CONTROLLER and participant_id == CONTROLLER_USER_ID:
        return acc.old_id(CONTROLLER_USER_ID), controller_pid(acc.account_id)
    user = acc.users.get(participant_id)
    if user is None:
        return participant_id, participant_id
    return acc.old_id(user.user_id), user.pid


def _with_controller(participants: list[m.Participant]) -> list[m.Participant]:
    """``participants`` with the CONTROLLER (after the consumer) unless it is there already."""
    if not any(p.role == m.CONTROLLER for p in participants):
        at = 1 if participants and participants[0].role == m.CONSUMER else 0
        participants.insert(at, m.Participant(id=CONTROLLER_USER_ID, role=m.CONTROLLER))
    return participants


def _members(conv: Conversation, dialog: Dialog) -> list[m.Participant]:
    """A dialog's participants as shown: MAIN's with the CONTROLLER after the consumer."""
    members = list(dialog.participants)
    return _with_controller(members) if dialog.dialog_type == m.MAIN else members


def _dialog(acc: Account, conv: Conversation, dialog: Dialog, view: str) -> dict[str, Any]:
    details = []
    for p in _members(conv, dialog):
        if view != BRAND and p.state != m.ACTIVE:
            continue  # SUGGESTED participants exist on the brand dialect (v2.1) only
        old, pid = _agent_ids(acc, p.id, p.role)
        if view == BRAND:
            # ``state`` is a v2.1 addition (node-agent-sdk README, transfer to agent).
            details.append({"id": old, "role": p.role, "state": p.state})
        else:
            details.append({"id": pid, "role": p.role})
    out: dict[str, Any] = {
        "dialogId": dialog.dialog_id,
        "participantsDetails": details,
        "dialogType": dialog.dialog_type,
        "channelType": dialog.channel_type,
        "metaData": dialog.meta_data,
        "state": dialog.state,
        "creationTs": dialog.creation_ts,
        "endTs": dialog.end_ts,
        "metaDataLastUpdateTs": dialog.last_update_ts,
        "closedBy": dialog.closed_by,
        "closedCause": dialog.closed_cause,
    }
    # Only the optional fields (metaData, endTs, closedBy, closedCause) can be None: left out.
    return {key: value for key, value in out.items() if value is not None}


def _participants(conv: Conversation) -> list[m.Participant]:
    """Conversation-level participants (every active (id, role) once), the CONTROLLER included."""
    return _with_controller(conv.participants())


def _context(conv: Conversation) -> dict[str, Any]:
    """The brand's view of the conversation context: the consumer's with its client properties
    (what the consumer's client declared plus what the server fills in)."""
    context: dict[str, Any] = dict(conv.context) if conv.context else {"type": "CustomContext"}
    if conv.client_properties:
        context["clientProperties"] = conv.client_properties
    return context


def _details(acc: Account, conv: Conversation, view: str) -> dict[str, Any]:
    details: dict[str, Any] = {}
    participants = _participants(conv)
    if view == BRAND:
        by_role: dict[str, list[str]] = {}
        by_role_pid: dict[str, list[str]] = {}
        for p in participants:
            old, pid = _agent_ids(acc, p.id, p.role)
            by_role.setdefault(p.role, []).append(old)
            by_role_pid.setdefault(p.role, []).append(pid)
        details["convId"] = conv.conv_id
        details["skillId"] = conv.skill_id
        details["participants"] = by_role
        details["participantsPId"] = by_role_pid
    else:
        details["skillId"] = conv.skill_id
        details["participants"] = [
            {"id": _agent_ids(acc, p.id, p.role)[1], "role": p.role} for p in participants
        ]
    details["dialogs"] = [_dialog(acc, conv, d, view) for d in conv.dialogs]
    details["brandId"] = conv.account_id
    details["state"] = conv.state
    details["stage"] = conv.stage
    if conv.close_reason is not None:
        details["closeReason"] = conv.close_reason
    details["startTs"] = conv.start_ts
    if conv.end_ts is not None:
        details["endTs"] = conv.end_ts
    details["metaDataLastUpdateTs"] = conv.last_update_ts
    if view == BRAND:
        details["firstConversation"] = conv.first_conversation
        details["csatRate"] = conv.csat["csatRate"] if conv.csat else 0
    elif view == PUBLIC:
        details["firstConversation"] = conv.first_conversation
    if conv.csat and view != BRAND:
        # The documented consumer shape (schema types/csat.json): the field that set it too.
        details["csat"] = {"field": "CSATRate", **conv.csat}
    details["ttr"] = {"ttrType": conv.ttr_type, "value": conv.ttr_value}
    if conv.delay:
        details["delay"] = conv.delay
    if conv.manual_ettr:
        details["manualETTR"] = conv.manual_ettr
    if view == BRAND:
        details["note"] = conv.note
        details["groupId"] = conv.group_id
    elif view == PUBLIC and conv.note:
        details["note"] = conv.note
    if conv.topic and view != CONSUMER:
        details["topic"] = conv.topic
    if view != CONSUMER:
        details["context"] = _context(conv)
        if conv.campaign is not None:
            details["campaignInfo"] = conv.campaign
    if view == BRAND:
        details["conversationHandlerDetails"] = {"accountId": conv.account_id, "skillId": conv.skill_id}
    return details


def _unread(acc: Account, conv: Conversation) -> dict[str, int]:
    """``numberOfunreadMessages``: per participant (old ids for agents), the messages of others
    since the last one it marked READ (the CONTROLLER reads nothing)."""
    out: dict[str, int] = {}
    for p in conv.participants():
        if p.role == m.CONTROLLER:
            continue
        old, _ = _agent_ids(acc, p.id, p.role)
        out[old] = conv.unread.get(p.id, 0)
    return out


def conversation_result(
    world: World, conv: Conversation, *, brand: bool = False, public: bool = False
) -> dict[str, Any]:
    """The ``result`` of an ExConversationChangeNotification UPSERT (complete state) in the
    brand view (``brand``), the public brand view (``public``: webhooks, REST) or the consumer's."""
    acc = world.accounts[conv.account_id]
    view = _view(brand, public)
    result: dict[str, Any] = {
        "convId": conv.conv_id,
        "effectiveTTR": world.effective_ttr(conv),
        "conversationDetails": _details(acc, conv, view),
    }
    if view == BRAND:
        result["lastUpdateTime"] = conv.last_update_ts
        result["numberOfunreadMessages"] = _unread(acc, conv)
    last = conv.last_content_event
    if view != CONSUMER and last is not None and last.audience == "ALL":
        result["lastContentEventNotification"] = event_change(acc, last, brand=brand, public=public)
    return result


def event_change(
    acc: Account, record: EventRecord, *, brand: bool = False, public: bool = False
) -> dict[str, Any]:
    """One messaging event (a ``changes[]`` entry, or a whole OnlineEventDistribution body)."""
    view = _view(brand, public)
    old, pid = _agent_ids(acc, record.originator_id, record.originator_role)
    # The originator's client properties: on the brand socket (node-agent-sdk's README shows
    # them), never to a consumer nor in webhooks (no published frame of either shows them).
    properties = record.client_properties if view == BRAND else None
    metadata_: dict[str, Any] = {"id": pid, "role": record.originator_role}
    if properties:
        metadata_["clientProperties"] = properties
    out: dict[str, Any] = {}
    if record.sequence is not None:
        out["sequence"] = record.sequence
    if properties:
        out["originatorClientProperties"] = properties
    out["originatorId"] = old if brand else pid
    if brand:
        out["originatorPId"] = pid
    out["originatorMetadata"] = metadata_
    if record.server_ts is not None:
        out["serverTimestamp"] = record.server_ts
    out["event"] = record.event
    out["conversationId"] = record.conversation_id
    out["dialogId"] = record.dialog_id
    if view != CONSUMER:
        out["messageAudience"] = record.audience
    if record.metadata:
        out["metadata"] = record.metadata
    return out


def messaging_body(acc: Account, records: list[EventRecord], *, public: bool = False) -> dict[str, Any]:
    """A consumer ``ms.MessagingEventNotification`` body (or a webhook's, ``public``): the events
    in ``changes`` (each names its dialog; the body names none, as the published frames show)."""
    return {"changes": [event_change(acc, r, public=public) for r in records]}


def routing_task_result(acc: Account, task: RoutingTask, user_id: str | None) -> dict[str, Any]:
    """Raw RoutingTaskNotification ``result``; ``user_id`` keeps only that agent's rings."""
    rings = []
    for ring in task.rings:
        if user_id is not None and ring.user_id != user_id:
            continue
        rings.append(
            {
                "ringId": ring.ring_id,
                "ringExpiration": ring.expiration_ms,
                "ringExpirationTs": ring.created_ts + ring.expiration_ms,
                "ringState": ring.state,
                "weight": ring.weight,
                "brandId": acc.account_id,
                "convId": task.conv_id,
                "consumerId": task.consumer_id,
                "skillId": task.skill_id,
            }
        )
    return {
        "routingTaskId": task.task_id,
        "brandId": acc.account_id,
        "assignedAgentId": acc.old_id(task.assigned_user_id) if task.assigned_user_id else "",
        "taskCompleted": task.completed,
        "conversationId": task.conv_id,
        "consumerId": task.consumer_id,
        "skillId": task.skill_id,
        "ringsDetails": rings,
    }


def agent_state_result(acc: Account, user_id: str, state: m.AgentState) -> dict[str, Any]:
    return {
        "agentUserId": acc.old_id(user_id),
        "channels": state.channels,
        "availability": state.availability,
        "description": state.description,
    }
