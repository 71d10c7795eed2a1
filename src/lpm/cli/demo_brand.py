"""The brand side of ``lpm demo``: the sales bot (user ``bot``), a scripted human agent
(``agent``) and the survey bot (``survey-bot``), one user per job as in the default world.

All three are ordinary SDK brand connections (:func:`lpm.create_connection`) driven by events:

* the **bot** is ONLINE on sales (skill 11): it accepts the rings, greets the consumer once it is
  the conversation's assigned agent, reads each consumer message, shows it is typing, answers,
  and transfers the conversation to support (skill 12) when the consumer asks for a human;
* the **agent** is ONLINE on support (skill 12): it accepts the rings (it would reject any other
  skill's), greets, answers, says goodbye and closes the conversation once the consumer has read
  the goodbye (closing earlier would make the consumer's READ receipt a publish to a closed
  dialog);
* the **survey bot** of skill 12 takes no rings: when a support conversation's MAIN dialog
  closes, the platform opens a POST_SURVEY dialog with it as AGENT, and it asks for a rating,
  records the answer, thanks the consumer and closes the survey, which ends the conversation.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal

import lpm

if TYPE_CHECKING:
    from lpm.cli.demo_report import Reporter

__all__ = [
    "AGENT_GREETING",
    "BOT_GREETING",
    "BOT_SKILL",
    "HANDOVER",
    "HUMAN_SKILL",
    "SURVEY_QUESTION",
    "SURVEY_THANKS",
    "Bot",
    "BrandUser",
    "HumanAgent",
    "SurveyBot",
    "bot_answer",
    "brand_connection",
]

#: Sales: where consumers start, the bot's skill in the default world.
BOT_SKILL = "11"
#: Support: the human agent's skill, with a post-conversation survey.
HUMAN_SKILL = "12"
BOT_GREETING = "Hello! I'm the demo bot. How can I help you today?"
HANDOVER = "Sure, let me transfer you to a human agent in support. One moment..."
AGENT_GREETING = "Hi, I'm Sam from support. I've read your chat with the bot: how can I help?"
AGENT_ANSWER = "I've checked: your order ships today and arrives tomorrow."
AGENT_GOODBYE = "You're welcome! Have a nice day."
SURVEY_QUESTION = "How would you rate the help you got, from 1 to 5?"
SURVEY_THANKS = "Thank you for your feedback!"

_GOODBYE = re.compile(r"\b(bye|thanks|thank you)\b", re.IGNORECASE)
_HUMAN = re.compile(r"\b(human|agent|person)\b", re.IGNORECASE)


def bot_answer(text: str) -> str:
    """The bot's canned reply to a consumer's line in the MAIN dialog."""
    lowered = text.lower()
    if _HUMAN.search(text):
        return HANDOVER
    if "hour" in lowered or "open" in lowered:
        return "We are open Monday to Friday, 9:00 to 18:00."
    if lowered.strip(" !.") in {"hi", "hello", "hey"}:
        return "Hi there! Ask me anything."
    return f"You said: {text}"


class BrandUser:
    """A brand connection that answers the consumers of the conversations assigned to it.

    Subclasses say which rings to take (:attr:`skill`, or :meth:`wants`), what to say first
    (:attr:`greeting`) and how to answer (:meth:`on_consumer_message`).  Errors raised by
    handlers reach the connection's ``error`` event and are collected in :attr:`errors`, not
    raised: one failed conversation must not stop the others.
    """

    name: Literal["bot", "agent", "survey"]
    greeting: str
    #: The skill whose rings (and conversations) this user takes.
    skill: str | None = None
    #: What it serves, for the report.
    skill_label: str

    def __init__(self, conn: lpm.BrandWebsocketConnection, reporter: Reporter) -> None:
        self.conn = conn
        self.reporter = reporter
        self.errors: list[str] = []
        self._greeted: set[str] = set()
        #: (dialog id, sequence) of the last message before a close, closed once the consumer read it.
        self._close_after_read: dict[tuple[str, int], lpm.Dialog] = {}
        conn.on("error", self._on_error)
        conn.on("conversation", self._on_conversation)
        conn.on("conversation:participant-added", self._on_participant_added)
        conn.on("conversation:message", self._on_message)
        conn.on("conversation:message-delivery-event", self._on_delivery)

    async def start(self) -> None:
        """Go ONLINE and take rings (the connection is open)."""
        await self.conn.set_agent_state(lpm.AgentState.ONLINE)
        routing = await self.conn.create_routing_task_subscription()
        routing.on("ring", self._on_ring)
        self.reporter.act(self.name, f"logged in as {self.name}, ONLINE on {self.skill_label}")

    # ---------------------------------------------------------------- what subclasses decide

    def wants(self, skill_id: str | None) -> bool:
        """Whether to accept a ring (or greet a conversation) on ``skill_id``: its :attr:`skill`."""
        return self.skill is not None and skill_id == self.skill

    async def on_consumer_message(self, conversation: lpm.Conversation, message: lpm.Message) -> None:
        """Answer a consumer message in a conversation assigned to this user."""
        raise NotImplementedError

    # ---------------------------------------------------------------- shared behaviour

    def _on_error(self, error: BaseException) -> None:
        self.errors.append(f"{self.name}: {type(error).__name__}: {error}")

    async def _on_ring(self, ring: lpm.Ring) -> None:
        if not ring.is_waiting:
            return
        if self.wants(ring.skill_id):
            await ring.accept()
            self.reporter.act(self.name, "accepted the ring")
        else:
            await ring.reject()  # routing offers it to the next agent

    def _mine(self, conversation: lpm.Conversation) -> bool:
        assigned = conversation.assigned_agent
        return assigned is not None and assigned.user_id == self.conn.user_id

    async def _on_conversation(self, conversation: lpm.Conversation) -> None:
        # A conversation first seen already assigned to this user raises no participant-added.
        if self._mine(conversation):
            await self._greet(conversation)

    async def _on_participant_added(
        self, conversation: lpm.Conversation, participant: lpm.Participant, previously_suggested: bool
    ) -> None:
        if (
            participant.user_id == self.conn.user_id
            and participant.role == lpm.ParticipantRole.ASSIGNED_AGENT
            and participant.dialog.dialog_type == lpm.DialogType.MAIN
        ):
            await self._greet(conversation)

    async def _greet(self, conversation: lpm.Conversation) -> None:
        if conversation.conversation_id in self._greeted or not self.wants(conversation.skill_id):
            return
        self._greeted.add(conversation.conversation_id)
        await conversation.send_message(self.greeting)

    async def _on_message(self, conversation: lpm.Conversation, message: lpm.Message) -> None:
        if message.participant.role != lpm.ParticipantRole.CONSUMER:
            return
        dialog = message.dialog
        if dialog.dialog_type == lpm.DialogType.MAIN and dialog.is_open and self._mine(conversation):
            await self.on_consumer_message(conversation, message)
        elif dialog.dialog_type == lpm.DialogType.POST_SURVEY and dialog.is_open:
            await self.on_survey_message(conversation, message)

    async def on_survey_message(self, conversation: lpm.Conversation, message: lpm.Message) -> None:
        """A consumer answered in a survey dialog (only the survey bot acts on it)."""

    async def reply(self, message: lpm.Message, text: str) -> int:
        """Read ``message``, show typing, then answer in its dialog; returns the answer's sequence."""
        dialog = message.dialog
        await message.read()
        await dialog.set_chat_state(lpm.ParticipantChatState.COMPOSING)
        return await dialog.send_message(text)

    def close_after_read(self, dialog: lpm.Dialog, sequence: int) -> None:
        """Close ``dialog`` once the consumer has read the message ``sequence``."""
        self._close_after_read[(dialog.dialog_id, sequence)] = dialog

    async def _on_delivery(self, conversation: lpm.Conversation, messages: list[lpm.Message]) -> None:
        for message in messages:
            key = (message.dialog.dialog_id, message.sequence if message.sequence is not None else -1)
            if key in self._close_after_read and message.has_consumer_read():
                await self.close(conversation, self._close_after_read.pop(key))

    async def close(self, conversation: lpm.Conversation, dialog: lpm.Dialog) -> None:
        """Close ``dialog`` (after the consumer read the last message)."""
        raise NotImplementedError


