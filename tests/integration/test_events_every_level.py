"""Events never silence each other (issue 12.4): a listener on the connection leaves the
conversation's waiters their events, and a ``wait_for`` that times out says what it waited for."""

from __future__ import annotations

import asyncio

import pytest

import lpm
from lpm.emulator.app import Emulator
from tests.integration.test_sdk_resilience import start_chat


async def test_a_connection_listener_does_not_silence_conversation_waiters(emulator: Emulator) -> None:
    chat = await start_chat(emulator)
    try:
        logged: list[str] = []
        chat.bot.on("conversation:close", lambda conversation: logged.append(conversation.conversation_id))
        chat.bot.on("conversation:message", lambda conversation, message: logged.append(message.body))
        message = asyncio.ensure_future(chat.bot_view.wait_for("message", timeout=10))
        dialog_message = asyncio.ensure_future(chat.bot_view.main_dialog.wait_for("message", timeout=10))
        await chat.cons_view.send_message("c hello")
        assert (await message).body == (await dialog_message).body == "c hello"
        closed = asyncio.ensure_future(chat.bot_view.wait_for("close", timeout=10))
        await chat.cons_view.close()
        await closed
        assert logged == ["c hello", chat.bot_view.conversation_id]
    finally:
        await chat.cons.close()
        await chat.bot.close()


async def test_a_wait_for_timeout_names_the_event_and_the_object(emulator: Emulator) -> None:
    chat = await start_chat(emulator)
    try:
        with pytest.raises(lpm.WaitTimeoutError) as info:
            await chat.bot_view.wait_for("skill-change", timeout=0.2)
        assert isinstance(info.value, TimeoutError)
        assert info.value.event == "skill-change" and info.value.timeout == 0.2
        assert "'skill-change'" in str(info.value) and chat.bot_view.conversation_id in str(info.value)
    finally:
        await chat.cons.close()
        await chat.bot.close()
