"""Handler registration and matching: filters, skills, order, and the mistakes refused early."""

from __future__ import annotations

import re
from typing import Any

import pytest

from lpm.bot import Bot, ConversationContext, MessageContext, RingContext, RingDecision, SurveyContext
from lpm.bot.handlers import message_matcher, skill_set
from lpm.errors import ConfigurationError


class FakeMessage:
    def __init__(self, text: str | None) -> None:
        self.text = text


def matches(what: Any, text: str | None) -> bool:
    matcher = message_matcher(what)
    assert matcher is not None
    return matcher(FakeMessage(text))[0]  # type: ignore[arg-type]


def test_text_filters_match_the_whole_text_in_any_case() -> None:
    assert matches("Hello", "  hello ")
    assert not matches("hello", "hello there")
    assert not matches("hello", None)


def test_regex_filters_search_and_give_the_match() -> None:
    matcher = message_matcher(re.compile(r"order (\d+)"))
    assert matcher is not None
    ok, match = matcher(FakeMessage("where is order 7?"))  # type: ignore[arg-type]
    assert ok and match is not None and match.group(1) == "7"
    assert not matches(re.compile("x"), None)


def test_predicates_and_the_catch_all() -> None:
    assert matches(lambda m: m.text == "a", "a")
    assert message_matcher(None) is None


def test_skill_filters() -> None:
    assert skill_set(None) is None
    assert skill_set(11) == frozenset({"11"})
    assert skill_set(["11", 12]) == frozenset({"11", "12"})
    with pytest.raises(ConfigurationError):
        skill_set([])


def test_decorators_register_in_order_and_return_the_handler() -> None:
    bot = Bot("b")

    @bot.ring(skill="11")
    async def ring(ctx: RingContext) -> RingDecision:
        return RingDecision.ACCEPT

    @bot.conversation_started
    async def started(ctx: ConversationContext) -> None: ...

    @bot.conversation_started(skill=12)
    async def started_12(ctx: ConversationContext) -> None: ...

    @bot.message("a")
    async def a(ctx: MessageContext) -> None: ...

    @bot.message()
    async def rest(ctx: MessageContext) -> None: ...

    @bot.file
    async def file(ctx: MessageContext) -> None: ...

    @bot.survey
    async def survey(ctx: SurveyContext) -> None: ...

    @bot.conversation_closed(skill="11")
    async def closed(ctx: ConversationContext) -> None: ...

    registry = bot._registry
    assert [r.handler for r in registry.started] == [started, started_12]
    assert registry.first(registry.started, "12") is not None
    assert registry.first(registry.rings, "12") is None
    assert registry.first(registry.closed, "12") is None
    found, _ = registry.message(FakeMessage("A"), "11", is_file=False)  # type: ignore[arg-type]
    assert found is not None and found.handler is a
    found, _ = registry.message(FakeMessage("b"), "11", is_file=False)  # type: ignore[arg-type]
    assert found is not None and found.handler is rest
    found, _ = registry.message(FakeMessage(None), "11", is_file=True)  # type: ignore[arg-type]
    assert found is not None and found.handler is file


def test_files_skip_the_catch_all_without_a_file_handler() -> None:
    bot = Bot("b")

    @bot.message()
    async def rest(ctx: MessageContext) -> None: ...

    found, _ = bot._registry.message(FakeMessage(None), None, is_file=True)  # type: ignore[arg-type]
    assert found is None


def test_plain_functions_and_async_filters_are_refused() -> None:
    bot = Bot("b")

    def plain(ctx: ConversationContext) -> None: ...

    with pytest.raises(ConfigurationError, match="async def"):
        bot.conversation_started(plain)  # type: ignore[type-var]

    async def predicate(m: object) -> bool:
        return True

    with pytest.raises(ConfigurationError, match="parentheses"):
        bot.message(predicate)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="compiled regex"):
        bot.message(42)  # type: ignore[arg-type]
