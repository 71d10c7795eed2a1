"""Webhooks against a real endpoint on loopback: registration API, signatures, shapes, per-conversation
order, retries through 500s and timeouts, and dropping after the retention time."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from lpm.emulator import webhook_delivery
from lpm.emulator.app import Emulator
from tests.helpers import RawSocket, login, signup

ACC = "12345678"
ALL_KEYS = [
    "cqm.ExConversationChangeNotification",
    "ms.MessagingEventNotification.ContentEvent",
    "ms.MessagingEventNotification.RichContentEvent",
    "ms.MessagingEventNotification.AcceptStatusEvent",
    "ms.MessagingEventNotification.ChatStateEvent",
]


@dataclass
class Hit:
    headers: dict[str, str]
    raw: bytes

    @property
    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.raw)
        return data

    @property
    def msg(self) -> dict[str, Any]:
        # The notification itself, as LivePerson's webhooks pages show it (no wrapper).
        return self.payload

    @property
    def conv_id(self) -> str:
        body = self.msg["body"]
        if self.msg["type"] == "ms.MessagingEventNotification":
            return str(body["changes"][0]["conversationId"])
        return str(body["changes"][0]["result"]["convId"])


@dataclass
class Endpoint:
    """A webhook receiver; ``script`` says how to answer the next requests ("500", "slow", "ok")."""

    url: str = ""
    accepted: list[Hit] = field(default_factory=list)
    attempts: int = 0
    script: list[str] = field(default_factory=list)
    slow: float = 1.0

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.attempts += 1
        action = self.script.pop(0) if self.script else "ok"
        if action == "500":
            return web.Response(status=500)
        if action == "slow":
            # Answers after the emulator's webhook_timeout: a failure that must be retried.
            await asyncio.sleep(self.slow)
            return web.Response(status=200)
        self.accepted.append(Hit(dict(request.headers), raw))
        return web.Response(status=200)


@pytest.fixture
async def wemu() -> AsyncIterator[Emulator]:
    async with Emulator(
        faults=True, webhook_retry_base=0.05, webhook_retry_max=0.2, webhook_timeout=0.5
    ) as emu:
        yield emu


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    ep = Endpoint()
    app = web.Application()
    app.router.add_post("/hook", ep.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    ep.url = f"http://127.0.0.1:{port}/hook"
    yield ep
    await runner.cleanup()


def sink(emu: Emulator) -> webhook_delivery.WebhookSink:
    assert emu.ctx is not None
    found = webhook_delivery.sink_of(emu.ctx)
    assert found is not None
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def installation_body(url: str, keys: list[str] = ALL_KEYS, retention: float = 10) -> dict[str, Any]:
    hooks: dict[str, Any] = {
        key: {"endpoint": url, "headers": [{"header_name": "X-Test", "header_value": "yes"}]} for key in keys
    }
    hooks["retry"] = {"retention_time": retention}
    return {"client_name": "webhook-test", "capabilities": {"webhooks": hooks}}


async def register(
    http: aiohttp.ClientSession, emu: Emulator, bearer: str, body: dict[str, Any]
) -> dict[str, Any]:
    async with http.post(
        f"{emu.base_url}/api/account/{ACC}/configuration/app-install/installations",
        json=body,
        headers={"Authorization": f"Bearer {bearer}"},
    ) as resp:
        assert resp.status == 201, await resp.text()
        data: dict[str, Any] = await resp.json()
        return data


async def conversation(http: aiohttp.ClientSession, emu: Emulator) -> tuple[RawSocket, str]:
    sock = await RawSocket.consumer(http, emu, await signup(http, emu))
    resp = await sock.request("cm.ConsumerRequestConversation", {"brandId": ACC, "skillId": "11"})
    return sock, str(resp["body"]["conversationId"])


async def say(sock: RawSocket, conv_id: str, text: str) -> None:
    await sock.request(
        "ms.PublishEvent",
        {
            "dialogId": conv_id,
            "event": {"type": "ContentEvent", "contentType": "text/plain", "message": text},
        },
    )


def signed(hit: Hit, secret: str) -> bool:
    expected = "sha1=" + base64.b64encode(hmac.new(secret.encode(), hit.raw, hashlib.sha1).digest()).decode()
    return hmac.compare_digest(hit.headers["x-liveperson-signature"], expected)


def texts(hits: list[Hit]) -> list[str]:
    out = []
    for hit in hits:
        if hit.msg["type"] == "ms.MessagingEventNotification":
            event = hit.msg["body"]["changes"][0]["event"]
            if event["type"] == "ContentEvent":
                out.append(event["message"])
    return out


def assert_in_order(hits: list[Hit]) -> None:
    """Per conversation: message sequences rise, conversation states never go back in time, and a
    conversation change never reports a last message the endpoint has not been sent yet."""
    by_conv: dict[str, list[Hit]] = {}
    for hit in hits:
        by_conv.setdefault(hit.conv_id, []).append(hit)
    for conv_hits in by_conv.values():
        last_seq = -1
        last_ts = 0
        for hit in conv_hits:
            body = hit.msg["body"]
            if hit.msg["type"] == "ms.MessagingEventNotification":
                seq = body["changes"][0].get("sequence")
                if seq is not None:
                    assert seq > last_seq, [h.msg for h in conv_hits]
                    last_seq = seq
            else:
                result = body["changes"][0]["result"]
                ts = result["conversationDetails"]["metaDataLastUpdateTs"]
                assert ts >= last_ts
                last_ts = ts
                last = result.get("lastContentEventNotification")
                if last is not None:
                    assert last["sequence"] <= last_seq


# ---------------------------------------------------------------- registration API


async def test_installation_api(wemu: Emulator, http: aiohttp.ClientSession, endpoint: Endpoint) -> None:
    bearer = (await login(http, wemu))["bearer"]
    auth = {"Authorization": f"Bearer {bearer}"}
    base = f"{wemu.base_url}/api/account/{ACC}/configuration/app-install/installations"
    created = await register(http, wemu, bearer, installation_body(endpoint.url, ALL_KEYS[:2], retention=30))
    client_id = created["client_id"]
    assert created["client_secret"] and created["client_name"] == "webhook-test"
    assert created["capabilities"]["webhooks"]["retry"] == {"retention_time": 30}
    assert created["capabilities"]["webhooks"][ALL_KEYS[0]] == {
        "endpoint": endpoint.url,
        "headers": [{"header_name": "X-Test", "header_value": "yes"}],
    }
    async with http.get(f"{base}/{client_id}", headers=auth) as resp:
        assert resp.status == 200 and await resp.json() == created
    async with http.get(base, headers=auth) as resp:
        assert client_id in [i["client_id"] for i in await resp.json()]

    # The generated credentials work with sentinel.
    async with http.post(
        f"{wemu.base_url}/sentinel/api/account/{ACC}/app/token?v=1.0&grant_type=client_credentials",
        data={"client_id": client_id, "client_secret": created["client_secret"]},
    ) as resp:
        assert resp.status == 200

    updated_body = {"capabilities": {"webhooks": {ALL_KEYS[1]: {"endpoint": "https://example.com/x"}}}}
    async with http.get(base, headers=auth) as resp:
        revision = resp.headers["ac-revision"]  # writes name it in If-Match
    async with http.put(
        f"{base}/{client_id}", json=updated_body, headers={**auth, "If-Match": revision}
    ) as resp:
        updated = await resp.json()
        assert resp.status == 200
    assert set(updated["capabilities"]["webhooks"]) == {ALL_KEYS[1], "retry"}
    assert updated["capabilities"]["webhooks"]["retry"] == {"retention_time": 30}
    assert updated["client_secret"] == created["client_secret"]

    bad_bodies = [
        {"capabilities": {"webhooks": {"ms.Nope": {"endpoint": endpoint.url}}}},
        {"capabilities": {"webhooks": {ALL_KEYS[0]: {"endpoint": "ftp://example.com"}}}},
        {"capabilities": {"webhooks": {ALL_KEYS[0]: {}}}},
        {"capabilities": {"webhooks": {"retry": {"retention_time": 1}}}},
        {"capabilities": {"webhooks": {"retry": {"retention_time": "soon"}}}},
        ["not", "an", "object"],
    ]
    for body in bad_bodies:
        async with http.post(base, json=body, headers=auth) as resp:
            error = await resp.json()
            assert resp.status == 400 and error["code"] == 400, (body, error)
    async with http.post(base, json=installation_body(endpoint.url)) as resp:
        assert resp.status == 401 and (await resp.json())["code"] == 401
    async with http.post(
        base, json=installation_body(endpoint.url), headers={"Authorization": "Bearer x"}
    ) as resp:
        assert resp.status == 401

    async with http.delete(f"{base}/{client_id}", headers={**auth, "If-Match": revision}) as resp:
        assert resp.status == 412  # the PUT made a new revision
        revision = resp.headers["ac-revision"]
    async with http.delete(f"{base}/{client_id}", headers={**auth, "If-Match": revision}) as resp:
        assert resp.status == 204
    async with http.get(f"{base}/{client_id}", headers=auth) as resp:
        assert resp.status == 404 and (await resp.json())["code"] == 404


# ---------------------------------------------------------------- delivery


async def test_notifications_are_signed_shaped_and_ordered(
    wemu: Emulator, http: aiohttp.ClientSession, endpoint: Endpoint
) -> None:
    info = await login(http, wemu)
    install = await register(http, wemu, info["bearer"], installation_body(endpoint.url))
    pid = info["config"]["userPid"]
    rest_headers = {"Authorization": f"Bearer {info['bearer']}", "Brand-ID": ACC}

    # Two conversations at once, interleaved.
    (c1, conv1), (c2, conv2) = await conversation(http, wemu), await conversation(http, wemu)
    for conv_id in (conv1, conv2):
        async with http.post(
            f"{wemu.base_url}/v1/conversations/{conv_id}/dialogs/{conv_id}/participants",
            json={"id": pid, "role": "ASSIGNED_AGENT", "state": "ACTIVE"},
            headers=rest_headers,
        ) as resp:
            assert resp.status == 201
    for i in range(5):
        await say(c1, conv1, f"one-{i}")
        await say(c2, conv2, f"two-{i}")
    await c1.request(
        "ms.PublishEvent", {"dialogId": conv1, "event": {"type": "ChatStateEvent", "chatState": "COMPOSING"}}
    )
    await c1.request(
        "ms.PublishEvent",
        {"dialogId": conv1, "event": {"type": "AcceptStatusEvent", "status": "READ", "sequenceList": [0]}},
    )
    async with http.post(
        f"{wemu.base_url}/v1/conversations/{conv1}/dialogs/{conv1}/messages",
        json={"type": "PLAIN_TEXT", "content": {"text": "private"}, "messageAudience": "AGENTS_AND_MANAGERS"},
        headers=rest_headers,
    ) as resp:
        assert resp.status == 201
    await c1.request(
        "cm.UpdateConversationField",
        {
            "conversationId": conv1,
            "conversationField": [{"field": "ConversationStateField", "conversationState": "CLOSE"}],
        },
    )

    await sink(wemu).drain(10)
    hits = endpoint.accepted
    assert sink(wemu).delivered == len(hits) == endpoint.attempts
    assert sink(wemu).dropped == 0 and sink(wemu).retried == 0
    for hit in hits:
        assert signed(hit, install["client_secret"])
        assert hit.headers["x-liveperson-account-id"] == ACC
        assert hit.headers["x-liveperson-client-id"] == install["client_id"]
        assert hit.headers["Content-Type"] == "application/json"
        assert hit.headers["X-Test"] == "yes"
        assert set(hit.payload) == {"kind", "body", "type"} and hit.msg["kind"] == "notification"
    assert_in_order(hits)
    one = [h for h in hits if h.conv_id == conv1]
    two = [h for h in hits if h.conv_id == conv2]
    assert texts(one) == [f"one-{i}" for i in range(5)] + ["private"]
    assert texts(two) == [f"two-{i}" for i in range(5)]

    types = [
        h.msg["body"]["changes"][0]["event"]["type"]
        for h in one
        if h.msg["type"] == "ms.MessagingEventNotification"
    ]
    assert "ChatStateEvent" in types and "AcceptStatusEvent" in types
    private = next(h for h in one if "private" in texts([h]))
    assert private.msg["body"]["changes"][0]["messageAudience"] == "AGENTS_AND_MANAGERS"
    # As published: each change names its dialog, the body only holds ``changes``.
    assert private.msg["body"] == {"changes": private.msg["body"]["changes"]}
    assert private.msg["body"]["changes"][0]["dialogId"] == conv1

    conv_changes = [h.msg["body"] for h in one if h.msg["type"] == "cqm.ExConversationChangeNotification"]
    assert all(set(b) == {"changes"} for b in conv_changes)
    first, last = conv_changes[0]["changes"][0], conv_changes[-1]["changes"][0]
    assert first["type"] == "UPSERT" and first["result"]["conversationDetails"]["state"] == "OPEN"
    # Rendered when it happened: the first change shows no agent, the last one the closed state.
    assert {p["role"] for p in first["result"]["conversationDetails"]["participants"]} == {
        "CONSUMER",
        "CONTROLLER",
    }
    assert last["result"]["conversationDetails"]["stage"] == "CLOSE"
    await c1.close()
    await c2.close()


async def test_retries_keep_order_without_loss(
    wemu: Emulator, http: aiohttp.ClientSession, endpoint: Endpoint
) -> None:
    info = await login(http, wemu)
    install = await register(
        http,
        wemu,
        info["bearer"],
        installation_body(endpoint.url, ["ms.MessagingEventNotification.ContentEvent"]),
    )
    endpoint.script = ["500", "500", "slow", "500"]
    sock, conv_id = await conversation(http, wemu)
    for i in range(6):
        await say(sock, conv_id, f"m{i}")
    await sink(wemu).drain(15)
    assert texts(endpoint.accepted) == [f"m{i}" for i in range(6)]
    assert all(signed(h, install["client_secret"]) for h in endpoint.accepted)
    assert sink(wemu).retried == 4 and sink(wemu).dropped == 0 and sink(wemu).delivered == 6
    await sock.close()


async def test_dropped_after_retention_then_next_delivered(
    wemu: Emulator, http: aiohttp.ClientSession, endpoint: Endpoint
) -> None:
    info = await login(http, wemu)
    auth = {"Authorization": f"Bearer {info['bearer']}"}
    down = f"http://127.0.0.1:{free_port()}/hook"
    keys = ["ms.MessagingEventNotification.ContentEvent"]
    install = await register(http, wemu, info["bearer"], installation_body(down, keys, retention=2))
    sock, conv_id = await conversation(http, wemu)
    started = time.monotonic()
    await say(sock, conv_id, "lost-1")
    await say(sock, conv_id, "lost-2")
    await sink(wemu).drain(10)
    assert time.monotonic() - started >= 1.9
    assert sink(wemu).dropped == 2 and sink(wemu).delivered == 0 and sink(wemu).retried >= 5

    # The endpoint comes back (the install now points at a live server): delivery continues.
    base = f"{wemu.base_url}/api/account/{ACC}/configuration/app-install/installations"
    async with http.get(base, headers=auth) as resp:
        revision = resp.headers["ac-revision"]
    async with http.put(
        f"{base}/{install['client_id']}",
        json=installation_body(endpoint.url, keys, retention=2),
        headers={**auth, "If-Match": revision},
    ) as resp:
        assert resp.status == 200
    await say(sock, conv_id, "found")
    await sink(wemu).drain(10)
    assert texts(endpoint.accepted) == ["found"]
    assert sink(wemu).delivered == 1
    await sock.close()


async def test_shutdown_cancels_pending_deliveries(http: aiohttp.ClientSession) -> None:
    emu = Emulator(webhook_retry_base=0.05, webhook_retry_max=0.2, webhook_timeout=0.5)
    async with emu:
        info = await login(http, emu)
        down = f"http://127.0.0.1:{free_port()}/hook"
        await register(http, emu, info["bearer"], installation_body(down, ALL_KEYS, retention=3600))
        sock, conv_id = await conversation(http, emu)
        await say(sock, conv_id, "never")
        await asyncio.sleep(0.2)
        assert sink(emu).pending > 0
        await sock.close()
    # Stopped: every queue task was cancelled and awaited, nothing is left running.
    assert sink(emu).pending == 0
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("lpm-webhooks-")]
