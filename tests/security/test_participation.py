"""Agents who are not (writing) participants cannot publish into a conversation.

Documented behaviour (docs/emulator.md "Roles"; protocol §4.1.6, §4.2.6, §8): any agent may join
a conversation as MANAGER, READER, CONTROLLER or AGENT (``ParticipantsChange ADD``) and then
publish, except READERs; a non-participant may neither publish nor read, except that managers may
read (the account-wide view of manager bots).  So the tests check the *absence* of membership,
not a ban on joining: the bot (no manager rights) and the agent (manager) before joining, a READER,
a SUGGESTED agent, an agent who left — over the brand socket, UMS REST and REST publish with an
AppJWT naming an originator.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from lpm.emulator.app import Emulator
from tests.helpers import RawSocket, login, signup
from tests.security.faces import app_jwt, rest


def _text(conv: str, text: str) -> dict[str, Any]:
    return {"dialogId": conv, "event": {"type": "ContentEvent", "contentType": "text/plain", "message": text}}


def _participants(conv: str, type_: str, role: str, user_id: str | None = None) -> dict[str, Any]:
    field: dict[str, Any] = {"field": "ParticipantsChange", "type": type_, "role": role}
    if user_id is not None:
        field["userId"] = user_id
    return {"conversationId": conv, "conversationField": field}


async def _setup(
    emulator: Emulator, http: aiohttp.ClientSession
) -> tuple[RawSocket, RawSocket, RawSocket, str, str]:
    """A consumer's conversation with nobody assigned; agent (manager) and bot sockets."""
    consumer = await RawSocket.consumer(http, emulator, await signup(http, emulator))
    conv = (await consumer.request("cm.ConsumerRequestConversation", {"skillId": "11"}))["body"][
        "conversationId"
    ]
    await consumer.request("ms.PublishEvent", _text(conv, "hello"))
    agent_bearer = (await login(http, emulator, "agent"))["bearer"]
    bot_bearer = (await login(http, emulator, "bot"))["bearer"]
    agent = await RawSocket.brand(http, emulator, agent_bearer)
    bot = await RawSocket.brand(http, emulator, bot_bearer)
    return consumer, agent, bot, conv, bot_bearer


async def _publish(sock: RawSocket, conv: str, text: str) -> int:
    resp = await sock.request(".ams.ms.PublishEvent", _text(conv, text), expect=None)
    code: int = resp["code"]
    return code


def _messages(emulator: Emulator, conv: str) -> list[str]:
    return [e.event["message"] for e in emulator.world.accounts[emulator.account_id].events.get(conv, [])]


