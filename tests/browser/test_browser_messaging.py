"""A web page chats through the emulator the way a browser messaging window does: it discovers its
services with CSDS loaded as a script (``baseURI.lpCsds``, JSONP), signs up with the IdP loaded as
a script (``signup.jsonp``), opens the consumer WebSocket (API v3, authenticated by
InitConnection), opens a conversation, sends a message and shows the bot's answer.

The page is served by the test on loopback, the emulator on another port (another origin: only
scripts and WebSockets cross it, as on the platform).  The bot is the SDK's brand WebSocket
connection: it takes the ring and echoes the consumer's message.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from playwright.async_api import BrowserContext

import lpm
from lpm.emulator.app import Emulator
from tests.browser_support import screenshot_path

ACC = "12345678"
WAIT = 15.0

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>messaging window</title></head>
<body>
<h1 id="status">starting</h1>
<ul id="log"></ul>
<script>
const ACCOUNT = "__ACCOUNT__";
const CSDS = "__CSDS__";
const status = (text) => { document.getElementById("status").textContent = text; };
const log = (who, text) => {
  const li = document.createElement("li");
  li.className = who;
  li.textContent = who + ": " + text;
  document.getElementById("log").appendChild(li);
};

// Load a URL as a script and resolve with what it passes to the callback (JSONP).
let jsonpCount = 0;
function jsonp(url, parameter) {
  return new Promise((resolve, reject) => {
    const name = "lpJsonp_" + (++jsonpCount);
    const script = document.createElement("script");
    window[name] = (data) => { delete window[name]; script.remove(); resolve(data); };
    script.onerror = () => reject(new Error("script failed: " + url));
    script.src = url + (url.includes("?") ? "&" : "?") + parameter + "=" + name;
    document.head.appendChild(script);
  });
}

async function domain(service) {
  const data = await jsonp(
    CSDS + "/csdr/account/" + ACCOUNT + "/service/" + service + "/baseURI.lpCsds?version=1.0", "cb");
  if (data.ResultSet.lpCallError) throw new Error(data.ResultSet.lpCallError);
  return data.ResultSet.lpData[0].lpServer;
}

async function main() {
  const idp = await domain("idp");
  const ums = await domain("asyncMessagingEnt");
  status("discovered");
  const jwt = (await jsonp("http://" + idp + "/api/account/" + ACCOUNT + "/signup.jsonp", "callback")).jwt;
  const me = JSON.parse(atob(jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))).sub;
  status("signed up");

  const ws = new WebSocket("ws://" + ums + "/ws_api/account/" + ACCOUNT + "/messaging/consumer?v=3");
  const pending = {};
  let nextId = 0;
  const request = (type, body, headers) => new Promise((resolve) => {
    const id = String(++nextId);
    pending[id] = resolve;
    const frame = { kind: "req", id: id, type: type, body: body || {} };
    if (headers) frame.headers = headers;
    ws.send(JSON.stringify(frame));
  });
  ws.onmessage = (event) => {
    const frame = JSON.parse(event.data);
    if (frame.kind === "resp" && pending[frame.reqId]) {
      pending[frame.reqId](frame);
      delete pending[frame.reqId];
    } else if (frame.type === "ms.MessagingEventNotification") {
      for (const change of frame.body.changes) {
        if (change.event.type === "ContentEvent" && change.originatorId !== me) {
          log("agent", change.event.message);
        }
      }
    }
  };
  await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
  const init = await request("InitConnection", {}, [
    { type: ".ams.headers.ClientProperties", deviceFamily: "DESKTOP", os: "LINUX", browser: "CHROME" },
    { type: ".ams.headers.ConsumerAuthentication", jwt: jwt },
  ]);
  if (init.code !== 200) throw new Error("InitConnection: " + JSON.stringify(init.body));
  status("connected");

  const opened = await request("cm.ConsumerRequestConversation", { brandId: ACCOUNT, skillId: "11" });
  const conversationId = opened.body.conversationId;
  await request("ms.SubscribeMessagingEvents",
                { dialogId: conversationId, conversationId: conversationId, fromSeq: 0 });
  const text = "hello from the browser";
  const sent = await request("ms.PublishEvent", {
    dialogId: conversationId, conversationId: conversationId,
    event: { type: "ContentEvent", contentType: "text/plain", message: text },
  });
  if (sent.code !== 200) throw new Error("PublishEvent: " + JSON.stringify(sent.body));
  log("me", text);
  status("chatting " + conversationId);
}

main().catch((error) => status("failed: " + error.message));
</script>
</body></html>
"""


