"""Events are typed per class: handlers are checked against each event's arguments, decorators keep
the function's type, ``wait_for`` / ``events()`` give the event's payload.  Checked by
tools/check_typing.py (mypy --strict), never run."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, assert_type

import lpm
from lpm.client.events import EventEmitter


def connection_events(
    conn: lpm.BrandWebsocketConnection, some_conversation: lpm.Conversation, some_message: lpm.Message
) -> None:
    @conn.on("conversation:message")
    async def echo(conversation: lpm.Conversation, message: lpm.Message) -> None:
        await conversation.send_message(f"you said: {message.text}")

    # The decorator returns the function unchanged, with its own type (parameter names too).
    answer = assert_type(
        echo(conversation=some_conversation, message=some_message), Coroutine[Any, Any, None]
    )
    answer.close()

    @conn.once("close")
    def closed(info: lpm.CloseInfo) -> int:
        return info["code"]

    assert_type(closed({"code": 1000, "reason": "bye"}), int)

    # Lambdas get their parameter types from the event.
    conn.on("ring", lambda ring: ring.accept())
    conn.on(
        "conversation:participant-added", lambda conversation, participant, suggested: print(participant.role)
    )
    conn.on("reconnect-wait", lambda info: print(info["seconds"] + 1))
    conn.on("error", lambda error: print(error.__traceback__))
    conn.on("state", lambda state: print(state == lpm.ConnectionState.CLOSED))
    conn.on("ms.PublishEvent#response", lambda event: print(event["request"]["type"], event["end"]))
    # The enum members are the same names.
    conn.on(lpm.ConnectionEvent.CONNECT, lambda: print("connected"))
    conn.off("conversation:message", echo)

    # A handler may take less precise parameters (object, *args).
    def log_anything(*args: object) -> None:
        print(args)

    conn.on("conversation:close", log_anything)
    # A name the overloads do not know (a request type of your own): the untyped base.
    EventEmitter.on(conn, "my.Request#response", log_anything)


async def waiting(conn: lpm.ConsumerWebsocketConnection, conversation: lpm.Conversation) -> None:
    message = await conversation.wait_for("message", lambda m: m.participant.role != "CONSUMER", timeout=10)
    assert_type(message, lpm.Message)
    assert_type(await conversation.wait_for("close"), None)
    assert_type(await conversation.wait_for("skill-change"), tuple[str, str])
    assert_type(await conn.wait_for("conversation:message"), tuple[lpm.Conversation, lpm.Message])
    assert_type(await conn.wait_for("close"), lpm.CloseInfo)
    assert_type(await conn.wait_for(lpm.ConnectionEvent.DISCONNECT), lpm.CloseInfo)
    async for each in conversation.events("message"):
        assert_type(each, lpm.Message)
    async for conversation_and_dialog in conn.events("conversation:dialog:close"):
        assert_type(conversation_and_dialog, tuple[lpm.Conversation, lpm.Dialog])


async def other_classes(
    rings: lpm.RoutingTaskSubscription, subscription: lpm.ConversationSubscription, dialog: lpm.Dialog
) -> None:
    @rings.on("ring")
    async def take(ring: lpm.Ring) -> None:
        conversation = await ring.accept()
        assert_type(conversation, lpm.Conversation)
        ring.on("expired", lambda expired: print(expired.ring_id))

    handler: Callable[[lpm.Ring], Coroutine[Any, Any, None]] = take
    del handler
    assert_type(await subscription.wait_for("conversation"), lpm.Conversation)
    assert_type(await dialog.wait_for("message-delivery-event"), list[lpm.Message])
    assert_type(await dialog.wait_for("participant-added"), tuple[lpm.Participant, bool])
    participant = dialog.participants[0]
    participant.on("chat-state-change", lambda chat_state: print(chat_state.lower()))


async def shift_status(conn: lpm.BrandWebsocketConnection) -> None:
    conn.on("skill-entered-off-hours", lambda item: print(item["skillId"]))
    assert_type(await conn.wait_for("getShiftStatus#response"), dict[str, int])
    poller = conn.shift_status_poller
    if poller is not None:
        assert_type(await poller.wait_for("shiftStatusData"), list[dict[str, Any]])
