"""A real headless Chromium (Debian's ``chromium``) driven by Playwright, for browser tests.

``make test`` installs Debian's ``chromium`` when it is missing; Playwright is told to use
that binary (``executable_path``), so it never downloads a browser.  Without the binary,
:func:`chromium_path` fails (it never skips) with a message saying how to install it.

The flags keep Chromium off the network this machine cannot reach: without them it tries
Google's hosts at every start.  Screenshots go to ``build/screenshots`` (git-ignored).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

#: Where browser tests write their screenshots (git-ignored).
SCREENSHOT_DIR = Path(__file__).resolve().parent.parent / "build" / "screenshots"

#: Chromium's flags for a sandboxed, offline, headless run as root.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def chromium_path() -> str:
    """The system Chromium's path; fails with instructions when it is not installed."""
    for candidate in (os.environ.get("LPM_CHROMIUM"), "chromium", "chromium-browser"):
        if candidate:
            found = shutil.which(candidate)
            if found:
                return found
    raise RuntimeError(
        "headless Chromium is required for the browser tests: run `make test` "
        "(it installs Debian's chromium) or `apt-get install chromium`"
    )


def screenshot_path(name: str) -> Path:
    """A path under :data:`SCREENSHOT_DIR` for a screenshot called *name* (``.png``)."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    return SCREENSHOT_DIR / f"{name}.png"
