"""The documentation site in a real headless Chromium: the home page, an API reference page and
the search work, nothing is fetched from outside the site, and the console stays free of errors.
Screenshots of the home page and an API page go to ``build/screenshots`` (git-ignored)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import BrowserContext, ConsoleMessage, Page, Request

from tests.browser_support import screenshot_path
from tests.docs.site import build_site


@pytest.fixture
async def site_url(tmp_path: Path) -> AsyncIterator[str]:
    """The site, built strict and served on loopback (the search's worker fetches its index, so a
    file:// URL would not do)."""
    build_site(tmp_path)
    app = web.Application()
    app.router.add_static("/", tmp_path)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


class Watch:
    """What a page did wrong: console errors, uncaught exceptions, requests leaving the site."""

    def __init__(self, page: Page, origin: str) -> None:
        self.problems: list[str] = []
        self.origin = origin
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"uncaught: {error}"))
        page.on("request", self._request)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "assert"):
            self.problems.append(f"console {message.type}: {message.text}")

    def _request(self, request: Request) -> None:
        if not request.url.startswith((self.origin, "data:", "blob:")):
            self.problems.append(f"request outside the site: {request.url}")


async def test_home_api_page_and_search(browser_context: BrowserContext, site_url: str) -> None:
    page = await browser_context.new_page()
    watch = Watch(page, site_url)

    await page.goto(f"{site_url}/index.html", wait_until="networkidle")
    assert await page.title() == "lp-messaging-sdk for Python"
    assert "asyncio SDK for LivePerson" in (await page.text_content("article") or "")
    await page.screenshot(path=str(screenshot_path("docs-home")), full_page=True)

    # An API page: a class, its events table (from the event definitions) and a method.
    await page.goto(f"{site_url}/reference/connections.html", wait_until="networkidle")
    connection = page.locator('[id="lpm.Connection"]')
    await connection.wait_for()
    assert "Connection" in (await connection.text_content() or "")
    article = await page.text_content("article") or ""
    assert "conversation:message" in article and "reconnect-wait" in article
    assert await page.locator('[id="lpm.BrandWebsocketConnection.publish_event"]').count() == 1
    await connection.scroll_into_view_if_needed()
    await page.screenshot(path=str(screenshot_path("docs-api-connections")))

    # The search: type a method's name, follow the first result to its entry.
    await page.goto(f"{site_url}/index.html", wait_until="networkidle")
    search = page.locator("input.md-search__input")  # in the header on a desktop-sized window
    await search.click()
    # Typed key by key: the search reacts to keystrokes (fill() sets the value without them).
    await page.keyboard.type("update_conversation_field", delay=10)
    anchor = "#lpm.BrandWebsocketConnection.update_conversation_field"
    entry = page.locator(f".md-search-result__item a[href*='{anchor}']")
    await entry.wait_for(timeout=30_000)
    await entry.click()
    await page.wait_for_load_state("networkidle")
    assert "/reference/connections.html" in page.url
    target = page.locator('[id="lpm.BrandWebsocketConnection.update_conversation_field"]')
    assert await target.is_visible()
    entry_text = await target.locator("xpath=..").text_content() or ""  # heading, signature, description
    assert "Change a conversation" in entry_text

    assert watch.problems == []
