"""The browser harness itself works: Chromium loads a page served on loopback and runs its script."""

from __future__ import annotations

from aiohttp import web
from playwright.async_api import BrowserContext

from tests.browser_support import screenshot_path

PAGE = """<!doctype html><html><body><h1 id="title">waiting</h1>
<script>document.getElementById('title').textContent = 'ran ' + (6 * 7);</script>
</body></html>"""


async def test_page_on_loopback_runs_its_script(browser_context: BrowserContext) -> None:
    async def index(_request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", index)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        page = await browser_context.new_page()
        await page.goto(f"http://127.0.0.1:{port}/")
        await page.wait_for_function("document.getElementById('title').textContent === 'ran 42'")
        await page.screenshot(path=str(screenshot_path("browser-smoke")))
        assert await page.text_content("#title") == "ran 42"
    finally:
        await runner.cleanup()
