"""``conversation.close()`` while the post-conversation survey is open (issue 12.6).

Once the MAIN dialog has closed and the skill's survey opened a POST_SURVEY dialog, the
conversation is still OPEN.  ``close()`` then ends the survey (the open dialogs are closed with
``DialogChange``) and the conversation closes; it used to send ``ConversationStateField`` CLOSE
again and fail with ``RequestError ... already closed``.  Real emulator, real sockets.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

import lpm
from lpm.errors import InvalidStateError
from lpm.testing import TestEmulator

#: Support: the default world's skill with a post-conversation survey.
SURVEY_SKILL = "12"
WAIT = 20.0


def survey_bot_login(emu: TestEmulator) -> str:
    """The login name of the survey skill's bot in the emulator's world."""
    account = emu.spec.accounts[0]
    skill = next(s for s in account.skills if s.skill_id == SURVEY_SKILL)
    assert skill.survey and skill.survey_bot_user_id
    return next(u.login_name for u in account.users if u.user_id == skill.survey_bot_user_id)


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {WAIT} s"
        await asyncio.sleep(0.02)


def errors_of(*connections: lpm.Connection) -> list[BaseException]:
    errors: list[BaseException] = []
    for conn in connections:
        conn.on("error", errors.append)
    return errors


async def in_survey(
    emu: TestEmulator,
) -> tuple[lpm.ConsumerWebsocketConnection, lpm.Conversation, lpm.Conversation, lpm.Dialog, list[Any]]:
    """A conversation on the survey skill, handled by ``agent`` and closed by it: the survey is
    open.  Returns (consumer connection, consumer's conversation, agent's view, the consumer's
    survey dialog, the errors every connection reported)."""
    agent = await emu.agent("agent")
    survey_bot = await emu.agent(survey_bot_login(emu))
    consumer = await emu.consumer(client_properties={"features": [lpm.Features.MULTI_DIALOG]})
    errors = errors_of(agent, survey_bot, consumer)
    await agent.set_agent_state(lpm.AgentState.ONLINE)
    rings = await agent.create_routing_task_subscription()
    rung = asyncio.ensure_future(rings.wait_for("ring", timeout=WAIT))
    conversation = await consumer.create_conversation(skill_id=SURVEY_SKILL)
    agent_view = await (await rung).accept()
    survey_opened = asyncio.ensure_future(conversation.wait_for("dialog", timeout=WAIT))
    await agent_view.close()
    survey: lpm.Dialog = await survey_opened
    assert survey.dialog_type == lpm.DialogType.POST_SURVEY
    assert conversation.main_dialog.state == lpm.DialogState.CLOSE
    assert conversation.stage == lpm.ConversationState.OPEN
    return consumer, conversation, agent_view, survey, errors


async def test_consumer_close_during_the_survey_ends_it(lpm_emulator: TestEmulator) -> None:
    _consumer, conversation, agent_view, survey, errors = await in_survey(lpm_emulator)

    closed = asyncio.ensure_future(conversation.wait_for("close", timeout=WAIT))
    await conversation.close()
    assert conversation.stage in (lpm.ConversationState.CLOSING, lpm.ConversationState.CLOSE)
    await closed
    assert conversation.stage == lpm.ConversationState.CLOSE
    assert survey.state == lpm.DialogState.CLOSE
    assert survey.closed_by == lpm.DialogCloseReason.CONSUMER
    assert conversation.open_dialog is None
    await until(lambda: agent_view.stage == lpm.ConversationState.CLOSE, "the agent saw the close")
    with pytest.raises(InvalidStateError, match="already closed"):
        await conversation.close()
    # The world agrees: the conversation is over.
    account = lpm_emulator.world.accounts[lpm_emulator.account_id]
    assert account.conversations[conversation.conversation_id].stage == "CLOSE"
    assert errors == []


async def test_brand_close_during_the_survey_ends_it(lpm_emulator: TestEmulator) -> None:
    """The agent (a READER of the survey) may end it too: the same rule on the brand side."""
    _consumer, conversation, agent_view, survey, errors = await in_survey(lpm_emulator)
    closed = asyncio.ensure_future(conversation.wait_for("close", timeout=WAIT))
    # The agent's view learns of the survey dialog from its own notification.
    await until(
        lambda: (
            agent_view.open_dialog is not None
            and agent_view.open_dialog.dialog_type == lpm.DialogType.POST_SURVEY
        ),
        "the agent saw the survey dialog",
    )
    await agent_view.close()
    await closed
    assert survey.state == lpm.DialogState.CLOSE
    assert survey.closed_by == lpm.DialogCloseReason.AGENT
    assert errors == []
