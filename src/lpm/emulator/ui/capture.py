"""Frame capture for the web UI's inspector: the WebSocket frames in and out, in a bounded ring.

:class:`FrameTap` is what the hub's ``tap`` holds while the UI is on
(:class:`lpm.emulator.hub.FrameTap`); every session reads that attribute once when it starts and
checks it once per frame, so an emulator without the UI pays one ``is None`` test per frame and
nothing else.  With the UI on, a frame costs one tuple appended to a ``deque`` (the text or bytes
the session already holds: nothing is copied, encoded or parsed here); the oldest frames fall
out of the ring once it holds :data:`DEFAULT_LIMIT`.  Parsing happens later, when someone asks
(:mod:`lpm.emulator.ui.inspector`).

Besides frames the tap keeps who each socket is (:class:`SessionInfo`) and tells its listeners
when sessions come and go, which the overview's connection log shows (a dropped bot, its
reconnect).  ``cause`` names the request a session is handling right now, so a change the world
announces during that request can name the frame that caused it.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from lpm.emulator.world import World

#: Frames kept (both directions, every socket); older ones are forgotten.
DEFAULT_LIMIT = 20_000
#: Sessions remembered after they closed (their frames may still be in the ring).
_SESSIONS_KEPT = 5_000


class CapturedFrame(NamedTuple):
    """One frame as it crossed the socket."""

    #: Position in the capture (0, 1, 2... for the emulator's lifetime, restarts included).
    number: int
    #: Epoch seconds.
    time: float
    session: int
    #: Sent by the emulator (True) or received from the client (False).
    outbound: bool
    data: str | bytes


@dataclass(slots=True)
class SessionInfo:
    """Who is on one socket (as far as the emulator knows)."""

    id: int
    #: "brand" or "consumer".
    dialect: str
    account_id: str
    #: "agent", "consumer", or "" before the socket authenticated.
    role: str = ""
    #: The agent's user id or the consumer id.
    actor_id: str = ""
    #: "bot", "agent", "consumer 1a2b3c4d (unauthenticated)"...
    label: str = ""
    opened: float = 0.0
    closed: float | None = None
    close_code: int | None = None


#: ``listener(event, info)``: event is "connected" or "disconnected".
SessionListener = Callable[[str, SessionInfo], None]


class FrameTap:
    """The capture: frames in a ring, sessions by id, listeners told about sessions."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.frames: deque[CapturedFrame] = deque(maxlen=limit)
        #: Index of the next frame captured.
        self.next_index = 0
        self.sessions: dict[int, SessionInfo] = {}
        self.cause: tuple[int, str | None] | None = None
        self.listeners: list[SessionListener] = []
        #: The world the sessions belong to (names of agents), set by the UI at each start.
        self.world: World | None = None

    # ---------------------------------------------------------------- the hot path

    def inbound(self, session: Any, data: str) -> None:
        if session.id not in self.sessions:
            self._register(session)
        self.frames.append(CapturedFrame(self.next_index, time.time(), session.id, False, data))
        self.next_index += 1

    def outbound(self, session: Any, data: bytes) -> None:
        if session.id not in self.sessions:
            self._register(session)
        self.frames.append(CapturedFrame(self.next_index, time.time(), session.id, True, data))
        self.next_index += 1

    # ---------------------------------------------------------------- sessions

    def attached(self, session: Any) -> None:
        """The session authenticated: its identity is known."""
        info = self._register(session)
        for listener in list(self.listeners):
            listener("connected", info)

    def detached(self, session: Any) -> None:
        info = self.sessions.get(session.id)
        if info is None or info.closed is not None:
            return
        info.closed = time.time()
        ws = getattr(session, "ws", None)
        code = getattr(ws, "close_code", None)
        info.close_code = code if isinstance(code, int) else None
        if info.role:
            for listener in list(self.listeners):
                listener("disconnected", info)

    def _register(self, session: Any) -> SessionInfo:
        info = self.sessions.get(session.id)
        if info is None:
            dialect = "brand" if getattr(session, "brand", False) else "consumer"
            info = SessionInfo(
                id=session.id, dialect=dialect, account_id=str(session.account_id), opened=time.time()
            )
            info.label = f"{dialect} socket #{session.id}"
            self.sessions[session.id] = info
            if len(self.sessions) > _SESSIONS_KEPT:
                self._forget_closed()
        actor = getattr(session, "actor", None)
        if actor is not None and not info.role:
            info.role = "consumer" if actor.is_consumer else "agent"
            info.actor_id = actor.id
            info.label = self._label(info, getattr(session, "identity_kind", ""))
        return info

    def _label(self, info: SessionInfo, kind: str) -> str:
        if info.role == "consumer":
            what = f" ({kind})" if kind else ""
            return f"consumer {info.actor_id[:8]}{what}"
        acc = self.world.accounts.get(info.account_id) if self.world is not None else None
        user = acc.users.get(info.actor_id) if acc is not None else None
        if user is None:
            return f"agent {info.actor_id}"
        return user.nickname or user.login_name

    def _forget_closed(self) -> None:
        closed = [sid for sid, info in self.sessions.items() if info.closed is not None]
        for sid in closed[: max(1, len(closed) // 2)]:
            del self.sessions[sid]


# ---------------------------------------------------------------- redaction

#: JSON keys whose string values are credentials (as ``--log-frames`` redacts them).
_SECRET_KEYS = ("temp_url_sig", "readOtk", "jwt", "token", "id_token", "access_token", "bearer", "lp_jwt")
_SECRET_VALUE = re.compile(r'"(' + "|".join(_SECRET_KEYS) + r')"(\s*:\s*)"[^"]*"')
_SECRET_QUERY = re.compile(r"(temp_url_sig=)[^&\s\"]*")
_JWT = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]*")
REDACTED = "<redacted>"


def redact(text: str) -> str:
    """``text`` (a frame) with its credentials replaced by ``<redacted>``: JWTs wherever they
    are, the values of credential keys and file-URL signatures.  What is left is the same JSON."""
    text = _JWT.sub(REDACTED, text)
    text = _SECRET_VALUE.sub(r'"\1"\2"' + REDACTED + '"', text)
    return _SECRET_QUERY.sub(r"\1" + REDACTED, text)
