"""Conversation scripts: test a bot with what a consumer says and what it should get back.

::

    from lpm.testing import ConversationScript, expect, expect_transfer, say

    script = ConversationScript(
        [
            expect("Hello! How can I help?"),          # the greeting, before anything is said
            say("what are your prices?"),
            expect(re.compile(r"10 EUR")),              # a regex: search
            say("I want a human"),
            expect_transfer(skill="12"),
        ],
        skill_id="11",
    )
    transcript = await script.run(consumer)             # an opened consumer connection

Each ``expect`` takes the next message of the bot (any non-consumer message, in order) within
``timeout`` seconds; ``expect_no_reply`` checks that nothing comes for a while.  A step that does
not hold raises :class:`ScriptFailure` (an ``AssertionError``) saying which step, what was
expected and what came, followed by the whole transcript::

    step 4 of 5 failed: expected a reply matching /10 EUR/ within 5 s; got 'Sorry?'
    transcript:
      -> consumer: what are your prices?
      <- bot: Sorry?

With the ``lpm_emulator`` fixture, ``await lpm_emulator.start_bot(bot)`` runs the bot against the
test's emulator (stopped after the test).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

import lpm

__all__ = [
    "ConversationScript",
    "ScriptFailure",
    "Step",
    "consumer_close",
    "expect",
    "expect_close",
    "expect_no_reply",
    "expect_transfer",
    "say",
]

Expected: TypeAlias = "str | re.Pattern[str] | Callable[[lpm.Message], bool]"


class ScriptFailure(AssertionError):
    """A step of a conversation script did not hold (the message says which, and shows the
    transcript)."""


@dataclass(frozen=True)
class Step:
    """One step of a script (made by :func:`say`, :func:`expect`...)."""

    kind: str
    text: str | None = None
    expected: Expected | None = None
    skill: str | None = None
    timeout: float | None = None

    def describe(self) -> str:
        """The step in words (``say 'hi'``, ``expect the reply 'Hello!'``...)."""
        if self.kind == "say":
            return f"say {self.text!r}"
        if self.kind == "expect":
            return f"expect {_show_expected(self.expected)}"
        if self.kind == "transfer":
            return f"expect a transfer to skill {self.skill}"
        if self.kind == "close":
            return "expect the conversation to close"
        if self.kind == "silence":
            return f"expect no reply for {self.timeout} s"
        return "close the conversation (consumer)"


def say(text: str) -> Step:
    """The consumer sends ``text``."""
    return Step("say", text=text)


def expect(expected: Expected, *, timeout: float | None = None) -> Step:
    """The bot's next message is ``expected``: a text (equal), a compiled regex (search) or a
    predicate on the :class:`lpm.Message`."""
    return Step("expect", expected=expected, timeout=timeout)


def expect_transfer(*, skill: str | int, timeout: float | None = None) -> Step:
    """The conversation moves to ``skill``."""
    return Step("transfer", skill=str(skill), timeout=timeout)


def expect_close(*, timeout: float | None = None) -> Step:
    """The conversation (its main dialog) closes."""
    return Step("close", timeout=timeout)


def expect_no_reply(seconds: float = 0.5) -> Step:
    """No message of the bot arrives for ``seconds``."""
    return Step("silence", timeout=seconds)


def consumer_close() -> Step:
    """The consumer closes the conversation."""
    return Step("consumer-close")


def _show_expected(expected: Expected | None) -> str:
    if isinstance(expected, str):
        return f"the reply {expected!r}"
    if isinstance(expected, re.Pattern):
        return f"a reply matching /{expected.pattern}/"
    name = getattr(expected, "__name__", None) or repr(expected)
    return f"a reply passing {name}"


def _matches(expected: Expected | None, message: lpm.Message) -> bool:
    if isinstance(expected, str):
        return message.text == expected
    if isinstance(expected, re.Pattern):
        return expected.search(message.text or "") is not None
    if expected is None:
        return True
    return bool(expected(message))


def _from_consumer(message: lpm.Message) -> bool:
    role = message.originator_role or message.participant.role
    return role == lpm.ParticipantRole.CONSUMER


def _content(message: lpm.Message) -> str:
    if message.text is not None:
        return message.text
    if message.structured_content is not None:
        return f"<rich content {message.structured_content.get('type', '')}>"
    if message.relative_path is not None:
        return f"<file {message.relative_path}>"
    return f"<{message.content_type}>"


@dataclass
class Transcript:
    """What was said, in order: ``(who, text)`` with who ``consumer`` or ``bot``."""

    lines: list[tuple[str, str]] = field(default_factory=list)
    conversation: lpm.Conversation | None = None

    def __str__(self) -> str:
        if not self.lines:
            return "  (nothing was said)"
        arrows = {"consumer": "->", "bot": "<-", "event": "**"}
        return "\n".join(f"  {arrows.get(who, '  ')} {who}: {text}" for who, text in self.lines)

    def bot_lines(self) -> list[str]:
        """What the bot said, in order."""
        return [text for who, text in self.lines if who == "bot"]


class ConversationScript:
    """Steps a consumer plays against a running bot (see the module docstring)."""

    def __init__(self, steps: Sequence[Step], *, skill_id: str | int = "11", timeout: float = 5.0) -> None:
        self.steps = list(steps)
        self.skill_id = str(skill_id)
        self.timeout = timeout

    async def run(self, consumer: lpm.ConsumerWebsocketConnection) -> Transcript:
        """Open a conversation on ``skill_id`` with ``consumer`` (opened) and play the steps;
        returns the transcript, raises :class:`ScriptFailure` at the first step that fails."""
        conversation = await consumer.create_conversation(skill_id=self.skill_id)
        return await self.play(conversation)

    async def play(self, conversation: lpm.Conversation) -> Transcript:
        """Play the steps in an existing conversation (the consumer's side of it).  The bot's
        messages already there after the consumer's last one count as the next replies."""
        transcript = Transcript(conversation=conversation)
        inbox: asyncio.Queue[lpm.Message] = asyncio.Queue()
        seen: set[tuple[str, int | None]] = set()

        def take(message: lpm.Message) -> None:
            key = (message.dialog.dialog_id, message.sequence)
            if key in seen or _from_consumer(message):
                return
            seen.add(key)
            inbox.put_nowait(message)

        conversation.on("message", take)
        try:
            for dialog in conversation.dialogs:
                last = max((i for i, m in enumerate(dialog.messages) if _from_consumer(m)), default=-1)
                for message in dialog.messages[last + 1 :]:
                    take(message)
            for number, step in enumerate(self.steps, start=1):
                try:
                    await self._play(step, conversation, inbox, transcript)
                except ScriptFailure as exc:
                    raise ScriptFailure(
                        f"step {number} of {len(self.steps)} failed: {exc}\ntranscript:\n{transcript}"
                    ) from None
        finally:
            conversation.off("message", take)
        return transcript

    async def _play(
        self,
        step: Step,
        conversation: lpm.Conversation,
        inbox: asyncio.Queue[lpm.Message],
        transcript: Transcript,
    ) -> None:
        timeout = step.timeout if step.timeout is not None else self.timeout
        if step.kind == "say":
            assert step.text is not None
            transcript.lines.append(("consumer", step.text))
            await conversation.send_message(step.text)
        elif step.kind == "expect":
            try:
                message = await asyncio.wait_for(inbox.get(), timeout)
            except TimeoutError:
                raise ScriptFailure(
                    f"expected {_show_expected(step.expected)} within {timeout:g} s; got nothing"
                ) from None
            transcript.lines.append(("bot", _content(message)))
            if not _matches(step.expected, message):
                raise ScriptFailure(f"expected {_show_expected(step.expected)}; got {_content(message)!r}")
        elif step.kind == "silence":
            try:
                message = await asyncio.wait_for(inbox.get(), timeout)
            except TimeoutError:
                return
            transcript.lines.append(("bot", _content(message)))
            raise ScriptFailure(f"expected no reply for {timeout:g} s; got {_content(message)!r}")
        elif step.kind == "transfer":
            if not await _until(lambda: conversation.skill_id == step.skill, timeout):
                raise ScriptFailure(
                    f"expected a transfer to skill {step.skill} within {timeout:g} s; the conversation "
                    f"is on skill {conversation.skill_id}"
                )
            transcript.lines.append(("event", f"transferred to skill {step.skill}"))
        elif step.kind == "close":
            if not await _until(lambda: conversation.main_dialog.state == lpm.DialogState.CLOSE, timeout):
                raise ScriptFailure(f"expected the conversation to close within {timeout:g} s; it is open")
            transcript.lines.append(("event", "closed"))
        else:
            transcript.lines.append(("event", "the consumer closes"))
            await conversation.close()


async def _until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True
