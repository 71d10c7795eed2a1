"""The logic of ``lpm agent``: one logged-in brand connection driven by ``/command`` lines.

:class:`AgentConsole` listens to the connection (rings, conversations, messages, typing,
reconnects) and prints one line per event through an :class:`Output` — readable text, or with
``--json`` one JSON object per line.  Rings and conversations get small numbers, in order of
arrival, that the commands refer to (``/accept 1``, ``/switch 2``); numbers are never reused
within a session, so a number typed a moment late still means what the user saw.

Plain lines are sent to the *current* conversation.  Every message shown is marked READ, so the
consumer sees that it was read.  Commands run one at a time, in the order typed, while events
keep printing.

Why one module (about 600 lines): the console's state (numbered rings and conversations,
the current one) is read by every event printer and every command.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import lpm
from lpm.cli.common import print_json
from lpm.cli.console import (
    Command,
    LineReader,
    chat_state_text,
    message_json,
    parse_line,
    read_receipt_moot,
    render_message,
    role_name,
    send_read_receipt,
    sender_name,
)
from lpm.enums import ConversationState, DialogState, DialogType, MessageAudience, ParticipantRole
from lpm.errors import AuthenticationError, LpmConnectionError, LpmError

__all__ = ["AGENT_STATE_NAMES", "COMMANDS", "AgentConsole", "Output"]

#: ``/state`` arguments and the agent states they set.
AGENT_STATE_NAMES = {
    "online": lpm.AgentState.ONLINE,
    "away": lpm.AgentState.AWAY,
    "back_soon": lpm.AgentState.BACK_SOON,
    "back-soon": lpm.AgentState.BACK_SOON,
    "occupied": lpm.AgentState.OCCUPIED,
    "offline": lpm.AgentState.OFFLINE,
}

#: Every command with its usage and what it does (``/help`` prints this).
COMMANDS: tuple[tuple[str, str], ...] = (
    ("/state online|away|back_soon|occupied|offline", "set your agent state (rings arrive while online)"),
    ("/rings", "list the rings waiting for an answer"),
    ("/accept [N]", "accept ring N (the only waiting ring when N is omitted)"),
    ("/reject [N]", "reject ring N"),
    ("/list", "list your conversations (* marks the current one)"),
    ("/switch N", "make conversation N the current one; plain lines go to it"),
    ("/transfer skill ID", "transfer the current conversation to a skill"),
    ("/transfer agent ID", "transfer the current conversation to an agent (user id)"),
    ("/close", "close the current conversation"),
    ("/help", "show this list"),
    ("/quit", "log out and exit (end of input does the same)"),
)


def _short(identifier: str | None) -> str:
    """The first 8 characters of a UUID-like id: enough to tell conversations apart on screen."""
    return (identifier or "?")[:8]


def _takes_part(conversation: lpm.Conversation) -> bool:
    """Whether this agent is in the conversation: its MAIN dialog is open and the agent an active
    participant of it.  Once MAIN closes (the post-conversation survey may keep the conversation
    open, with the agent as a READER of the survey) or the agent leaves, it is not."""
    if conversation.stage != ConversationState.OPEN:
        return False
    main = conversation.main_dialog
    me = main.get_self_participant()
    return main.state == DialogState.OPEN and me is not None and me.is_active


class Output:
    """Where the console's lines go: text lines on stdout, or one JSON object per line.

    In text mode an event without a line prints nothing; in JSON mode every event prints
    ``{"event": name, ...data}`` (the text line is not repeated).
    """

    def __init__(self, *, as_json: bool) -> None:
        self.as_json = as_json

    def event(self, name: str, line: str | None = None, /, **data: Any) -> None:
        """Report one event."""
        if self.as_json:
            print_json({"event": name, **data})
        elif line is not None:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def problem(self, message: str, **data: Any) -> None:
        """A command that could not be done, or a background error: ``error: message``."""
        self.event("error", f"error: {message}", message=message, **data)


@dataclass
class _Tracked:
    """A conversation the console numbered."""

    number: int
    conversation: lpm.Conversation
    #: It closed, or it is no longer ours (transferred away).
    ended: bool = False
    #: A transfer or close this console asked for is under way (its own line follows).
    leaving: bool = False
    #: Messages shown (``(dialog id, sequence)``): history and live events never print twice.
    shown: set[tuple[str, int]] = field(default_factory=set)


class AgentConsole:
    """The agent console over an open brand connection; see the module docstring.

    Call :meth:`attach` before opening the connection's subscriptions (it registers the event
    handlers), :meth:`start` once the connection is open, then feed lines to :meth:`handle_line`
    (or run :meth:`read_commands`).  :attr:`fatal` completes with an exception when the session
    cannot go on (the connection was closed for good, e.g. its credentials were refused).
    """

    def __init__(self, conn: lpm.BrandWebsocketConnection, out: Output) -> None:
        self.conn = conn
        self.out = out
        self.routing: lpm.RoutingTaskSubscription | None = None
        self.subscription: lpm.ConversationSubscription | None = None
        #: Rings still waiting, by number.
        self.rings: dict[int, lpm.Ring] = {}
        self._next_ring = 1
        self.conversations: dict[int, _Tracked] = {}
        self._by_id: dict[str, _Tracked] = {}
        #: Conversations of the feed this agent does not take part in (not listed, not numbered).
        self._aside: set[str] = set()
        #: The agent state last shown (None: none yet).
        self._state: str | None = None
        #: The conversation plain lines go to.
        self.current: int | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._quitting = False
        self.fatal: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

    # ---------------------------------------------------------------- setup

    def attach(self) -> None:
        """Register the connection's event handlers."""
        conn = self.conn
        conn.on("conversation", self._on_conversation)
        conn.on("conversation:message", self._on_message)
        conn.on("conversation:close", self._on_close)
        conn.on("conversation:dialog:close", self._on_dialog_close)
        conn.on("conversation:skill-change", self._on_skill_change)
        conn.on("agent-state", self._on_agent_state)
        conn.on("disconnect", self._on_disconnect)
        conn.on("reconnect-wait", self._on_reconnect_wait)
        conn.on("reconnect", self._on_reconnect)
        conn.on("close", self._on_connection_close)
        conn.on("error", self._on_error)

    async def start(self, state: str | None) -> None:
        """Subscribe to this agent's conversations and rings, then set ``state`` (if given)."""
        conn = self.conn
        # Only the conversations this agent takes part in: the account-wide default feed would
        # show a manager everybody's conversations.
        query: dict[str, Any] = {"stage": ["OPEN"]}
        if conn.agent_id:
            query["agent_ids"] = [conn.agent_id]
        self.subscription = await conn.create_conversation_subscription(query)
        self.subscription.on("delete", self._on_delete)
        self.subscription.on("upsert", self._on_upsert)
        self.routing = await conn.create_routing_task_subscription()
        self.routing.on("ring", self._on_ring)
        if state is not None:
            await self._set_state(state)

    async def stop(self) -> None:
        """Stop the tasks the console started (read receipts...)."""
        self._quitting = True
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> None:
        """Run ``coro`` in the background; a failure is reported as an ``error`` line."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None and not self._quitting:
                self.out.problem(f"{what}: {t.exception()}")

        task.add_done_callback(done)

    # ---------------------------------------------------------------- conversations

    def _track(self, conversation: lpm.Conversation) -> _Tracked:
        """The conversation's entry; a conversation seen for the first time is numbered and
        announced (it becomes the current one when there is none)."""
        tracked = self._by_id.get(conversation.conversation_id)
        if tracked is not None:
            return tracked
        number = len(self.conversations) + 1
        tracked = _Tracked(number, conversation)
        self.conversations[number] = tracked
        self._by_id[conversation.conversation_id] = tracked
        conversation.on("messaging-event", lambda event: self._on_messaging_event(tracked, event))
        made_current = self.current is None
        if made_current:
            self.current = number
        consumer = conversation.consumer
        consumer_id = consumer.user_id if consumer is not None else None
        self.out.event(
            "conversation",
            f"[{number}] new conversation {_short(conversation.conversation_id)} on skill "
            f"{conversation.skill_id} with consumer {_short(consumer_id)}"
            + (" (current)" if made_current else ""),
            conversation=number,
            conversation_id=conversation.conversation_id,
            skill_id=conversation.skill_id,
            consumer_id=consumer_id,
            current=made_current,
        )
        return tracked

    def _on_conversation(self, conversation: lpm.Conversation) -> None:
        if not _takes_part(conversation):
            # Announced without us in it: after a restart, a conversation whose survey is still
            # open (we are only a READER of it), or one suggested to us that we have not taken
            # yet.  It joins the list if and when we take part (see _on_upsert).
            self._aside.add(conversation.conversation_id)
            return
        self._aside.discard(conversation.conversation_id)
        tracked = self._track(conversation)
        # The history loaded before the announcement: what the consumer said before we joined.
        for dialog in conversation.dialogs:
            for message in dialog.messages:
                self._show(tracked, message)

    def _on_message(self, conversation: lpm.Conversation, message: lpm.Message) -> None:
        tracked = self._by_id.get(conversation.conversation_id)
        # Not in our list, or no longer ours (e.g. the survey that follows our close): not shown.
        if tracked is not None and not tracked.ended:
            self._show(tracked, message)

    def _show(self, tracked: _Tracked, message: lpm.Message) -> None:
        if message.sequence is not None:
            key = (message.dialog.dialog_id, message.sequence)
            if key in tracked.shown:
                return
            tracked.shown.add(key)
        if message.sent_by_current_user():
            return  # what this agent typed is on its screen already
        sender = sender_name(message)
        if message.audience == MessageAudience.AGENTS_AND_MANAGERS:
            sender += " (private)"
        n = tracked.number
        line = f"[{n}] " + render_message(message, sender, indent=" " * (len(str(n)) + 5))
        data = message_json(message, sender)
        data.pop("event", None)
        self.out.event("message", line, conversation=n, **data)
        if (
            message.originator_role == ParticipantRole.CONSUMER
            and message.sequence is not None
            and not read_receipt_moot(message)
        ):
            # Shown means read: the consumer's client shows the message as read.
            self._spawn(send_read_receipt(message), f"[{n}] read receipt")

    def _on_messaging_event(self, tracked: _Tracked, event: Any) -> None:
        if event.event_type != "ChatStateEvent" or event.originator_id == self.conn.user_id:
            return
        state = str(event.event.get("chatState") or "")
        who = role_name(event.originator_role)
        line = chat_state_text(who, state)
        n = tracked.number
        self.out.event(
            "typing",
            f"[{n}] {line}" if line else None,
            conversation=n,
            conversation_id=tracked.conversation.conversation_id,
            who=who,
            state=state,
        )

    def _end(self, tracked: _Tracked, name: str, text: str, *, own: bool = False, **data: Any) -> None:
        """Mark the conversation over and say why; ``own``: the result of our own request."""
        if tracked.ended or (tracked.leaving and not own):
            return
        tracked.ended = True
        n = tracked.number
        note = ""
        if self.current == n:
            self.current = None
            note = "; no current conversation (/list, /switch N)"
        self.out.event(
            name,
            f"[{n}] {text}{note}",
            conversation=n,
            conversation_id=tracked.conversation.conversation_id,
            **data,
        )

    def _on_close(self, conversation: lpm.Conversation) -> None:
        tracked = self._by_id.get(conversation.conversation_id)
        if tracked is not None:
            self._end(tracked, "closed", "conversation closed", reason=conversation.close_reason)

    def _on_dialog_close(self, conversation: lpm.Conversation, dialog: lpm.Dialog) -> None:
        # With a post-conversation survey the conversation stays open after its MAIN dialog
        # closes; for the agent the chat is over all the same.
        tracked = self._by_id.get(conversation.conversation_id)
        if tracked is not None and dialog.dialog_type == DialogType.MAIN:
            self._end(tracked, "closed", "conversation closed", reason=dialog.closed_by)

    def _on_delete(self, conversation: lpm.Conversation) -> None:
        """The conversation left this agent's feed: closed, or transferred away."""
        tracked = self._by_id.get(conversation.conversation_id)
        if tracked is not None:
            self._end(tracked, "left", "you are no longer in this conversation")

    def _on_upsert(self, conversation: lpm.Conversation) -> None:
        """A change of a conversation of the feed: one set aside joins the list once we take
        part; one of the list leaves it when we no longer take part (removed from it, or only a
        READER of the survey that follows its MAIN dialog); one we had left comes back (a
        transfer routed it to us again)."""
        cid = conversation.conversation_id
        tracked = self._by_id.get(cid)
        mine = _takes_part(conversation)
        if tracked is None:
            if mine and cid in self._aside:
                self._on_conversation(conversation)
            return
        if tracked.leaving:
            return  # our own transfer or close is under way: its line follows
        if not mine:
            self._end(tracked, "left", "you are no longer in this conversation")
            return
        if not tracked.ended:
            return
        tracked.ended = False
        if self.current is None:
            self.current = tracked.number
        self.out.event(
            "conversation",
            f"[{tracked.number}] you are back in conversation {_short(conversation.conversation_id)}"
            f" on skill {conversation.skill_id}" + (" (current)" if self.current == tracked.number else ""),
            conversation=tracked.number,
            conversation_id=conversation.conversation_id,
            skill_id=conversation.skill_id,
            current=self.current == tracked.number,
        )

    def _on_skill_change(self, conversation: lpm.Conversation, previous: str | None, new: str | None) -> None:
        tracked = self._by_id.get(conversation.conversation_id)
        if tracked is None:
            return
        self.out.event(
            "skill-change",
            f"[{tracked.number}] skill changed from {previous} to {new}",
            conversation=tracked.number,
            conversation_id=conversation.conversation_id,
            previous=previous,
            skill_id=new,
        )

    # ---------------------------------------------------------------- rings

    def _on_ring(self, ring: lpm.Ring) -> None:
        number = self._next_ring
        self._next_ring += 1
        self.rings[number] = ring
        for outcome in ("accepted", "rejected", "cancelled", "expired"):
            ring.on(outcome, self._ring_outcome(number, outcome))
        seconds = round(ring.expiration / 1000) if ring.expiration else None
        expires = f", expires in {seconds} s" if seconds is not None else ""
        self.out.event(
            "ring",
            f"ring {number}: conversation {_short(ring.conversation_id)} on skill {ring.skill_id}"
            f"{expires} (/accept {number}, /reject {number})",
            ring=number,
            ring_id=ring.ring_id,
            conversation_id=ring.conversation_id,
            skill_id=ring.skill_id,
            consumer_id=ring.consumer_id,
            expires_in=seconds,
        )

    def _ring_outcome(self, number: int, outcome: str) -> Callable[[lpm.Ring], None]:
        def handler(ring: lpm.Ring) -> None:
            self.rings.pop(number, None)
            self.out.event(
                f"ring-{outcome}",
                f"ring {number} {outcome}",
                ring=number,
                ring_id=ring.ring_id,
                conversation_id=ring.conversation_id,
            )

        return handler

    def _pick_ring(self, command: Command) -> lpm.Ring | None:
        if not command.args:
            if len(self.rings) == 1:
                return next(iter(self.rings.values()))
            self.out.problem(
                f"/{command.name} needs a ring number ({len(self.rings)} waiting; /rings lists them)"
            )
            return None
        try:
            number = int(command.args[0])
        except ValueError:
            number = -1
        ring = self.rings.get(number)
        if ring is None or not ring.is_waiting:
            self.out.problem(f"no waiting ring {command.args[0]} (/rings lists them)")
            return None
        return ring

    # ---------------------------------------------------------------- connection events

    def _connection(self, status: str, line: str, **data: Any) -> None:
        """A change of the connection: ``{"event": "connection", "status": status, ...}``."""
        self.out.event("connection", line, status=status, **data)

    def _on_disconnect(self, info: lpm.CloseInfo) -> None:
        code = info.get("code")
        self._connection(
            "disconnected",
            f"connection lost (code {code}); reconnecting",
            code=code,
            reason=info.get("reason"),
        )

    def _on_reconnect_wait(self, info: lpm.WaitInfo) -> None:
        seconds = info.get("seconds")
        self._connection("waiting", f"next connection attempt in {seconds} s", seconds=seconds)

    def _on_reconnect(self) -> None:
        self._connection("reconnected", "reconnected")

    def _on_connection_close(self, info: lpm.CloseInfo) -> None:
        if self._quitting or self.fatal.done():
            return
        # Closed without /quit: the connection gave up (its credentials were refused for good).
        reason = info.get("reason") or "connection closed"
        error: LpmError = (
            AuthenticationError(str(reason)) if info.get("code") == 4401 else LpmConnectionError(reason)
        )
        self.fatal.set_result(error)

    def _on_error(self, error: BaseException) -> None:
        if not self._quitting:
            self.out.problem(f"{type(error).__name__}: {error}", kind=type(error).__name__)

    # ---------------------------------------------------------------- commands

    async def read_commands(self, reader: LineReader) -> None:
        """Handle lines until ``/quit`` or the end of input."""
        while (line := await reader.readline()) is not None:
            if not await self.handle_line(line):
                return

    async def handle_line(self, line: str) -> bool:
        """Handle one input line; False when the console should quit."""
        parsed = parse_line(line)
        if isinstance(parsed, str):
            if parsed:
                await self._send(parsed)
            return True
        if parsed.name in ("quit", "exit", "q"):
            self._quitting = True
            self.out.event("quit", None)
            return False
        handler = self._handlers().get(parsed.name)
        if handler is None:
            self.out.problem(f"unknown command /{parsed.name} (/help lists the commands)")
            return True
        try:
            await handler(parsed)
        except LpmError as exc:
            self.out.problem(f"/{parsed.name}: {exc}", command=parsed.name)
        return True

    def _handlers(self) -> dict[str, Callable[[Command], Awaitable[None]]]:
        return {
            "help": self._cmd_help,
            "state": self._cmd_state,
            "rings": self._cmd_rings,
            "accept": self._cmd_accept,
            "reject": self._cmd_reject,
            "list": self._cmd_list,
            "switch": self._cmd_switch,
            "transfer": self._cmd_transfer,
            "close": self._cmd_close,
        }

    def _current(self) -> _Tracked | None:
        tracked = self.conversations.get(self.current) if self.current is not None else None
        if tracked is None:
            self.out.problem("no current conversation (/list, then /switch N)")
        return tracked

    async def _send(self, text: str) -> None:
        tracked = self._current()
        if tracked is None:
            return
        try:
            sequence = await tracked.conversation.send_message(text)
        except LpmError as exc:
            self.out.problem(f"[{tracked.number}] not sent: {exc}", conversation=tracked.number)
            return
        self.out.event("sent", None, conversation=tracked.number, sequence=sequence, text=text)

    async def _cmd_help(self, command: Command) -> None:
        width = max(len(usage) for usage, _ in COMMANDS)
        lines = [f"{usage.ljust(width)}  {what}" for usage, what in COMMANDS]
        lines.append("Any other line is sent to the current conversation (start it with // to send a /).")
        self.out.event(
            "help",
            "\n".join(lines),
            commands=[{"usage": usage, "description": what} for usage, what in COMMANDS],
        )

    async def _cmd_state(self, command: Command) -> None:
        name = command.args[0].lower() if command.args else ""
        if name not in AGENT_STATE_NAMES:
            self.out.problem("usage: /state online|away|back_soon|occupied|offline", command="state")
            return
        await self._set_state(AGENT_STATE_NAMES[name])

    async def _set_state(self, state: str) -> None:
        # Noted first: the platform's notification of this very change may arrive before the
        # answer, and must not print a second line.
        self._state = str(state)
        await self.conn.set_agent_state(state)
        self.out.event("state", f"state {state}", state=str(state))

    def _on_agent_state(self, info: Any) -> None:
        """This agent's state, as the platform reports it: a change made elsewhere (another
        session of the same agent, a manager) is shown, so the console never claims a state the
        platform does not route by."""
        if info.agent_id != self.conn.agent_id or self._quitting:
            return
        state, shown = str(info.availability), self._state
        self._state = state
        if shown is None or state == shown:
            return  # the state at login (nothing shown yet), or the one just shown
        self.out.event(
            "state", f"state {state} (set by another session or a manager)", state=state, elsewhere=True
        )

    async def _cmd_rings(self, command: Command) -> None:
        waiting = {n: r for n, r in self.rings.items() if r.is_waiting}
        lines = [
            f"ring {n}: conversation {_short(r.conversation_id)} on skill {r.skill_id}"
            for n, r in waiting.items()
        ]
        self.out.event(
            "rings",
            "\n".join(lines) if lines else "no rings waiting",
            rings=[
                {
                    "ring": n,
                    "ring_id": r.ring_id,
                    "conversation_id": r.conversation_id,
                    "skill_id": r.skill_id,
                }
                for n, r in waiting.items()
            ],
        )

    async def _cmd_accept(self, command: Command) -> None:
        ring = self._pick_ring(command)
        if ring is not None:
            # "ring N accepted" is printed when routing confirms it; the conversation follows.
            await ring.accept()

    async def _cmd_reject(self, command: Command) -> None:
        ring = self._pick_ring(command)
        if ring is not None:
            await ring.reject()

    async def _cmd_list(self, command: Command) -> None:
        entries = []
        lines = []
        for n, tracked in self.conversations.items():
            if tracked.ended:
                continue
            conv = tracked.conversation
            consumer = conv.consumer
            consumer_id = consumer.user_id if consumer is not None else None
            messages = sum(len(d.messages) for d in conv.dialogs)
            mark = "* " if n == self.current else "  "
            lines.append(
                f"{mark}[{n}] {_short(conv.conversation_id)} skill {conv.skill_id} "
                f"consumer {_short(consumer_id)} ({messages} messages)"
            )
            entries.append(
                {
                    "conversation": n,
                    "conversation_id": conv.conversation_id,
                    "skill_id": conv.skill_id,
                    "consumer_id": consumer_id,
                    "messages": messages,
                    "current": n == self.current,
                }
            )
        self.out.event(
            "list",
            "\n".join(lines) if lines else "no conversations",
            conversations=entries,
            current=self.current,
        )

    async def _cmd_switch(self, command: Command) -> None:
        try:
            number = int(command.args[0]) if command.args else -1
        except ValueError:
            number = -1
        tracked = self.conversations.get(number)
        if tracked is None or tracked.ended:
            self.out.problem("usage: /switch N, N an open conversation of /list", command="switch")
            return
        self.current = number
        self.out.event(
            "switched",
            f"[{number}] is the current conversation",
            conversation=number,
            conversation_id=tracked.conversation.conversation_id,
        )

    async def _cmd_transfer(self, command: Command) -> None:
        if len(command.args) != 2 or command.args[0].lower() not in ("skill", "agent"):
            self.out.problem("usage: /transfer skill ID or /transfer agent ID", command="transfer")
            return
        tracked = self._current()
        if tracked is None:
            return
        kind, target = command.args[0].lower(), command.args[1]
        tracked.leaving = True
        try:
            if kind == "skill":
                await tracked.conversation.transfer(skill_id=target)
            else:
                await tracked.conversation.transfer(agent_id=target)
        finally:
            tracked.leaving = False
        self._end(
            tracked, "transferred", f"transferred to {kind} {target}", own=True, **{f"{kind}_id": target}
        )

    async def _cmd_close(self, command: Command) -> None:
        tracked = self._current()
        if tracked is None:
            return
        tracked.leaving = True
        try:
            await tracked.conversation.close()
        finally:
            tracked.leaving = False
        self._end(tracked, "closed", "conversation closed", own=True, reason="AGENT")