@pytest.fixture
async def bot(emulator: Emulator) -> AsyncIterator[lpm.BrandWebsocketConnection]:
    """The default world's bot (sales, 11), online and taking rings."""
    conn = lpm.create_connection(
        account_id=ACC,
        user_type=lpm.UserType.BRAND,
        auth_data={"username": "bot", "password": "bot-password"},
        csds_domain=emulator.csds_domain,
        get_all_messages=True,
    )
    assert isinstance(conn, lpm.BrandWebsocketConnection)
    await conn.open()
    await conn.set_agent_state(lpm.AgentState.ONLINE)
    yield conn
    await conn.close()


async def serve(html: str) -> tuple[web.AppRunner, str]:
    async def index(_request: web.Request) -> web.Response:
        return web.Response(text=html, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", index)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}/"


async def echo_once(bot: lpm.BrandWebsocketConnection, routing: lpm.RoutingTaskSubscription) -> str:
    """Take the next ring and answer the consumer's first message; returns what it heard."""
    ring = await routing.wait_for("ring", timeout=WAIT)
    conversation = await ring.accept()
    deadline = asyncio.get_running_loop().time() + WAIT
    while (first := conversation.main_dialog.get_message(0)) is None:
        assert asyncio.get_running_loop().time() < deadline, "the consumer's message never came"
        await asyncio.sleep(0.05)
    heard = str(first.body)
    await conversation.send_message(f"echo: {heard}")
    return heard


async def test_page_discovers_signs_up_and_chats_through_scripts(
    emulator: Emulator, bot: lpm.BrandWebsocketConnection, browser_context: BrowserContext
) -> None:
    routing = await bot.create_routing_task_subscription()
    answering = asyncio.ensure_future(echo_once(bot, routing))
    html = PAGE.replace("__ACCOUNT__", ACC).replace("__CSDS__", emulator.base_url)
    runner, url = await serve(html)
    try:
        page = await browser_context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        scripts: list[tuple[str, str | None]] = []
        page.on("response", lambda r: scripts.append((r.url, r.headers.get("content-type"))))
        await page.goto(url)
        await page.wait_for_selector("li.agent", timeout=WAIT * 1000)
        assert await answering == "hello from the browser"
        await page.screenshot(path=str(screenshot_path("browser-messaging")))
        assert await page.text_content("li.me") == "me: hello from the browser"
        assert await page.text_content("li.agent") == "agent: echo: hello from the browser"
        status = await page.text_content("#status")
        assert status is not None and status.startswith("chatting "), status
        assert errors == []
        # Discovery and signup came as scripts from the emulator.
        loaded = {u.split("?")[0].rsplit("/", 1)[-1]: kind for u, kind in scripts}
        assert loaded["baseURI.lpCsds"] is not None and loaded["baseURI.lpCsds"].startswith(
            "application/javascript"
        )
        assert loaded["signup.jsonp"] is not None and loaded["signup.jsonp"].startswith(
            "application/javascript"
        )
    finally:
        answering.cancel()
        await runner.cleanup()
    conversation_id = status.removeprefix("chatting ")
    conv = emulator.world.accounts[ACC].conversations[conversation_id]
    assert conv.client_properties is not None and conv.client_properties["browser"] == "CHROME"
