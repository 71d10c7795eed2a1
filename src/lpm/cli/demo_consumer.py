"""One consumer of ``lpm demo``: a whole conversation through the SDK's consumer connection.

The consumer (anonymous, through the IdP, declaring MULTI_DIALOG so it can take part in the
post-conversation survey) opens a conversation on sales, talks to the bot, asks for a human, is
transferred to support where the human agent answers and closes, then answers the survey that
the platform opens, and waits for the conversation to close.  Every brand message is read (a
READ receipt); the brand's typing indicators and READ receipts are reported as they arrive.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import lpm
from lpm.cli import common
from lpm.cli.demo_brand import BOT_SKILL, HUMAN_SKILL
from lpm.cli.demo_report import ConversationResult, Reporter, Who

__all__ = ["SCRIPT", "SURVEY_ANSWER", "DemoError", "run_consumer"]

#: What the consumer says in the MAIN dialog, and who answers each line, in order (the bot hands
#: over to the human agent, who greets once the transfer is accepted).
SCRIPT: tuple[tuple[str, tuple[Who, ...]], ...] = (
    ("hi", ("bot",)),
    ("what are your opening hours?", ("bot",)),
    ("can I talk to a human, please?", ("bot", "agent")),
    ("my order #1234 has not arrived yet", ("agent",)),
    ("great, thanks! bye", ("agent",)),
)
#: The consumer's answer to the survey's rating question.
SURVEY_ANSWER = "5"


class DemoError(Exception):
    """The conversation did not go as the script says (a wrong speaker, a missing step)."""


@dataclass(slots=True, eq=False, repr=False)
class _Consumer:
    """Event handlers and the script of one consumer's conversation."""

    conversation: lpm.Conversation
    me: str
    names: dict[str, Who]
    result: ConversationResult
    reporter: Reporter
    _loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.get_running_loop, init=False)
    #: Brand messages in arrival order.
    _inbox: asyncio.Queue[lpm.Message] = field(default_factory=asyncio.Queue, init=False)
    #: Loop time of the last line sent and not answered yet.
    _asked_at: float | None = field(default=None, init=False)
    closed: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _reads: set[tuple[str, int | None, str]] = field(default_factory=set, init=False)

    def __post_init__(self) -> None:
        conversation = self.conversation
        conversation.on("message", self._on_message)
        conversation.on("messaging-event", self._on_messaging_event)
        conversation.on("message-delivery-event", self._on_delivery)
        conversation.on("skill-change", self._on_skill_change)
        conversation.on("dialog", self._on_dialog)
        conversation.on("close", self._on_close)

    def _who(self, user_id: str | None) -> Who:
        return self.names.get(user_id or "", "emulator")

    # ---------------------------------------------------------------- events

    def _on_message(self, message: lpm.Message) -> None:
        self.result.messages += 1
        if message.originator_id == self.me:
            return  # our own line, already shown when sent
        latency = None
        if self._asked_at is not None:
            latency = self._loop.time() - self._asked_at
            self._asked_at = None
            self.result.latencies.append(latency)
        self.reporter.say(self._who(message.originator_id), str(message.body), latency)
        self._inbox.put_nowait(message)

    def _on_messaging_event(self, event: Any) -> None:
        # Chat states are not messages: the raw event tells who is typing.
        if (
            event.event_type == "ChatStateEvent"
            and event.event.get("chatState") == lpm.ParticipantChatState.COMPOSING
            and event.originator_id != self.me
        ):
            self.reporter.act(self._who(event.originator_id), "is typing…")

    def _on_delivery(self, messages: list[lpm.Message]) -> None:
        for message in messages:
            if message.originator_id != self.me:
                continue
            for user_id in message.read_by:
                # The event lists every status of the message: report each reader once.
                key = (message.dialog.dialog_id, message.sequence, user_id)
                if user_id != self.me and key not in self._reads:
                    self._reads.add(key)
                    self.reporter.act(self._who(user_id), "read it ✓✓")

    def _on_skill_change(self, previous: str | None, skill_id: str | None) -> None:
        if skill_id == HUMAN_SKILL:
            self.result.transferred = True
            self.reporter.act("emulator", f"conversation moved to skill {skill_id} (support)")

    def _on_dialog(self, dialog: lpm.Dialog) -> None:
        if dialog.dialog_type == lpm.DialogType.POST_SURVEY:
            self.reporter.act("emulator", "post-conversation survey opened (POST_SURVEY dialog)")

    def _on_close(self) -> None:
        self.result.closed = True
        self.closed.set()
        self.reporter.act("emulator", f"conversation closed ({self.conversation.close_reason})")

    # ---------------------------------------------------------------- the script

    async def _expect(self, who: Who, dialog_type: str = lpm.DialogType.MAIN) -> lpm.Message:
        """The next brand message, which must come from ``who`` in a ``dialog_type`` dialog; read it."""
        message = await self._inbox.get()
        speaker = self._who(message.originator_id)
        if speaker != who or message.dialog.dialog_type != dialog_type:
            raise DemoError(
                f"expected {who} in the {dialog_type} dialog, got {speaker} in "
                f"{message.dialog.dialog_type}: {message.body!r}"
            )
        await message.read()
        self.reporter.act("consumer", "read it ✓✓")
        return message

    async def _send(self, text: str) -> None:
        self.reporter.say("consumer", text)
        self._asked_at = self._loop.time()
        await self.conversation.send_message(text)

    async def run(self) -> None:
        """Go through the whole conversation; raises on anything unexpected."""
        await self._expect("bot")  # the greeting
        for line, speakers in SCRIPT:
            await self._send(line)
            for who in speakers:
                await self._expect(who)
        await self._expect("survey", lpm.DialogType.POST_SURVEY)  # the rating question
        await self._send(SURVEY_ANSWER)
        await self._expect("survey", lpm.DialogType.POST_SURVEY)  # thanks
        self.result.surveyed = True
        await self.closed.wait()


async def run_consumer(
    options: dict[str, Any],
    names: dict[str, Who],
    result: ConversationResult,
    reporter: Reporter,
    connect_timeout: float,
) -> None:
    """Connect one consumer and go through its conversation, then report it finished; a failure
    is counted in ``result.error`` (the other consumers go on)."""
    conn = lpm.create_connection(
        user_type=lpm.UserType.CONSUMER,
        # MULTI_DIALOG: the consumer takes part in the survey dialog once MAIN closes.
        client_properties={"features": [lpm.Features.MULTI_DIALOG]},
        **options,
    )
    assert isinstance(conn, lpm.ConsumerWebsocketConnection)
    try:
        await common.open_connection(conn, connect_timeout)
        errors: list[BaseException] = []
        conn.on("error", errors.append)
        try:
            conversation = await conn.create_conversation(skill_id=BOT_SKILL)
            result.conversation_id = conversation.conversation_id
            opened = f"opened conversation {conversation.conversation_id[:8]}… on skill {BOT_SKILL} (sales)"
            reporter.act("consumer", opened)
            await _Consumer(conversation, conn.user_id or "", names, result, reporter).run()
        finally:
            await conn.close()
        if errors:
            raise errors[0]
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    reporter.finished(result)
