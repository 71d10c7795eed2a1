"""The connector Send API (CONVERSATION and SEND) over real loopback HTTP."""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp
import jwt
import pytest

from lpm.emulator.app import Emulator
from tests.helpers import RawSocket, login, signup

ACC = "12345678"
APP = "lpm-emulator-app"
CONVERSATION = f"/api/account/{ACC}/messaging/consumer/conversation?v=3"
SEND = f"/api/account/{ACC}/messaging/consumer/conversation/send?v=3"


async def app_jwt(http: aiohttp.ClientSession, emu: Emulator) -> str:
    async with http.post(
        f"{emu.base_url}/sentinel/api/account/{ACC}/app/token?v=1.0&grant_type=client_credentials",
        data={"client_id": APP, "client_secret": "lpm-emulator-app-secret"},
    ) as resp:
        assert resp.status == 200, await resp.text()
        token: str = (await resp.json())["access_token"]
        return token


async def consumer_jws(http: aiohttp.ClientSession, emu: Emulator, app: str, ext_id: str = "ext-1") -> str:
    async with http.post(
        f"{emu.base_url}/api/account/{ACC}/consumer?v=1.0",
        json={"ext_consumer_id": ext_id},
        headers={"Authorization": app},
    ) as resp:
        assert resp.status == 201, await resp.text()
        token: str = (await resp.json())["token"]
        return token


class SendApi:
    """A connector acting for one consumer."""

    def __init__(self, http: aiohttp.ClientSession, emu: Emulator, app: str, jws: str) -> None:
        self.http = http
        self.emu = emu
        self.headers = {"Authorization": app, "X-LP-ON-BEHALF": jws}
        self.consumer_id: str = jwt.decode(jws, options={"verify_signature": False})["sub"]

    @classmethod
    async def create(cls, http: aiohttp.ClientSession, emu: Emulator, ext_id: str = "ext-1") -> SendApi:
        app = await app_jwt(http, emu)
        return cls(http, emu, app, await consumer_jws(http, emu, app, ext_id))

    async def post(
        self, path: str, body: Any = None, *, headers: dict[str, str] | None = None, data: bytes | None = None
    ) -> tuple[int, Any]:
        all_headers = {**self.headers, **(headers or {})}
        kwargs: dict[str, Any] = {"headers": all_headers}
        if data is not None:
            kwargs["data"] = data
            all_headers.setdefault("Content-Type", "application/json")
        else:
            kwargs["json"] = body
        async with self.http.post(f"{self.emu.base_url}{path}", **kwargs) as resp:
            return resp.status, await resp.json()

    async def open(self, **client_properties: Any) -> str:
        headers = {"Client-Properties": json.dumps(client_properties)} if client_properties else None
        status, body = await self.post(
            CONVERSATION,
            [
                {"kind": "req", "id": "1,", "type": "userprofile.SetUserProfile", "body": {}},
                {
                    "kind": "req",
                    "id": "2,",
                    "type": "cm.ConsumerRequestConversation",
                    "body": {"skillId": "-1"},
                },
            ],
            headers=headers,
        )
        assert status == 200, body
        conv_id: str = body[1]["body"]["conversationId"]
        return conv_id

    async def text(self, conv_id: str, message: str, req_id: str = "1") -> tuple[int, Any]:
        return await self.post(
            SEND,
            {
                "kind": "req",
                "id": req_id,
                "type": "ms.PublishEvent",
                "body": {
                    "dialogId": conv_id,
                    "conversationId": conv_id,
                    "event": {"type": "ContentEvent", "contentType": "text/plain", "message": message},
                },
            },
        )


def close_frame(conv_id: str) -> dict[str, Any]:
    return {
        "kind": "req",
        "id": "9",
        "type": "cm.UpdateConversationField",
        "body": {
            "conversationId": conv_id,
            "conversationField": [{"field": "ConversationStateField", "conversationState": "CLOSE"}],
        },
    }


def assert_envelope(status: int, body: Any, want_status: int, error_code: int) -> None:
    assert status == want_status, body
    assert body["kind"] == "resp" and body["code"] == want_status and body["type"] == ".ReqBody$ErrorResp"
    assert body["body"]["errorCode"] == error_code, body
    assert isinstance(body["body"]["title"], str) and isinstance(body["body"]["details"], str)


# ---------------------------------------------------------------- CONVERSATION


