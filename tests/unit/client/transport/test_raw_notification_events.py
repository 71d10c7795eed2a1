"""The raw notification events of a socket connection carry the body as Python objects, as
before the typed decoders read the JSON themselves: built only when someone listens, equal to
the body of the frame, the same object for ``notification`` and the ``*Notification`` event."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import lpm
from lpm.emulator.app import Emulator

ACC = "12345678"


def connection(emu: Emulator, user_type: lpm.UserType, **options: Any) -> Any:
    if user_type == lpm.UserType.BRAND:
        options["auth_data"] = {"username": "bot", "password": "bot-password"}
    return lpm.create_connection(account_id=ACC, user_type=user_type, csds_domain=emu.csds_domain, **options)


async def test_raw_notification_events_carry_the_body(emulator: Emulator) -> None:
    bot = connection(emulator, lpm.UserType.BRAND)
    consumer = connection(emulator, lpm.UserType.CONSUMER)
    seen: list[tuple[str, Any]] = []
    consumer.on("notification", lambda type_, body: seen.append(("notification", body)))
    consumer.on("conversationNotification", lambda body: seen.append(("conversation", body)))
    consumer.on("messageNotification", lambda body: seen.append(("message", body)))
    errors: list[BaseException] = []
    bot.on("error", errors.append)
    consumer.on("error", errors.append)
    try:
        await bot.open()
        await consumer.open()
        conversation = await consumer.create_conversation(skill_id="11")
        await conversation.send_message("hello raw")
        deadline = time.monotonic() + 10
        while not any(kind == "message" for kind, _ in seen):
            assert time.monotonic() < deadline, seen
            await asyncio.sleep(0.01)
    finally:
        await consumer.close()
        await bot.close()
    assert errors == []
    conversations = [body for kind, body in seen if kind == "conversation"]
    messages = [body for kind, body in seen if kind == "message"]
    assert conversations and all(isinstance(b, dict) and "changes" in b for b in conversations)
    events = [change.get("event", {}) for b in messages for change in b.get("changes", [])]
    assert any(event.get("message") == "hello raw" for event in events)
    # each raw event right after its ``notification``, with the very same body object
    for i, (kind, body) in enumerate(seen):
        if kind != "notification":
            assert seen[i - 1] == ("notification", body) and seen[i - 1][1] is body
