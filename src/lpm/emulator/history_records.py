"""What the Messaging Interactions API shows of a conversation: its history trail and its record.

Two halves, both plain Python (no I/O), used by :mod:`lpm.emulator.http_history`:

* :class:`HistoryRecorder`, a :class:`~lpm.emulator.sinks.WorldSink`: the world keeps a
  conversation's *current* state (participants, skill); the history API also shows what happened
  on the way -- when each agent joined and left, every transfer, every assignment (an
  "interaction"), every skill the conversation had, when the consumer's SDEs arrived.  The
  recorder compares each committed conversation with its previous state and writes that trail.
  It lives in memory: after a restart from a database, a conversation's trail starts from its
  loaded state (agents then count as joined when their dialog was created).
* :func:`conversation_record`: one ``conversationHistoryRecords`` entry, in the shapes of the
  developer center's "Messaging Interactions API - Conversations" page and its appendix
  (engagement attributes); see :mod:`lpm.emulator.http_history` for what each section holds.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from lpm.emulator import entities as m
from lpm.emulator.entities import (
    Account,
    AgentState,
    Consumer,
    Conversation,
    EventRecord,
    RoutingTask,
    User,
)
from lpm.emulator.world import World

#: Sections of a record returned when the request names no ``contentToRetrieve`` (the page's
#: default list).
DEFAULT_CONTENT = (
    "campaign",
    "messageRecords",
    "agentParticipants",
    "agentParticipantsLeave",
    "agentParticipantsActive",
    "consumerParticipants",
    "transfers",
    "interactions",
    "messageScores",
    "messageStatuses",
    "conversationSurveys",
    "coBrowseSessions",
    "summary",
    "sdes",
)
#: Every section ``contentToRetrieve`` may name.
CONTENT_TYPES = frozenset(DEFAULT_CONTENT) | {"unAuthSdes", "monitoring", "responseTime"}
UNASSIGNED = "Unassigned"
#: The agent group every emulator agent belongs to (the platform's default group).
AGENT_GROUP = -1
#: ``lp_sdes`` customer-info keys that the history names differently (the rest keep their name).
_CUSTOMER_KEYS = {"cstatus": "customerStatus", "ctype": "customerType"}


def format_time(ms: int) -> str:
    """``2016-08-29 14:30:24.565+0000``: the history's text form of an epoch-ms time."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}+0000"


def _stamp(ms: int, prefix: str = "time") -> dict[str, Any]:
    return {prefix: format_time(ms), prefix + "L": ms}


# ---------------------------------------------------------------- the trail


@dataclass(slots=True)
class Trail:
    """What happened to one conversation, as far as its history shows."""

    skill: str
    assigned: str | None
    suggested: frozenset[str]
    #: (user id, role) -> when it joined (first seen active), in join order.
    joined: dict[tuple[str, str], int] = field(default_factory=dict)
    #: (user id, role) -> when it left.
    left: dict[tuple[str, str], int] = field(default_factory=dict)
    #: (user id, role) -> the dialog it was seen in.
    dialog_of: dict[tuple[str, str], str] = field(default_factory=dict)
    skills: list[str] = field(default_factory=list)
    transfers: list[dict[str, Any]] = field(default_factory=list)
    #: (assigned agent's user id, when) of each assignment.
    interactions: list[tuple[str, int]] = field(default_factory=list)


def _agents(conv: Conversation) -> dict[tuple[str, str], str]:
    """Active agent participations (not the consumer, not the CONTROLLER) -> their dialog."""
    out: dict[tuple[str, str], str] = {}
    for dialog in conv.dialogs:
        for p in dialog.participants:
            if p.state == m.ACTIVE and p.role in m.AGENT_ROLES and p.role != m.CONTROLLER:
                out.setdefault((p.id, p.role), dialog.dialog_id)
    return out


def _assigned(conv: Conversation) -> str | None:
    for p in conv.main.participants:
        if p.role == m.ASSIGNED_AGENT and p.state == m.ACTIVE:
            return p.id
    return None


def _suggested(conv: Conversation) -> frozenset[str]:
    return frozenset(
        p.id for p in conv.main.participants if p.role == m.ASSIGNED_AGENT and p.state == m.SUGGESTED
    )


