"""Turns world entities into notification bodies of each dialect.

Consumer v3 (and webhooks) get the public shapes: ``participants`` as an array of ``{id, role}``
with agents named by PID.  Brand v2.1 gets the *raw* shapes node-agent-sdk's Transformer expects:
``participants`` and ``participantsPId`` as role -> id-list maps, agents named by their old id
``{account}.{userId}`` in ``participants`` / dialog ``participantsDetails`` / ``originatorId``,
``originatorPId`` beside it, and one event per ``.ams.ms.OnlineEventDistribution`` body.
"""

from __future__ import annotations

from typing import Any

from lpm.emulator import entities as m
from lpm.emulator.entities import Account, Conversation, Dialog, EventRecord, RoutingTask
from lpm.emulator.world import World


def _agent_ids(acc: Account, participant_id: str, role: str) -> tuple[str, str]:
    """(old id, pid) of a participant; consumers keep their id in both forms."""
    if role == m.CONSUMER:
        return participant_id, participant_id
    user = acc.users.get(participant_id)
    if user is None:
        return participant_id, participant_id
    return acc.old_id(user.user_id), user.pid


def _dialog(acc: Account, dialog: Dialog, *, brand: bool) -> dict[str, Any]:
    details = []
    for p in dialog.participants:
        if not brand and p.state != m.ACTIVE:
            continue  # SUGGESTED participants exist on the brand dialect (v2.1) only
        old, pid = _agent_ids(acc, p.id, p.role)
        details.append({"id": old if brand else pid, "role": p.role, "state": p.state})
    out: dict[str, Any] = {
        "dialogId": dialog.dialog_id,
        "participantsDetails": details,
        "dialogType": dialog.dialog_type,
        "channelType": dialog.channel_type,
        "state": dialog.state,
        "creationTs": dialog.creation_ts,
        "metaDataLastUpdateTs": dialog.last_update_ts,
    }
    if dialog.meta_data is not None:
        out["metaData"] = dialog.meta_data
    if dialog.end_ts is not None:
        out["endTs"] = dialog.end_ts
    if dialog.closed_by is not None:
        out["closedBy"] = dialog.closed_by
    if dialog.closed_cause is not None:
        out["closedCause"] = dialog.closed_cause
    return out


def _details(world: World, acc: Account, conv: Conversation, *, brand: bool) -> dict[str, Any]:
    details: dict[str, Any] = {"skillId": conv.skill_id}
    participants = conv.participants()
    if brand:
        by_role: dict[str, list[str]] = {}
        by_role_pid: dict[str, list[str]] = {}
        for p in participants:
            old, pid = _agent_ids(acc, p.id, p.role)
            by_role.setdefault(p.role, []).append(old)
            by_role_pid.setdefault(p.role, []).append(pid)
        details["convId"] = conv.conv_id
        details["participants"] = by_role
        details["participantsPId"] = by_role_pid
    else:
        details["participants"] = [
            {"id": _agent_ids(acc, p.id, p.role)[1], "role": p.role} for p in participants
        ]
    details["dialogs"] = [_dialog(acc, d, brand=brand) for d in conv.dialogs]
    details["brandId"] = conv.account_id
    details["state"] = conv.state
    details["stage"] = conv.stage
    if conv.close_reason is not None:
        details["closeReason"] = conv.close_reason
    details["startTs"] = conv.start_ts
    if conv.end_ts is not None:
        details["endTs"] = conv.end_ts
    details["metaDataLastUpdateTs"] = conv.last_update_ts
    details["firstConversation"] = conv.first_conversation
    details["csatRate"] = conv.csat["csatRate"] if conv.csat else 0
    if conv.csat:
        details["csat"] = conv.csat
    details["ttr"] = {"ttrType": conv.ttr_type, "value": conv.ttr_value}
    if conv.delay:
        details["delay"] = conv.delay
    if conv.manual_ettr:
        details["manualETTR"] = conv.manual_ettr
    if brand:
        details["note"] = conv.note
        details["groupId"] = conv.group_id
    elif conv.note:
        details["note"] = conv.note
    if conv.topic:
        details["topic"] = conv.topic
    if conv.context is not None:
        details["context"] = conv.context
    if conv.campaign is not None:
        details["campaignInfo"] = conv.campaign
    details["conversationHandlerDetails"] = {"accountId": conv.account_id, "skillId": conv.skill_id}
    return details


def conversation_result(world: World, conv: Conversation, *, brand: bool) -> dict[str, Any]:
    """The ``result`` of an ExConversationChangeNotification UPSERT (complete state)."""
    acc = world.accounts[conv.account_id]
    result: dict[str, Any] = {
        "convId": conv.conv_id,
        "effectiveTTR": world.effective_ttr(conv),
        "conversationDetails": _details(world, acc, conv, brand=brand),
    }
    if brand:
        result["lastUpdateTime"] = conv.last_update_ts
        result["numberOfunreadMessages"] = {}
    if conv.last_content_event is not None and conv.last_content_event.audience == "ALL":
        result["lastContentEventNotification"] = event_change(acc, conv.last_content_event, brand=brand)
    return result


def event_change(acc: Account, record: EventRecord, *, brand: bool) -> dict[str, Any]:
    """One messaging event (a ``changes[]`` entry, or a whole OnlineEventDistribution body)."""
    old, pid = _agent_ids(acc, record.originator_id, record.originator_role)
    metadata_: dict[str, Any] = {"id": pid, "role": record.originator_role}
    if record.client_properties:
        metadata_["clientProperties"] = record.client_properties
    out: dict[str, Any] = {}
    if record.sequence is not None:
        out["sequence"] = record.sequence
    out["originatorId"] = old if brand else pid
    if brand:
        out["originatorPId"] = pid
    out["originatorMetadata"] = metadata_
    if record.client_properties:
        out["originatorClientProperties"] = record.client_properties
    if record.server_ts is not None:
        out["serverTimestamp"] = record.server_ts
    out["event"] = record.event
    out["conversationId"] = record.conversation_id
    out["dialogId"] = record.dialog_id
    out["messageAudience"] = record.audience
    if record.metadata:
        out["metadata"] = record.metadata
    return out


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