async def test_non_participants_cannot_publish_or_act(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    consumer, agent, bot, conv, _ = await _setup(emulator, http)
    # The bot is no participant and no manager: no publish, no read, no close, no transfer.
    assert await _publish(bot, conv, "bot intrudes") == 403
    await bot.request(".ams.ms.QueryMessages", {"dialogId": conv, "newerThanSequence": 0}, expect=403)
    close = {
        "conversationId": conv,
        "conversationField": {"field": "ConversationStateField", "conversationState": "CLOSE"},
    }
    await bot.request(".ams.cm.UpdateConversationField", close, expect=403)
    skill = {"conversationId": conv, "conversationField": {"field": "Skill", "type": "UPDATE", "skill": "12"}}
    await bot.request(".ams.cm.UpdateConversationField", skill, expect=403)
    # ...nor add someone else (only a self-join is free).
    await bot.request(
        ".ams.cm.UpdateConversationField", _participants(conv, "ADD", "READER", "12345678.1001"), expect=403
    )
    # The manager may read without joining, but not publish.
    assert await _publish(agent, conv, "manager intrudes") == 403
    history = await agent.request(".ams.ms.QueryMessages", {"dialogId": conv, "newerThanSequence": 0})
    assert [e["event"]["message"] for e in history["body"]] == ["hello"]
    assert _messages(emulator, conv) == ["hello"]
    assert emulator.world.accounts[emulator.account_id].conversations[conv].stage == "OPEN"
    for sock in (consumer, agent, bot):
        await sock.close()


async def test_non_participants_do_not_read_the_last_message_in_conversation_streams(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """ExConversation notifications carry the last message: a non-manager agent who is not in the
    conversation gets the metadata (routing and transfers need it) but not that content."""
    consumer, agent, bot, conv, _ = await _setup(emulator, http)
    for sock in (agent, bot):
        await sock.request(".ams.aam.SubscribeExConversations", {"convState": ["OPEN"]})
    snapshots = [
        await sock.notification(".ams.aam.ExConversationChangeNotification") for sock in (agent, bot)
    ]
    manager_view, bot_view = (s["body"]["changes"][0]["result"] for s in snapshots)
    assert manager_view["lastContentEventNotification"]["event"]["message"] == "hello"
    assert bot_view["convId"] == conv and "lastContentEventNotification" not in bot_view
    await consumer.request("ms.PublishEvent", _text(conv, "my card number"))
    update = await bot.notification(".ams.aam.ExConversationChangeNotification")
    assert "my card number" not in str(update)
    # Once the bot takes part, it reads.
    await bot.request(".ams.cm.UpdateConversationField", _participants(conv, "ADD", "READER"))
    update = await bot.notification(".ams.aam.ExConversationChangeNotification")
    assert update["body"]["changes"][0]["result"]["lastContentEventNotification"]["event"]["message"] == (
        "my card number"
    )
    for sock in (consumer, agent, bot):
        await sock.close()


async def test_only_writing_participants_publish(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    consumer, agent, bot, conv, _ = await _setup(emulator, http)
    # A READER reads but cannot write.
    await bot.request(".ams.cm.UpdateConversationField", _participants(conv, "ADD", "READER"))
    assert await _publish(bot, conv, "reader writes") == 403
    await bot.request(".ams.ms.QueryMessages", {"dialogId": conv, "newerThanSequence": 0})
    # A MANAGER who joined writes (documented: managers join to "watch/send").
    await agent.request(".ams.cm.UpdateConversationField", _participants(conv, "ADD", "MANAGER"))
    assert await _publish(agent, conv, "manager joined") == 200
    # A SUGGESTED assigned agent has not accepted yet: no publish.
    suggest = _participants(conv, "SUGGEST", "ASSIGNED_AGENT", "12345678.2001")
    await agent.request(".ams.cm.UpdateConversationField", suggest)
    assert await _publish(bot, conv, "suggested writes") == 403
    # An agent who left is a non-participant again.
    await agent.request(".ams.cm.UpdateConversationField", _participants(conv, "REMOVE", "MANAGER"))
    assert await _publish(agent, conv, "left but writes") == 403
    assert _messages(emulator, conv) == ["hello", "manager joined"]
    for sock in (consumer, agent, bot):
        await sock.close()


async def test_rest_refuses_non_participants(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    consumer, agent, bot, conv, bot_bearer = await _setup(emulator, http)
    agent_bearer = (await login(http, emulator, "agent"))["bearer"]
    messages = f"/v1/conversations/{conv}/dialogs/{conv}/messages"
    text = {"type": "PLAIN_TEXT", "content": {"text": "via REST"}}
    # The bot: neither read nor write.
    for method, path, body in (
        ("GET", f"/v1/conversations/{conv}", None),
        ("GET", messages, None),
        ("POST", messages, text),
    ):
        status, resp = await rest(http, emulator, method, path, bot_bearer, body)
        assert status == 403, (method, path, resp)
        assert bot_bearer not in str(resp)
    # The manager reads but does not write before joining.
    assert (await rest(http, emulator, "GET", messages, agent_bearer))[0] == 200
    assert (await rest(http, emulator, "POST", messages, agent_bearer, text))[0] == 403
    # An AppJWT speaks only for an active participant in the role it names.
    app = await app_jwt(http, emulator)
    for originator, role in (("1001", "ASSIGNED_AGENT"), ("2001", "MANAGER"), ("someone-else", "CONSUMER")):
        body = {**text, "originatorId": originator, "originatorRole": role}
        assert (await rest(http, emulator, "POST", messages, app, body))[0] == 403, (originator, role)
    assert _messages(emulator, conv) == ["hello"]
    for sock in (consumer, agent, bot):
        await sock.close()