class Bot(BrandUser):
    """The sales bot."""

    name = "bot"
    greeting = BOT_GREETING
    skill = BOT_SKILL
    skill_label = f"skill {BOT_SKILL} (sales)"

    async def on_consumer_message(self, conversation: lpm.Conversation, message: lpm.Message) -> None:
        """Answer; on a request for a human, say so and transfer to support."""
        text = str(message.body)
        await self.reply(message, bot_answer(text))
        if _HUMAN.search(text):
            await conversation.transfer(skill_id=HUMAN_SKILL)
            self.reporter.act("bot", f"transferred the conversation to skill {HUMAN_SKILL} (support)")


class SurveyBot(BrandUser):
    """The survey bot of skill 12: no rings; the platform adds it to the survey dialogs."""

    name = "survey"
    greeting = ""
    skill_label = f"the survey of skill {HUMAN_SKILL} (support)"

    def __init__(self, conn: lpm.BrandWebsocketConnection, reporter: Reporter) -> None:
        super().__init__(conn, reporter)
        #: Conversation id -> the consumer's survey answer.
        self.survey_answers: dict[str, str] = {}
        conn.on("conversation:dialog", self._on_dialog)

    async def start(self) -> None:
        """Nothing to take: it stays out of routing (not ONLINE, no routing subscription)."""
        self.reporter.act(self.name, f"logged in as survey-bot, runs {self.skill_label}; takes no rings")

    async def on_consumer_message(self, conversation: lpm.Conversation, message: lpm.Message) -> None:
        """Never assigned: nothing to answer in a MAIN dialog."""

    async def _on_dialog(self, conversation: lpm.Conversation, dialog: lpm.Dialog) -> None:
        # The platform adds the survey bot to the POST_SURVEY dialog once MAIN closes.
        me = dialog.get_participant(self.conn.user_id or "")
        if dialog.dialog_type == lpm.DialogType.POST_SURVEY and me is not None:
            await dialog.send_message(SURVEY_QUESTION)

    async def on_survey_message(self, conversation: lpm.Conversation, message: lpm.Message) -> None:
        """Record the rating, thank the consumer, close the survey once the thanks is read."""
        if message.dialog.get_participant(self.conn.user_id or "") is None:
            return
        answer = str(message.body).strip()
        self.survey_answers[conversation.conversation_id] = answer
        self.reporter.act(self.name, f"recorded the survey answer {answer!r}")
        self.close_after_read(message.dialog, await self.reply(message, SURVEY_THANKS))

    async def close(self, conversation: lpm.Conversation, dialog: lpm.Dialog) -> None:
        """Close the survey dialog, which ends the conversation."""
        await dialog.close(lpm.DialogCloseReason.AGENT, "survey done")
        self.reporter.act(self.name, "closed the survey")


