"""The web UI's backend, served by the emulator on its own port under ``/_emulator/ui/``.

:class:`WebUI` belongs to one :class:`~lpm.emulator.app.Emulator` (``Emulator(ui=True)``,
``lpm emulator --ui``) and outlives its restarts: at each start it puts its frame capture on the
new hub (:mod:`lpm.emulator.ui.capture`) and its transcript sink on the new world
(:mod:`lpm.emulator.ui.timeline`), so what it saw before a restart stays inspectable.

The page itself is static (``static/``: HTML, CSS and JavaScript modules, no build step, nothing
loaded from anywhere else: its Content-Security-Policy allows this origin only).  It talks to the
emulator's faces as any LivePerson client would -- CSDS, the IdP, the consumer WebSocket (v3),
agentVep login and the brand WebSocket, the file storage -- and to the fault API under
``/_emulator``; what only the UI needs is here:

``GET  /_emulator/ui/api/config``
    the world the page offers: accounts, skills, connectors, users (with the demo passwords
    ``lpm emulator`` prints), whether faults and ``--db`` are on.
``GET  /_emulator/ui/api/state`` and the WebSocket ``/_emulator/ui/api/feed``
    the overview (:func:`lpm.emulator.ui.views.overview`), pushed again at most every
    :data:`FEED_INTERVAL` seconds while anything changes, with the connection log (sockets
    connecting, disconnecting, reconnecting) and the ids of the conversations that changed.
``GET  /_emulator/ui/api/conversations/{id}``
    a transcript; ``.../entries/{n}/frames`` the frames of one of its lines;
    ``.../export.json`` (the conversation, its transcript and every frame captured for it) and
    ``.../export.txt`` (a readable transcript) as downloads.
``POST /_emulator/ui/api/id-token``
    ``{"account_id"?, "connector_id", "sub"}``: an id_token signed as the brand for an
    authenticated connector (the UI plays the brand's login server, with the connector's key).
``POST /_emulator/ui/api/restart``
    stop the emulator and start it again on the same port and ``--db`` file (409 without one).

Frames shown by the inspector have their credentials redacted (JWTs, bearers, file-URL
signatures).  Every route answers only for a loopback ``Host`` (or the one the emulator listens
on), and a POST or the feed only from a page of this origin, so another web site open in the
same browser cannot drive the emulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt
from aiohttp import WSMsgType, web

from lpm.emulator.http_common import json_response
from lpm.emulator.ui import views
from lpm.emulator.ui.capture import FrameTap, SessionInfo
from lpm.emulator.ui.inspector import FrameIndex
from lpm.emulator.ui.timeline import Timeline
from lpm.protocol.frames import encode

if TYPE_CHECKING:
    from lpm.emulator.app import Emulator
    from lpm.emulator.entities import Account, Conversation

log = logging.getLogger(__name__)

PREFIX = "/_emulator/ui"
STATIC_DIR = Path(__file__).resolve().parent / "static"
#: Seconds between two pushes of the overview to the pages.
FEED_INTERVAL = 0.15
#: Lines of the connection log kept (and sent to a page that opens).
LOG_LINES = 200
#: Lifetime of the id_tokens the UI signs as the brand.
ID_TOKEN_TTL = 600
_CONTENT_TYPES = {
    ".html": "text/html",
    ".css": "text/css",
    ".js": "text/javascript",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}
_LOOPBACK = ("127.0.0.1", "localhost", "[::1]")
_WILDCARD = ("0.0.0.0", "::", "")


class WebUI:
    """The UI of one emulator (see the module docstring)."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.tap = FrameTap()
        self.index = FrameIndex(self.tap)
        self.timeline = Timeline(self.tap, self._changed)
        self.log: deque[dict[str, Any]] = deque(maxlen=LOG_LINES)
        self._log_sent = 0
        self._log_count = 0
        self._clients: set[web.WebSocketResponse] = set()
        self._dirty: set[str] = set()
        self._flush: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        #: (account, role, actor id, dialect) of sockets that closed: their next one reconnects.
        self._gone: set[tuple[str, str, str, str]] = set()
        self.restarts = 0
        self.tap.listeners.append(self._session_event)

    @property
    def url(self) -> str:
        """Where the page is: ``http://host:port/_emulator/ui/``."""
        return f"{self.emu.base_url}{PREFIX}/"

    # ---------------------------------------------------------------- lifecycle

    def attach(self) -> None:
        """Watch the emulator's current hub and world (at each start)."""
        ctx = self.emu.ctx
        assert ctx is not None
        ctx.hub.tap = self.tap
        self.tap.world = self.emu.world
        self.timeline.watch(self.emu.world)

    async def shutdown(self) -> None:
        """The emulator stops: close the pages' feeds (a page reconnects after a restart)."""
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        for ws in list(self._clients):
            with contextlib.suppress(Exception):
                await ws.close(code=1001, message=b"emulator stopping")
        self._clients.clear()

    def routes(self) -> list[web.RouteDef]:
        api = PREFIX + "/api"
        conv = api + "/conversations/{conv}"
        return [
            web.get(PREFIX, self._redirect),
            web.get(PREFIX + "/", self._page),
            web.get(PREFIX + "/static/{name:[A-Za-z0-9_.-]+}", self._static),
            web.get(api + "/config", self._config),
            web.get(api + "/state", self._state),
            web.get(api + "/feed", self._feed),
            web.get(conv, self._conversation),
            web.get(conv + "/entries/{n:[0-9]+}/frames", self._entry_frames),
            web.get(conv + "/export.json", self._export_json),
            web.get(conv + "/export.txt", self._export_text),
            web.post(api + "/id-token", self._id_token),
            web.post(api + "/restart", self._restart),
        ]

    # ---------------------------------------------------------------- guards

    def _check(self, request: web.Request, *, writes: bool = False) -> None:
        """Refuse a Host that is not this emulator's (DNS rebinding) and, for a POST or the feed,
        a page of another origin (another site open in the same browser)."""
        host = request.host
        name, _, port = host.rpartition(":")
        bound = self.emu.host
        if bound not in _WILDCARD and not (
            port == str(self.emu.port) and (name in _LOOPBACK or name in (bound, f"[{bound}]"))
        ):
            raise web.HTTPForbidden(text="unknown Host")
        if writes:
            origin = request.headers.get("Origin")
            if origin is not None and origin != f"{request.scheme}://{host}":
                raise web.HTTPForbidden(text="cross-origin request refused")
            if request.method == "POST" and request.content_type != "application/json":
                raise web.HTTPUnsupportedMediaType(text="send application/json")

    # ---------------------------------------------------------------- the page

    async def _redirect(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(PREFIX + "/")

    async def _page(self, request: web.Request) -> web.StreamResponse:
        self._check(request)
        host = request.host
        ws = "wss" if request.scheme == "https" else "ws"
        policy = "; ".join(
            [
                "default-src 'none'",
                "script-src 'self'",
                "style-src 'self'",
                "img-src 'self' data: blob:",
                f"connect-src 'self' {ws}://{host}",
                "frame-ancestors 'none'",
                "base-uri 'none'",
                "form-action 'none'",
            ]
        )
        return web.FileResponse(
            STATIC_DIR / "index.html",
            headers={
                "Content-Type": "text/html; charset=utf-8",
                "Content-Security-Policy": policy,
                "Cache-Control": "no-cache",
                "Referrer-Policy": "no-referrer",
                "X-Content-Type-Options": "nosniff",
            },
        )

    async def _static(self, request: web.Request) -> web.StreamResponse:
        self._check(request)
        name = request.match_info["name"]
        path = (STATIC_DIR / name).resolve()
        kind = _CONTENT_TYPES.get(path.suffix)
        if path.parent != STATIC_DIR or kind is None or not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(
            path,
            headers={
                "Content-Type": f"{kind}; charset=utf-8" if kind.startswith("text/") else kind,
                "Cache-Control": "no-cache",
                "X-Content-Type-Options": "nosniff",
            },
        )

    async def _config(self, request: web.Request) -> web.StreamResponse:
        self._check(request)
        world = self.emu.world
        accounts = []
        for acc in world.accounts.values():
            accounts.append(
                {
                    "account_id": acc.account_id,
                    "skills": [
                        {"id": s.skill_id, "name": s.name, "survey": s.survey} for s in acc.skills.values()
                    ],
                    "connectors": [
                        {"id": c.connector_id, "name": c.name, "kind": c.kind, "can_sign": _can_sign(c)}
                        for c in acc.connectors.values()
                    ],
                    "users": [
                        {
                            "user_id": u.user_id,
                            "login": u.login_name,
                            "name": u.nickname or u.login_name,
                            "is_bot": u.is_bot,
                            "is_manager": u.is_manager,
                            "skills": list(u.skills),
                            # The demo credentials `lpm emulator` prints; the seat logs in with them.
                            "password": u.password,
                        }
                        for u in acc.users.values()
                    ],
                }
            )
        return json_response(
            {
                "accounts": accounts,
                "faults": self.emu.settings.faults,
                "db": str(self.emu.db_path) if self.emu.db_path else None,
                "tls": self.emu.settings.tls,
                "restarts": self.restarts,
            }
        )

    # ---------------------------------------------------------------- overview and feed

    def _overview(self) -> dict[str, Any]:
        ctx = self.emu.ctx
        assert ctx is not None
        state = views.overview(self.emu.world, ctx.hub, self.timeline)
        state["sockets"] = {"brand": 0, "consumer": 0}
        for session in list(ctx.hub.sessions):
            state["sockets"][session.dialect.value] += 1
        state["faults"] = self.emu.settings.faults
        state["restarts"] = self.restarts
        return state

    async def _state(self, request: web.Request) -> web.StreamResponse:
        self._check(request)
        return json_response({**self._overview(), "log": list(self.log)})

    def _session_event(self, event: str, info: SessionInfo) -> None:
        key = (info.account_id, info.role, info.actor_id, info.dialect)
        socket = f"{info.dialect} socket #{info.id}"
        if event == "connected":
            again = key in self._gone
            self._gone.discard(key)
            text = f"{info.label} {'reconnected' if again else 'connected'} ({socket})"
            kind = "reconnected" if again else "connected"
        else:
            self._gone.add(key)
            code = f"code {info.close_code}" if info.close_code else "no close code"
            text = f"{info.label} disconnected ({socket}, {code})"
            kind = "disconnected"
        self._log_count += 1
        self.log.append({"n": self._log_count, "t": int(time.time() * 1000), "kind": kind, "text": text})
        self._changed(None)

    def _changed(self, conv_id: str | None) -> None:
        """Something the overview shows changed: push it soon (at most every FEED_INTERVAL)."""
        if not self._clients:
            return
        if conv_id is not None:
            self._dirty.add(conv_id)
        if self._flush is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            self._flush = loop.call_later(FEED_INTERVAL, self._push)

    def _push(self) -> None:
        self._flush = None
        if not self._clients or self.emu.ctx is None:
            return
        fresh = [line for line in self.log if line["n"] > self._log_sent]
        self._log_sent = self._log_count
        message = {
            "type": "update",
            "state": self._overview(),
            "changed": sorted(self._dirty),
            "log": fresh,
        }
        self._dirty.clear()
        self._send_all(json.dumps(message))

    def _send_all(self, text: str) -> None:
        for ws in list(self._clients):
            task = asyncio.ensure_future(self._send(ws, text))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, ws: web.WebSocketResponse, text: str) -> None:
        try:
            await asyncio.wait_for(ws.send_str(text), timeout=5)
        except Exception:  # a page that cannot keep up is dropped; it reconnects
            self._clients.discard(ws)
            with contextlib.suppress(Exception):
                await ws.close()

    async def _feed(self, request: web.Request) -> web.StreamResponse:
        self._check(request, writes=True)
        ws = web.WebSocketResponse(heartbeat=20)
        await ws.prepare(request)
        self._clients.add(ws)
        try:
            first = {"type": "update", "state": self._overview(), "changed": [], "log": list(self.log)}
            await ws.send_str(json.dumps(first))
            async for msg in ws:
                if msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                    break
        finally:
            self._clients.discard(ws)
        return ws

    # ---------------------------------------------------------------- conversations

    def _find(self, request: web.Request) -> tuple[Account, Conversation]:
        conv_id = request.match_info["conv"]
        for acc in self.emu.world.accounts.values():
            conv = acc.conversations.get(conv_id)
            if conv is not None:
                return acc, conv
        raise web.HTTPNotFound(text=f"conversation {conv_id} not found")

    async def _conversation(self, request: web.Request) -> web.StreamResponse:
        self._check(request)
        acc, conv = self._find(request)
        return json_response(views.transcript(acc, conv, self.timeline))

    async def _entry_frames(self, request: web.Request) -> web.StreamResponse:
        self._check(request)
        acc, conv = self._find(request)
        entries = self.timeline.entries(acc, conv)
        n = int(request.match_info["n"])
        if n >= len(entries):
            raise web.HTTPNotFound(text=f"no line {n}")
        entry = entries[n]
        self.index.update()
        key: tuple[str, str, int | str] | None = None
        if entry.ring is not None:
            key = ("ring", *entry.ring)
        elif entry.sequence is not None and entry.dialog_id is not None:
            key = ("event", entry.dialog_id, entry.sequence)
        elif entry.state_ts is not None:
            key = ("state", conv.conv_id, entry.state_ts)
        indices = [] if key is None else self.index.for_change(key, entry.cause, entry.at)
        return json_response(
            {"entry": views.entry_json(acc, conv, entry), "frames": list(self.index.frames(indices))}
        )

    async def _export_json(self, request: web.Request) -> web.StreamResponse:
        self._check(request)
        acc, conv = self._find(request)
        from lpm.emulator import render

        self.index.update()
        indices = self.index.for_conversation(conv.conv_id, [d.dialog_id for d in conv.dialogs])
        body = {
            "exported": int(time.time() * 1000),
            "conversation": render.conversation_result(self.emu.world, conv, public=True),
            "transcript": [views.entry_json(acc, conv, e) for e in self.timeline.entries(acc, conv)],
            "frames": list(self.index.frames(indices)),
        }
        return web.Response(
            body=encode(body),
            content_type="application/json",
            headers={"Content-Disposition": f'attachment; filename="conversation-{conv.conv_id}.json"'},
        )

    async def _export_text(self, request: web.Request) -> web.StreamResponse:
        self._check(request)
        acc, conv = self._find(request)
        text = views.transcript_text(acc, conv, self.timeline.entries(acc, conv))
        return web.Response(
            text=text,
            content_type="text/plain",
            headers={"Content-Disposition": f'attachment; filename="conversation-{conv.conv_id}.txt"'},
        )

    # ---------------------------------------------------------------- the brand's side

    async def _id_token(self, request: web.Request) -> web.StreamResponse:
        self._check(request, writes=True)
        try:
            body = await request.json()
        except ValueError:
            return json_response({"error": "body is not JSON"}, 400)
        if not isinstance(body, dict):
            return json_response({"error": "body must be a JSON object"}, 400)
        world = self.emu.world
        account_id = str(body.get("account_id") or self.emu.account_id)
        acc = world.accounts.get(account_id)
        connector = acc.connectors.get(str(body.get("connector_id"))) if acc is not None else None
        sub = body.get("sub")
        if connector is None or connector.kind != "authenticated":
            return json_response({"error": "not an authenticated connector of this world"}, 400)
        if not isinstance(sub, str) or not 0 < len(sub) <= 128:
            return json_response({"error": "sub must be a string of 1 to 128 characters"}, 400)
        token = _brand_id_token(connector, sub)
        if token is None:
            return json_response({"error": "the emulator does not hold this connector's signing key"}, 400)
        return json_response({"id_token": token})

    # ---------------------------------------------------------------- restart

    async def _restart(self, request: web.Request) -> web.StreamResponse:
        self._check(request, writes=True)
        if self.emu.db_path is None:
            return json_response(
                {"error": "the world is in memory: start the emulator with --db to restart on the file"},
                409,
            )
        task = asyncio.ensure_future(self._do_restart())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return json_response({"restarting": True, "db": str(self.emu.db_path)}, 202)

    async def _do_restart(self) -> None:
        await asyncio.sleep(0.05)  # the answer goes out first
        try:
            await self.emu.restart()
        except Exception as exc:
            log.warning("restart failed: %s", str(exc))
            return
        self.restarts += 1
        self._log_count += 1
        self.log.append(
            {
                "n": self._log_count,
                "t": int(time.time() * 1000),
                "kind": "restarted",
                "text": f"emulator restarted on {self.emu.db_path}",
            }
        )


def _can_sign(connector: Any) -> bool:
    if connector.kind != "authenticated":
        return False
    if connector.jwt_alg == "HS256":
        return bool(connector.secret)
    return bool(connector.private_key_file)


def _brand_id_token(connector: Any, sub: str) -> str | None:
    """An id_token for ``sub`` signed with the connector's key (None: the emulator has none)."""
    now = int(time.time())
    claims: dict[str, Any] = {"sub": sub, "iat": now, "exp": now + ID_TOKEN_TTL, "given_name": sub}
    if connector.issuer:
        claims["iss"] = connector.issuer
    if connector.jwt_alg == "HS256":
        return jwt.encode(claims, connector.secret, algorithm="HS256") if connector.secret else None
    key_file = Path(connector.private_key_file) if connector.private_key_file else None
    if key_file is None or not key_file.is_file():
        return None
    return jwt.encode(claims, key_file.read_text(), algorithm=connector.jwt_alg)
