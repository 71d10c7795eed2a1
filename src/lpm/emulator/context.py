"""Everything a face of the emulator needs, in one object handed to every handler."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lpm.emulator.config import Settings
from lpm.emulator.hub import Hub
from lpm.emulator.token_issuer import TokenService
from lpm.emulator.world import World

if TYPE_CHECKING:
    from lpm.emulator.faults import Faults
    from lpm.emulator.ws_session import Session


@dataclass(slots=True)
class Context:
    settings: Settings
    world: World
    hub: Hub[Session]
    tokens: TokenService
    faults: Faults
    #: ``host:port`` clients use to reach this emulator (what CSDS answers).
    public_host: str = ""
    #: "https" with TLS, "http" otherwise.
    scheme: str = "http"
    #: Bytes of uploaded files by relative path (file sharing).
    files: dict[str, bytes] = field(default_factory=dict)
    #: What the latest WebSocket upgrades negotiated (``GET /_emulator/bench/upgrades``).
    upgrades: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=1000))

    def record_upgrade(self, face: str, request: Mapping[str, str], response: Mapping[str, str]) -> None:
        """Remember what a WebSocket upgrade negotiated, from its request and response headers:
        the extensions the client offered and those the emulator answered (``None``: none)."""
        self.upgrades.append(
            {
                "face": face,
                "time": time.time(),
                "offered": request.get("Sec-WebSocket-Extensions"),
                "answered": response.get("Sec-WebSocket-Extensions"),
                "user_agent": request.get("User-Agent"),
            }
        )