def consumer_sdes(consumer: Consumer | None) -> list[Any]:
    """The consumer's authenticated SDEs: its id_token's ``lp_sdes`` and those it set with
    ``SetUserProfile`` (``authenticatedData.lp_sdes``, how the Connector API sends them)."""
    if consumer is None:
        return []
    out: list[Any] = []
    claimed = consumer.claims.get("lp_sdes") if consumer.claims else None
    if isinstance(claimed, list):
        out.extend(claimed)
    data = consumer.profile.get("authenticatedData") if consumer.profile else None
    if isinstance(data, dict) and isinstance(data.get("lp_sdes"), list):
        out.extend(data["lp_sdes"])
    return [s for s in out if isinstance(s, dict)]


class HistoryRecorder:
    """A :class:`~lpm.emulator.sinks.WorldSink` keeping each conversation's :class:`Trail` and
    when each consumer's SDEs last changed."""

    def __init__(self, world: World) -> None:
        self.world = world
        self._trails: dict[tuple[str, str], Trail] = {}
        #: (account, consumer id) -> (hash of its SDEs, when they arrived)
        self._sde_times: dict[tuple[str, str], tuple[str, int]] = {}

    def trail(self, conv: Conversation) -> Trail:
        """The conversation's trail (started from its current state when it has none yet)."""
        key = (conv.account_id, conv.conv_id)
        trail = self._trails.get(key)
        if trail is None:
            trail = Trail(skill=conv.skill_id, assigned=_assigned(conv), suggested=_suggested(conv))
            trail.skills.append(conv.skill_id)
            created = {d.dialog_id: d.creation_ts for d in conv.dialogs}
            for who, dialog_id in _agents(conv).items():
                trail.joined[who] = created.get(dialog_id, conv.start_ts)
                trail.dialog_of[who] = dialog_id
            if trail.assigned is not None:
                since = trail.joined.get((trail.assigned, m.ASSIGNED_AGENT), conv.start_ts)
                trail.interactions.append((trail.assigned, since))
            self._trails[key] = trail
        return trail

    def sde_time(self, account_id: str, consumer: Consumer, default: int) -> int:
        """When the consumer's current SDEs arrived (``default`` when never seen arriving)."""
        known = self._sde_times.get((account_id, consumer.consumer_id))
        return known[1] if known is not None else default

    # ---------------------------------------------------------------- WorldSink

    def conversation_changed(self, conv: Conversation) -> None:
        """Diff the conversation against its trail: joins, leaves, transfers, assignments."""
        fresh = (conv.account_id, conv.conv_id) not in self._trails
        trail = self.trail(conv)
        if fresh:
            return
        now = self.world.now_ms()
        current = _agents(conv)
        for who, dialog_id in current.items():
            if who not in trail.joined or who in trail.left:
                trail.joined.setdefault(who, now)
                trail.left.pop(who, None)
                trail.dialog_of[who] = dialog_id
        for who in trail.joined:
            if who not in current and who not in trail.left:
                trail.left[who] = now
        assigned, suggested = _assigned(conv), _suggested(conv)
        previous = trail.assigned
        if conv.skill_id != trail.skill:
            self._transfer(trail, conv, now, "Skill", source_agent=previous, target_agent=None)
            trail.skills.append(conv.skill_id)
        elif previous is not None and assigned != previous:
            if assigned is not None:
                self._transfer(trail, conv, now, "TakeOver", source_agent=previous, target_agent=assigned)
            else:
                target = next(iter(sorted(suggested | trail.suggested)), None)
                reason = "Agent" if target is not None else "Back2Q"
                self._transfer(trail, conv, now, reason, source_agent=previous, target_agent=target)
        if assigned is not None and assigned != previous:
            trail.interactions.append((assigned, now))
        trail.skill, trail.assigned, trail.suggested = conv.skill_id, assigned, suggested

    def _transfer(
        self,
        trail: Trail,
        conv: Conversation,
        now: int,
        reason: str,
        *,
        source_agent: str | None,
        target_agent: str | None,
    ) -> None:
        trail.transfers.append(
            {
                "time": now,
                "reason": reason,
                "source_skill": trail.skill,
                "target_skill": conv.skill_id,
                "source_agent": source_agent,
                "target_agent": target_agent,
            }
        )

    def consumer_changed(self, account_id: str, consumer: Consumer) -> None:
        """Note when the consumer's SDEs change."""
        sdes = consumer_sdes(consumer)
        if not sdes:
            return
        digest = hashlib.sha256(json.dumps(sdes, sort_keys=True, default=str).encode()).hexdigest()
        key = (account_id, consumer.consumer_id)
        known = self._sde_times.get(key)
        if known is None or known[0] != digest:
            self._sde_times[key] = (digest, self.world.now_ms())

    def messaging_event(self, conv: Conversation, record: EventRecord) -> None:
        """Messages are read from the world's stored events."""

    def routing_task_changed(self, account_id: str, task: RoutingTask) -> None:
        """Routing is not history."""

    def agent_state_changed(self, account_id: str, user_id: str, state: AgentState) -> None:
        """Agent state is not history."""


