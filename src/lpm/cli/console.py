"""What the interactive commands (``lpm chat``, ``lpm agent``) share: readable messages, an
asyncio line reader for stdin, and a parser for ``/command args`` lines.

Rendering turns a message's body into plain lines a terminal (or a test) can read:

* ``text/plain`` -> the text;
* ``hosted/file`` -> ``[file] <caption or name> (<relative path>)``;
* structured content (``RichContentEvent``) -> one line per text, image, link, map and button,
  nested layouts flattened in order (buttons as ``[button] title -> action``);
* quick replies -> numbered choices ``1) Yes``, ``2) No``.

Nothing here prints: the functions return strings, so ``--json`` runs can use the same data.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import json
import logging
import os
import shlex
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from lpm.errors import LpmError

if TYPE_CHECKING:
    from lpm.client.model.message import Message

__all__ = [
    "Command",
    "LineReader",
    "chat_state_text",
    "describe_content",
    "describe_quick_replies",
    "describe_structured",
    "message_json",
    "parse_line",
    "quick_reply_texts",
    "read_lines",
    "read_receipt_moot",
    "render_message",
    "role_name",
    "send_read_receipt",
    "sender_name",
]

log = logging.getLogger("lpm.cli.console")

PLAIN_TEXT = "text/plain"
HOSTED_FILE = "hosted/file"
RICH_CONTENT = "RichContentEvent"

#: Short names for participant roles, as a chat transcript shows them.
_ROLE_NAMES = {
    "CONSUMER": "consumer",
    "ASSIGNED_AGENT": "agent",
    "AGENT": "agent",
    "MANAGER": "manager",
    "READER": "reader",
    "BRAND_BOT": "bot",
    "CONTROLLER": "system",
}

#: Chat states worth a line, and how they read (``{who}`` is the sender's name).
_CHAT_STATE_TEXT = {
    "COMPOSING": "{who} is typing…",
    "PAUSE": "{who} stopped typing",
    "GONE": "{who} left the chat",
}


# ---------------------------------------------------------------- rendering


def _text(value: Any) -> str:
    """A field as one line of text (structured content may carry numbers or None)."""
    if value is None:
        return ""
    return " ".join(str(value).split())


def _describe_action(click: Any) -> str:
    """What a button or element does when clicked: ``link <uri>``, ``sends "text"``..."""
    if not isinstance(click, dict):
        return ""
    parts: list[str] = []
    for action in click.get("actions") or ():
        if not isinstance(action, dict):
            continue
        kind = action.get("type")
        if kind == "link":
            parts.append(f"link {_text(action.get('uri'))}")
        elif kind == "publishText":
            parts.append(f'sends "{_text(action.get("text"))}"')
        elif kind == "navigate":
            parts.append(f"map {_text(action.get('lat'))},{_text(action.get('lo'))}")
        elif kind:
            parts.append(_text(kind))
    return ", ".join(p for p in parts if p)


def _walk_structured(element: Any, lines: list[str]) -> None:
    if isinstance(element, list):
        for item in element:
            _walk_structured(item, lines)
        return
    if not isinstance(element, dict):
        if element is not None:
            lines.append(_text(element))
        return
    kind = element.get("type")
    if kind in ("vertical", "horizontal", "carousel") or "elements" in element:
        _walk_structured(element.get("elements") or [], lines)
        return
    action = _describe_action(element.get("click"))
    suffix = f" -> {action}" if action else ""
    if kind == "text":
        text = _text(element.get("text"))
        if text:
            lines.append(text + suffix)
    elif kind == "button":
        lines.append(f"[button] {_text(element.get('title'))}{suffix}")
    elif kind == "image":
        caption = _text(element.get("caption") or element.get("tooltip"))
        url = _text(element.get("url"))
        lines.append(f"[image] {caption} ({url})" if caption else f"[image] {url}")
    elif kind == "map":
        lines.append(f"[map] {_text(element.get('lat'))},{_text(element.get('lo'))}")
    elif kind == "link":
        lines.append(
            f"[link] {_text(element.get('title') or element.get('text'))} ({_text(element.get('url'))})"
        )
    else:
        # An element type this renderer does not know: show what can be read of it.
        title = _text(element.get("title") or element.get("text") or element.get("tooltip"))
        if kind or title:
            lines.append(f"[{_text(kind) or 'element'}] {title}".rstrip() + suffix)


def describe_structured(content: Any) -> list[str]:
    """Structured content (a rich content card, possibly nested) as readable lines."""
    lines: list[str] = []
    _walk_structured(content, lines)
    return [line for line in lines if line] or ["[structured content]"]


def quick_reply_texts(quick_replies: Any) -> list[str]:
    """The titles of a ``quickReplies`` object's replies, in order (empty when there are none)."""
    if not isinstance(quick_replies, dict):
        return []
    titles = []
    for reply in quick_replies.get("replies") or ():
        if isinstance(reply, dict):
            titles.append(_text(reply.get("title") or reply.get("tooltip") or reply.get("text")))
    return titles


