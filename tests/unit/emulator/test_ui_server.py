"""The web UI's backend over real loopback HTTP (issue 17): what it serves, what it refuses, and
that without it the emulator captures nothing."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import lpm
from lpm.cli.demo_cmd import run_demo
from lpm.cli.demo_report import Reporter
from lpm.emulator import token_issuer as tk
from lpm.emulator.app import Emulator
from lpm.emulator.ui.server import STATIC_DIR

ACC = "12345678"
CONSUMER_WS = f"/ws_api/account/{ACC}/messaging/consumer?v=3"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def consumer(emu: Emulator) -> lpm.ConsumerWebsocketConnection:
    conn = lpm.create_connection(account_id=ACC, user_type=lpm.UserType.CONSUMER, csds_domain=emu.csds_domain)
    assert isinstance(conn, lpm.ConsumerWebsocketConnection)
    return conn


async def test_without_the_ui_nothing_is_captured_nor_served(http: aiohttp.ClientSession) -> None:
    async with Emulator() as emu:
        assert emu.ui is None and emu.ui_url is None and emu.ctx is not None
        assert emu.ctx.hub.tap is None
        assert "ui_url" not in emu.describe()
        ws = await http.ws_connect(emu.ws_base_url + CONSUMER_WS)
        await ws.send_str(json.dumps({"kind": "req", "id": "1", "type": "GetClock"}))
        assert json.loads((await ws.receive()).data)["kind"] == "resp"
        assert all(session.tap is None for session in emu.ctx.hub.sessions)
        await ws.close()
        async with http.get(emu.base_url + "/_emulator/ui/") as resp:
            assert resp.status == 404
        assert not emu.settings.faults


async def test_the_page_its_files_and_the_guards(http: aiohttp.ClientSession) -> None:
    async with Emulator(ui=True) as emu:
        assert emu.settings.faults  # the fault buttons need the fault API
        url = emu.ui_url
        assert url == f"{emu.base_url}/_emulator/ui/" and emu.describe()["ui_url"] == url
        async with http.get(url) as resp:
            assert resp.status == 200 and resp.content_type == "text/html"
            policy = resp.headers["Content-Security-Policy"]
            assert "default-src 'none'" in policy and "script-src 'self'" in policy
            page = await resp.text()
        async with http.get(url[:-1], allow_redirects=False) as resp:
            assert resp.status == 302 and resp.headers["Location"] == "/_emulator/ui/"
        # Every file the page names is served; nothing names another host.
        for name in re.findall(r"static/([\w.-]+)", page):
            async with http.get(url + "static/" + name) as resp:
                assert resp.status == 200, name
        for name in ("app.js", "app.css", "chat.js", "../server.py", "server.py", "nope.js"):
            async with http.get(url + "static/" + name) as resp:
                assert resp.status == (200 if name in ("app.js", "app.css", "chat.js") else 404), name
        # DNS rebinding: another Host is refused; so is a POST from another origin or not JSON.
        async with http.get(url + "api/state", headers={"Host": f"evil.example:{emu.port}"}) as resp:
            assert resp.status == 403
        body = {"connector_id": "3002", "sub": "x"}
        async with http.post(
            url + "api/id-token", json=body, headers={"Origin": "http://evil.example"}
        ) as resp:
            assert resp.status == 403
        async with http.post(url + "api/id-token", data="{}", headers={"Content-Type": "text/plain"}) as resp:
            assert resp.status == 415
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(url + "api/feed", headers={"Origin": "http://evil.example"})
        assert refused.value.status == 403


async def test_the_static_files_load_nothing_from_outside() -> None:
    names = sorted(p.name for p in STATIC_DIR.iterdir())
    assert {"index.html", "app.css", "app.js", "chat.js", "agent.js", "cards.js"} <= set(names)
    for path in STATIC_DIR.iterdir():
        text = path.read_text()
        # No URL of another host in markup, styles or imports (links a bot sends are data).
        assert not re.search(r"""(src|href)=["']https?://""", text), path.name
        assert not re.search(r"@import|url\(\s*['\"]?https?:", text), path.name
        assert not re.search(r"""from\s+["']https?://""", text), path.name


async def test_the_brand_signs_id_tokens_for_authenticated_connectors_only(
    http: aiohttp.ClientSession,
) -> None:
    async with Emulator(ui=True) as emu:
        url = emu.base_url + "/_emulator/ui/api/id-token"
        async with http.post(url, json={"connector_id": "3002", "sub": "ada"}) as resp:
            assert resp.status == 200
            token = (await resp.json())["id_token"]
        connector = emu.world.accounts[ACC].connectors["3002"]
        assert tk.verify_brand_id_token(connector, token)["sub"] == "ada"
        for body in ({"connector_id": "3001", "sub": "ada"}, {"connector_id": "3002", "sub": ""}, {"x": 1}):
            async with http.post(url, json=body) as resp:
                assert resp.status == 400, body
        async with http.get(emu.base_url + "/_emulator/ui/api/config") as resp:
            config = await resp.json()
        connectors = {c["id"]: c["can_sign"] for c in config["accounts"][0]["connectors"]}
        assert connectors == {"3001": False, "3002": True}
        assert config["faults"] is True and config["db"] is None


