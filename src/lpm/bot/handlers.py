"""Handler registrations: which handler a ring, a message or a conversation event goes to.

A handler is an ``async def`` taking one context (:mod:`lpm.bot.context`).  Each kind keeps its
handlers in registration order; the first one whose filters match gets the event, the others
never see it (so put specific handlers before a catch-all).
"""

from __future__ import annotations

import enum
import inspect
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeAlias, TypeVar

from lpm.errors import ConfigurationError

if TYPE_CHECKING:
    from lpm import Message
    from lpm.bot.context import ConversationContext, MessageContext, RingContext, SurveyContext

__all__ = [
    "ConversationHandler",
    "MessageFilter",
    "MessageHandler",
    "RingDecision",
    "RingHandler",
    "SkillFilter",
    "SurveyHandler",
]


class RingDecision(enum.StrEnum):
    """What a ring handler decides (``True`` / ``False`` mean ACCEPT / REJECT)."""

    #: Take the conversation.
    ACCEPT = "accept"
    #: Decline it: routing offers it to another agent.
    REJECT = "reject"
    #: Leave the ring unanswered (it expires, or another session of the same user takes it).
    DEFER = "defer"


#: Skills a handler is for: one id, several, or None for every skill.
SkillFilter: TypeAlias = "str | int | Iterable[str | int] | None"
#: What ``@bot.message(...)`` matches: a text (equal, ignoring case and surrounding blanks), a
#: compiled regular expression (``search``; the match is ``ctx.match``), a predicate on the
#: message, or None for every message.
MessageFilter: TypeAlias = "str | re.Pattern[str] | Callable[[Message], bool] | None"

RingHandler: TypeAlias = "Callable[[RingContext], Awaitable[RingDecision | bool]]"
ConversationHandler: TypeAlias = "Callable[[ConversationContext], Awaitable[None]]"
MessageHandler: TypeAlias = "Callable[[MessageContext], Awaitable[None]]"
SurveyHandler: TypeAlias = "Callable[[SurveyContext], Awaitable[None]]"

H = TypeVar("H", bound=Callable[..., Awaitable[Any]])


def skill_set(skill: SkillFilter) -> frozenset[str] | None:
    """The skill ids of a filter (None: any)."""
    if skill is None:
        return None
    if isinstance(skill, str | int):
        return frozenset({str(skill)})
    values = frozenset(str(s) for s in skill)
    if not values:
        raise ConfigurationError("skill= must name at least one skill (or be None for every skill)")
    return values


def check_handler(handler: Any, kind: str) -> None:
    """Handlers are coroutine functions: a plain function's result would never be awaited."""
    if not callable(handler) or not inspect.iscoroutinefunction(handler):
        raise ConfigurationError(
            f"@bot.{kind} handlers must be 'async def' functions taking a context, not {handler!r}"
        )


@dataclass(frozen=True)
class Registration(Generic[H]):
    """One handler with its filters."""

    handler: H
    skills: frozenset[str] | None = None
    matcher: Callable[[Message], tuple[bool, re.Match[str] | None]] | None = None

    @property
    def name(self) -> str:
        return getattr(self.handler, "__qualname__", None) or repr(self.handler)

    def skill_matches(self, skill_id: str | None) -> bool:
        return self.skills is None or (skill_id is not None and skill_id in self.skills)


def message_matcher(what: MessageFilter) -> Callable[[Message], tuple[bool, re.Match[str] | None]] | None:
    """The matcher of a ``@bot.message(...)`` filter."""
    if what is None:
        return None
    if isinstance(what, str):
        wanted = what.strip().casefold()

        def equal(message: Message) -> tuple[bool, re.Match[str] | None]:
            text = message.text
            return (text is not None and text.strip().casefold() == wanted), None

        return equal
    if isinstance(what, re.Pattern):
        pattern = what

        def search(message: Message) -> tuple[bool, re.Match[str] | None]:
            text = message.text
            found = pattern.search(text) if text is not None else None
            return found is not None, found

        return search
    if callable(what):
        if inspect.iscoroutinefunction(what):
            raise ConfigurationError(
                "@bot.message(...) takes a text, a regex or a predicate; decorate the handler with "
                "@bot.message() (with parentheses)"
            )
        predicate = what

        def check(message: Message) -> tuple[bool, re.Match[str] | None]:
            return bool(predicate(message)), None

        return check
    raise ConfigurationError(f"@bot.message(...) takes a text, a compiled regex or a predicate, not {what!r}")


class Registry:
    """Every handler of one bot, by kind."""

    def __init__(self) -> None:
        self.rings: list[Registration[RingHandler]] = []
        self.started: list[Registration[ConversationHandler]] = []
        self.messages: list[Registration[MessageHandler]] = []
        self.files: list[Registration[MessageHandler]] = []
        self.surveys: list[Registration[SurveyHandler]] = []
        self.closed: list[Registration[ConversationHandler]] = []

    @staticmethod
    def first(registrations: list[Registration[H]], skill_id: str | None) -> Registration[H] | None:
        for registration in registrations:
            if registration.skill_matches(skill_id):
                return registration
        return None

    def message(
        self, message: Message, skill_id: str | None, *, is_file: bool
    ) -> tuple[Registration[MessageHandler] | None, re.Match[str] | None]:
        """The handler of a consumer message (files go to ``@bot.file`` handlers first, then to
        message handlers whose filter accepts them), and the regex match if any."""
        if is_file:
            found = self.first(self.files, skill_id)
            if found is not None:
                return found, None
        for registration in self.messages:
            if not registration.skill_matches(skill_id):
                continue
            if registration.matcher is None:
                if is_file:
                    continue  # a catch-all takes the messages with a text or content, not files
                return registration, None
            ok, match = registration.matcher(message)
            if ok:
                return registration, match
        return None, None
