"""Everything a face of the emulator needs, in one object handed to every handler."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

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
