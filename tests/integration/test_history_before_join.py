"""``get_all_messages`` and conversations the bot may not read yet (issue 12.6).

A bot's default subscription shows it the conversations waiting on its skills before it takes
one; their history is not readable until it joins (UMS answers ``QueryMessages`` 403).  That is
not an error: nothing is reported, and once the bot accepts the ring the history is loaded and
the consumer's earlier messages arrive as ``message`` events.  Real emulator, real sockets.
"""

from __future__ import annotations

import asyncio

import lpm
from lpm.testing import TestEmulator

WAIT = 20.0


async def test_an_unreadable_history_is_no_error_and_is_loaded_after_the_join(
    lpm_emulator: TestEmulator,
) -> None:
    consumer = await lpm_emulator.consumer()
    conversation = await consumer.create_conversation(skill_id="11")
    await conversation.send_message("hello, is anybody there?")

    errors: list[BaseException] = []
    bot = lpm.create_connection(
        user_type=lpm.UserType.BRAND,
        get_all_messages=True,
        **lpm_emulator.connection_options(auth_data={"username": "bot", "password": "bot-password"}),
    )
    bot.on("error", errors.append)
    announced = asyncio.ensure_future(
        bot.wait_for("conversation", lambda c: c.conversation_id == conversation.conversation_id, WAIT)
    )
    async with bot:
        # The default subscription announces the waiting conversation: its history was asked
        # for (the bot might have been a manager) and refused, quietly.
        waiting = await announced
        assert waiting.main_dialog.get_self_participant() is None
        assert errors == []

        rings = await bot.create_routing_task_subscription()
        rung = asyncio.ensure_future(rings.wait_for("ring", timeout=WAIT))
        earlier = asyncio.ensure_future(
            bot.wait_for("conversation:message", lambda _c, m: m.body == "hello, is anybody there?", WAIT)
        )
        await bot.set_agent_state(lpm.AgentState.ONLINE)
        await (await rung).accept()
        # Joined: the history is read now and the earlier message is new to the bot.
        _conv, message = await earlier
        assert message.sequence == 0
        assert errors == []
