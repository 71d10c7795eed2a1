"""create_connection returns the concrete class of each user type and connection type; ``async with``
yields it; their methods and Message's content are typed.  Checked by tools/check_typing.py (mypy
--strict), never run."""

from __future__ import annotations

import os
from typing import Any, assert_type

import lpm


async def connection_classes(kind: str) -> None:
    brand = lpm.create_connection(account_id="1", user_type=lpm.UserType.BRAND, auth_data={"username": "bot"})
    assert_type(brand, lpm.BrandWebsocketConnection)
    consumer = lpm.create_connection(account_id="1", user_type="consumer", csds_domain=os.environ.get("CSDS"))
    assert_type(consumer, lpm.ConsumerWebsocketConnection)
    assert_type(
        lpm.create_connection(
            account_id="1", user_type="brand", connection_type=lpm.ConnectionType.WEBSOCKET
        ),
        lpm.BrandWebsocketConnection,
    )
    assert_type(
        lpm.create_connection(account_id="1", user_type=lpm.UserType.BRAND, connection_type="rest"),
        lpm.BrandRestConnection,
    )
    assert_type(
        lpm.create_connection(
            account_id="1", user_type=lpm.UserType.CONSUMER, connection_type=lpm.ConnectionType.SEND_API
        ),
        lpm.ConsumerSendApiConnection,
    )
    assert_type(
        lpm.create_connection(account_id="1", user_type="brand", connection_type=lpm.ConnectionType.NULL),
        lpm.NullConnection,
    )
    # Known only at run time: the base class.
    assert_type(lpm.create_connection(account_id="1", user_type=kind), lpm.Connection)
    assert_type(
        lpm.create_connection(account_id="1", user_type="brand", connection_type=kind), lpm.Connection
    )

    async with brand as opened, consumer as customer:
        assert_type(opened, lpm.BrandWebsocketConnection)
        await opened.set_agent_state(lpm.AgentState.ONLINE)
        rings = await opened.create_routing_task_subscription()
        assert_type(rings, lpm.RoutingTaskSubscription)
        conversation = await customer.create_conversation(skill_id="11")
        assert_type(conversation, lpm.Conversation)
        assert_type(opened.get_conversation_by_id("c"), lpm.Conversation | None)
        assert_type(await opened.wait_for_conversation("c"), lpm.Conversation)


def message_content(message: lpm.Message) -> None:
    assert_type(message.text, str | None)
    assert_type(message.structured_content, dict[str, Any] | None)
    assert_type(message.relative_path, str | None)
    assert_type(message.body, str | dict[str, Any] | None)
    words: list[str] = (message.text or "").split()
    del words