def describe_quick_replies(quick_replies: Any) -> list[str]:
    """Quick replies as numbered choices: ``1) Yes``, ``2) No``."""
    return [f"{n}) {title}" for n, title in enumerate(quick_reply_texts(quick_replies), start=1)]


def _file_line(body: Any) -> str:
    if not isinstance(body, dict):
        return f"[file] {_text(body)}"
    path = _text(body.get("relativePath"))
    name = _text(body.get("caption")) or path.rsplit("/", 1)[-1] or "file"
    kind = _text(body.get("fileType"))
    kind_part = f" {kind}" if kind else ""
    return f"[file]{kind_part} {name} ({path})" if path else f"[file]{kind_part} {name}"


def describe_content(
    body: Any, content_type: str | None = PLAIN_TEXT, quick_replies: Any = None
) -> list[str]:
    """A message body as readable lines (see the module docstring), quick replies last."""
    kind = str(content_type or PLAIN_TEXT)
    if kind == RICH_CONTENT:
        lines = describe_structured(body)
    elif kind == HOSTED_FILE:
        lines = [_file_line(body)]
    elif isinstance(body, str):
        lines = body.splitlines() or [""]
    elif isinstance(body, dict) and kind != PLAIN_TEXT:
        # Other content types (forms/secure-invitation...): their type and their readable bits.
        lines = [f"[{kind}] " + json.dumps(body, separators=(",", ":"), default=str)]
    else:
        lines = [_text(body)]
    return lines + describe_quick_replies(quick_replies)


def role_name(role: str | None) -> str:
    """A short name for a participant role: ``agent`` for ASSIGNED_AGENT and AGENT, ``bot``,
    ``consumer``, ``system`` (CONTROLLER)...; unknown roles in lower case."""
    return _ROLE_NAMES.get(str(role or ""), str(role or "someone").lower())


#: Roles through which the brand speaks in a dialog.
_BRAND_VOICES = frozenset({"ASSIGNED_AGENT", "AGENT", "MANAGER", "BRAND_BOT"})


def sender_name(message: Message) -> str:
    """A short name for the message's sender: ``agent``, ``consumer``, ``bot``, ``system``...

    In a POST_SURVEY dialog the brand speaks through the skill's survey bot (an AGENT of the
    dialog): its messages are the ``bot``'s.
    """
    role = message.originator_role
    if not role:
        with contextlib.suppress(Exception):  # a detached message: no dialog to ask
            role = message.participant.role
    if role in _BRAND_VOICES and _dialog_type(message) == "POST_SURVEY":
        return "bot"
    return role_name(role)


def _dialog_type(message: Message) -> str | None:
    with contextlib.suppress(Exception):  # a detached message: no dialog to ask
        return str(message.dialog.dialog_type)
    return None


def read_receipt_moot(message: Message) -> bool:
    """Whether a READ receipt for ``message`` no longer makes sense: its dialog (or the whole
    conversation) has closed, and the platform refuses publishes to a closed dialog.  A console
    checks it before sending a receipt and again when the receipt failed (the close may have
    crossed it on the wire)."""
    with contextlib.suppress(Exception):  # a detached message: nothing to send a receipt to
        dialog = message.dialog
        return not dialog.is_open or dialog.conversation.stage != "OPEN"
    return True


async def send_read_receipt(message: Message) -> None:
    """Send READ for ``message`` unless :func:`read_receipt_moot`.  A bot that answers and closes
    at once closes the dialog while the receipt is on its way: a receipt refused for a dialog that
    has closed meanwhile is not a failure (any other refusal is raised)."""
    if read_receipt_moot(message):
        return  # closed while the receipt waited its turn
    try:
        await message.read()
    except LpmError:
        if not read_receipt_moot(message):
            raise
        log.debug("read receipt not needed: dialog %s closed", message.dialog.dialog_id)


def render_message(message: Message, sender: str | None = None, *, indent: str = "  ") -> str:
    """A message as text: ``<sender> » <first line>`` and the other lines indented below.

    ``sender`` defaults to :func:`sender_name`.
    """
    who = sender or sender_name(message)
    lines = describe_content(message.body, message.content_type, message.quick_replies)
    first, rest = lines[0], lines[1:]
    return "\n".join([f"{who} » {first}", *(indent + line for line in rest)])


def message_json(message: Message, sender: str | None = None) -> dict[str, Any]:
    """A message as a JSON-ready object (``--json`` output): its raw body and its readable lines."""
    return {
        "event": "message",
        "conversation_id": message.dialog.conversation.conversation_id,
        "dialog_id": message.dialog.dialog_id,
        "sequence": message.sequence,
        "from": sender or sender_name(message),
        "role": message.originator_role,
        "content_type": message.content_type,
        "body": message.body,
        "quick_replies": quick_reply_texts(message.quick_replies),
        "text": describe_content(message.body, message.content_type, message.quick_replies),
        "time": message.time,
    }


