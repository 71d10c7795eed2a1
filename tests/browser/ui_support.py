"""Helpers of the web UI's browser tests: SDK brand users that play the bot and the survey bot,
and the checks of keyboard use and contrast computed in the page."""

from __future__ import annotations

import base64
import struct
import zlib
from typing import Any

from playwright.async_api import Page

import lpm
from lpm.cli.demo_brand import Bot, SurveyBot, brand_connection
from lpm.cli.demo_report import Reporter
from lpm.emulator.app import Emulator

FAST: dict[str, Any] = {"reconnect_schedule": (0.05, 0.1, 0.2), "wait_to_reconnect": 0.05}


def png(width: int = 2, height: int = 2, rgb: tuple[int, int, int] = (11, 92, 173)) -> bytes:
    """A small valid PNG image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


PIXEL_URL = "data:image/png;base64," + base64.b64encode(png(24, 16)).decode()
QUICK_REPLIES = {
    "type": "quickReplies",
    "itemsPerRow": 8,
    "replies": [
        {
            "type": "button",
            "tooltip": "Yes",
            "title": "Yes",
            "click": {
                "actions": [{"type": "publishText", "text": "yes please"}],
                "metadata": [{"type": "ExternalId", "id": "yes-1"}],
            },
        },
        {
            "type": "button",
            "tooltip": "No",
            "title": "No",
            "click": {"actions": [{"type": "publishText", "text": "no thanks"}]},
        },
    ],
}
CARD = {
    "type": "vertical",
    "elements": [
        {"type": "image", "url": PIXEL_URL, "caption": "A blue shoe"},
        {"type": "text", "text": "Running shoe", "style": {"bold": True, "size": "large"}},
        {"type": "text", "text": "Light and fast"},
        {"type": "image", "url": "https://images.example.com/shoe.png", "tooltip": "outside"},
        {
            "type": "horizontal",
            "elements": [
                {
                    "type": "button",
                    "title": "Buy",
                    "click": {"actions": [{"type": "publishText", "text": "I'll take it"}]},
                },
                {
                    "type": "button",
                    "title": "Details",
                    "click": {
                        "actions": [{"type": "link", "name": "Details", "uri": "https://example.com/shoe"}]
                    },
                },
            ],
        },
    ],
}


class ShopBot(Bot):
    """The demo's sales bot, plus quick replies ("menu"), a card ("card") and files."""

    async def on_consumer_message(self, conversation: lpm.Conversation, message: lpm.Message) -> None:
        text = message.body if isinstance(message.body, str) else ""
        if message.content_type == "hosted/file":
            await message.read()
            await message.dialog.send_message("Nice picture!")
        elif text == "menu":
            await message.read()
            await message.dialog.send_message("Shall I show you our shoe?", quick_replies=QUICK_REPLIES)
        elif text == "card":
            await message.read()
            await message.dialog.send_rich_text(CARD)
        else:
            await super().on_consumer_message(conversation, message)


async def start_brand(emu: Emulator, stack: Any) -> tuple[ShopBot, SurveyBot]:
    """The bot (user ``bot``, sales) and the survey bot of support, on the SDK."""
    common = {"account_id": emu.account_id, "csds_domain": emu.csds_domain, **FAST}
    users = []
    for username, role in (("bot", ShopBot), ("survey-bot", SurveyBot)):
        conn = brand_connection(username, f"{username}-password", common)
        await conn.open()
        stack.push_async_callback(conn.close)
        user = role(conn, Reporter())
        await user.start()
        users.append(user)
    bot, survey = users
    assert isinstance(bot, ShopBot) and isinstance(survey, SurveyBot)
    return bot, survey


# ---------------------------------------------------------------- accessibility, computed in the page

_VISIBLE = """
const visible = (el) => {
  if (el.closest('[hidden]')) return false;
  const style = getComputedStyle(el);
  if (style.visibility === 'hidden' || style.display === 'none') return false;
  const box = el.getBoundingClientRect();
  return box.width > 1 && box.height > 1;
};
"""