# ---------------------------------------------------------------- the record


def _agent_names(user: User | None, prefix: str, user_id: str) -> dict[str, Any]:
    out: dict[str, Any] = {f"{prefix}Id": user_id}
    if user is not None:
        out[f"{prefix}FullName"] = user.full_name or user.nickname or user.login_name
        out[f"{prefix}LoginName"] = user.login_name
        out[f"{prefix}Nickname"] = user.nickname or user.login_name
    return out


def _skill_name(acc: Account, skill_id: str) -> str:
    skill = acc.skills.get(skill_id)
    return skill.name if skill is not None else UNASSIGNED


def _skill_number(skill_id: str) -> int | str:
    try:
        return int(skill_id)
    except ValueError:
        return skill_id


def latest_agent(trail: Trail) -> str | None:
    """The agent the conversation was most recently assigned to."""
    return trail.interactions[-1][0] if trail.interactions else None


def _message_type(event: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """(type, messageData) of a content event; None for other events."""
    kind = event.get("type")
    data: dict[str, Any]
    if kind == "ContentEvent":
        content_type = str(event.get("contentType") or "text/plain")
        message = event.get("message")
        if content_type == "hosted/file" and isinstance(message, dict):
            file = {k: message[k] for k in ("caption", "relativePath", "fileType", "preview") if k in message}
            type_, data = "HOSTED_FILE", {"file": file}
        elif content_type == "forms/secure-invitation":
            type_, data = "SECURE_FORM_INVITATION", {"msg": {"text": json.dumps(message)}}
        else:
            type_ = {"text/plain": "TEXT_PLAIN", "text/html": "TEXT_HTML"}.get(
                content_type, content_type.upper().replace("/", "_").replace("-", "_")
            )
            text = message if isinstance(message, str) else json.dumps(message)
            data = {"msg": {"text": text}}
    elif kind == "RichContentEvent":
        type_, data = "RICH_CONTENT", {"richContent": {"content": json.dumps(event.get("content"))}}
    else:
        return None
    if event.get("quickReplies") is not None:
        data["quickReplies"] = {"content": json.dumps(event["quickReplies"])}
    return type_, data


def _message_id(conv: Conversation, dialog_id: str, sequence: int) -> str:
    if dialog_id == conv.conv_id:
        return f"ms::conv:{conv.conv_id}::msg:{sequence}"
    return f"ms::dialog:{dialog_id}::msg:{sequence}"


def _participant(acc: Account, record: EventRecord) -> tuple[str, str]:
    """(participantId, sentBy) of an event's originator."""
    if record.originator_role == m.CONSUMER:
        return record.originator_id, "Consumer"
    user = acc.users.get(record.originator_id)
    return (user.user_id if user is not None else record.originator_id), "Agent"


def events_of(acc: Account, conv: Conversation) -> Iterable[EventRecord]:
    """Every stored event of the conversation, dialog by dialog, in sequence order."""
    for dialog in conv.dialogs:
        yield from acc.events.get(dialog.dialog_id, ())


def message_records(acc: Account, conv: Conversation) -> list[dict[str, Any]]:
    """``messageRecords``: every content message of every dialog."""
    out = []
    for record in events_of(acc, conv):
        typed = _message_type(record.event)
        if typed is None or record.sequence is None:
            continue
        participant, sent_by = _participant(acc, record)
        item: dict[str, Any] = {
            "type": typed[0],
            "messageData": typed[1],
            "messageId": _message_id(conv, record.dialog_id, record.sequence),
            "seq": record.sequence,
            "dialogId": record.dialog_id,
            "participantId": participant,
            "source": "APP",
            **_stamp(record.server_ts or conv.start_ts),
            "device": "undefined",
            "sentBy": sent_by,
        }
        if record.metadata:
            item["contextData"] = {"rawMetadata": json.dumps(record.metadata)}
        out.append(item)
    return out


def message_statuses(acc: Account, conv: Conversation) -> list[dict[str, Any]]:
    """``messageStatuses``: one entry per message an AcceptStatusEvent acknowledged."""
    out = []
    for record in events_of(acc, conv):
        event = record.event
        if event.get("type") != "AcceptStatusEvent" or record.server_ts is None:
            continue
        participant, sent_by = _participant(acc, record)
        for seq in event.get("sequenceList") or ():
            if not isinstance(seq, int):
                continue
            out.append(
                {
                    "messageId": _message_id(conv, record.dialog_id, seq),
                    "seq": seq,
                    **_stamp(record.server_ts),
                    "participantId": participant,
                    "participantType": sent_by,
                    "messageDeliveryStatus": str(event.get("status")),
                    "dialogId": record.dialog_id,
                }
            )
    return out


def _agent_participant(acc: Account, who: tuple[str, str], at: int, dialog_id: str) -> dict[str, Any]:
    user_id, role = who
    user = acc.users.get(user_id)
    bot = user is not None and user.is_bot
    item = _agent_names(user, "agent", user_id)
    item.update(
        {
            "agentDeleted": user is None,
            "userType": "2" if bot else "1",
            "userTypeName": "Bot" if bot else "Human",
            "role": role,
            "agentGroupName": UNASSIGNED,
            "agentGroupId": AGENT_GROUP,
            **_stamp(at),
            "permission": "ASSIGNED_AGENT" if role in (m.ASSIGNED_AGENT, m.AGENT) else "READER",
            "dialogId": dialog_id,
        }
    )
    return item


def _transfer_item(acc: Account, transfer: dict[str, Any]) -> dict[str, Any]:
    item: dict[str, Any] = {**_stamp(transfer["time"])}
    target = transfer["target_agent"]
    if target is not None:
        item.update(_agent_names(acc.users.get(target), "assignedAgent", target))
    item.update(
        {
            "targetSkillId": _skill_number(transfer["target_skill"]),
            "targetSkillName": _skill_name(acc, transfer["target_skill"]),
            "reason": transfer["reason"],
            "sourceSkillId": _skill_number(transfer["source_skill"]),
            "sourceSkillName": _skill_name(acc, transfer["source_skill"]),
        }
    )
    source = transfer["source_agent"]
    if source is not None:
        item["by"] = source
        item.update(_agent_names(acc.users.get(source), "sourceAgent", source))
    return item


def _stringify(value: Any) -> Any:
    """Version 1's SDE values: every scalar as text (the appendix: "v1 ... alphanumeric")."""
    if isinstance(value, dict):
        return {k: _stringify(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_stringify(v) for v in value]
    if isinstance(value, bool):
        return str(value).lower()
    return value if value is None or isinstance(value, str) else str(value)


def sde_events(sdes: list[dict[str, Any]], at: int, *, typed: bool) -> list[dict[str, Any]]:
    """``sdes.events``: each ``lp_sdes`` entry in the history's form (CUSTOMER_INFO,
    PERSONAL_INFO); ``typed`` keeps values' types (``v=2``), else they are text (``v=1``)."""
    out = []
    for sde in sdes:
        if sde.get("type") == "ctmrinfo" and isinstance(sde.get("info"), dict):
            info = {_CUSTOMER_KEYS.get(k, k): v for k, v in sde["info"].items()}
            name, kind = "customerInfo", "CUSTOMER_INFO"
        elif sde.get("type") == "personal" and isinstance(sde.get("personal"), dict):
            personal = sde["personal"]
            info = {}
            for key, value in personal.items():
                if key == "firstname":
                    info["name"] = value
                elif key == "lastname":
                    info["surname"] = value
                elif key == "age" and isinstance(value, dict):
                    info["customerAge"] = {
                        "customerAgeInYears": value.get("age"),
                        "customerYearOfBirth": value.get("year"),
                        "customerMonthOfBirth": value.get("month"),
                        "customerDateOfBirth": value.get("day"),
                    }
                elif key == "contacts" and isinstance(value, list):
                    info["contacts"] = [{"personalContact": c} for c in value if isinstance(c, dict)]
                else:
                    info[key] = value
            name, kind = "personalInfo", "PERSONAL_INFO"
        else:
            continue
        body: dict[str, Any] = {"serverTimeStamp": at, name: info}
        event: dict[str, Any] = {name: body if typed else _stringify(body), "sdeType": kind}
        event["serverTimeStamp"] = at if typed else str(at)
        out.append(event)
    return out


def _consumer_participant(acc: Account, conv: Conversation) -> dict[str, Any]:
    consumer = acc.consumers.get(conv.consumer_id)
    item: dict[str, Any] = {"participantId": conv.consumer_id}
    item.update(_stamp(consumer.created_ts if consumer else conv.start_ts))
    item.update(_stamp(conv.start_ts, "joinTime"))
    profile = consumer.profile if consumer else {}
    personal: dict[str, Any] = {}
    for sde in consumer_sdes(consumer):
        if sde.get("type") == "personal" and isinstance(sde.get("personal"), dict):
            personal.update(sde["personal"])
    first = profile.get("firstName") or personal.get("firstname")
    last = profile.get("lastName") or personal.get("lastname")
    contacts = personal.get("contacts")
    contact: dict[str, Any] = next(
        (c for c in contacts if isinstance(c, dict)) if isinstance(contacts, list) else iter(()), {}
    )
    private = profile.get("privateData")
    private = private if isinstance(private, dict) else {}
    email = private.get("mail") or private.get("email") or contact.get("email")
    phone = private.get("mobileNum") or private.get("phone") or contact.get("phone")
    for key, value in (("firstName", first), ("lastName", last), ("email", email), ("phone", phone)):
        if value:
            item[key] = str(value)
    if profile.get("avatarUrl"):
        item["avatarURL"] = profile["avatarUrl"]
    item["consumerName"] = str(first or profile.get("nickName") or "")
    item["dialogId"] = conv.main.dialog_id
    return item


def _survey(conv: Conversation) -> list[dict[str, Any]]:
    if not conv.csat:
        return []
    data = [{"question": "CSAT", "answer": str(conv.csat.get("csatRate"))}]
    if "csatResolutionConfirmation" in conv.csat:
        resolved = "Yes" if conv.csat["csatResolutionConfirmation"] else "No"
        data.append({"question": "Confirm Resolution", "answer": resolved})
    return [{"surveyType": "Satisfaction", "surveyStatus": str(conv.csat.get("status")), "surveyData": data}]


def source_of(acc: Account, conv: Conversation) -> str:
    """Where the conversation came from: AGENT (proactive), APP (a connector's consumer or a
    native app) or SHARK (a web page's messaging window)."""
    context = conv.context or {}
    if context.get("type") == "ProactiveContext":
        return "AGENT"
    consumer = acc.consumers.get(conv.consumer_id)
    if consumer is not None and consumer.kind == "connector":
        return "APP"
    props = conv.client_properties or {}
    if props.get("browser") or str(props.get("integration") or "").upper().startswith("WEB"):
        return "SHARK"
    return "APP"


def info_of(world: World, acc: Account, conv: Conversation, trail: Trail) -> dict[str, Any]:
    """The record's ``info``."""
    now = world.now_ms()
    props = conv.client_properties or {}
    closed = conv.stage == m.CLOSE
    end = conv.end_ts if closed and conv.end_ts is not None else None
    info: dict[str, Any] = {**_stamp(conv.start_ts, "startTime")}
    info["endTime"] = format_time(end) if end is not None else "undefined"
    info["endTimeL"] = end if end is not None else -1
    info["duration"] = (end if end is not None else now) - conv.start_ts
    info["conversationId"] = conv.conv_id
    info["brandId"] = conv.account_id
    latest = latest_agent(trail)
    if latest is not None:
        info.update(_agent_names(acc.users.get(latest), "latestAgent", latest))
        info["agentDeleted"] = latest not in acc.users
    info["latestSkillId"] = _skill_number(conv.skill_id)
    info["latestSkillName"] = _skill_name(acc, conv.skill_id)
    info["source"] = source_of(acc, conv)
    if closed and conv.close_reason:
        info["closeReason"] = conv.close_reason
    info["mcs"] = 0
    info["alertedMCS"] = 0
    info["status"] = m.CLOSE if closed else m.OPEN
    info["firstConversation"] = conv.first_conversation
    if conv.csat and isinstance(conv.csat.get("csatRate"), int | float):
        info["csatRate"] = conv.csat["csatRate"]
    info["device"] = str(props.get("deviceFamily") or "NA")
    if props.get("browser"):
        info["browser"] = str(props["browser"])
    info["operatingSystem"] = str(props.get("os") or "NA")
    info["latestAgentGroupId"] = AGENT_GROUP
    info["latestAgentGroupName"] = UNASSIGNED
    info["latestQueueState"] = "ACTIVE" if _assigned(conv) is not None else "IN_QUEUE"
    info["isPartial"] = False
    return info


def conversation_record(
    world: World,
    recorder: HistoryRecorder,
    conv: Conversation,
    *,
    content: Iterable[str] = DEFAULT_CONTENT,
    typed_sdes: bool = False,
) -> dict[str, Any]:
    """One ``conversationHistoryRecords`` entry with the ``content`` sections asked for."""
    acc = world.accounts[conv.account_id]
    trail = recorder.trail(conv)
    wanted = set(content)
    record: dict[str, Any] = {"info": info_of(world, acc, conv, trail)}
    if "campaign" in wanted and conv.campaign:
        campaign = {}
        if conv.campaign.get("campaignId") is not None:
            campaign["campaignId"] = str(conv.campaign["campaignId"])
        if conv.campaign.get("engagementId") is not None:
            campaign["campaignEngagementId"] = str(conv.campaign["engagementId"])
        record["campaign"] = campaign
    if "messageRecords" in wanted:
        record["messageRecords"] = message_records(acc, conv)
    participations = [
        _agent_participant(acc, who, at, trail.dialog_of.get(who, conv.main.dialog_id))
        for who, at in trail.joined.items()
    ]
    if "agentParticipants" in wanted:
        record["agentParticipants"] = participations
    if "agentParticipantsLeave" in wanted:
        record["agentParticipantsLeave"] = [
            {**p, **_stamp(trail.left[(p["agentId"], p["role"])])}
            for p in participations
            if (p["agentId"], p["role"]) in trail.left
        ]
    if "agentParticipantsActive" in wanted:
        record["agentParticipantsActive"] = [
            p for p in participations if (p["agentId"], p["role"]) not in trail.left
        ]
    if "consumerParticipants" in wanted:
        record["consumerParticipants"] = [_consumer_participant(acc, conv)]
    if "transfers" in wanted:
        record["transfers"] = [_transfer_item(acc, t) for t in trail.transfers]
    if "interactions" in wanted:
        record["interactions"] = [
            {
                **_agent_names(acc.users.get(agent), "assignedAgent", agent),
                **_stamp(at, "interactionTime"),
                "interactiveSequence": n,
                "dialogId": conv.main.dialog_id,
            }
            for n, (agent, at) in enumerate(trail.interactions, start=1)
        ]
    if "messageScores" in wanted:
        record["messageScores"] = []
    if "messageStatuses" in wanted:
        record["messageStatuses"] = message_statuses(acc, conv)
    if "conversationSurveys" in wanted:
        record["conversationSurveys"] = _survey(conv)
    if "coBrowseSessions" in wanted:
        record["coBrowseSessions"] = {"coBrowseSessionsList": []}
    if "sdes" in wanted:
        consumer = acc.consumers.get(conv.consumer_id)
        sdes = consumer_sdes(consumer)
        at = conv.start_ts
        if consumer is not None and sdes:
            at = recorder.sde_time(acc.account_id, consumer, conv.start_ts)
        record["sdes"] = {"events": sde_events(sdes, at, typed=typed_sdes)}
    if "unAuthSdes" in wanted:
        record["unAuthSdes"] = {"events": []}
    if "responseTime" in wanted:
        record["responseTime"] = {
            "latestEffectiveResponseDueTime": world.effective_ttr(conv),
            "configuredResponseTime": conv.ttr_value * 1000,
        }
    if "monitoring" in wanted:
        props = conv.client_properties or {}
        monitoring = {"device": str(props.get("deviceFamily") or "NA")}
        for key, name in (("ipAddress", "ipAddress"), ("browser", "browser"), ("os", "operatingSystem")):
            if props.get(key):
                monitoring[name] = str(props[key])
        record["monitoring"] = monitoring
    return record
