"""The ``lpm chat`` session: what the consumer sees and what its commands do.

:class:`ChatSession` turns a consumer connection's events into output lines (rich text or one
JSON object per line, through :class:`Output`) and runs the lines read from stdin: plain text is
sent, a number picks a quick reply, ``/close``, ``/csat N``, ``/file PATH``, ``/help`` and
``/quit`` are commands.  The click command and the connection set-up live in
:mod:`lpm.cli.chat_cmd`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from lpm.cli import common
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

if TYPE_CHECKING:
    import lpm
    from lpm.client.model.conversation import Conversation
    from lpm.client.model.message import Message
    from lpm.protocol.notifications import MessagingEventInfo

log = logging.getLogger("lpm.cli.chat")

PLAIN_TEXT = "text/plain"
HOSTED_FILE = "hosted/file"

HELP = """\
commands:
  <text>               send a message (//text sends "/text")
  <number>             choose one of the agent's last quick replies
  /file PATH [CAPTION] upload an image (PNG, JPEG, GIF) and send it
  /close               close the conversation
  /csat N              rate the conversation (1-5)
  /help                this list
  /quit                leave (the conversation stays open); so does end of input (Ctrl-D)"""

#: Roles of the people (and bots) on the brand's side, whose arrival is worth a line.
_BRAND_ROLES = frozenset({"ASSIGNED_AGENT", "AGENT", "MANAGER", "BRAND_BOT", "READER"})


class Fatal(Exception):
    """The chat cannot go on; ``error`` (an SDK error) decides the exit code."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class Output:
    """Where events go: readable lines, or one JSON object per line (``--json``)."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def event(self, kind: str, text: str, /, **data: Any) -> None:
        """One event: ``text`` for people, ``{"event": kind, **data}`` for ``--json``."""
        if self.as_json:
            common.print_json({"event": kind, **data})
        else:
            click.echo(text)

    def status(self, kind: str, text: str, /, **data: Any) -> None:
        """A status line (connection, conversation...), set apart from the conversation's text."""
        if self.as_json:
            common.print_json({"event": kind, **data})
        else:
            click.secho(f"* {text}", fg="cyan")

    def error(self, text: str, /, **data: Any) -> None:
        """A command that failed: stderr for people, an ``error`` event for ``--json``."""
        if self.as_json:
            common.print_json({"event": "error", "message": text, **data})
        else:
            click.secho(f"! {text}", fg="red", err=True)


class ChatSession:
    """One consumer connection and its current conversation, driven by input lines."""

    def __init__(self, conn: lpm.ConsumerWebsocketConnection, out: Output, skill_id: str | None) -> None:
        self.conn = conn
        self.out = out
        self.skill_id = skill_id
        self.conversation: Conversation | None = None
        #: What each number sends: (text, metadata) of the last brand message's quick replies.
        self.choices: list[tuple[str, list[Any] | None]] = []
        self._chat_states: dict[str, str] = {}
        self._present: dict[str, str] = {}  # user id -> role of brand participants present
        self._shown: set[tuple[str, int | None]] = set()  # (dialog id, sequence) of shown messages
        #: (content type, text) of messages sent from here whose echo has not arrived yet.
        self._echoes: list[tuple[str, str | None]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._fatal: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()
        self._last_error: BaseException | None = None
        self._quitting = False
        self._connected = False
        conn.on("connect", self._on_connect)
        conn.on("disconnect", self._on_disconnect)
        conn.on("reconnect-wait", self._on_reconnect_wait)
        conn.on("reconnect", self._on_reconnect)
        conn.on("close", self._on_close)
        conn.on("error", self._on_error)

    # ---------------------------------------------------------------- connection events

    def _connection(self, state: str, text: str, **data: Any) -> None:
        """A change of the connection: ``{"event": "connection", "state": state, ...}``."""
        self.out.status("connection", text, state=state, **data)

    def _on_connect(self) -> None:
        self._connected = True
        self._connection("connected", "connected")

    def _on_disconnect(self, info: lpm.CloseInfo) -> None:
        code = info.get("code")
        self._connection(
            "disconnected",
            f"connection lost (code {code}); reconnecting…",
            code=code,
            reason=info.get("reason"),
        )

    def _on_reconnect_wait(self, info: lpm.WaitInfo) -> None:
        if not self._connected:
            return  # the first connection failed: the opening reports it
        seconds = info.get("seconds")
        self._connection("waiting", f"still disconnected; next attempt in {seconds:g} s", seconds=seconds)

    def _on_reconnect(self) -> None:
        self._connection("reconnected", "reconnected; the conversation goes on")

    def _on_close(self, info: lpm.CloseInfo) -> None:
        if self._quitting or not self._connected:
            return  # leaving, or the opening failed (which is reported as such)
        code = info.get("code")
        self._connection("closed", f"connection closed (code {code})", code=code)
        from lpm.errors import AuthenticationError, ConnectionClosedError

        error: BaseException
        if isinstance(self._last_error, AuthenticationError):
            error = self._last_error
        elif code in (4401, 4407):
            error = AuthenticationError("the connection stopped: the consumer identity was refused")
        else:
            error = ConnectionClosedError(
                "the connection was closed", code=code, reason=str(info.get("reason"))
            )
        if not self._fatal.done():
            self._fatal.set_result(error)

    def _on_error(self, error: BaseException) -> None:
        # Errors the SDK reports in the background (a failed reconnect attempt, a handler's
        # bug): logged on stderr, never on stdout, so --json output stays clean.  Errors before
        # the first connect are the opening's failure, which ends the command and is reported then.
        self._last_error = error
        if self._connected and not self._quitting:
            log.warning("%s: %s", type(error).__name__, str(error))

    # ---------------------------------------------------------------- conversation events

    def attach(self, conversation: Conversation, *, resumed: bool = False) -> None:
        """Make ``conversation`` the current one and show what happens in it."""
        self.conversation = conversation
        self.choices = []
        self._chat_states.clear()
        self._present.clear()
        self._shown.clear()
        conversation.on("message", self._on_message)
        conversation.on("messaging-event", self._on_messaging_event)
        conversation.on("notification", lambda _info: self._sync_participants(conversation))
        conversation.on("close", lambda: self._on_conversation_close(conversation))
        conversation.on("dialog", lambda dialog: self._on_dialog(conversation, dialog))
        conversation.on("back-to-queue", lambda: self._on_requeued(conversation))
        skill = conversation.skill_id
        verb = "resumed" if resumed else "opened"
        on_skill = f" (skill {skill})" if skill and skill != "-1" else ""
        waiting = "" if self._brand_participants(conversation) else "; waiting for an agent…"
        self.out.status(
            "conversation",
            f"conversation {conversation.conversation_id} {verb}{on_skill}{waiting} "
            "(/help lists the commands)",
            state=verb,
            conversation_id=conversation.conversation_id,
            skill_id=skill,
        )
        self._sync_participants(conversation)

    def _is_current(self, conversation: Conversation) -> bool:
        return conversation is self.conversation

    def _on_message(self, message: Message) -> None:
        if not self._is_current(message.conversation):
            return
        self._show_message(message)

    def _show_message(self, message: Message) -> None:
        """Show a message once (history and live events may both carry it)."""
        key = (message.dialog.dialog_id, message.sequence)
        if key in self._shown:
            return
        self._shown.add(key)
        own = message.sent_by_current_user()
        if own and self._is_echo(message):
            return  # people see what they typed; the echo of a line sent here needs no copy
        who = "you" if own else sender_name(message)
        self.out.event("message", render_message(message, who), **message_json(message, who))
        if own:
            return
        if message.originator_id:
            self._chat_states.pop(message.originator_id, None)  # the message ends the typing
        self.choices = _choices(message.quick_replies)
        if (
            message.sequence is not None
            and not message.has_consumer_read()
            and not read_receipt_moot(message)
        ):
            self._spawn(send_read_receipt(message), "read receipt")

    async def _sending(self, publish: Awaitable[int], content_type: str, text: str | None = None) -> int:
        """Run ``publish`` (a message sent from here), whose echo is not to be shown."""
        key = (content_type, text)
        self._echoes.append(key)
        try:
            return await publish
        except BaseException:
            if key in self._echoes:
                self._echoes.remove(key)
            raise

    def _is_echo(self, message: Message) -> bool:
        """Whether ``message`` (the user's own) is the echo of one sent from here (and not, say,
        history replayed after a resume, or a message sent from another device)."""
        text = message.body if message.content_type == PLAIN_TEXT else None
        key = (str(message.content_type), text)
        if key in self._echoes:
            self._echoes.remove(key)
            return True
        return False

    def _on_messaging_event(self, event: MessagingEventInfo) -> None:
        if event.event_type != "ChatStateEvent" or not event.originator_id:
            return
        if event.originator_id == self.conn.user_id:
            return
        state = str(event.event.get("chatState") or "")
        if self._chat_states.get(event.originator_id) == state:
            return
        self._chat_states[event.originator_id] = state
        role = event.originator_role or self._present.get(event.originator_id) or ""
        who = role_name(role)
        text = chat_state_text(who, state)
        if self.out.as_json:
            common.print_json(
                {
                    "event": "typing",
                    "from": who,
                    "role": role or None,
                    "state": state,
                    "typing": state == "COMPOSING",
                }
            )
        elif text is not None:
            click.secho(text, dim=True)

    def _sync_participants(self, conversation: Conversation) -> None:
        """Announce brand participants joining and leaving (from the conversation's state)."""
        if not self._is_current(conversation):
            return
        present = self._brand_participants(conversation)
        if present is None:
            return  # closed: who was there is the closing's story, not a list of departures
        for user_id, role in present.items():
            if user_id not in self._present:
                self.out.status(
                    "participant", f"{role_name(role)} joined", action="joined", role=role, user_id=user_id
                )
        for user_id, role in self._present.items():
            if user_id not in present:
                self._chat_states.pop(user_id, None)
                self.out.status(
                    "participant", f"{role_name(role)} left", action="left", role=role, user_id=user_id
                )
        self._present = present

    @staticmethod
    def _brand_participants(conversation: Conversation) -> dict[str, str] | None:
        """User id -> role of the brand's active participants in the open dialog (None when
        no dialog is open: the conversation closed)."""
        dialog = conversation.open_dialog
        if dialog is None:
            return None
        return {p.user_id: str(p.role) for p in dialog.participants if p.role in _BRAND_ROLES and p.is_active}

    def _on_conversation_close(self, conversation: Conversation) -> None:
        if not self._is_current(conversation):
            return
        self._sync_participants(conversation)
        reason = conversation.close_reason
        by = f" by {reason.lower()}" if reason else ""
        self.out.status(
            "conversation",
            f"conversation closed{by}; /csat N rates it, typing starts a new one, /quit leaves",
            state="closed",
            conversation_id=conversation.conversation_id,
            close_reason=reason,
        )

    def _on_dialog(self, conversation: Conversation, dialog: Any) -> None:
        if self._is_current(conversation):
            kind = str(dialog.dialog_type)
            self.out.status(
                "dialog",
                f"{kind.lower().replace('_', ' ')} dialog started",
                dialog_type=kind,
                dialog_id=dialog.dialog_id,
            )

    def _on_requeued(self, conversation: Conversation) -> None:
        if self._is_current(conversation):
            self.out.status(
                "conversation",
                "back in the queue; waiting for an agent…",
                state="queued",
                conversation_id=conversation.conversation_id,
            )

    # ---------------------------------------------------------------- background work

    def _spawn(self, work: Awaitable[Any], what: str) -> None:
        async def run() -> None:
            try:
                await work
            except Exception as exc:  # a receipt that fails is not worth stopping the chat
                log.warning("%s failed: %s: %s", what, type(exc).__name__, str(exc))

        task = asyncio.create_task(run(), name=f"lpm-chat-{what}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait (briefly) for receipts still being sent."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)

    # ---------------------------------------------------------------- starting

    async def start_conversation(self) -> None:
        """Resume the consumer's open conversation, or open one."""
        from lpm.enums import ConversationState

        for conversation in self.conn.get_all_known_conversations():
            if conversation.stage == ConversationState.OPEN:
                # Listening first, then what is already known: the rest of the history arrives
                # as the messaging subscription replays it, and each message is shown once.
                self.attach(conversation, resumed=True)
                for dialog in conversation.dialogs:
                    for message in list(dialog.messages):
                        self._show_message(message)
                return
        await self._new_conversation()

    async def _new_conversation(self) -> Conversation:
        conversation: Conversation = await self.conn.create_conversation(skill_id=self.skill_id)
        self.attach(conversation)
        return conversation

    # ---------------------------------------------------------------- input

    async def run(self, reader: LineReader) -> None:
        """Handle input lines until ``/quit``, end of input, or a fatal connection close."""
        while True:
            line_task = asyncio.ensure_future(reader.readline())
            waiters: set[asyncio.Future[Any]] = {line_task, self._fatal}
            done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            if self._fatal in done:
                line_task.cancel()
                raise Fatal(self._fatal.result())
            line = line_task.result()
            if line is None:
                self.out.status("quit", "end of input; bye", reason="eof")
                return
            parsed = parse_line(line)
            if isinstance(parsed, Command) and parsed.name in ("quit", "exit", "q"):
                self.out.status("quit", "bye", reason="quit")
                return
            # One line at a time, in order: a message is published before the next line is read.
            await self.handle(parsed)

    async def handle(self, parsed: Command | str) -> None:
        """Run one parsed input line; failures are reported, never raised."""
        from lpm.errors import LpmError

        name = parsed.name if isinstance(parsed, Command) else "send"
        try:
            if isinstance(parsed, Command):
                handler = _COMMANDS.get(parsed.name)
                if handler is None:
                    self.out.error(f"unknown command /{parsed.name}; /help lists the commands", command=name)
                    return
                await handler(self, parsed)
            elif parsed:
                await self.send_text(parsed)
        except LpmError as exc:
            self.out.error(
                f"{name}: {type(exc).__name__}: {exc}",
                command=name,
                error_type=type(exc).__name__,
                exit_code=common.exit_code_for(exc),
            )

    async def _open_conversation(self) -> Conversation:
        """The current conversation, or a new one when there is none or it is closed."""
        from lpm.enums import ConversationState

        conversation = self.conversation
        if conversation is None or conversation.stage == ConversationState.CLOSE:
            conversation = await self._new_conversation()
        return conversation

    async def send_text(self, text: str) -> None:
        """Send ``text``; a bare number picks one of the last quick replies."""
        metadata: list[Any] | None = None
        kind = "text"
        if text.isdigit() and 1 <= int(text) <= len(self.choices):
            text, metadata = self.choices[int(text) - 1]
            kind = "quick_reply"
            if not self.out.as_json:
                click.secho(f"you » {text}", dim=True)
        conversation = await self._open_conversation()
        sequence = await self._sending(conversation.send_message(text, metadata), PLAIN_TEXT, text)
        self.choices = []
        if self.out.as_json:
            common.print_json({"event": "sent", "kind": kind, "sequence": sequence, "text": text})

    async def cmd_help(self, command: Command) -> None:
        if self.out.as_json:
            common.print_json({"event": "help", "text": HELP})
        else:
            click.echo(HELP)

    async def cmd_close(self, command: Command) -> None:
        from lpm.errors import InvalidStateError

        if self.conversation is None:
            raise InvalidStateError("there is no conversation to close")
        self.out.status(
            "conversation",
            "closing the conversation…",
            state="closing",
            conversation_id=self.conversation.conversation_id,
        )
        await self.conversation.close()

    async def cmd_csat(self, command: Command) -> None:
        from lpm.errors import ConfigurationError, InvalidStateError

        if len(command.args) != 1 or not command.args[0].isdigit():
            raise ConfigurationError("usage: /csat N (N from 1 to 5)")
        if self.conversation is None:
            raise InvalidStateError("there is no conversation to rate")
        rate = int(command.args[0])
        await self.conversation.set_csat(rate, True)
        self.out.status(
            "csat",
            f"rated the conversation {rate}/5",
            rate=rate,
            conversation_id=self.conversation.conversation_id,
        )

    async def cmd_file(self, command: Command) -> None:
        from lpm.errors import ConfigurationError

        if not command.args:
            raise ConfigurationError("usage: /file PATH [CAPTION]")
        path, data = _read_file(command.args[0])
        caption = " ".join(command.args[1:]) or None
        conversation = await self._open_conversation()
        sequence = await self._sending(conversation.upload_file(data, caption), HOSTED_FILE)
        self.choices = []
        self.out.status(
            "sent",
            f"sent [file] {caption or path.name} ({len(data)} bytes)",
            kind="file",
            sequence=sequence,
            path=str(path),
            caption=caption,
            size=len(data),
        )

    def quit(self) -> None:
        """The user is leaving: the connection's close is not news any more."""
        self._quitting = True


Handler = Callable[[ChatSession, Command], Awaitable[None]]
_COMMANDS: dict[str, Handler] = {
    "help": ChatSession.cmd_help,
    "?": ChatSession.cmd_help,
    "close": ChatSession.cmd_close,
    "csat": ChatSession.cmd_csat,
    "file": ChatSession.cmd_file,
}


def _read_file(name: str) -> tuple[Path, bytes]:
    """The path and bytes of a file to upload (small: at most 3 MB are accepted, so reading it
    on the loop's thread is fine)."""
    from lpm.client.model.conversation import MAX_UPLOAD_SIZE
    from lpm.errors import ConfigurationError

    path = Path(name).expanduser()
    try:
        if path.stat().st_size > MAX_UPLOAD_SIZE:
            raise ConfigurationError(f"{path} is larger than {MAX_UPLOAD_SIZE} bytes (3 MB)")
        return path, path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror or exc}") from None


def _choices(quick_replies: Any) -> list[tuple[str, list[Any] | None]]:
    """(text to send, metadata) per quick reply: the reply's publishText, else its title."""
    if not isinstance(quick_replies, dict):
        return []
    result: list[tuple[str, list[Any] | None]] = []
    for reply in quick_replies.get("replies") or ():
        if not isinstance(reply, dict):
            continue
        click_: dict[str, Any] = reply["click"] if isinstance(reply.get("click"), dict) else {}
        text = None
        for action in click_.get("actions") or ():
            if isinstance(action, dict) and action.get("type") == "publishText" and action.get("text"):
                text = str(action["text"])
                break
        text = text or str(reply.get("title") or reply.get("tooltip") or "")
        metadata = click_.get("metadata")
        if text:
            result.append((text, metadata if isinstance(metadata, list) else None))
    return result


# ---------------------------------------------------------------- options → connection