_FOCUSABLE = (
    "() => {"
    + _VISIBLE
    + """
  const all = [...document.querySelectorAll('a[href], button, input, select, textarea, [tabindex]')];
  const controls = all.filter((el) => !el.disabled && el.tabIndex >= 0 && visible(el));
  controls.forEach((el, i) => { el.dataset.kb = String(i); });
  return controls.map(
    (el) => (el.textContent || el.getAttribute('aria-label') || el.id || el.tagName).trim().slice(0, 40));
}"""
)

_FOCUSED = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const style = getComputedStyle(el);
  const ring = style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2;
  const shadow = style.boxShadow && style.boxShadow !== 'none';
  const what = (el.textContent || el.id || el.tagName).trim().slice(0, 40);
  return { kb: el.dataset.kb ?? null, visible: ring || Boolean(shadow), what };
}"""


async def keyboard_reaches_everything(page: Page) -> list[str]:
    """Tab through the page from its top: every visible, enabled control gets the focus, each
    with a visible focus ring.  Returns the names of the controls reached."""
    names: list[str] = await page.evaluate(_FOCUSABLE)
    assert names, "no control on the page"
    await page.evaluate(
        "() => { document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0); }"
    )
    await page.evaluate("() => document.body.focus()")
    reached: set[str] = set()
    for _ in range(len(names) * 2 + 10):
        await page.keyboard.press("Tab")
        focused = await page.evaluate(_FOCUSED)
        if focused is None:
            continue
        assert focused["visible"], f"no visible focus on {focused['what']!r}"
        if focused["kb"] is not None:
            reached.add(focused["kb"])
        if len(reached) == len(names):
            break
    missing = [name for i, name in enumerate(names) if str(i) not in reached]
    assert not missing, f"not reachable with Tab: {missing}"
    return names


_CONTRAST = (
    "() => {"
    + _VISIBLE
    + """
  const parse = (c) => {
    const m = c && c.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const p = m[1].split(/[\\s,/]+/).filter(Boolean).map(Number);
    return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
  };
  const blend = (top, bottom) => ({
    r: top.r * top.a + bottom.r * (1 - top.a),
    g: top.g * top.a + bottom.g * (1 - top.a),
    b: top.b * top.a + bottom.b * (1 - top.a),
    a: 1,
  });
  const lum = ({ r, g, b }) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c.a > 0) { layers.push(c); if (c.a >= 1) break; }
    }
    let bg = { r: 255, g: 255, b: 255, a: 1 };
    for (const c of layers.reverse()) bg = blend(c, bg);
    return bg;
  };
  const failures = [];
  let checked = 0;
  for (const el of document.querySelectorAll('body *')) {
    if (!visible(el)) continue;
    const text = [...el.childNodes].filter((n) => n.nodeType === 3).map((n) => n.textContent).join('').trim();
    if (!text) continue;
    const style = getComputedStyle(el);
    const bg = background(el);
    const fg = blend(parse(style.color), bg);
    const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
    const ratio = (hi + 0.05) / (lo + 0.05);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (Number(style.fontWeight) >= 700 && size >= 18.66);
    checked += 1;
    if (ratio < (large ? 3 : 4.5)) {
      failures.push(`${text.slice(0, 30)}: ${ratio.toFixed(2)} (${style.color} on ${JSON.stringify(bg)})`);
    }
  }
  return { checked, failures };
}"""
)


async def readable_contrast(page: Page) -> int:
    """Every visible text of the page has a contrast of at least 4.5:1 (3:1 when large), the
    WCAG AA levels, computed from the colours the browser applies.  Returns how many were checked."""
    result = await page.evaluate(_CONTRAST)
    assert not result["failures"], f"text below the contrast threshold: {result['failures']}"
    assert result["checked"] > 5
    return int(result["checked"])