def chat_state_text(who: str, state: str) -> str | None:
    """A line for a participant's chat state (``agent is typing…``), or None for states that
    are not worth a line (ACTIVE, INACTIVE...)."""
    template = _CHAT_STATE_TEXT.get(str(state))
    return template.format(who=who) if template else None


# ---------------------------------------------------------------- command lines


@dataclass(frozen=True)
class Command:
    """A ``/name args`` line: ``name`` lowercased without the slash, ``args`` split like a shell
    would (quotes group words), ``rest`` the raw text after the name."""

    name: str
    args: list[str] = field(default_factory=list)
    rest: str = ""


def parse_line(line: str) -> Command | str:
    """Parse one input line: a :class:`Command` for ``/name args``, else the text to send.

    Surrounding whitespace is stripped (an empty string means "nothing to do").  ``//text``
    sends ``/text``, so a message may start with a slash.  Arguments with an unbalanced quote
    are split on whitespace rather than rejected.
    """
    text = line.strip()
    if not text.startswith("/") or text == "/":
        return text
    if text.startswith("//"):
        return text[1:]
    name, _, rest = text[1:].partition(" ")
    rest = rest.strip()
    try:
        args = shlex.split(rest)
    except ValueError:
        args = rest.split()
    return Command(name.lower(), args, rest)


# ---------------------------------------------------------------- stdin


class LineReader:
    """Reads lines from a file descriptor without blocking the event loop.

    Pipes and terminals are watched with the loop's ``add_reader`` (no thread; the descriptor's
    blocking mode is left alone, so the terminal is unchanged afterwards).  Descriptors the
    loop cannot watch (regular files, ``< input.txt``) are read by a daemon thread, which
    never keeps the process alive.  Raw ``os.read`` is used on purpose: the buffered
    ``sys.stdin`` object holds a lock that a reader thread still blocked at interpreter exit
    would make fatal.

    Lines are returned without their line ending; :meth:`readline` returns None at end of input.
    """

    def __init__(self, source: int | IO[Any] | None = None, *, encoding: str = "utf-8") -> None:
        # Descriptor 0 rather than sys.stdin: sys.stdin is None when the process started without
        # a stdin (``<&-``), and a descriptor that is not open simply reads as end of input.
        self._fd = 0 if source is None else source if isinstance(source, int) else source.fileno()
        self._decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        self._buffer = ""
        self._lines: asyncio.Queue[str | None] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watching = False
        self._eof = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start reading (called by the first :meth:`readline`)."""
        if self._loop is not None:
            return
        self._loop = asyncio.get_running_loop()
        try:
            self._loop.add_reader(self._fd, self._on_readable)
            self._watching = True
        except (OSError, NotImplementedError, ValueError):
            self._thread = threading.Thread(target=self._read_in_thread, name="lpm-stdin", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop reading: a pending :meth:`readline` returns None (a reader thread, if any, ends
        at its next read)."""
        if self._watching and self._loop is not None:
            self._loop.remove_reader(self._fd)
            self._watching = False
        if not self._eof:
            self._eof = True
            self._lines.put_nowait(None)

    def _feed(self, data: bytes) -> None:
        """Split ``data`` (b"" at end of input) into lines; runs on the loop's thread."""
        if self._eof:
            return
        if data:
            self._buffer += self._decoder.decode(data)
            *lines, self._buffer = self._buffer.split("\n")
            for line in lines:
                self._lines.put_nowait(line.removesuffix("\r"))
            return
        tail = self._buffer + self._decoder.decode(b"", final=True)
        self._buffer = ""
        if tail:
            self._lines.put_nowait(tail.removesuffix("\r"))
        self.close()

    def _on_readable(self) -> None:
        try:
            data = os.read(self._fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""  # the descriptor went away: same as end of input
        self._feed(data)

    def _read_in_thread(self) -> None:
        loop = self._loop
        assert loop is not None
        while True:
            try:
                data = os.read(self._fd, 65536)
            except OSError:
                data = b""
            try:
                loop.call_soon_threadsafe(self._feed, data)
            except RuntimeError:
                return  # the loop is closed: nobody is listening any more
            if not data:
                return

    async def readline(self) -> str | None:
        """The next line, or None at end of input (and on every later call)."""
        self.start()
        if self._eof and self._lines.empty():
            return None
        line = await self._lines.get()
        if line is None:
            self._eof = True
        return line

    def __aiter__(self) -> AsyncIterator[str]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[str]:
        while (line := await self.readline()) is not None:
            yield line


async def read_lines(source: int | IO[Any] | None = None) -> AsyncIterator[str]:
    """Yield the lines of ``source`` (stdin by default) until end of input; see :class:`LineReader`."""
    reader = LineReader(source)
    try:
        async for line in reader:
            yield line
    finally:
        reader.close()