async def test_transcripts_frames_exports_and_the_feed(http: aiohttp.ClientSession) -> None:
    async with Emulator(ui=True) as emu:
        base = emu.base_url + "/_emulator/ui/api"
        origin = {"Origin": emu.base_url}
        feed = await http.ws_connect(base + "/feed", headers=origin)
        first = json.loads((await feed.receive(timeout=5)).data)
        assert first["type"] == "update" and first["state"]["accounts"][0]["account_id"] == ACC
        conn = consumer(emu)
        await conn.open()
        try:
            conv = await conn.create_conversation(skill_id="11")
            await conv.send_message("hello")
            changed: list[str] = []
            while conv.conversation_id not in changed:
                update = json.loads((await feed.receive(timeout=5)).data)
                changed.extend(update["changed"])
            async with http.get(f"{base}/conversations/{conv.conversation_id}") as resp:
                data = await resp.json()
            kinds = [e["kind"] for e in data["entries"]]
            assert kinds[0] == "opened" and "message" in kinds
            message = next(e for e in data["entries"] if e["kind"] == "message")
            assert message["event"]["message"] == "hello" and message["who"]["role"] == "CONSUMER"
            async with http.get(
                f"{base}/conversations/{conv.conversation_id}/entries/{message['n']}/frames"
            ) as resp:
                frames = (await resp.json())["frames"]
            assert [(f["direction"], f["type"]) for f in frames] == [
                ("in", "ms.PublishEvent"),
                ("out", "ms.PublishEventResponse"),
                ("out", "ms.MessagingEventNotification"),  # the consumer's own copy
            ]
            opened = data["entries"][0]
            async with http.get(
                f"{base}/conversations/{conv.conversation_id}/entries/{opened['n']}/frames"
            ) as resp:
                frames = (await resp.json())["frames"]
            assert ("in", "cm.ConsumerRequestConversation") in [(f["direction"], f["type"]) for f in frames]
            async with http.get(f"{base}/conversations/{conv.conversation_id}/export.json") as resp:
                assert "attachment" in resp.headers["Content-Disposition"]
                exported = await resp.json()
            types = {f["type"] for f in exported["frames"]}
            assert {
                "cm.ConsumerRequestConversation",
                "ms.PublishEvent",
                "ms.SubscribeMessagingEvents",
            } <= types
            assert "eyJ" not in json.dumps(exported)
            async with http.get(f"{base}/conversations/{conv.conversation_id}/export.txt") as resp:
                text = await resp.text()
            assert "Consumer (CONSUMER): hello" in text
            async with http.get(f"{base}/conversations/nope") as resp:
                assert resp.status == 404
            async with http.get(f"{base}/conversations/{conv.conversation_id}/entries/999/frames") as resp:
                assert resp.status == 404
        finally:
            await conn.close()
            await feed.close()


async def test_restart_needs_a_database_and_brings_the_world_back(
    http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    async with (
        Emulator(ui=True) as emu,
        http.post(emu.base_url + "/_emulator/ui/api/restart", json={}) as resp,
    ):
        assert resp.status == 409
    async with Emulator(ui=True, db=tmp_path / "w.sqlite") as emu:
        port = emu.port
        conn = consumer(emu)
        await conn.open()
        conv = await conn.create_conversation(skill_id="11")
        await conn.close()
        async with http.post(emu.base_url + "/_emulator/ui/api/restart", json={}) as resp:
            assert resp.status == 202
        ui = emu.ui
        assert ui is not None
        for _ in range(100):
            if ui.restarts:
                break
            await asyncio.sleep(0.05)
        assert ui.restarts == 1 and emu.port == port
        assert conv.conversation_id in emu.world.accounts[ACC].conversations
        assert emu.ctx is not None and emu.ctx.hub.tap is ui.tap
        async with http.get(emu.base_url + f"/_emulator/ui/api/conversations/{conv.conversation_id}") as resp:
            assert resp.status == 200
            entries = (await resp.json())["entries"]
        assert entries[0]["text"] == "Conversation opened on skill 11 (sales)"
        assert any(line["kind"] == "restarted" for line in ui.log)


async def test_the_demo_can_keep_its_world_with_the_ui() -> None:
    seen: dict[str, Any] = {}

    async def after(emu: Emulator, brand: list[Any], summary: dict[str, Any]) -> None:
        seen["url"] = emu.ui_url
        seen["summary"] = dict(summary)
        async with aiohttp.ClientSession() as http, http.get(f"{emu.ui_url}api/state") as resp:
            seen["state"] = await resp.json()

    summary = await run_demo(1, 30.0, Reporter(), ui=True, after=after)
    assert summary["completed"] == 1 and summary["ui_url"] == seen["url"]
    conversations = seen["state"]["accounts"][0]["conversations"]
    assert len(conversations) == 1 and conversations[0]["stage"] == "CLOSE"


async def test_lpm_emulator_ui_prints_the_url_and_serves_the_page() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lpm.cli.main",
        "emulator",
        "--port",
        "0",
        "--json",
        "--ui",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        info = json.loads(await asyncio.wait_for(proc.stdout.readline(), 30))
        url = info["ui_url"]
        assert url.startswith("http://127.0.0.1:") and url.endswith("/_emulator/ui/")
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as resp:
                assert resp.status == 200
            async with http.get(url.replace("/ui/", "/state")) as resp:
                assert resp.status == 200  # --ui turned the fault API on
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 0, err.decode()


async def test_with_tls_the_page_is_served_over_https() -> None:
    async with Emulator(ui=True, tls=True) as emu, aiohttp.ClientSession() as http:
        url = emu.ui_url
        assert url is not None and url.startswith("https://")
        async with http.get(url, ssl=emu.client_ssl_context()) as resp:
            assert resp.status == 200
            assert f"wss://{emu.public_host}" in resp.headers["Content-Security-Policy"]