async def test_conversation_request(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    api = await SendApi.create(http, emulator)
    status, body = await api.post(
        CONVERSATION,
        [
            {"kind": "req", "id": "1,", "type": "userprofile.SetUserProfile", "body": {"firstName": "Sam"}},
            {
                "kind": "req",
                "id": "2,",
                "type": "cm.ConsumerRequestConversation",
                "body": {"brandId": ACC, "skillId": "11", "channelType": "MESSAGING"},
            },
        ],
        headers={
            "Client-Properties": '{"type":".ClientProperties","features":["AUTO_MESSAGES","MULTI_DIALOG"]}'
        },
    )
    assert status == 200, body
    assert body[0] == {"reqId": "1,", "code": "OK", "body": {"msg": "OK User Profile set successfully"}}
    assert body[1]["reqId"] == "2," and body[1]["code"] == "OK"
    conv_id = body[1]["body"]["conversationId"]
    acc = emulator.world.accounts[ACC]
    conv = acc.conversations[conv_id]
    assert conv.consumer_id == api.consumer_id and conv.skill_id == "11"
    assert conv.features == ["AUTO_MESSAGES", "MULTI_DIALOG"]
    assert acc.consumers[api.consumer_id].profile["firstName"] == "Sam"


async def test_conversation_failed_frames_keep_their_slot(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    api = await SendApi.create(http, emulator)
    conv_id = await api.open()
    status, body = await api.post(
        CONVERSATION,
        [
            {"kind": "req", "id": 1, "type": "cm.ConsumerRequestConversation"},
            {
                "kind": "req",
                "id": "2",
                "type": ".ams.routing.SetAgentState",
                "body": {"availability": "ONLINE"},
            },
            {"kind": "req", "id": "3", "type": "cqm.SubscribeExConversations", "body": {}},
            {"kind": "req", "id": "4", "type": "no.SuchRequest"},
            {"kind": "req", "id": "5", "type": "ms.PublishEvent", "body": {"event": {}}},
            "not a frame",
            {"kind": "req", "id": "7"},
            {"kind": "req", "id": "8", "type": "up.SetUserProfile", "body": {"lastName": "Later"}},
        ],
    )
    assert status == 200, body
    assert [slot["code"] for slot in body] == [400, 400, 400, 400, 400, 400, 400, "OK"]
    assert body[0]["reqId"] == "1" and conv_id in body[0]["body"]
    assert "not a consumer request" in body[1]["body"]
    assert "not supported on the Send API" in body[2]["body"]
    assert "unknown request type" in body[3]["body"]
    assert body[4]["body"].startswith("invalid ms.PublishEvent body")
    assert body[5]["reqId"] is None
    assert body[7] == {"reqId": "8", "code": "OK", "body": {"msg": "OK User Profile set successfully"}}
    assert emulator.world.accounts[ACC].consumers[api.consumer_id].profile["lastName"] == "Later"


async def test_conversation_body_errors(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    api = await SendApi.create(http, emulator)
    assert_envelope(*await api.post(CONVERSATION, data=b"[{"), 400, 40000)
    assert_envelope(*await api.post(CONVERSATION, data=b""), 400, 40000)
    assert_envelope(*await api.post(CONVERSATION, []), 400, 40000)
    status, body = await api.post(CONVERSATION, [], headers={"Client-Properties": "{nope"})
    assert_envelope(status, body, 400, 40000)
    # a single frame stands for a one-element array
    status, body = await api.post(CONVERSATION, {"kind": "req", "id": "1", "type": "GetClock"})
    assert status == 200 and body[0]["code"] == "OK" and "currentTime" in body[0]["body"]


# ---------------------------------------------------------------- SEND


async def test_send_text_and_close(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    api = await SendApi.create(http, emulator)
    conv_id = await api.open()
    status, body = await api.text(conv_id, "hello", req_id="a")
    assert (status, body) == (200, {"reqId": "a", "code": "OK", "body": {"sequence": 0}})
    status, body = await api.text(conv_id, "again", req_id="b")
    assert body["body"] == {"sequence": 1}
    status, body = await api.post(
        SEND,
        {
            "kind": "req",
            "id": "c",
            "type": "ms.PublishEvent",
            "body": {
                "dialogId": conv_id,
                "event": {"type": "AcceptStatusEvent", "status": "READ", "sequenceList": [0]},
            },
        },
    )
    assert status == 200 and body["body"] == {"sequence": 2}
    events = emulator.world.accounts[ACC].events[conv_id]
    assert [e.event.get("message") for e in events[:2]] == ["hello", "again"]
    assert events[0].originator_id == api.consumer_id and events[0].originator_role == "CONSUMER"

    status, body = await api.post(SEND, close_frame(conv_id))
    assert status == 200, body
    assert body == {"reqId": "9", "code": "OK", "body": {"msg": "OK Conversation resolved successfully"}}
    conv = emulator.world.accounts[ACC].conversations[conv_id]
    assert conv.stage == "CLOSE" and conv.close_reason == "CONSUMER"
    # the dialog is closed now: a business error with its HTTP status
    status, body = await api.text(conv_id, "too late", req_id="d")
    assert (status, body["reqId"], body["code"]) == (400, "d", 400)
    assert "closed" in body["body"]
    # and the consumer may open a new conversation
    assert await api.open() != conv_id


async def test_send_profile_and_files(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    api = await SendApi.create(http, emulator)
    status, body = await api.post(
        SEND, {"kind": "req", "id": "p", "type": "userprofile.SetUserProfile", "body": {"nickName": "N"}}
    )
    assert status == 200 and body["body"] == {"msg": "OK User Profile set successfully"}
    status, body = await api.post(
        SEND,
        {
            "kind": "req",
            "id": "u",
            "type": "ms.GenerateURLForUploadFile",
            "body": {"fileSize": 3, "fileType": "PNG"},
        },
    )
    assert status == 200, body
    upload = body["body"]
    assert upload["relativePath"].endswith(".PNG") and "temp_url_sig" in upload["queryParams"]
    async with http.put(
        f"{emulator.base_url}{upload['relativePath']}", params=upload["queryParams"], data=b"png"
    ) as r:
        assert r.status == 201
    status, body = await api.post(
        SEND,
        {
            "kind": "req",
            "id": "d",
            "type": "ms.GenerateURLForDownloadFile",
            "body": {"relativePath": upload["relativePath"]},
        },
    )
    assert status == 200, body
    download = body["body"]
    async with http.get(
        f"{emulator.base_url}{download['relativePath']}", params=download["queryParams"]
    ) as r:
        assert await r.read() == b"png"
    status, body = await api.post(
        SEND,
        {
            "kind": "req",
            "id": "x",
            "type": "ms.GenerateURLForUploadFile",
            "body": {"fileSize": 3, "fileType": "EXE"},
        },
    )
    assert (status, body["code"]) == (400, 400)
    status, body = await api.post(
        SEND,
        {
            "kind": "req",
            "id": "y",
            "type": "ms.GenerateURLForUploadFile",
            "body": {"fileSize": 10**8, "fileType": "PNG"},
        },
    )
    assert (status, body["code"]) == (413, 413)


async def test_send_business_errors(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    api = await SendApi.create(http, emulator)
    other = await SendApi.create(http, emulator, ext_id="ext-other")
    conv_id = await other.open()
    # someone else's conversation
    status, body = await api.text(conv_id, "intrusion", req_id="1")
    assert (status, body) == (403, {"reqId": "1", "code": 403, "body": "not your conversation"})
    status, body = await api.text("no-such-dialog", "x", req_id="2")
    assert (status, body["code"]) == (404, 404)
    status, body = await api.post(SEND, close_frame(conv_id))
    assert (status, body["code"]) == (403, 403)
    status, body = await api.post(
        SEND, {"kind": "req", "id": "3", "type": ".ams.cm.AgentRequestConversation"}
    )
    assert (status, body["code"], body["reqId"]) == (400, 400, "3")
    status, body = await api.post(SEND, {"kind": "req", "id": "4", "type": "ms.SubscribeMessagingEvents"})
    assert (status, body["code"]) == (400, 400)
    status, body = await api.post(
        SEND, {"kind": "req", "id": "5", "type": "ms.PublishEvent", "body": {"dialogId": 5}}
    )
    assert (status, body["code"]) == (400, 400)
    assert_envelope(*await api.post(SEND, data=b"{"), 400, 40000)
    assert_envelope(*await api.post(SEND, [{"id": "1"}, {"id": "2"}]), 400, 40000)
    assert_envelope(*await api.post(SEND, "text"), 400, 40000)


# ---------------------------------------------------------------- authentication errors


async def test_auth_error_codes(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    api = await SendApi.create(http, emulator)
    app = api.headers["Authorization"]
    jws = api.headers["X-LP-ON-BEHALF"]
    assert emulator.ctx is not None
    tokens = emulator.ctx.tokens
    frame = {"kind": "req", "id": "1", "type": "GetClock"}

    async def call(headers: dict[str, str], path: str = SEND) -> tuple[int, Any]:
        async with http.post(f"{emulator.base_url}{path}", json=frame, headers=headers) as resp:
            return resp.status, await resp.json()

    for path in (SEND, CONVERSATION):
        assert_envelope(*await call({"X-LP-ON-BEHALF": jws}, path), 401, 40105)
        assert_envelope(*await call({"Authorization": "garbage", "X-LP-ON-BEHALF": jws}, path), 401, 40102)
        assert_envelope(*await call({"Authorization": app}, path), 401, 40104)
        assert_envelope(*await call({"Authorization": app, "X-LP-ON-BEHALF": "garbage"}, path), 401, 40103)

    expired = tokens.issue_app_jwt(ACC, APP, -10)
    assert_envelope(*await call({"Authorization": expired, "X-LP-ON-BEHALF": jws}), 401, 40102)
    other_account = tokens.issue_app_jwt("87654321", APP, 60)
    assert_envelope(*await call({"Authorization": other_account, "X-LP-ON-BEHALF": jws}), 401, 40102)
    removed_app = tokens.issue_app_jwt(ACC, "uninstalled-app", 60)
    assert_envelope(*await call({"Authorization": removed_app, "X-LP-ON-BEHALF": jws}), 401, 40102)
    header, payload, signature = app.split(".")
    tampered = f"{header}.{payload}x.{signature}"
    assert_envelope(*await call({"Authorization": tampered, "X-LP-ON-BEHALF": jws}), 401, 40102)

    # an LP consumer JWT is not a ConsumerJWS, nor is a JWS issued to another app
    lp_jwt = await signup(http, emulator)
    assert_envelope(*await call({"Authorization": app, "X-LP-ON-BEHALF": lp_jwt}), 401, 40103)
    foreign = tokens.issue_consumer_jws(ACC, api.consumer_id, "another-app")
    assert_envelope(*await call({"Authorization": app, "X-LP-ON-BEHALF": foreign}), 401, 40103)
    ghost = tokens.issue_consumer_jws(ACC, "no-such-consumer", APP)
    assert_envelope(*await call({"Authorization": app, "X-LP-ON-BEHALF": ghost}), 401, 40103)

    # header names are case-insensitive and a Bearer prefix is tolerated
    status, body = await call({"authorization": f"Bearer {app}", "x-lp-on-behalf": jws})
    assert status == 200 and body["code"] == "OK"

    assert_envelope(*await call({**api.headers, "Brand-ID": "999"}), 400, 40001)
    unknown = "/api/account/999/messaging/consumer/conversation/send?v=3"
    assert_envelope(*await call(api.headers, unknown), 400, 40001)

    for status, body in [
        await call({"X-LP-ON-BEHALF": jws}),
        await call({"Authorization": app, "X-LP-ON-BEHALF": "x"}),
    ]:
        assert app not in json.dumps(body) and jws not in json.dumps(body), status


# ---------------------------------------------------------------- round trip with an agent


async def _ring(brand: RawSocket) -> dict[str, Any]:
    while True:
        note = await brand.notification(".ams.routing.RoutingTaskNotification")
        for change in note["body"]["changes"]:
            for ring in change["result"]["ringsDetails"]:
                if ring["ringState"] == "WAITING":
                    return dict(ring)


async def test_agent_receives_send_api_messages(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    bearer = (await login(http, emulator))["bearer"]
    brand = await RawSocket.brand(http, emulator, bearer)
    await brand.request(".ams.routing.SetAgentState", {"availability": "ONLINE"}, expect=202)
    await brand.request(".ams.routing.SubscribeRoutingTasks", {})

    api = await SendApi.create(http, emulator, ext_id="round-trip")
    conv_id = await api.open()
    ring = await _ring(brand)
    assert ring["convId"] == conv_id and ring["consumerId"] == api.consumer_id
    await brand.request(
        ".ams.routing.UpdateRingState", {"ringId": ring["ringId"], "ringState": "ACCEPTED"}, expect=202
    )

    status, body = await api.text(conv_id, "hello agent")
    assert status == 200 and body["body"] == {"sequence": 0}
    event = await brand.notification(".ams.ms.OnlineEventDistribution")
    assert event["body"]["event"]["message"] == "hello agent"
    assert event["body"]["originatorId"] == api.consumer_id
    assert event["body"]["originatorMetadata"]["role"] == "CONSUMER"
    assert event["body"]["dialogId"] == conv_id and event["body"]["sequence"] == 0

    # the agent answers on its socket; the consumer closes over the Send API
    await brand.request(
        ".ams.ms.PublishEvent",
        {"dialogId": conv_id, "event": {"type": "ContentEvent", "message": "hi there"}},
    )
    status, body = await api.post(SEND, close_frame(conv_id))
    assert status == 200, body
    events = emulator.world.accounts[ACC].events[conv_id]
    assert [e.event["message"] for e in events] == ["hello agent", "hi there"]
    await brand.close()


@pytest.mark.parametrize("path", [CONVERSATION, SEND])
async def test_expired_app_jwt_by_clock(emulator: Emulator, http: aiohttp.ClientSession, path: str) -> None:
    """An AppJWT past its ``exp`` (one hour) is refused even though its signature is good."""
    api = await SendApi.create(http, emulator)
    assert emulator.ctx is not None
    now = int(time.time())
    claims = {
        "sub": APP,
        "azp": APP,
        "aud": f"le{ACC}",
        "iss": "Sentinel",
        "iat": now - 7200,
        "exp": now - 3600,
    }
    old = jwt.encode(claims, emulator.ctx.tokens.private_key_pem, algorithm="RS256")
    status, body = await api.post(path, [], headers={"Authorization": old})
    assert_envelope(status, body, 401, 40102)
