"""Connection-class and message-content mistakes that mypy --strict must refuse: each line marked
``# E: <code>`` must get that error (tools/check_typing.py), and no other line may get one.  Never
run."""

from __future__ import annotations

import lpm


async def wrong_connection_class() -> None:
    consumer = lpm.create_connection(account_id="1", user_type=lpm.UserType.CONSUMER)
    bot = lpm.create_connection(account_id="1", user_type=lpm.UserType.BRAND)
    rest = lpm.create_connection(account_id="1", user_type="brand", connection_type=lpm.ConnectionType.REST)
    await consumer.set_agent_state(lpm.AgentState.ONLINE)  # E: attr-defined "set_agent_state"
    await bot.create_conversation(skill_id="11")  # E: attr-defined "create_conversation"
    await rest.create_routing_task_subscription()  # E: attr-defined "create_routing_task_subscription"
    agent: lpm.BrandWebsocketConnection = consumer  # E: assignment
    async with lpm.create_connection(account_id="1", user_type="consumer") as opened:
        await opened.create_routing_task_subscription()  # E: attr-defined
    del agent


def file_message_body(message: lpm.Message) -> None:
    # A file's body is a dict: the bug the typed body catches.
    message.body.strip()  # E: union-attr
    (message.body or "").split()  # E: union-attr
    words: list[str] = (message.text or "").split()  # the typed text: fine
    message.text.strip()  # E: union-attr
    del words
