"""Event mistakes that mypy --strict must refuse: each line marked ``# E: <code>`` must get that error
(tools/check_typing.py), and no other line may get one.  Never run."""

from __future__ import annotations

import lpm


def misspelled(conn: lpm.BrandWebsocketConnection, conversation: lpm.Conversation) -> None:
    conn.on("conversation:mesage", lambda conversation, message: None)  # E: call-overload
    conversation.on("mesage", lambda message: None)  # E: call-overload
    conn.once("closed", lambda info: None)  # E: call-overload
    conn.off("conversation:mesage")  # E: arg-type
    conversation.on("conversation:message", lambda conversation, message: None)  # E: call-overload


async def misspelled_waits(conn: lpm.BrandWebsocketConnection, conversation: lpm.Conversation) -> None:
    await conversation.wait_for("mesage")  # E: call-overload
    async for _ in conn.events("rings"):  # E: call-overload
        pass


def wrong_handlers(conn: lpm.BrandWebsocketConnection, rings: lpm.RoutingTaskSubscription) -> None:
    # The connection's conversation events take the conversation first.
    conn.on("conversation:message", lambda message: print(message.text))  # E: call-overload

    def on_message(message: lpm.Message) -> None:
        print(message.text)

    conn.on("conversation:message", on_message)  # E: call-overload
    rings.on("ring", lambda ring: ring.acept())  # E: call-overload
    conn.on("close", lambda info: info["cdoe"])  # E: call-overload

    def on_state(state: int) -> None:
        print(state)

    conn.on("state", on_state)  # E: call-overload


def wrong_decorated_handler(conn: lpm.BrandWebsocketConnection) -> None:
    @conn.on("conversation:message")  # E: type-var
    async def on_message(message: lpm.Message) -> None:
        print(message.text)


async def wrong_payloads(conn: lpm.BrandWebsocketConnection, conversation: lpm.Conversation) -> None:
    reply = await conversation.wait_for("message")
    reply.strip()  # E: attr-defined
    conversation_and_message = await conn.wait_for("conversation:message")
    print(conversation_and_message.text)  # E: attr-defined
    await conversation.wait_for("message", lambda conversation, message: True)  # E: call-overload


def wrong_shift_status(conn: lpm.BrandWebsocketConnection) -> None:
    conn.on("skill-entered-off-hours", lambda: None)  # E: call-overload