class HumanAgent(BrandUser):
    """A scripted human on support: greets, answers, says goodbye and closes."""

    name = "agent"
    greeting = AGENT_GREETING
    #: Only support: the sales rings are the bot's.
    skill = HUMAN_SKILL
    skill_label = f"skill {HUMAN_SKILL} (support)"

    async def on_consumer_message(self, conversation: lpm.Conversation, message: lpm.Message) -> None:
        """Answer; after a goodbye, close once the consumer read ours."""
        if _GOODBYE.search(str(message.body)):
            self.close_after_read(message.dialog, await self.reply(message, AGENT_GOODBYE))
        else:
            await self.reply(message, AGENT_ANSWER)

    async def close(self, conversation: lpm.Conversation, dialog: lpm.Dialog) -> None:
        """Close the conversation: the platform then opens the post-conversation survey."""
        await conversation.close()
        self.reporter.act("agent", "closed the conversation")


def brand_connection(username: str, password: str, common: dict[str, Any]) -> lpm.BrandWebsocketConnection:
    """A brand WebSocket connection for ``username`` (not opened yet)."""
    conn = lpm.create_connection(
        user_type=lpm.UserType.BRAND, auth_data={"username": username, "password": password}, **common
    )
    assert isinstance(conn, lpm.BrandWebsocketConnection)
    return conn
