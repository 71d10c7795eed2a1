"""What a handler gets: the ring or the conversation, the message, the conversation's state, and
the actions (``reply``, ``typing``, ``transfer``, ``close``).

Actions of a conversation handler go through the bot so that each is done **once**, whatever
happens to the process: every message a handler sends carries an idempotency key in its metadata
(``{"type": "ExternalId", "id": "lpm-bot/<dialog>/<trigger>/<n>"}``: the n-th message sent for
that trigger).  When a handler runs again for the same consumer message -- the replica that ran
it died before saving the conversation's state, and another took over -- the messages it had
already sent are found in the dialog and not sent again, and the handler continues from the state
saved before it first ran.
"""

from __future__ import annotations

import re
from dataclasses import KW_ONLY, InitVar, dataclass, field
from typing import TYPE_CHECKING, Any

from lpm.bot.handlers import RingDecision
from lpm.bot.logs import BotLogger

if TYPE_CHECKING:
    from lpm import Conversation, Dialog, Message, Ring
    from lpm.bot.engine import Engine

__all__ = [
    "ConversationContext",
    "MessageContext",
    "RingContext",
    "State",
    "SurveyContext",
]

#: A conversation's state: a JSON object the bot loads before each handler and saves after it.
State = dict[str, Any]


@dataclass(slots=True, eq=False, repr=False)
class RingContext:
    """A ring (an offer of a conversation) for a ``@bot.ring`` handler, which returns a
    :class:`~lpm.bot.RingDecision` (or True / False)."""

    ACCEPT = RingDecision.ACCEPT
    REJECT = RingDecision.REJECT
    DEFER = RingDecision.DEFER

    #: The SDK's ring.
    ring: Ring
    _: KW_ONLY
    #: Conversations this process holds now, and its capacity (None: no limit).
    open_conversations: int
    max_conversations: int | None
    #: A logger whose records carry the conversation id.
    logger: BotLogger

    @property
    def conversation_id(self) -> str:
        return self.ring.conversation_id

    @property
    def skill_id(self) -> str | None:
        return self.ring.skill_id

    def __repr__(self) -> str:
        return f"<RingContext {self.ring.ring_id} skill={self.skill_id}>"


@dataclass(slots=True, eq=False, repr=False)
class ConversationContext:
    """A conversation for ``@bot.conversation_started`` and ``@bot.conversation_closed``
    handlers, and the base of the message and survey contexts.

    ``state`` is the conversation's state: change it in place or assign a new dict; it is saved
    when the handler returns (not when it raises: then the state stays as it was before).
    """

    #: The bot's engine, which does the actions once each.
    _actions: Engine
    #: The SDK's conversation (read anything from it; prefer the context's actions to act).
    conversation: Conversation
    #: The dialog this event is about (MAIN, or the POST_SURVEY dialog of a survey).
    dialog: Dialog
    #: The conversation's state (JSON-serializable values).
    state: State
    _: KW_ONLY
    #: What triggered the handler (its messages' idempotency keys are ``<dialog>/<key>/<n>``).
    key: InitVar[str]
    #: A logger whose records carry the conversation id.
    logger: BotLogger
    _key: str = field(init=False)
    _count: int = field(default=0, init=False)

    def __post_init__(self, key: str) -> None:
        self._key = key

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.conversation_id}>"

    @property
    def conversation_id(self) -> str:
        return self.conversation.conversation_id

    @property
    def skill_id(self) -> str | None:
        """The conversation's skill now."""
        return self.conversation.skill_id

    def _next_key(self) -> str:
        key = f"lpm-bot/{self.dialog.dialog_id}/{self._key}/{self._count}"
        self._count += 1
        return key

    async def reply(
        self,
        text: str,
        *,
        quick_replies: dict[str, Any] | None = None,
        metadata: list[Any] | None = None,
    ) -> int | None:
        """Send a text message to the dialog; returns its sequence (None when this handler
        had already sent it before a failover, and it was not sent again)."""
        return await self._actions.send(
            self, text=text, content=None, quick_replies=quick_replies, metadata=metadata
        )

    async def reply_rich(
        self,
        content: dict[str, Any],
        *,
        quick_replies: dict[str, Any] | None = None,
        metadata: list[Any] | None = None,
    ) -> int | None:
        """Send structured content (a card, buttons...) to the dialog; see :meth:`reply`."""
        return await self._actions.send(
            self, text=None, content=content, quick_replies=quick_replies, metadata=metadata
        )

    async def typing(self, on: bool = True) -> None:
        """Show (or stop showing) that the bot is typing."""
        await self._actions.typing(self, on)

    async def transfer(self, *, skill: str | int | None = None, agent: str | int | None = None) -> None:
        """Hand the conversation to a skill (``skill="12"``) or an agent (a user id); the bot
        leaves it.  Later consumer messages are no longer the bot's."""
        await self._actions.transfer(
            self, None if skill is None else str(skill), None if agent is None else str(agent)
        )

    async def close(self) -> None:
        """Close the conversation (in a survey: the survey dialog, which ends the conversation)."""
        await self._actions.close(self)


@dataclass(slots=True, eq=False, repr=False)
class MessageContext(ConversationContext):
    """A consumer message for ``@bot.message`` and ``@bot.file`` handlers."""

    #: The consumer's message.
    message: Message
    _: KW_ONLY
    #: The regular expression's match when the handler's filter is a regex.
    match: re.Match[str] | None = None

    @property
    def text(self) -> str:
        """The message's text ("" for a file or rich content)."""
        return self.message.text or ""


@dataclass(slots=True, eq=False, repr=False)
class SurveyContext(ConversationContext):
    """A post-conversation survey for ``@bot.survey`` handlers: called once when the survey
    dialog opens (``message`` is None: ask the first question), then for each consumer message
    in it.  ``close()`` ends the survey (and the conversation)."""

    #: The consumer's answer, or None when the survey has just opened.
    message: Message | None

    @property
    def text(self) -> str:
        """The answer's text ("" when there is none)."""
        return "" if self.message is None else (self.message.text or "")
