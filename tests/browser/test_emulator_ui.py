"""The emulator's web UI in a real (headless) Chromium (issue 17).

A consumer chats in the page with an SDK bot (quick replies, a structured-content card, a file,
typing and read receipts), asks for a human and is transferred to the agent seat open in a second
browser context; the agent answers and closes; the consumer answers the post-conversation survey
and rates the conversation.  The overview and the inspector show what happened, a fault button
drops the bot's socket and the page shows it reconnect.  Keyboard use and contrast are checked on
the main pages, and nothing is loaded from anywhere but the emulator.
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path
from urllib.parse import urlsplit

from playwright.async_api import Browser, BrowserContext, Page, expect

from lpm.cli.demo_brand import BOT_GREETING, HANDOVER, SURVEY_QUESTION, SURVEY_THANKS
from lpm.emulator.app import Emulator
from tests.browser.ui_support import keyboard_reaches_everything, png, readable_contrast, start_brand
from tests.browser_support import screenshot_path

VIEWPORT = {"width": 1280, "height": 860}
WAIT = 15_000


async def _context(browser: Browser, contexts: list[BrowserContext], seen: list[str]) -> BrowserContext:
    context = await browser.new_context(viewport=VIEWPORT)
    contexts.append(context)
    context.on("request", lambda request: seen.append(request.url))
    return context


async def _open(context: BrowserContext, url: str, errors: list[str]) -> Page:
    page = await context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    await page.goto(url)
    await page.wait_for_selector("body[data-ready=true]")
    return page


async def _say(page: Page, text: str) -> None:
    await page.fill("#chat-input", text)
    await page.press("#chat-input", "Enter")


def _brand_line(page: Page, text: str) -> object:
    return page.locator("#chat-log li.message.brand", has_text=text)


async def test_a_consumer_chats_with_a_bot_is_handed_to_the_agent_seat_and_answers_the_survey(
    browser: Browser,
) -> None:
    contexts: list[BrowserContext] = []
    seen: list[str] = []
    errors: list[str] = []
    async with Emulator(ui=True) as emu, contextlib.AsyncExitStack() as stack:
        try:
            bot, survey = await start_brand(emu, stack)
            ui = emu.ui_url
            assert ui is not None and ui.endswith("/_emulator/ui/")

            # The agent seat, in its own browser context: Alice logs in and goes ONLINE on support.
            agent_context = await _context(browser, contexts, seen)
            seat = await _open(agent_context, ui + "#/agent", errors)
            await seat.select_option("#agent-user", "1001")
            await seat.click("#agent-login")
            await expect(seat.locator("#agent-status")).to_have_text("Alice is ONLINE", timeout=WAIT)

            # The consumer: an unauthenticated connector's identity, on sales (the bot's skill).
            consumer_context = await _context(browser, contexts, seen)
            await consumer_context.grant_permissions(["clipboard-read", "clipboard-write"])
            chat = await _open(consumer_context, ui + "#/chat", errors)
            await chat.select_option("#chat-identity", "connector:3001")
            await chat.select_option("#chat-skill", "11")
            await chat.click("#chat-start")
            await expect(_brand_line(chat, BOT_GREETING)).to_be_visible(timeout=WAIT)
            conv_id = await chat.get_attribute("#view-chat", "data-conversation-id")
            assert conv_id
            acc = emu.world.accounts[emu.account_id]
            assert acc.consumers[acc.conversations[conv_id].consumer_id].kind == "unauthenticated"

            # Text, and the bot's READ receipt on it.
            await _say(chat, "hi")
            await expect(_brand_line(chat, "Hi there! Ask me anything.")).to_be_visible(timeout=WAIT)
            await expect(chat.locator("#chat-log li.own", has_text="hi").first).to_have_attribute(
                "data-receipt", "READ", timeout=WAIT
            )

            # Quick replies: buttons that publish their text.
            await _say(chat, "menu")
            yes = chat.locator("#chat-quick .quick-replies button", has_text="Yes")
            await yes.click(timeout=WAIT)
            await expect(_brand_line(chat, "You said: yes please")).to_be_visible(timeout=WAIT)
            assert await chat.locator("#chat-quick button").count() == 0

            # Structured content as a card: the local image shows, the outside one does not load.
            await _say(chat, "card")
            card = chat.locator("#chat-log .sc-card", has_text="Running shoe")
            await expect(card).to_be_visible(timeout=WAIT)
            await expect(card.locator("img.sc-image")).to_have_js_property("naturalWidth", 24)
            await expect(card.locator(".sc-image-blocked")).to_contain_text("images.example.com")
            await card.locator("button", has_text="Buy").click()
            await expect(_brand_line(chat, "You said: I'll take it")).to_be_visible(timeout=WAIT)

            # A file: uploaded to the storage, published, shown from its download URL.
            await chat.set_input_files(
                "#chat-file", files=[{"name": "pixel.png", "mimeType": "image/png", "buffer": png(8, 8)}]
            )
            shared = chat.locator("#chat-log li.own img.shared")
            await expect(shared).to_have_js_property("naturalWidth", 8, timeout=WAIT)
            await expect(_brand_line(chat, "Nice picture!")).to_be_visible(timeout=WAIT)

            # The hand-off: the bot transfers to support; the seat rings, accepts, sees the history.
            await _say(chat, "I want a human")
            await expect(_brand_line(chat, HANDOVER)).to_be_visible(timeout=WAIT)
            await seat.locator("#agent-rings button", has_text="Accept").click(timeout=WAIT)
            await expect(seat.locator("#agent-log")).to_contain_text("I want a human", timeout=WAIT)
            await expect(seat.locator("#agent-log")).to_contain_text(HANDOVER)
            await expect(seat.locator("#agent-log")).to_contain_text("Botty (assigned agent)", timeout=WAIT)
            await expect(chat.locator("#chat-log")).to_contain_text("Alice joined", timeout=WAIT)

            # Typing shows on the consumer's side; the reply arrives and is read.
            await seat.fill("#agent-input", "Hello, I'm Alice from support")
            await seat.type("#agent-input", ".")
            await expect(chat.locator("#chat-typing")).to_have_text("Alice is typing…", timeout=WAIT)
            await seat.press("#agent-input", "Enter")
            await expect(_brand_line(chat, "Hello, I'm Alice from support.")).to_be_visible(timeout=WAIT)
            await expect(chat.locator("#chat-typing")).to_have_text("")
            await _say(chat, "thanks, that's all")
            await expect(seat.locator("#agent-log")).to_contain_text("thanks, that's all", timeout=WAIT)
            await seat.screenshot(path=str(screenshot_path("emulator-ui-agent-seat")))

            # The agent closes: the post-conversation survey of support opens with the survey bot.
            await seat.click("#agent-close")
            await expect(chat.locator("#chat-log")).to_contain_text("a short survey follows", timeout=WAIT)
            await expect(_brand_line(chat, SURVEY_QUESTION)).to_be_visible(timeout=WAIT)
            await _say(chat, "5")
            await expect(_brand_line(chat, SURVEY_THANKS)).to_be_visible(timeout=WAIT)
            await expect(chat.locator("#chat-csat")).to_be_visible(timeout=WAIT)
            assert survey.survey_answers[conv_id] == "5"

            # CSAT after the close.
            await chat.click("#chat-csat [data-rate='5']")
            await chat.click("#chat-csat [data-resolved='yes']")
            await chat.click("#chat-csat-send")
            await expect(chat.locator("#chat-csat-done")).to_contain_text("5 out of 5", timeout=WAIT)
            conv = acc.conversations[conv_id]
            assert conv.stage == "CLOSE"
            assert conv.csat is not None and conv.csat["csatRate"] == 5
            await chat.screenshot(path=str(screenshot_path("emulator-ui-chat")))

            # The overview shows the closed conversation and who is connected.
            await chat.goto(ui + "#/overview")
            row = chat.locator(f"#ov-convs tr[data-conversation='{conv_id}']")
            await expect(row).to_have_attribute("data-stage", "CLOSE", timeout=WAIT)
            await expect(chat.locator("#ov-agents tr[data-agent='bot']")).to_have_attribute(
                "data-sockets", "1"
            )
            await expect(chat.locator("#ov-agents tr[data-agent='agent']")).to_contain_text("ONLINE")

            # The conversation view: every step is a line; the inspector shows a line's frames.
            await chat.goto(ui + f"#/conversations/{conv_id}")
            lines = chat.locator("#cv-lines")
            for text in (
                "Conversation opened on skill 11 (sales)",
                "Botty joined as ASSIGNED_AGENT",
                "Transferred to skill 12 (support)",
                "Alice accepted the ring",
                "Alice joined as ASSIGNED_AGENT",
                "MAIN dialog closed by AGENT",
                "POST_SURVEY dialog opened",
                "Sunny joined as AGENT (POST_SURVEY dialog)",
                "Conversation closed",
                "CSAT 5/5, resolved: yes",
            ):
                await expect(lines).to_contain_text(text, timeout=WAIT)
            hi = chat.locator(
                "#cv-lines .line-button[data-kind='message']", has_text=re.compile(r"CONSUMER\):\s*hi$")
            )
            await hi.click()
            frames = chat.locator("#inspector-frames li.frame")
            await expect(frames.first).to_be_visible(timeout=WAIT)
            types = await frames.evaluate_all(
                "(items) => items.map((i) => i.dataset.direction + ' ' + i.dataset.type)"
            )
            assert "in ms.PublishEvent" in types
            assert "out ms.PublishEventResponse" in types
            assert "out .ams.ms.OnlineEventDistribution" in types  # the bot's copy
            await chat.click("#inspector-copy")
            await expect(chat.locator("#inspector-copied")).to_contain_text("Copied", timeout=WAIT)
            copied = json.loads(await chat.evaluate("() => navigator.clipboard.readText()"))
            published = [f for f in copied if f["frame"].get("type") == "ms.PublishEvent"]
            assert published and published[0]["frame"]["body"]["event"]["message"] == "hi"
            assert published[0]["direction"] == "in" and published[0]["socket"]["dialect"] == "consumer"
            await chat.screenshot(path=str(screenshot_path("emulator-ui-inspector")))
            # The image of docs/emulator.md ("The web UI"), smaller.
            await chat.set_viewport_size({"width": 1100, "height": 640})
            await chat.evaluate("() => window.scrollTo(0, 0)")
            await chat.screenshot(path=str(screenshot_path("emulator-ui")))
            await chat.set_viewport_size(VIEWPORT)

            joined = chat.locator("#cv-lines .line-button", has_text="Alice joined as ASSIGNED_AGENT")
            await joined.click()
            await expect(
                chat.locator("#inspector-frames li.frame[data-type='.ams.routing.UpdateRingState']")
            ).to_have_count(1)
            await expect(
                chat.locator(
                    "#inspector-frames li.frame[data-type='cqm.ExConversationChangeNotification']"
                ).first
            ).to_be_visible()

            # Exports: the frames as JSON, the transcript as text.
            exported = await chat.request.get(ui + f"api/conversations/{conv_id}/export.json")
            body = await exported.json()
            assert body["conversation"]["convId"] == conv_id
            assert any(f["type"] == "ms.PublishEvent" for f in body["frames"])
            assert "eyJ" not in json.dumps(body)  # the JWTs are redacted
            text = await (await chat.request.get(ui + f"api/conversations/{conv_id}/export.txt")).text()
            assert "Consumer (CONSUMER): I want a human" in text
            assert "Alice (ASSIGNED_AGENT): Hello, I'm Alice from support." in text

            # A fault button drops the bot's socket; the overview shows it go and come back.
            await chat.goto(ui + "#/faults")
            await chat.select_option("#fault-target", "user:2001")
            await chat.click("[data-fault='drop']")
            await expect(chat.locator("#fault-log")).to_contain_text('"dropped":1', timeout=WAIT)
            await chat.screenshot(path=str(screenshot_path("emulator-ui-faults")))
            await chat.goto(ui + "#/overview")
            log = chat.locator("#ov-log")
            await expect(log).to_contain_text("Botty disconnected", timeout=WAIT)
            await expect(log).to_contain_text("Botty reconnected", timeout=WAIT)
            await expect(chat.locator("#ov-agents tr[data-agent='bot']")).to_have_attribute(
                "data-sockets", "1", timeout=WAIT
            )
            await chat.screenshot(path=str(screenshot_path("emulator-ui-overview")), full_page=True)

            # Keyboard use and contrast on the main pages.
            for view in ("overview", "chat", "agent", f"conversations/{conv_id}", "faults"):
                await chat.goto(ui + f"#/{view}")
                await chat.wait_for_timeout(200)
                await keyboard_reaches_everything(chat)
                await readable_contrast(chat)
            await keyboard_reaches_everything(seat)
            await readable_contrast(seat)

            assert not bot.errors and not survey.errors
            assert not errors, errors
            outside = {urlsplit(url).netloc for url in seen if not url.startswith("data:")} - {
                emu.public_host
            }
            assert not outside, f"the UI loaded something from outside: {outside}"
        finally:
            for context in contexts:
                await context.close()


async def test_an_authenticated_consumer_survives_a_drop_a_transfer_and_a_restart_on_the_sqlite_file(
    browser: Browser, tmp_path: Path
) -> None:
    contexts: list[BrowserContext] = []
    seen: list[str] = []
    errors: list[str] = []
    async with Emulator(ui=True, db=tmp_path / "world.sqlite") as emu, contextlib.AsyncExitStack() as stack:
        try:
            bot, _survey = await start_brand(emu, stack)
            ui = emu.ui_url
            assert ui is not None
            agent_context = await _context(browser, contexts, seen)
            seat = await _open(agent_context, ui + "#/agent", errors)
            await seat.select_option("#agent-user", "1001")
            await seat.click("#agent-login")
            await expect(seat.locator("#agent-status")).to_have_text("Alice is ONLINE", timeout=WAIT)

            # An authenticated identity: the UI signs the id_token as the brand, the IdP trusts it.
            chat = await _open(await _context(browser, contexts, seen), ui + "#/chat", errors)
            await chat.select_option("#chat-identity", "connector:3002")
            await chat.fill("#chat-sub", "ada-lovelace")
            await chat.select_option("#chat-skill", "12")
            await chat.click("#chat-start")
            await seat.locator("#agent-rings button", has_text="Accept").click(timeout=WAIT)
            await seat.fill("#agent-input", "Hi Ada")
            await seat.press("#agent-input", "Enter")
            await expect(_brand_line(chat, "Hi Ada")).to_be_visible(timeout=WAIT)
            conv_id = await chat.get_attribute("#view-chat", "data-conversation-id")
            assert conv_id
            acc = emu.world.accounts[emu.account_id]
            consumer = acc.consumers[acc.conversations[conv_id].consumer_id]
            assert consumer.kind == "authenticated" and consumer.ext_sub == "ada-lovelace"

            # The consumer's socket dropped by a fault button: the chat reconnects and goes on.
            faults = await _open(agent_context, ui + "#/faults", errors)
            await faults.select_option("#fault-target", f"consumer:{consumer.consumer_id}")
            await faults.click("[data-fault='drop']")
            await expect(chat.locator("#chat-log")).to_contain_text(
                "Connection lost (code 1006", timeout=WAIT
            )
            await expect(chat.locator("#chat-log")).to_contain_text("Reconnected", timeout=WAIT)
            await _say(chat, "still there?")
            await expect(seat.locator("#agent-log")).to_contain_text("still there?", timeout=WAIT)

            # The seat's socket too: it reconnects, queries the history again and answers.
            await faults.select_option("#fault-target", "user:1001")
            await faults.click("[data-fault='drop']")
            await expect(seat.locator("#agent-status")).to_have_text("Reconnected as agent", timeout=WAIT)
            await seat.fill("#agent-input", "Yes, still here")
            await seat.press("#agent-input", "Enter")
            await expect(_brand_line(chat, "Yes, still here")).to_be_visible(timeout=WAIT)
            await faults.select_option("#fault-target", f"consumer:{consumer.consumer_id}")

            # Its token expired by another: closed with 4401, a fresh id_token, the same consumer.
            await faults.click("[data-fault='expire']")
            await expect(chat.locator("#chat-log")).to_contain_text(
                "Connection lost (code 4401", timeout=WAIT
            )
            await expect(chat.locator("#chat-log li.success")).to_have_count(2, timeout=WAIT)
            # Requests delayed, refused: armed from the buttons, then disarmed.
            await faults.fill("#fault-count", "2")
            await faults.click("[data-fault='delay']")
            await expect(faults.locator("#fault-log")).to_contain_text('"action":"delay"', timeout=WAIT)
            await faults.click("[data-fault='reset']")
            await faults.click("[data-fault='refuse']")
            await expect(faults.locator("#fault-log")).to_contain_text('"action":"refuse"', timeout=WAIT)
            await faults.click("[data-fault='reset']")
            await expect(faults.locator("#fault-state")).to_contain_text('"ws": []', timeout=WAIT)

            # The seat transfers to sales: the bot takes the conversation.
            await seat.select_option("#agent-transfer-target", "skill:11")
            await seat.click("#agent-transfer")
            await expect(_brand_line(chat, BOT_GREETING)).to_be_visible(timeout=WAIT)
            await expect(seat.locator("#agent-convs")).to_contain_text(
                "No conversation assigned", timeout=WAIT
            )
            assigned = [
                p.id for p in acc.conversations[conv_id].main.participants if p.role == "ASSIGNED_AGENT"
            ]
            assert assigned == ["2001"]

            # Restart on the SQLite file: every socket closes, everyone reconnects, the world is back.
            await faults.click("#fault-restart")
            await expect(faults.locator("#fault-log")).to_contain_text("Restarting on", timeout=WAIT)
            await expect(chat.locator("#chat-log")).to_contain_text(
                "Connection lost (code 1001", timeout=WAIT
            )
            await expect(chat.locator("#chat-log li.success")).to_have_count(3, timeout=WAIT)
            await _say(chat, "after the restart")
            await expect(_brand_line(chat, "You said: after the restart")).to_be_visible(timeout=WAIT)
            overview = await _open(agent_context, ui + "#/overview", errors)
            await expect(overview.locator("#overview-summary")).to_contain_text(
                "restarted 1 time", timeout=WAIT
            )
            await expect(overview.locator("#ov-log")).to_contain_text("Botty reconnected", timeout=WAIT)

            # What happened before the restart is still in the transcript and the inspector.
            await overview.goto(ui + f"#/conversations/{conv_id}")
            await expect(overview.locator("#cv-lines")).to_contain_text(
                "Transferred to skill 11 (sales)", timeout=WAIT
            )
            line = overview.locator("#cv-lines .line-button[data-kind='message']", has_text="Hi Ada")
            await line.click()
            await expect(
                overview.locator("#inspector-frames li.frame[data-type='.ams.ms.PublishEvent']")
            ).to_have_count(1)
            # A reload: the same customer signs in again and the open conversation is resumed.
            await chat.reload()
            await chat.wait_for_selector("body[data-ready=true]")
            await chat.select_option("#chat-identity", "connector:3002")
            await chat.fill("#chat-sub", "ada-lovelace")
            await chat.click("#chat-start")
            await expect(chat.locator("#chat-log")).to_contain_text("resumed", timeout=WAIT)
            await expect(_brand_line(chat, "You said: after the restart")).to_be_visible(timeout=WAIT)
            assert await chat.get_attribute("#view-chat", "data-conversation-id") == conv_id

            # The consumer ends the conversation (sales has no survey): the rating comes next.
            await chat.click("#chat-close")
            await expect(chat.locator("#chat-log")).to_contain_text(
                "Conversation closed by the consumer", timeout=WAIT
            )
            await expect(chat.locator("#chat-csat")).to_be_visible()
            # Reconnect attempts made while the emulator was down fail, as they should.
            assert not [e for e in bot.errors if "ConnectFailedError" not in e], bot.errors
            network_errors = [e for e in errors if "ERR_" not in e and "WebSocket" not in e]
            assert not network_errors, network_errors
        finally:
            for context in contexts:
                await context.close()
