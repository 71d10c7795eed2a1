"""Hostile clients against every face of a real emulator process: a bad body is a 4xx, never a crash.

One ``lpm emulator --faults --db FILE`` process (see :mod:`emulator_process`) serves the whole
module.  Every HTTP endpoint that reads a body gets the same set of hostile bodies -- JSON nested
100,000 deep (arrays and objects), nested just under the interpreter's recursion limit, nested
past the emulator's depth limit inside a field, bytes that are not UTF-8, not JSON, JSON of the
wrong type (arrays, strings, numbers, null), objects whose every field has the wrong type, a body
just under the size limit and one over it -- and must answer each with a 4xx *and a body*, in
the face's own error shape where it has one.  Both WebSocket APIs get the same inputs as text
frames and must answer each with a 400 frame and keep the socket usable (a frame over the size
limit closes it with 1009, text that is not UTF-8 with 1007: the WebSocket protocol's answers).

After every input the emulator must still serve (CSDS answers), and at the end its log must hold
no traceback: an unhandled error answered 500 would show there even if the status were hidden.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from tests.helpers import RawSocket, login, signup
from tests.resilience.emulator_process import EmulatorProcess
from tests.security.faces import APP_ID, APP_SECRET, app_jwt, consumer_jws

pytestmark = pytest.mark.asyncio(loop_scope="module")

#: The emulator's HTTP body limit is its file limit (3 MiB) plus 64 KiB; a WebSocket frame's 16 MiB.
BODY_LIMIT = 3 * 1024 * 1024 + 65536
FRAME_LIMIT = 16 * 1024 * 1024
DEEP = 100_000
#: Bound on the emulator's peak RSS over the whole module (measured: 59 MiB at start, 125 MiB at
#: the end; the biggest input is a frame just under 16 MiB, held and decoded once).
PEAK_RSS_LIMIT = 300 * 2**20


def nested_arrays(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def nested_objects(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


#: Every field name the faces read, each with a value of the wrong type.
WRONG_TYPES: dict[str, Any] = {
    name: value
    for names, value in (
        (("username", "password", "csrf", "appKey", "secret", "accessToken", "accessTokenSecret"), 5),
        (("id_token", "code", "authCode", "lp_jwt", "redirect_uri", "ext_consumer_id"), ["x"]),
        (("kind", "id", "type", "reqId", "client_name", "name", "fileType", "relativePath"), {"a": 1}),
        (("body", "event", "message", "headers", "metadata", "dialogId", "conversationId"), 7),
        (("capabilities", "webhooks", "retry", "participants", "changes", "role", "state"), "x"),
        (("fileSize", "count", "messages", "events", "conversations", "status", "code"), "big"),
        (("consumerId", "skillId", "brandId", "userId", "agentId", "ringId", "delay"), [[]]),
    )
    for name in names
}

#: name -> (body, content type) sent to every HTTP endpoint.
HOSTILE_BODIES: dict[str, tuple[bytes, str]] = {
    "nested-arrays": (nested_arrays(DEEP), "application/json"),
    "nested-objects": (nested_objects(DEEP), "application/json"),
    # Decodes (under the recursion limit) but would break whatever recursed over it afterwards.
    "nested-900": (nested_arrays(900), "application/json"),
    "nested-in-a-field": (b'{"username": ' + nested_arrays(100) + b', "body": 1}', "application/json"),
    "not-utf8": (b'{"username": "\xff\xfe\xfd", "password": "\xc3\x28"}', "application/json"),
    "not-json": (b"{this is not json", "application/json"),
    "array": (b"[1, 2, 3]", "application/json"),
    "string": (b'"a string"', "application/json"),
    "number": (b"12345", "application/json"),
    "null": (b"null", "application/json"),
    "wrong-types": (json.dumps(WRONG_TYPES).encode(), "application/json"),
    # Wrong types padded to just under the limit: refused, and read whole without trouble.
    "huge-under-limit": (
        json.dumps({**WRONG_TYPES, "padding": "a" * (BODY_LIMIT - 8192)}).encode(),
        "application/json",
    ),
    "over-limit": (b'{"username": "' + b"a" * (BODY_LIMIT + 4096) + b'"}', "application/json"),
}


@dataclass
class Creds:
    """What the endpoints need to get past authentication to the body."""

    bearer: str = ""
    csrf: str = ""
    cookie: str = ""
    app_jwt: str = ""
    consumer_jws: str = ""
    consumer_jwt: str = ""
    conv_id: str = ""
    sockets: list[RawSocket] = field(default_factory=list)


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    path: str
    headers: Callable[[Creds], dict[str, str]] = lambda _: {}
    #: The face's error shape: a check of the decoded JSON body of a 4xx.
    shape: Callable[[Any], bool] = lambda body: True
    #: Send the agent's session cookie (refresh, logout).
    cookies: bool = False
    #: Reports refusals per frame in a 200 array (the Send API's CONVERSATION).
    batch: bool = False


def agentvep_shape(body: Any) -> bool:
    return isinstance(body, dict) and isinstance(body.get("error"), dict) and "internalCode" in body["error"]


def idp_shape(body: Any) -> bool:
    return isinstance(body, dict) and isinstance(body.get("error"), dict) and "message" in body["error"]


def code_message_shape(body: Any) -> bool:
    return isinstance(body, dict) and "message" in body


def oauth_shape(body: Any) -> bool:
    return isinstance(body, dict) and "error" in body


def rest_shape(body: Any) -> bool:
    return isinstance(body, dict) and bool(body)


def any_json(body: Any) -> bool:
    return body is not None


ACC = "/api/account/12345678"


def _bearer(c: Creds) -> dict[str, str]:
    return {"Authorization": f"Bearer {c.bearer}", "Brand-ID": "12345678"}


def _send_api(c: Creds) -> dict[str, str]:
    return {"Authorization": c.app_jwt, "X-LP-ON-BEHALF": c.consumer_jws}


def _conv(c: Creds) -> str:
    return f"/v1/conversations/{c.conv_id}"


ENDPOINTS = [
    Endpoint("login", "POST", ACC + "/login?v=1.3", shape=agentvep_shape),
    Endpoint("refresh", "POST", ACC + "/refresh", shape=agentvep_shape, cookies=True),
    Endpoint("logout", "POST", ACC + "/logout", shape=agentvep_shape, cookies=True),
    Endpoint("idp anonymous", "POST", ACC + "/anonymous/authorize", shape=idp_shape),
    Endpoint("idp authenticate (unauth)", "POST", ACC + "/app/3001/authenticate?v=3.0", shape=idp_shape),
    Endpoint("idp authenticate (auth)", "POST", ACC + "/app/3002/authenticate?v=3.0", shape=idp_shape),
    Endpoint("idp legacy authenticate", "POST", ACC + "/authenticate", shape=idp_shape),
    Endpoint(
        "idp consumer JWS",
        "POST",
        ACC + "/consumer?v=1.0",
        headers=lambda c: {"Authorization": c.app_jwt},
        shape=idp_shape,
    ),
    Endpoint(
        "send api conversation",
        "POST",
        ACC + "/messaging/consumer/conversation?v=3",
        headers=_send_api,
        shape=any_json,
        batch=True,
    ),
    Endpoint(
        "send api send",
        "POST",
        ACC + "/messaging/consumer/conversation/send?v=3",
        headers=_send_api,
        shape=any_json,
    ),
    Endpoint("rest patch conversation", "PATCH", "{conv}", headers=_bearer, shape=rest_shape),
    Endpoint("rest patch dialog", "PATCH", "{conv}/dialogs/{conv_id}", headers=_bearer, shape=rest_shape),
    Endpoint(
        "rest add participant",
        "POST",
        "{conv}/dialogs/{conv_id}/participants",
        headers=_bearer,
        shape=rest_shape,
    ),
    Endpoint("rest publish", "POST", "{conv}/dialogs/{conv_id}/messages", headers=_bearer, shape=rest_shape),
    Endpoint(
        "rest upload path", "POST", "/v1/brands/12345678/file-upload-path", headers=_bearer, shape=rest_shape
    ),
    Endpoint(
        "rest download path",
        "POST",
        "/v1/brands/12345678/file-download-path",
        headers=_bearer,
        shape=rest_shape,
    ),
    Endpoint(
        "app install create",
        "POST",
        ACC + "/configuration/app-install/installations",
        headers=_bearer,
        shape=code_message_shape,
    ),
    Endpoint(
        "app install update",
        "PUT",
        ACC + f"/configuration/app-install/installations/{APP_ID}",
        headers=_bearer,
        shape=code_message_shape,
    ),
    Endpoint("control: arm requests", "POST", "/_emulator/requests", shape=any_json),
    Endpoint("control: close sockets", "POST", "/_emulator/sockets/close", shape=any_json),
    Endpoint("bench: conversations", "POST", "/_emulator/bench/conversations", shape=any_json),
]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def emu(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[EmulatorProcess]:
    db: Path = tmp_path_factory.mktemp("hostile") / "world.db"
    async with EmulatorProcess(db=db, faults=True) as process:
        started = process.peak_rss()
        yield process
        assert process.running, f"the emulator died:\n{process.stderr_text()}"
        assert "Traceback" not in process.stderr_text(), process.stderr_text()
        peak = process.peak_rss()
        if started is not None and peak is not None:
            print(f"emulator peak RSS: {started / 2**20:.0f} MiB at start, {peak / 2**20:.0f} MiB after")
            assert peak < PEAK_RSS_LIMIT, f"peak RSS {peak / 2**20:.0f} MiB"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        yield session


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def creds(emu: EmulatorProcess, http: aiohttp.ClientSession) -> AsyncIterator[Creds]:
    c = Creds()
    async with http.post(
        f"{emu.base_url}{ACC}/login?v=1.3", json={"username": "agent", "password": "agent-password"}
    ) as resp:
        assert resp.status == 200
        body = await resp.json()
        c.bearer, c.csrf = body["bearer"], body["csrf"]
        c.cookie = resp.cookies["Session_id"].value
    c.app_jwt = await app_jwt(http, emu)  # type: ignore[arg-type]
    c.consumer_jws = await consumer_jws(http, emu, c.app_jwt, f"hostile-{uuid.uuid4()}")  # type: ignore[arg-type]
    c.consumer_jwt = await signup(http, emu)  # type: ignore[arg-type]
    consumer = await RawSocket.consumer(http, emu, c.consumer_jwt)  # type: ignore[arg-type]
    c.sockets.append(consumer)
    resp = await consumer.request("cm.ConsumerRequestConversation", {"brandId": "12345678", "skillId": "11"})
    c.conv_id = resp["body"]["conversationId"]
    yield c
    for sock in c.sockets:
        await sock.close()


async def still_serves(emu: EmulatorProcess, http: aiohttp.ClientSession) -> None:
    assert emu.running, f"the emulator died:\n{emu.stderr_text()}"
    async with http.get(f"{emu.base_url}{ACC}/service/baseURI.json?version=1.0") as resp:
        assert resp.status == 200


def _payload(body: bytes) -> bytes | io.BytesIO:
    # aiohttp warns (an error here) about big raw bodies: a BytesIO is streamed instead.
    return io.BytesIO(body) if len(body) > 1 << 20 else body


def _path(endpoint: Endpoint, c: Creds) -> str:
    return endpoint.path.format(conv=_conv(c), conv_id=c.conv_id)


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=[e.name for e in ENDPOINTS])
async def test_every_http_endpoint_answers_hostile_bodies_with_a_4xx_and_a_body(
    endpoint: Endpoint, emu: EmulatorProcess, http: aiohttp.ClientSession, creds: Creds
) -> None:
    failures = []
    for name, (body, content_type) in HOSTILE_BODIES.items():
        headers = {"Content-Type": content_type, **endpoint.headers(creds)}
        if endpoint.cookies:
            headers["Cookie"] = f"Session_id={creds.cookie}"
        async with http.request(
            endpoint.method, f"{emu.base_url}{_path(endpoint, creds)}", data=_payload(body), headers=headers
        ) as resp:
            text = await resp.read()
            status = resp.status
        problem = _judge(endpoint, name, status, text)
        if problem:
            failures.append(f"{name}: {problem}")
        await still_serves(emu, http)
    assert not failures, f"{endpoint.name}:\n" + "\n".join(failures)


def _judge(endpoint: Endpoint, name: str, status: int, text: bytes) -> str:
    """What is wrong with an answer to a hostile body ("" when it is a proper refusal)."""
    if endpoint.batch and status == 200:
        # The Send API's CONVERSATION runs each frame of its array on its own and reports each
        # refusal in its slot of a 200 array (protocol 7.1): every slot must be a refusal.
        results = json.loads(text)
        refused = all(isinstance(r, dict) and 400 <= r.get("code", 0) < 500 for r in results)
        return "" if refused else f"HTTP 200 with a frame that was not refused: {text[:200]!r}"
    if not 400 <= status < 500:
        return f"HTTP {status} {text[:200]!r}"
    if not text:
        return f"HTTP {status} without a body"
    if name == "over-limit":
        # 413 once the body is read; an endpoint may refuse the request before reading it.
        return ""
    try:
        decoded = json.loads(text)
    except ValueError:
        return f"HTTP {status} with a body that is not JSON: {text[:200]!r}"
    return "" if endpoint.shape(decoded) else f"HTTP {status} in another shape: {text[:200]!r}"


async def test_sentinel_answers_hostile_form_bodies_with_an_oauth_error(
    emu: EmulatorProcess, http: aiohttp.ClientSession
) -> None:
    url = f"{emu.base_url}/sentinel{ACC}/app/token?v=1.0&grant_type=client_credentials"
    bodies = {
        "not-utf8": b"client_id=\xff\xfe&client_secret=\xc3\x28",
        "garbage": b"&&&===%%%",
        "nested-json": nested_arrays(DEEP),
        "huge-under-limit": b"client_id=" + b"a" * (BODY_LIMIT - 4096),
        "over-limit": b"client_id=" + b"a" * (BODY_LIMIT + 4096),
    }
    failures = []
    for name, body in bodies.items():
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        async with http.post(url, data=_payload(body), headers=headers) as resp:
            text = await resp.read()
            problem = _judge(Endpoint("sentinel", "POST", url, shape=oauth_shape), name, resp.status, text)
        if problem:
            failures.append(f"{name}: {problem}")
        await still_serves(emu, http)
    assert not failures, "\n".join(failures)
    # The emulator still hands out tokens to a well-behaved client.
    async with http.post(url, data={"client_id": APP_ID, "client_secret": APP_SECRET}) as resp:
        assert resp.status == 200


async def test_file_storage_refuses_bodies_over_the_limit(
    emu: EmulatorProcess, http: aiohttp.ClientSession
) -> None:
    url = f"{emu.base_url}/v1/AUTH_async-images/12345678/x.PNG?temp_url_sig=00&temp_url_expires=1"
    for body in (b"\x89PNG" + b"0" * 64, b"0" * (BODY_LIMIT + 4096)):
        async with http.put(url, data=_payload(body)) as resp:
            assert 400 <= resp.status < 500 and await resp.read()
    await still_serves(emu, http)


# ---------------------------------------------------------------- WebSocket APIs

#: name -> text frame; each must be answered 400 (with the request's id when it has one).
HOSTILE_FRAMES: dict[str, str] = {
    "nested-arrays": nested_arrays(DEEP).decode(),
    "nested-objects": nested_objects(DEEP).decode(),
    "nested-900": nested_arrays(900).decode(),
    "nested-in-the-body": '{"kind":"req","id":"h1","type":"GetClock","body":' + "[" * 100 + "]" * 100 + "}",
    "not-json": "{this is not json",
    "array": "[1, 2, 3]",
    "string": '"a string"',
    "null": "null",
    "response-frame": '{"kind":"resp","reqId":"1","code":200,"type":"x"}',
    "wrong-id-type": '{"kind":"req","id":{"a":1},"type":"GetClock"}',
    "wrong-type-type": '{"kind":"req","id":"h2","type":5}',
    "wrong-body-type": json.dumps({"kind": "req", "id": "h3", "type": "ms.PublishEvent", "body": [1]}),
    "wrong-field-types": json.dumps(
        {"kind": "req", "id": "h4", "type": "ms.PublishEvent", "body": WRONG_TYPES}
    ),
    "huge-under-limit": json.dumps(
        {
            "kind": "req",
            "id": "h5",
            "type": "ms.PublishEvent",
            "body": {**WRONG_TYPES, "padding": "a" * (FRAME_LIMIT - 8192)},
        }
    ),
}
#: Frames whose request id can be read: the answer must name it.
NAMED = ("nested-in-the-body", "wrong-type-type", "wrong-body-type", "wrong-field-types", "huge-under-limit")


async def _answer(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    """The next response frame (notifications are skipped)."""
    while True:
        msg = await ws.receive(timeout=30)
        assert msg.type is aiohttp.WSMsgType.TEXT, f"socket ended: {msg.type} {ws.close_code}"
        frame = json.loads(msg.data)
        if frame.get("kind") == "resp":
            return frame


async def _clock_works(ws: aiohttp.ClientWebSocketResponse) -> None:
    await ws.send_str(json.dumps({"kind": "req", "id": "clock", "type": "GetClock"}))
    answer = await _answer(ws)
    assert answer["reqId"] == "clock" and answer["code"] == 200, answer


async def _open(kind: str, emu: EmulatorProcess, http: aiohttp.ClientSession, creds: Creds) -> Any:
    if kind == "brand":
        url = f"{emu.ws_base_url}/ws_api/account/12345678/messaging/brand/{creds.bearer}?v=2.1"
        return await http.ws_connect(url, max_msg_size=0)
    url = f"{emu.ws_base_url}/ws_api/account/12345678/messaging/consumer?v=3"
    return await http.ws_connect(url, headers={"Authorization": f"jwt {creds.consumer_jwt}"}, max_msg_size=0)


@pytest.mark.parametrize("kind", ["brand", "consumer"])
async def test_both_websocket_apis_answer_hostile_frames_with_400(
    kind: str, emu: EmulatorProcess, http: aiohttp.ClientSession, creds: Creds
) -> None:
    ws = await _open(kind, emu, http, creds)
    try:
        failures = []
        for name, text in HOSTILE_FRAMES.items():
            await ws.send_str(text)
            answer = await _answer(ws)
            if answer["code"] != 400 or not answer.get("body"):
                failures.append(f"{name}: {str(answer)[:300]}")
            elif name in NAMED and answer["reqId"] is None:
                failures.append(f"{name}: the answer does not name the request: {answer}")
            await _clock_works(ws)
        await ws.send_bytes(b"\xff\xfe\x00 not text")
        answer = await _answer(ws)
        if answer["code"] != 400:
            failures.append(f"binary frame: {answer}")
        await _clock_works(ws)
        assert not failures, "\n".join(failures)
    finally:
        await ws.close()
    await still_serves(emu, http)


@pytest.mark.parametrize("kind", ["brand", "consumer"])
async def test_frames_over_the_limit_or_not_utf8_close_only_their_socket(
    kind: str, emu: EmulatorProcess, http: aiohttp.ClientSession, creds: Creds
) -> None:
    for frame, code in ((b"x" * (FRAME_LIMIT + 1024), 1009), (b'{"kind":"req","id":"\xff\xfe"}', 1007)):
        ws = await _open(kind, emu, http, creds)
        # Raw bytes (send_str would encode them), sent while reading: the emulator closes the
        # socket as soon as it sees the frame's header, before the rest of a big frame is sent.
        sending = asyncio.ensure_future(ws._writer.send_frame(frame, aiohttp.WSMsgType.TEXT))
        msg = await ws.receive(timeout=30)
        with contextlib.suppress(ConnectionError):
            await sending
        assert msg.type is aiohttp.WSMsgType.CLOSE, msg
        assert msg.data == code, msg
        await ws.close()
        # Everyone else is served as before: a new socket of the same kind works.
        ws = await _open(kind, emu, http, creds)
        await _clock_works(ws)
        await ws.close()
    await still_serves(emu, http)


async def test_the_emulator_keeps_serving_a_well_behaved_client(
    emu: EmulatorProcess, http: aiohttp.ClientSession, creds: Creds
) -> None:
    """After everything above, a normal session still works end to end."""
    body = await login(http, emu, "bot")  # type: ignore[arg-type]
    brand = await RawSocket.brand(http, emu, body["bearer"])  # type: ignore[arg-type]
    consumer = creds.sockets[0]
    resp = await consumer.request(
        "ms.PublishEvent",
        {
            "dialogId": creds.conv_id,
            "event": {"type": "ContentEvent", "contentType": "text/plain", "message": "hi"},
        },
    )
    assert resp["body"]["sequence"] >= 0
    await brand.request("GetClock")
    await brand.close()
