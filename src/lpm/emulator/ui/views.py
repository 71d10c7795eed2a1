"""What the UI's backend answers: the live overview, transcripts and their exports.

Everything here reads the world as it is (no copies kept): :func:`overview` the skills with their
queues, the agents and bots with their state and load, the open conversations (and the latest
closed ones) with stage, skill, participants and waiting time; :func:`transcript` a conversation's
lines (:mod:`lpm.emulator.ui.timeline`) as JSON for the page; :func:`transcript_text` the same as
readable text (the "export as text" of a conversation).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from lpm.emulator import entities as m
from lpm.emulator.entities import Account, Conversation, EventRecord
from lpm.emulator.ring_routing import WAITING
from lpm.emulator.ui.timeline import Entry, Timeline, event_record, skill_name, user_name

if TYPE_CHECKING:
    from lpm.emulator.hub import Hub
    from lpm.emulator.world import World

#: Closed conversations listed in the overview (the most recently updated).
RECENT_CLOSED = 25


# ---------------------------------------------------------------- overview


def _participants(acc: Account, conv: Conversation) -> list[dict[str, Any]]:
    """Every participant of every dialog (with the dialog's type), the CONTROLLER aside."""
    return [
        {
            "id": p.id,
            "role": p.role,
            "state": p.state,
            "name": user_name(acc, p.id, p.role),
            "dialog": dialog.dialog_type,
            "dialog_state": dialog.state,
        }
        for dialog in conv.dialogs
        for p in dialog.participants
        if p.role != m.CONTROLLER
    ]


def conversation_summary(acc: Account, conv: Conversation, timeline: Timeline) -> dict[str, Any]:
    """One conversation as the overview lists it."""
    consumer = acc.consumers.get(conv.consumer_id)
    track = timeline.tracks.get(conv.conv_id)
    assigned = next(
        (
            user_name(acc, p.id)
            for p in conv.main.participants
            if p.role == m.ASSIGNED_AGENT and p.state == m.ACTIVE and conv.main.state == m.OPEN
        ),
        None,
    )
    queued_since = track.queued_since if track is not None else None
    if queued_since is None and assigned is None and conv.stage == m.OPEN and conv.main.state == m.OPEN:
        queued_since = conv.start_ts
    open_dialog = conv.open_dialog()
    return {
        "id": conv.conv_id,
        "stage": conv.stage,
        "state": conv.state,
        "skill_id": conv.skill_id,
        "skill": skill_name(acc, conv.skill_id),
        "consumer": {"id": conv.consumer_id, "kind": consumer.kind if consumer else ""},
        "participants": _participants(acc, conv),
        "dialogs": [{"id": d.dialog_id, "type": d.dialog_type, "state": d.state} for d in conv.dialogs],
        "open_dialog": open_dialog.dialog_type if open_dialog else None,
        "assigned": assigned,
        "started": conv.start_ts,
        "queued_since": queued_since,
        "awaiting_reply_since": conv.awaiting_reply_since,
        "last_update": conv.last_update_ts,
        "close_reason": conv.close_reason,
        "csat": conv.csat["csatRate"] if conv.csat else None,
    }


def overview(world: World, hub: Hub[Any], timeline: Timeline) -> dict[str, Any]:
    """The overview of every account (see the module docstring)."""
    sockets: dict[tuple[str, str, bool], int] = {}
    for session in list(hub.sessions):
        actor = session.actor
        if actor is not None:
            key = (actor.account_id, actor.id, actor.is_consumer)
            sockets[key] = sockets.get(key, 0) + 1
    accounts = []
    for acc in world.accounts.values():
        open_convs = [
            acc.conversations[cid] for cid in acc.open_conversation.values() if cid in acc.conversations
        ]
        open_ids = {c.conv_id for c in open_convs}
        load: dict[str, int] = {}
        queued: dict[str, list[str]] = {}
        for conv in open_convs:
            agent = next(
                (p.id for p in conv.main.participants if p.role == m.ASSIGNED_AGENT and p.state == m.ACTIVE),
                None,
            )
            if conv.main.state == m.OPEN and agent is None:
                queued.setdefault(conv.skill_id, []).append(conv.conv_id)
            elif agent is not None and conv.main.state == m.OPEN:
                load[agent] = load.get(agent, 0) + 1
        rings: dict[str, int] = {}
        for task in acc.tasks.values():
            for ring in task.rings:
                if ring.state == WAITING:
                    rings[ring.user_id] = rings.get(ring.user_id, 0) + 1
        skills = [
            {
                "id": s.skill_id,
                "name": s.name,
                "survey": s.survey,
                "on_shift": s.on_shift,
                "queue": queued.get(s.skill_id, []),
            }
            for s in acc.skills.values()
        ]
        if queued.get("-1"):
            skills.append(
                {"id": "-1", "name": "any skill", "survey": False, "on_shift": True, "queue": queued["-1"]}
            )
        agents = []
        for user in acc.users.values():
            state = acc.agent_states.get(user.user_id)
            agents.append(
                {
                    "user_id": user.user_id,
                    "login": user.login_name,
                    "name": user.nickname or user.login_name,
                    "is_bot": user.is_bot,
                    "is_manager": user.is_manager,
                    "skills": list(user.skills),
                    "availability": state.availability if state else "OFFLINE",
                    "sockets": sockets.get((acc.account_id, user.user_id, False), 0),
                    "routing": acc.routing_listeners.get(user.user_id, 0) > 0,
                    "load": load.get(user.user_id, 0),
                    "rings": rings.get(user.user_id, 0),
                }
            )
        closed = sorted(
            (
                c
                for t in timeline.tracks.values()
                if t.account_id == acc.account_id
                and t.conv_id not in open_ids
                and (c := acc.conversations.get(t.conv_id)) is not None
            ),
            key=lambda c: c.last_update_ts,
            reverse=True,
        )[:RECENT_CLOSED]
        conversations = sorted(open_convs, key=lambda c: c.start_ts, reverse=True) + closed
        accounts.append(
            {
                "account_id": acc.account_id,
                "skills": skills,
                "agents": agents,
                "conversations": [conversation_summary(acc, c, timeline) for c in conversations],
                "consumer_sockets": sum(
                    n for (a, _, consumer), n in sockets.items() if consumer and a == acc.account_id
                ),
            }
        )
    return {"now": world.now_ms(), "accounts": accounts}


# ---------------------------------------------------------------- transcripts


def _originator(acc: Account, record: EventRecord) -> dict[str, Any]:
    return {
        "id": record.originator_id,
        "role": record.originator_role,
        "name": user_name(acc, record.originator_id, record.originator_role),
    }


def entry_json(acc: Account, conv: Conversation, entry: Entry) -> dict[str, Any]:
    """One transcript line for the page."""
    dialog = conv.dialog(entry.dialog_id) if entry.dialog_id else None
    out: dict[str, Any] = {
        "n": entry.n,
        "t": entry.t,
        "kind": entry.kind,
        "text": entry.text,
        "dialog_id": entry.dialog_id,
        "dialog_type": dialog.dialog_type if dialog else None,
    }
    record = event_record(acc, entry.dialog_id, entry.sequence)
    if record is not None:
        out["sequence"] = record.sequence
        out["who"] = _originator(acc, record)
        out["event"] = record.event
        out["audience"] = record.audience
        if record.metadata:
            out["metadata"] = record.metadata
    return out


def transcript(acc: Account, conv: Conversation, timeline: Timeline) -> dict[str, Any]:
    return {
        "conversation": conversation_summary(acc, conv, timeline),
        "entries": [entry_json(acc, conv, e) for e in timeline.entries(acc, conv)],
    }


def _texts(node: Any, out: list[str]) -> None:
    """The visible texts of structured content (text elements and titles), in order."""
    if isinstance(node, dict):
        for key in ("text", "title"):
            value = node.get(key)
            if isinstance(value, str) and value:
                out.append(value)
        for key in ("elements", "replies"):
            _texts(node.get(key), out)
    elif isinstance(node, list):
        for item in node:
            _texts(item, out)


def content_text(event: dict[str, Any]) -> str:
    """A messaging event as one line of text."""
    kind = event.get("type")
    if kind == "ContentEvent":
        content_type = event.get("contentType")
        message = event.get("message")
        if content_type == "hosted/file" and isinstance(message, dict):
            caption = message.get("caption") or ""
            text = f"[file {message.get('fileType', '?')}{': ' + str(caption) if caption else ''}]"
        elif isinstance(message, str):
            text = message if content_type == "text/plain" else f"[{content_type}] {message}"
        else:
            text = f"[{content_type}]"
        replies: list[str] = []
        _texts(event.get("quickReplies"), replies)
        if replies:
            text += f"  [quick replies: {' | '.join(replies)}]"
        return text
    if kind == "RichContentEvent":
        texts: list[str] = []
        _texts(event.get("content"), texts)
        return f"[structured content: {' | '.join(texts)}]"
    if kind == "AcceptStatusEvent":
        sequences = ", ".join(str(s) for s in event.get("sequenceList") or ())
        return f"{event.get('status')} {sequences}"
    return str(kind)


def _when(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}"


def transcript_text(acc: Account, conv: Conversation, entries: Iterable[Entry]) -> str:
    """A readable transcript (times in UTC)."""
    consumer = acc.consumers.get(conv.consumer_id)
    lines = [
        f"Conversation {conv.conv_id}",
        f"Account {acc.account_id}, skill {skill_name(acc, conv.skill_id)}, stage {conv.stage}",
        f"Consumer {conv.consumer_id} ({consumer.kind if consumer else 'unknown'})",
        "Times are UTC.",
        "",
    ]
    for entry in entries:
        record = event_record(acc, entry.dialog_id, entry.sequence)
        if record is None:
            lines.append(f"{_when(entry.t)}  -- {entry.text}")
            continue
        who = _originator(acc, record)
        dialog = conv.dialog(record.dialog_id)
        where = f" [{dialog.dialog_type}]" if dialog is not None and dialog.dialog_type != m.MAIN else ""
        private = " (private)" if record.audience != "ALL" else ""
        lines.append(
            f"{_when(entry.t)}  {who['name']} ({who['role']}){where}{private}: {content_text(record.event)}"
        )
    return "\n".join(lines) + "\n"
