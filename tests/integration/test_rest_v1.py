"""UMS REST v1 (brand side) against the emulator over real HTTP: reads, writes, ETags, publishing
with an agent bearer and with an AppJWT, message paging and file paths."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict

from lpm.emulator.app import Emulator
from tests.helpers import RawSocket, login, signup

ACC = "12345678"
AGENT_OLD = f"{ACC}.1001"


class Rest:
    """A tiny UMS REST v1 client speaking raw HTTP."""

    def __init__(self, http: aiohttp.ClientSession, emu: Emulator, token: str, brand_id: str = ACC) -> None:
        self.http = http
        self.emu = emu
        self.token = token
        self.brand_id = brand_id

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        if_match: str | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> tuple[int, Any, CIMultiDict[str]]:
        """(status, JSON body or None, response headers)."""
        sent = {"Authorization": f"Bearer {self.token}", "Brand-ID": self.brand_id}
        if if_match is not None:
            sent["If-Match"] = if_match
        sent.update(headers or {})
        url = path if path.startswith("http") else self.emu.base_url + path
        async with self.http.request(method, url, json=body, headers=sent, params=params) as resp:
            data = await resp.json() if resp.content_type == "application/json" else None
            return resp.status, data, CIMultiDict(resp.headers)

    async def ok(self, method: str, path: str, body: Any = None, *, status: int = 200, **kw: Any) -> Any:
        got, data, _ = await self.call(method, path, body, **kw)
        assert got == status, (got, data)
        return data

    async def etag(self, path: str) -> str:
        status, data, headers = await self.call("GET", path)
        assert status == 200, data
        return headers["ETag"]


async def agent_rest(http: aiohttp.ClientSession, emu: Emulator, username: str = "agent") -> tuple[Rest, str]:
    """A REST client with the agent's bearer, and the agent's PID."""
    info = await login(http, emu, username)
    return Rest(http, emu, info["bearer"]), info["config"]["userPid"]


async def app_jwt(http: aiohttp.ClientSession, emu: Emulator) -> str:
    """An AppJWT for the default app install, from sentinel."""
    async with http.post(
        f"{emu.base_url}/sentinel/api/account/{ACC}/app/token",
        params={"v": "1.0", "grant_type": "client_credentials"},
        data={"client_id": "lpm-emulator-app", "client_secret": "lpm-emulator-app-secret"},
    ) as resp:
        assert resp.status == 200, await resp.text()
        token: str = (await resp.json())["access_token"]
        return token


async def open_conversation(
    http: aiohttp.ClientSession, emu: Emulator, skill: str = "11"
) -> tuple[RawSocket, str, str]:
    """A consumer socket subscribed to its new conversation: (socket, conversation id, consumer id)."""
    sock = await RawSocket.consumer(http, emu, await signup(http, emu))
    resp = await sock.request("cm.ConsumerRequestConversation", {"brandId": ACC, "skillId": skill})
    conv_id: str = resp["body"]["conversationId"]
    await sock.request("ms.SubscribeMessagingEvents", {"dialogId": conv_id, "conversationId": conv_id})
    consumer_id = emu.world.accounts[ACC].conversations[conv_id].consumer_id
    return sock, conv_id, consumer_id


async def consumer_text(sock: RawSocket, conv_id: str, text: str) -> int:
    resp = await sock.request(
        "ms.PublishEvent",
        {
            "dialogId": conv_id,
            "event": {"type": "ContentEvent", "contentType": "text/plain", "message": text},
        },
    )
    sequence: int = resp["body"]["sequence"]
    return sequence


async def next_event(sock: RawSocket) -> dict[str, Any]:
    """The next messaging event change a socket receives (either dialect)."""
    note = await sock.notification()
    while "MessagingEventNotification" not in note["type"] and "OnlineEventDistribution" not in note["type"]:
        note = await sock.notification()
    body: dict[str, Any] = note["body"]
    return body["changes"][0] if "changes" in body else body


async def online_bot(http: aiohttp.ClientSession, emu: Emulator) -> RawSocket:
    info = await login(http, emu, "bot")
    sock = await RawSocket.brand(http, emu, info["bearer"])
    await sock.request(".ams.routing.SetAgentState", {"availability": "ONLINE"}, expect=202)
    await sock.request(".ams.routing.SubscribeRoutingTasks", {"brandId": ACC})
    return sock


async def ring_of(sock: RawSocket, conv_id: str) -> dict[str, Any]:
    while True:
        note = await sock.notification(".ams.routing.RoutingTaskNotification")
        for change in note["body"]["changes"]:
            result = change["result"]
            if result["conversationId"] == conv_id:
                for ring in result["ringsDetails"]:
                    if ring["ringState"] == "WAITING":
                        return dict(ring)


# ---------------------------------------------------------------- the agent flow


async def test_full_rest_agent_flow(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    rest, pid = await agent_rest(http, emulator)
    consumer, cid, consumer_id = await open_conversation(http, emulator, skill="12")
    conv_path = f"/v1/conversations/{cid}"
    dialog_path = f"{conv_path}/dialogs/{cid}"

    conv = await rest.ok("GET", conv_path)
    assert conv["convId"] == cid
    details = conv["conversationDetails"]
    assert details["state"] == "OPEN" and details["stage"] == "OPEN" and details["skillId"] == "12"
    # The platform's CONTROLLER is a participant of every conversation.
    assert [p for p in details["participants"] if p["role"] != "CONTROLLER"] == [
        {"id": consumer_id, "role": "CONSUMER"}
    ]
    assert [p["role"] for p in details["participants"]] == ["CONSUMER", "CONTROLLER"]
    assert conv["dialogs"] == [{"id": cid, "dialogType": "MAIN", "channelType": "MESSAGING", "state": "OPEN"}]

    # Join over REST; the participant is named by its PID, and any id form finds it.
    joined = await rest.ok(
        "POST",
        f"{dialog_path}/participants",
        {"id": pid, "role": "ASSIGNED_AGENT", "state": "ACTIVE"},
        status=201,
    )
    assert joined == {"id": pid, "role": "ASSIGNED_AGENT", "state": "ACTIVE"}
    for any_id in (pid, AGENT_OLD, "1001"):
        assert await rest.ok("GET", f"{dialog_path}/participants/{any_id}") == joined

    # Publish over REST: the consumer receives it, named by the agent's PID.
    sent = await rest.ok(
        "POST",
        f"{dialog_path}/messages",
        {"type": "PLAIN_TEXT", "content": {"text": "hello from REST"}},
        status=201,
    )
    assert sent == {"sequence": 0}
    change = await next_event(consumer)
    assert change["event"] == {
        "type": "ContentEvent",
        "contentType": "text/plain",
        "message": "hello from REST",
    }
    assert change["originatorId"] == pid and change["originatorMetadata"]["role"] == "ASSIGNED_AGENT"

    # A private message stays with the brand; chat states are not stored.
    private = await rest.ok(
        "POST",
        f"{dialog_path}/messages",
        {"type": "PLAIN_TEXT", "content": {"text": "note to self"}, "messageAudience": "AGENTS_AND_MANAGERS"},
        status=201,
    )
    assert private == {"sequence": 1}
    state = await rest.ok(
        "POST",
        f"{dialog_path}/messages",
        {"type": "CHAT_STATE", "content": {"chatState": "COMPOSING"}},
        status=201,
    )
    assert state == {"sequence": 0}
    typing = await next_event(consumer)
    assert (
        typing["event"] == {"type": "ChatStateEvent", "chatState": "COMPOSING"} and "sequence" not in typing
    )

    for i in range(3):
        assert await consumer_text(consumer, cid, f"consumer {i}") == 2 + i
    ack = await rest.ok(
        "POST",
        f"{dialog_path}/messages",
        {"type": "ACKNOWLEDGEMENT", "content": {"sequenceList": [2, 3, 4], "status": "READ"}},
        status=201,
    )
    assert ack == {"sequence": 5}

    # Paging: 2 per page, following links.next to the end.
    page = await rest.ok("GET", f"{dialog_path}/messages", params={"limit": "2"})
    items = list(page["data"])
    while "next" in page["links"]:
        page = await rest.ok("GET", page["links"]["next"])
        items.extend(page["data"])
    assert [i["sequence"] for i in items] == [0, 1, 2, 3, 4, 5]
    assert items[0] == {
        "sequence": 0,
        "dialogId": cid,
        "conversationId": cid,
        "originator": {"id": pid, "role": "ASSIGNED_AGENT"},
        "type": "PLAIN_TEXT",
        "content": {"text": "hello from REST"},
        "messageAudience": "ALL",
        "createdTs": items[0]["createdTs"],
    }
    assert items[1]["messageAudience"] == "AGENTS_AND_MANAGERS"
    assert items[2]["originator"] == {"id": consumer_id, "role": "CONSUMER"}
    assert items[5]["type"] == "ACKNOWLEDGEMENT"
    assert items[5]["content"] == {"sequenceList": [2, 3, 4], "status": "READ"}
    newer = await rest.ok("GET", f"{dialog_path}/messages", params={"newerThanSequence": "3"})
    assert [i["sequence"] for i in newer["data"]] == [4, 5] and "next" not in newer["links"]
    older = await rest.ok(
        "GET", f"{dialog_path}/messages", params={"olderThanSequence": "4", "offset": "1", "limit": "2"}
    )
    assert [i["sequence"] for i in older["data"]] == [1, 2] and "next" in older["links"]

    # Conditional writes: 428 without If-Match, 412 with a stale one.
    etag = await rest.etag(conv_path)
    status, error, _ = await rest.call("PATCH", conv_path, {"type": "URGENT", "value": 0})
    assert status == 428 and error["code"] == 428 and "If-Match" in error["message"]
    status, error, _ = await rest.call("PATCH", conv_path, {"type": "URGENT", "value": 0}, if_match='"stale"')
    assert status == 412 and error["code"] == 412
    status, patched, headers = await rest.call(
        "PATCH", conv_path, {"type": "URGENT", "value": 0}, if_match=etag
    )
    assert status == 200 and headers["ETag"] != etag
    assert patched["conversationDetails"]["ttr"] == {"ttrType": "URGENT", "value": 300}
    # The old ETag is stale now.
    status, _, _ = await rest.call("PATCH", conv_path, {"manualETTR": 1_900_000_000_000}, if_match=etag)
    assert status == 412
    await rest.ok("PATCH", conv_path, {"manualETTR": 1_900_000_000_000}, if_match=headers["ETag"])
    conv = await rest.ok("GET", conv_path)
    assert conv["conversationDetails"]["manualETTR"] == 1_900_000_000_000
    assert conv["effectiveTTR"] == 1_900_000_000_000
    assert conv["conversationDetails"]["ttr"] == {"ttrType": "URGENT", "value": 300}

    # Transfer to skill "sales" (11): the bot, online in that skill, is rung and accepts.
    bot = await online_bot(http, emulator)
    participant_path = f"{dialog_path}/participants/{pid}"
    status, _, _ = await rest.call("DELETE", participant_path, params={"transferToSkillId": "11"})
    assert status == 428
    status, _, _ = await rest.call(
        "DELETE",
        participant_path,
        params={"transferToSkillId": "11"},
        if_match=await rest.etag(participant_path),
    )
    assert status == 204
    ring = await ring_of(bot, cid)
    await bot.request(
        ".ams.routing.UpdateRingState", {"ringId": ring["ringId"], "ringState": "ACCEPTED"}, expect=202
    )
    conv = await rest.ok("GET", conv_path)
    assert conv["conversationDetails"]["skillId"] == "11"
    bot_pid = emulator.world.accounts[ACC].users["2001"].pid
    assert {"id": bot_pid, "role": "ASSIGNED_AGENT"} in conv["conversationDetails"]["participants"]
    status, _, _ = await rest.call("GET", participant_path)
    assert status == 404

    # Close the dialog (the manager may, without being a participant).
    dialog_etag = await rest.etag(dialog_path)
    closed = await rest.ok(
        "PATCH", dialog_path, {"state": "CLOSE", "closeReason": "AGENT"}, if_match=dialog_etag
    )
    assert closed["state"] == "CLOSE" and closed["closedBy"] == "AGENT"
    conv = await rest.ok("GET", conv_path)
    assert conv["conversationDetails"]["stage"] == "CLOSE" and conv["conversationDetails"]["state"] == "CLOSE"
    assert conv["effectiveTTR"] == -1
    status, error, _ = await rest.call(
        "POST", f"{dialog_path}/messages", {"type": "PLAIN_TEXT", "content": {"text": "too late"}}
    )
    assert status in (400, 403) and error["code"] == status
    await consumer.close()
    await bot.close()


async def test_stage_close_and_leave(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    rest, pid = await agent_rest(http, emulator)
    consumer, cid, _ = await open_conversation(http, emulator)
    conv_path = f"/v1/conversations/{cid}"
    dialog_path = f"{conv_path}/dialogs/{cid}"
    await rest.ok("POST", f"{dialog_path}/participants", {"id": AGENT_OLD, "role": "MANAGER"}, status=201)
    participant = f"{dialog_path}/participants/{pid}"
    assert (await rest.ok("GET", participant))["role"] == "MANAGER"
    await rest.ok("DELETE", participant, status=204, if_match=await rest.etag(participant))
    status, _, _ = await rest.call("GET", participant)
    assert status == 404
    # A transfer is only for the assigned agent; a conversation PATCH needs a field.
    await rest.ok("POST", f"{dialog_path}/participants", {"id": pid, "role": "READER"}, status=201)
    status, error, _ = await rest.call(
        "DELETE", participant, params={"transferToSkillId": "11"}, if_match=await rest.etag(participant)
    )
    assert status == 400 and "ASSIGNED_AGENT" in error["message"]
    status, error, _ = await rest.call("PATCH", conv_path, {}, if_match="*")
    assert status == 400 and "nothing to update" in error["message"]
    closed = await rest.ok("PATCH", conv_path, {"stage": "CLOSE"}, if_match=await rest.etag(conv_path))
    assert closed["conversationDetails"]["stage"] == "CLOSE"
    assert closed["dialogs"][0]["state"] == "CLOSE"
    await consumer.close()


async def test_errors(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    rest, _ = await agent_rest(http, emulator)
    consumer, cid, _ = await open_conversation(http, emulator)
    conv_path = f"/v1/conversations/{cid}"

    status, error, _ = await rest.call("GET", conv_path, headers={"Brand-ID": ""})
    assert (status, error["code"]) == (400, 400) and "Brand-ID" in error["message"]
    status, error, _ = await Rest(http, emulator, rest.token, brand_id="999").call("GET", conv_path)
    assert status == 400 and "Brand-ID" in error["message"]
    status, error, _ = await Rest(http, emulator, "not-a-token").call("GET", conv_path)
    assert status == 401 and error == {"code": 401, "message": error["message"]}
    status, _, _ = await rest.call("GET", conv_path, headers={"Authorization": ""})
    assert status == 401
    status, error, _ = await rest.call("GET", "/v1/conversations/nope")
    assert status == 404 and "nope" in error["message"]
    status, _, _ = await rest.call("GET", f"{conv_path}/dialogs/nope")
    assert status == 404

    # The bot is neither a manager nor a participant.
    bot, _ = await agent_rest(http, emulator, "bot")
    status, error, _ = await bot.call("GET", conv_path)
    assert status == 403 and error["code"] == 403
    status, _, _ = await bot.call(
        "POST", f"{conv_path}/dialogs/{cid}/messages", {"type": "PLAIN_TEXT", "content": {"text": "x"}}
    )
    assert status == 403

    # Malformed bodies are JSON errors too.
    url = f"{emulator.base_url}{conv_path}/dialogs/{cid}/messages"
    headers = {"Authorization": f"Bearer {rest.token}", "Brand-ID": ACC, "Content-Type": "application/json"}
    async with http.post(url, data=b"{not json", headers=headers) as resp:
        assert resp.status == 400 and (await resp.json())["code"] == 400
    for body in ({"type": "SMOKE_SIGNAL"}, {"type": "PLAIN_TEXT", "content": {}}, {"content": {"text": "x"}}):
        status, error, _ = await rest.call("POST", f"{conv_path}/dialogs/{cid}/messages", body)
        assert status == 400, (body, error)
    status, _, _ = await rest.call("GET", f"{conv_path}/dialogs/{cid}/messages", params={"limit": "-1"})
    assert status == 400
    await consumer.close()


# ---------------------------------------------------------------- server JWT publishing


async def test_publish_with_app_jwt(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    info = await login(http, emulator)
    pid = info["config"]["userPid"]
    agent = Rest(http, emulator, info["bearer"])
    brand = await RawSocket.brand(http, emulator, info["bearer"])
    consumer, cid, consumer_id = await open_conversation(http, emulator)
    messages = f"/v1/conversations/{cid}/dialogs/{cid}/messages"
    await agent.ok(
        "POST",
        f"/v1/conversations/{cid}/dialogs/{cid}/participants",
        {"id": pid, "role": "ASSIGNED_AGENT"},
        status=201,
    )
    app = Rest(http, emulator, await app_jwt(http, emulator))
    text = {"type": "PLAIN_TEXT", "content": {"text": "from the server"}}

    status, error, _ = await app.call("POST", messages, {**text, "originatorId": pid})
    assert status == 400 and "originatorRole is required" in error["message"] and "AppJWT" in error["message"]
    status, error, _ = await app.call("POST", messages, {**text, "originatorRole": "ASSIGNED_AGENT"})
    assert status == 400 and "originatorId" in error["message"]
    status, error, _ = await app.call(
        "POST", messages, {**text, "originatorId": pid, "originatorRole": "READER"}
    )
    assert status == 400
    # The agent is the ASSIGNED_AGENT, not a MANAGER of this dialog.
    status, error, _ = await app.call(
        "POST", messages, {**text, "originatorId": pid, "originatorRole": "MANAGER"}
    )
    assert status == 403

    sent = await app.ok(
        "POST", messages, {**text, "originatorId": pid, "originatorRole": "ASSIGNED_AGENT"}, status=201
    )
    assert sent == {"sequence": 0}
    change = await next_event(consumer)
    assert change["originatorId"] == pid and change["event"]["message"] == "from the server"
    # The brand dialect names the agent by its old id: the PID was resolved to the user.
    raw = await next_event(brand)
    assert raw["originatorId"] == AGENT_OLD and raw["originatorPId"] == pid

    as_consumer = await app.ok(
        "POST",
        messages,
        {
            "type": "PLAIN_TEXT",
            "content": {"text": "via connector"},
            "originatorId": consumer_id,
            "originatorRole": "CONSUMER",
        },
        status=201,
    )
    assert as_consumer == {"sequence": 1}
    assert (await next_event(consumer))["originatorMetadata"] == {"id": consumer_id, "role": "CONSUMER"}
    status, _, _ = await app.call(
        "POST", messages, {**text, "originatorId": "someone-else", "originatorRole": "CONSUMER"}
    )
    assert status == 403

    # With an agent bearer the originator fields are ignored.
    ignored = await agent.ok(
        "POST", messages, {**text, "originatorId": consumer_id, "originatorRole": "CONSUMER"}, status=201
    )
    assert ignored == {"sequence": 2}
    assert (await next_event(consumer))["originatorMetadata"]["role"] == "ASSIGNED_AGENT"

    # The app reads like a brand user; a JWT of the wrong audience is a Brand-ID mismatch.
    page = await app.ok("GET", messages)
    assert [i["originator"]["role"] for i in page["data"]] == ["ASSIGNED_AGENT", "CONSUMER", "ASSIGNED_AGENT"]
    emulator.world.add_account("87654321")
    other = emulator.ctx.tokens.issue_app_jwt("87654321", "lpm-emulator-app", 3600)  # type: ignore[union-attr]
    status, error, _ = await Rest(http, emulator, other).call("GET", messages)
    assert status == 400 and "Brand-ID" in error["message"]
    await consumer.close()
    await brand.close()


# ---------------------------------------------------------------- files


async def test_file_upload_and_download_paths(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    rest, pid = await agent_rest(http, emulator)
    consumer, cid, _ = await open_conversation(http, emulator)
    data = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4

    upload = await rest.ok(
        "POST", f"/v1/brands/{ACC}/file-upload-path", {"fileSize": len(data), "fileType": "PNG"}
    )
    path = upload["relativePath"]
    assert path.startswith(f"/v1/AUTH_async-images/{ACC}/") and path.endswith(".PNG")
    async with http.put(emulator.base_url + path, params=upload["queryParams"], data=data) as resp:
        assert resp.status == 201

    await rest.ok(
        "POST",
        f"/v1/conversations/{cid}/dialogs/{cid}/participants",
        {"id": pid, "role": "ASSIGNED_AGENT"},
        status=201,
    )
    await rest.ok(
        "POST",
        f"/v1/conversations/{cid}/dialogs/{cid}/messages",
        {"type": "HOSTED_FILE", "content": {"relativePath": path, "fileType": "PNG", "caption": "a picture"}},
        status=201,
    )
    change = await next_event(consumer)
    assert (
        change["event"]["contentType"] == "hosted/file" and change["event"]["message"]["relativePath"] == path
    )
    page = await rest.ok("GET", f"/v1/conversations/{cid}/dialogs/{cid}/messages")
    assert page["data"][0]["type"] == "HOSTED_FILE" and page["data"][0]["content"]["caption"] == "a picture"

    download = await rest.ok("POST", f"/v1/brands/{ACC}/file-download-path", {"relativePath": path})
    async with http.get(emulator.base_url + download["relativePath"], params=download["queryParams"]) as resp:
        assert resp.status == 200 and await resp.read() == data

    status, error, _ = await rest.call(
        "POST", f"/v1/brands/{ACC}/file-upload-path", {"fileSize": 10, "fileType": "EXE"}
    )
    assert status == 400 and "EXE" in error["message"]
    status, _, _ = await rest.call(
        "POST", "/v1/brands/999/file-upload-path", {"fileSize": 10, "fileType": "PNG"}
    )
    assert status == 400
    status, _, _ = await rest.call(
        "POST", f"/v1/brands/{ACC}/file-upload-path", {"fileSize": 10 * 1024 * 1024, "fileType": "PNG"}
    )
    assert status == 413
    await consumer.close()


@pytest.mark.parametrize("state", ["SUGGESTED", "ACTIVE"])
async def test_join_states(emulator: Emulator, http: aiohttp.ClientSession, state: str) -> None:
    rest, pid = await agent_rest(http, emulator)
    consumer, cid, _ = await open_conversation(http, emulator)
    joined = await rest.ok(
        "POST",
        f"/v1/conversations/{cid}/dialogs/{cid}/participants",
        {"id": pid, "role": "ASSIGNED_AGENT", "state": state},
        status=201,
    )
    assert joined["state"] == state
    await consumer.close()


async def test_post_survey_dialog(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    rest, pid = await agent_rest(http, emulator)
    consumer = await RawSocket.consumer(
        http,
        emulator,
        await signup(http, emulator),
        client_properties='{"type": ".ClientProperties", "features": ["MULTI_DIALOG"]}',
    )
    cid = (await consumer.request("cm.ConsumerRequestConversation", {"brandId": ACC, "skillId": "12"}))[
        "body"
    ]["conversationId"]
    main = f"/v1/conversations/{cid}/dialogs/{cid}"
    await rest.ok("POST", f"{main}/participants", {"id": pid, "role": "ASSIGNED_AGENT"}, status=201)
    await rest.ok(
        "PATCH", main, {"state": "CLOSE", "closeReason": "issue solved"}, if_match=await rest.etag(main)
    )
    conv = await rest.ok("GET", f"/v1/conversations/{cid}")
    assert conv["conversationDetails"]["stage"] == "OPEN"
    assert conv["conversationDetails"]["dialogs"][0]["closedCause"] == "issue solved"
    survey = next(d["id"] for d in conv["dialogs"] if d["dialogType"] == "POST_SURVEY")

    # Only the open dialog can be joined.
    status, error, _ = await rest.call("POST", f"{main}/participants", {"id": pid, "role": "MANAGER"})
    assert status == 400 and survey in error["message"]
    assert (await rest.ok("GET", f"/v1/conversations/{cid}/dialogs/{survey}/participants/{pid}"))[
        "role"
    ] == "READER"

    # The survey bot (2002) speaks through the app; node's getMessages form finds the survey dialog.
    app = Rest(http, emulator, await app_jwt(http, emulator))
    question = {"type": "PLAIN_TEXT", "content": {"text": "How did we do?"}}
    sent = await app.ok(
        "POST",
        f"/v1/conversations/{cid}/dialogs/{survey}/messages",
        {**question, "originatorId": "2002", "originatorRole": "AGENT"},
        status=201,
    )
    assert sent == {"sequence": 0}
    page = await rest.ok("GET", f"/v1/conversations/{survey}/dialogs/{survey}/messages")
    bot_pid = emulator.world.accounts[ACC].users["2002"].pid
    assert [(i["dialogId"], i["originator"]) for i in page["data"]] == [
        (survey, {"id": bot_pid, "role": "AGENT"})
    ]
    await consumer.close()
