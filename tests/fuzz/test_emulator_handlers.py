"""(c) and (d): the emulator's WebSocket and HTTP handlers fed random and mutated input.

(c) Over real sockets of both dialects (an authenticated consumer, a logged-in agent), random
text, random JSON and mutated valid requests: each frame is answered by one response frame,
never 500; a refusal has a 4xx code and a string body of at most 128 characters (the spec's
error frame); the socket stays open and a valid request afterwards is answered.

(d) Random methods, paths under every face (CSDS, agentVep login, IdP, sentinel, UMS REST v1,
Send API, app installs, files), headers and bodies: never a 5xx; every 4xx has a non-empty body
that says what is wrong; the server keeps serving (a valid CSDS lookup afterwards).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.common import LoopEmulator, mutated, protocol_objects, scaled
from tests.helpers import RawSocket, login, signup

ACC = "12345678"

#: Valid requests of each dialect, the seeds of the mutations.
CONSUMER_REQUESTS: list[dict[str, Any]] = [
    {"kind": "req", "id": "1", "type": "GetClock", "body": {}},
    {"kind": "req", "id": "2", "type": "userprofile.GetUserProfile", "body": {}},
    {"kind": "req", "id": "3", "type": "cm.ConsumerRequestConversation", "body": {"skillId": "11"}},
    {
        "kind": "req",
        "id": "4",
        "type": "ms.PublishEvent",
        "body": {"dialogId": "x", "event": {"type": "ContentEvent", "message": "hi"}},
    },
    {"kind": "req", "id": "5", "type": "cqm.SubscribeExConversations", "body": {"convState": ["OPEN"]}},
    {
        "kind": "req",
        "id": "6",
        "type": "ms.SubscribeMessagingEvents",
        "body": {"dialogId": "x", "fromSeq": 0},
    },
    {
        "kind": "req",
        "id": "7",
        "type": "cm.UpdateConversationField",
        "body": {"conversationId": "x", "conversationField": {"field": "TTRField", "ttrType": "URGENT"}},
    },
    {
        "kind": "req",
        "id": "8",
        "type": "ms.GenerateURLForUploadFile",
        "body": {"fileSize": 10, "fileType": "PNG"},
    },
]
BRAND_REQUESTS: list[dict[str, Any]] = [
    {"kind": "req", "id": "1", "type": ".GetClock", "body": {}},
    {"kind": "req", "id": "2", "type": ".ams.routing.SetAgentState", "body": {"availability": "ONLINE"}},
    {
        "kind": "req",
        "id": "3",
        "type": ".ams.routing.SubscribeRoutingTasks",
        "body": {"channelType": "MESSAGING"},
    },
    {"kind": "req", "id": "4", "type": ".ams.aam.SubscribeExConversations", "body": {"convState": ["OPEN"]}},
    {"kind": "req", "id": "5", "type": ".ams.ms.QueryMessages", "body": {"dialogId": "x", "maxQuantity": 5}},
    {
        "kind": "req",
        "id": "6",
        "type": ".ams.routing.UpdateRingState",
        "body": {"ringId": "nope", "ringState": "ACCEPTED"},
    },
    {
        "kind": "req",
        "id": "7",
        "type": ".ams.cm.UpdateConversationField",
        "body": {
            "conversationId": "x",
            "conversationField": [{"field": "ParticipantsChange", "type": "ADD"}],
        },
    },
    {"kind": "req", "id": "8", "type": ".ams.userprofile.GetUserProfile", "body": {"userId": "x"}},
]


class Sockets:
    """One consumer and one agent socket on a shared emulator, plus an HTTP session."""

    def __init__(self) -> None:
        self.env = LoopEmulator()
        emu = self.env.emu

        async def setup() -> None:
            self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
            jwt = await signup(self.http, emu)
            self.sockets = {
                "consumer": await RawSocket.consumer(self.http, emu, jwt),
                "brand": await RawSocket.brand(self.http, emu, (await login(self.http, emu))["bearer"]),
            }

        self.env.run(setup())

    def close(self) -> None:
        async def teardown() -> None:
            for sock in self.sockets.values():
                await sock.close()
            await self.http.close()

        try:
            self.env.run(teardown())
        finally:
            self.env.close()

    def exchange(self, dialect: str, text: str) -> dict[str, Any]:
        """Send ``text``; return the response frame that answers it (checking the spec's rules)."""
        sock = self.sockets[dialect]

        async def go() -> dict[str, Any]:
            await sock.ws.send_str(text)
            # The emulator answers in order: the frame's answer comes before GetClock's.
            clock = await sock.request("GetClock" if dialect == "consumer" else ".GetClock")
            answers = []
            while not sock.notifications.empty():
                frame = sock.notifications.get_nowait()
                if frame.get("kind") == "resp":
                    answers.append(frame)
            assert clock["code"] == 200
            assert len(answers) == 1, answers
            return answers[0]

        answer = self.env.run(go())
        assert not sock.closed.is_set(), sock.close_code
        code = answer["code"]
        assert code != 500 and isinstance(code, int), answer
        if code >= 400:
            assert 400 <= code < 500, answer
            assert answer["type"] == ("StringResponse" if dialect == "consumer" else ".ReqBody$StringResp")
            assert isinstance(answer["body"], str) and 0 < len(answer["body"]) <= 128, answer
        return answer


@pytest.fixture(scope="module")
def sockets() -> Iterator[Sockets]:
    sockets = Sockets()
    try:
        yield sockets
    finally:
        sockets.close()


DIALECTS = st.sampled_from(["consumer", "brand"])


@scaled(40)
@given(DIALECTS, st.text(max_size=200) | protocol_objects.map(json.dumps))
def test_ws_random_frames(sockets: Sockets, dialect: str, text: str) -> None:
    # Only garbage: valid requests (which a random frame can never be, having no "id"...) aside.
    answer = sockets.exchange(dialect, text)
    assert answer["code"] >= 400 or '"id"' in text


@scaled(60)
@given(DIALECTS, st.data())
def test_ws_mutated_requests(sockets: Sockets, dialect: str, data: st.DataObject) -> None:
    seeds = CONSUMER_REQUESTS if dialect == "consumer" else BRAND_REQUESTS
    request = data.draw(mutated(data.draw(st.sampled_from(seeds))))
    request = {**request, "id": "fuzz"} if isinstance(request, dict) and "id" in request else request
    sockets.exchange(dialect, json.dumps(request))


# ---------------------------------------------------------------- (d) HTTP

PATHS = [
    f"/api/account/{ACC}/service/baseURI.json",
    f"/api/account/{ACC}/service/asyncMessagingEnt/baseURI.json",
    f"/csdr/account/{ACC}/service/baseURI.json",
    f"/api/account/{ACC}/login",
    f"/api/account/{ACC}/refresh",
    f"/api/account/{ACC}/logout",
    f"/api/account/{ACC}/signup",
    f"/api/account/{ACC}/anonymous/authorize",
    f"/api/account/{ACC}/app/3001/authenticate",
    f"/api/account/{ACC}/app/3002/authenticate",
    f"/api/account/{ACC}/authenticate",
    f"/api/account/{ACC}/consumer",
    f"/sentinel/api/account/{ACC}/app/token",
    "/v1/conversations/abc",
    "/v1/conversations/abc/dialogs/abc",
    "/v1/conversations/abc/dialogs/abc/participants",
    "/v1/conversations/abc/dialogs/abc/participants/1001",
    "/v1/conversations/abc/dialogs/abc/messages",
    f"/v1/brands/{ACC}/file-upload-path",
    f"/v1/brands/{ACC}/file-download-path",
    f"/api/account/{ACC}/messaging/consumer/conversation",
    f"/api/account/{ACC}/messaging/consumer/conversation/send",
    f"/api/account/{ACC}/configuration/app-install/installations",
    f"/api/account/{ACC}/configuration/app-install/installations/lpm-emulator-app",
    "/v1/AUTH_async-images/12345678/x.png",
]
QUERIES = st.sampled_from(["", "?v=1.3", "?v=3.0", "?v=1.0&grant_type=client_credentials", "?temp_url_sig=x"])
HEADER_NAMES = st.sampled_from(
    ["Authorization", "Content-Type", "X-LP-ON-BEHALF", "Brand-ID", "If-Match", "X-Request-ID", "Accept"]
)
HEADER_VALUES = st.sampled_from(
    ["Bearer x", "Bearer ", "jwt x", "application/json", "text/plain", "*", '"etag"', ACC, "", "eyJ.eyJ.x"]
) | st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30)
BODIES = (
    protocol_objects.map(lambda v: json.dumps(v).encode())
    | st.binary(max_size=100)
    | st.builds(
        lambda form: "&".join(f"{k}={v}" for k, v in form.items()).encode(),
        st.dictionaries(
            st.sampled_from(["client_id", "client_secret", "grant_type", "id_token"]), st.text(max_size=8)
        ),
    )
)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[LoopEmulator, aiohttp.ClientSession]]:
    env = LoopEmulator()

    async def make() -> aiohttp.ClientSession:
        return aiohttp.ClientSession()

    http = env.run(make())
    try:
        yield env, http
    finally:
        env.run(http.close())
        env.close()


@scaled(80)
@given(
    st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"]),
    st.sampled_from(PATHS) | st.text(alphabet="/abcxyz0123456789.-_%", max_size=40).map(lambda p: "/" + p),
    QUERIES,
    st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=3),
    BODIES,
)
def test_http_random_requests(
    server: tuple[LoopEmulator, aiohttp.ClientSession],
    method: str,
    path: str,
    query: str,
    headers: dict[str, str],
    body: bytes,
) -> None:
    env, http = server
    base = env.emu.base_url

    async def go() -> tuple[int, bytes]:
        async with http.request(method, base + path + query, headers=headers, data=body) as resp:
            return resp.status, await resp.read()

    status, content = env.run(go())
    assert status < 500, (status, content[:300])
    if status >= 400 and status not in (404, 405) and method != "HEAD":
        assert content.strip(), (method, path, status)

    async def still_serving() -> int:
        async with http.get(f"{base}/api/account/{ACC}/service/baseURI.json?version=1.0") as resp:
            return resp.status

    assert env.run(still_serving()) == 200
