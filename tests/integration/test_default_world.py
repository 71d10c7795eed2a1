"""The emulator's default world gives each user one job (issue 12.6).

``bot`` takes sales (11), ``agent`` support (12), and support's post-conversation survey is run by
a bot of its own, ``survey-bot``: with the agent and the bot ONLINE, a sales conversation rings
the bot only (no human competes for it and lets it wait out a ring), a support conversation the
agent only, and closing a support conversation puts ``survey-bot`` -- not the sales bot -- in the
survey.
Real emulator, real sockets.
"""

from __future__ import annotations

import asyncio

import lpm
from lpm.testing import TestEmulator

WAIT = 20.0


async def test_each_user_has_one_job(lpm_emulator: TestEmulator) -> None:
    account = lpm_emulator.world.accounts[lpm_emulator.account_id]
    users = {u.login_name: u for u in account.users.values()}
    assert {name: (u.user_id, u.skills, u.is_bot) for name, u in users.items()} == {
        "agent": ("1001", ["12"], False),
        "bot": ("2001", ["11"], True),
        "survey-bot": ("2002", ["12"], True),
    }
    assert account.skills["12"].survey and account.skills["12"].survey_bot_user_id == "2002"
    assert not account.skills["11"].survey

    # The agent and the bot ONLINE with a routing subscription; the survey bot connected as a
    # survey bot is (the platform adds it to survey dialogs: it takes no rings).
    rings: dict[str, list[lpm.Ring]] = {}
    for name in ("agent", "bot"):
        conn = await lpm_emulator.agent(name)
        await conn.set_agent_state(lpm.AgentState.ONLINE)
        subscription = await conn.create_routing_task_subscription()
        rings[name] = []
        subscription.on("ring", rings[name].append)
    await lpm_emulator.agent("survey-bot")

    consumer = await lpm_emulator.consumer(client_properties={"features": [lpm.Features.MULTI_DIALOG]})
    sales = await consumer.create_conversation(skill_id="11")
    tasks = account.tasks
    assert [r.user_id for r in tasks[sales.conversation_id].rings] == ["2001"]  # the bot, at once
    await sales.close()

    support = await consumer.create_conversation(skill_id="12")
    assert [r.user_id for r in tasks[support.conversation_id].rings] == ["1001"]  # the agent, at once
    deadline = asyncio.get_running_loop().time() + WAIT
    while not rings["agent"]:
        assert asyncio.get_running_loop().time() < deadline, "the agent was never rung"
        await asyncio.sleep(0.02)
    agent_view = await rings["agent"][0].accept()
    assert [r.conversation_id for r in rings["bot"]] == [sales.conversation_id]

    survey_opened = asyncio.ensure_future(support.wait_for("dialog", timeout=WAIT))
    await agent_view.close()
    survey: lpm.Dialog = await survey_opened
    roles = {(p.user_id, p.role) for p in survey.participants}
    assert (account.users["2002"].pid, lpm.ParticipantRole.AGENT) in roles
    assert account.users["2001"].pid not in {user_id for user_id, _ in roles}
