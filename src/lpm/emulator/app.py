"""The emulator server: one aiohttp application (plain or TLS, one port) serving every face.

``Emulator`` is an async context manager for tests and for ``lpm demo``; ``lpm emulator`` runs
the same thing in the foreground::

    async with Emulator() as emu:
        conn = lpm.create_connection(..., csds_domain=emu.csds_domain)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from aiohttp import web

from lpm.emulator import brand_ws, consumer_ws, files, http_common, http_csds, http_login
from lpm.emulator.config import Settings, WorldSpec, default_world, populate
from lpm.emulator.context import Context
from lpm.emulator.faults import Faults
from lpm.emulator.hub import Hub
from lpm.emulator.listener import Connection, Listener
from lpm.emulator.tls import EmulatorTLS
from lpm.emulator.token_issuer import TokenService, generate_private_key_pem, public_key_pem
from lpm.emulator.world import World
from lpm.emulator.ws_session import Session

if TYPE_CHECKING:
    from lpm.emulator.ui import WebUI

log = logging.getLogger(__name__)

RouteHandler = Callable[[Context, web.Request], Awaitable[web.StreamResponse]]
#: Paths whose HTTP faults are armed under a target name (see lpm.emulator.faults).
_FAULT_TARGETS = (("/login", "login"), ("/refresh", "refresh"), ("/logout", "logout"))


class _LoopScheduler:
    """World scheduler on the running asyncio loop."""

    def call_later(self, delay: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        return asyncio.get_running_loop().call_later(delay, callback)


def _fault_target(path: str) -> str | None:
    if path.startswith("/_emulator"):
        return None
    if path.startswith("/ws_api/"):
        return "http"  # socket upgrades (the consumer path also ends in "/consumer")
    for suffix, target in _FAULT_TARGETS:
        if path.endswith(suffix):
            return target
    if "/service/" in path and path.endswith(("baseURI.json", "baseURI.lpCsds")):
        return "csds"
    if "/authenticate" in path or path.endswith(("/signup", "/signup.jsonp", "/authorize", "/consumer")):
        return "idp"
    if path.startswith("/sentinel/"):
        return "sentinel"
    return "http"


class Emulator:
    """A local LivePerson Conversational Cloud."""

    def __init__(
        self,
        spec: WorldSpec | None = None,
        *,
        settings: Settings | None = None,
        db: str | Path | None = None,
        state_dir: str | Path | None = None,
        ui: bool = False,
        **overrides: Any,
    ) -> None:
        self.spec = spec or default_world()
        self.settings = settings or self.spec.settings
        for key, value in overrides.items():
            if not hasattr(self.settings, key):
                raise TypeError(f"unknown emulator setting {key!r}")
            setattr(self.settings, key, value)
        #: The web UI (``ui=True``, ``lpm emulator --ui``) at :attr:`ui_url`; its fault buttons
        #: need the fault API, so it turns that on.
        self.ui: WebUI | None = None
        if ui:
            from lpm.emulator.ui import WebUI

            self.ui = WebUI(self)
            self.settings.faults = True
        self.db_path = Path(db) if db else None
        self._own_state_dir = state_dir is None
        self.state_dir = Path(state_dir) if state_dir else Path(tempfile.mkdtemp(prefix="lpm-emulator-"))
        self.world = World(scheduler=_LoopScheduler(), ring_expiry=self.settings.ring_expiry)
        self.tls: EmulatorTLS | None = None
        self.ctx: Context | None = None
        self._runner: web.AppRunner | None = None
        self._listener: Listener | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._store: Any = None
        self.port = 0

    # ---------------------------------------------------------------- properties

    @property
    def host(self) -> str:
        """The address the server binds (``Settings.host``)."""
        return self.settings.host

    @property
    def public_host(self) -> str:
        """``host:port`` as clients reach it (IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def csds_domain(self) -> str:
        """What clients pass as ``csds_domain``: ``host:port`` (TLS) or ``http://host:port``."""
        return self.public_host if self.settings.tls else f"http://{self.public_host}"

    @property
    def base_url(self) -> str:
        """``http://host:port`` or ``https://host:port`` (TLS): the root of every HTTP face."""
        return f"{'https' if self.settings.tls else 'http'}://{self.public_host}"

    @property
    def ws_base_url(self) -> str:
        """``ws://host:port`` or ``wss://host:port`` (TLS): the root of the WebSocket APIs."""
        return f"{'wss' if self.settings.tls else 'ws'}://{self.public_host}"

    @property
    def ui_url(self) -> str | None:
        """The web UI's page (``ui=True``), e.g. ``http://127.0.0.1:8443/_emulator/ui/``."""
        return self.ui.url if self.ui is not None else None

    @property
    def ca_file(self) -> Path | None:
        """The PEM file of the generated CA that clients must trust (None when plain)."""
        return self.tls.ca_file if self.tls else None

    @property
    def account_id(self) -> str:
        """The first account of the world (``12345678`` in the default world)."""
        return self.spec.accounts[0].account_id

    def client_ssl_context(self) -> Any:
        """An ``ssl.SSLContext`` trusting this emulator's CA (None when plain)."""
        return self.tls.client_context() if self.tls else None

    # ---------------------------------------------------------------- lifecycle

    def _build_world(self) -> None:
        populate(self.world, self.spec)
        self._ensure_connector_keys()

    def _ensure_connector_keys(self) -> None:
        """Authenticated connectors without a configured key get a generated RS256 pair; the
        private half is written to the state directory for the brand (tests, demo) to sign with."""
        for acc in self.world.accounts.values():
            for connector in acc.connectors.values():
                if (
                    connector.kind != "authenticated"
                    or connector.jwt_alg != "RS256"
                    or connector.public_key_pem
                ):
                    continue
                meta_key = f"connector-key:{acc.account_id}:{connector.connector_id}"
                private = self._store.get_meta(meta_key) if self._store else None
                if private is None:
                    private = generate_private_key_pem()
                    if self._store:
                        self._store.set_meta(meta_key, private)
                connector.public_key_pem = public_key_pem(private)
                key_file = self.state_dir / f"connector-{acc.account_id}-{connector.connector_id}-private.pem"
                key_file.write_text(private)
                key_file.chmod(0o600)
                connector.private_key_file = str(key_file)

    def _reroute_waiting(self) -> None:
        """Rings are not persisted: after a restart, open conversations without an assigned
        agent go back to their skill's queue."""
        for acc in self.world.accounts.values():
            for conv_id in list(acc.open_conversation.values()):
                conv = acc.conversations[conv_id]
                assigned = any(
                    p.role == "ASSIGNED_AGENT" and p.state == "ACTIVE" for p in conv.main.participants
                )
                if conv.main.state == "OPEN" and not assigned:
                    self.world.router.route(acc, conv, is_transfer=False)

    async def start(self) -> Emulator:
        """Build the world (or load it from ``db``), listen, and return self (``async with`` calls it)."""
        signing_key: str | None = None
        if self.db_path is not None:
            from lpm.emulator.persistence import SqliteStore

            self._store = SqliteStore(self.db_path)
            signing_key = self._store.get_meta("idp-signing-key")
        tokens = TokenService(signing_key, clock=self.world.clock)
        if self._store is not None and signing_key is None:
            self._store.set_meta("idp-signing-key", tokens.private_key_pem)
        self._build_world()
        self.world.lenient = self.settings.lenient
        if self._store is not None:
            self._store.load_into(self.world)
            self.world.store = self._store
            self._reroute_waiting()
        hub: Hub[Session] = Hub(self.world)
        self.world.sinks.append(hub)
        faults = Faults(enabled=self.settings.faults)
        self.ctx = Context(settings=self.settings, world=self.world, hub=hub, tokens=tokens, faults=faults)
        self._add_faces(self.ctx)
        if self.ui is not None:
            self.ui.attach()
        app = self._make_app(self.ctx)
        ssl_context = None
        if self.settings.tls:
            self.tls = EmulatorTLS(self.state_dir)
            ssl_context = self.tls.server_context()
            self.ctx.scheme = "https"
        self._runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=1.0,
            keepalive_timeout=self.settings.keepalive_timeout,
        )
        await self._runner.setup()
        server = self._runner.server
        assert server is not None
        # Our own accept layer rather than a TCPSite: see lpm.emulator.listener for why.
        listener = Listener(
            server,
            header_timeout=self.settings.header_timeout,
            max_connections=self.settings.max_connections,
            ssl_context=ssl_context,
        )
        await listener.start(self.host, self.settings.port)
        self._listener = listener
        self.port = listener.port
        self.ctx.public_host = self.public_host
        if self._store is not None:
            self._tasks.append(asyncio.create_task(self._flush_loop(), name="lpm-emulator-store-flush"))
        log.info("emulator listening on %s (at most %d connections)", self.base_url, listener.max_connections)
        return self

    @property
    def listener(self) -> Listener | None:
        """The accept layer while the emulator runs: its connections and counters (``refused``,
        ``head_timeouts``, ``max_connections``)."""
        return self._listener

    def _add_faces(self, ctx: Context) -> None:
        """Extra sinks of the world (webhooks) live on the context's faces."""
        from lpm.emulator import extensions

        for sink in extensions.sinks(ctx):
            self.world.sinks.append(sink)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            self._store.flush()

    async def stop(self) -> None:
        """Stop accepting, close every session (1001), stop the server, close every connection
        still open, flush and close the database.

        When it returns, no socket the emulator accepted is open: not an upgrade it stalled on
        purpose, not a connection that never sent a complete request, not one accepted while
        it was stopping.
        """
        if self._listener is not None:
            await self._listener.stop_accepting()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self.ctx is not None:
            # Stalled upgrades are answered 503 rather than let through: a session upgraded now
            # would miss the 1001 below.
            self.ctx.faults.shut_down()
            for session in list(self.ctx.hub.sessions):
                session.close_with(1001, "emulator shutting down")
            from lpm.emulator import extensions

            await extensions.shutdown(self.ctx)
        if self.ui is not None:
            await self.ui.shutdown()
        if self._runner is not None:
            # aiohttp's graceful part: answers in flight get shutdown_timeout to finish.
            await self._runner.cleanup()
            self._runner = None
        if self._listener is not None:
            # Whatever aiohttp did not close (or never saw): dropped, and waited for.
            await self._listener.close_all()
            self._listener = None
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._own_state_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    async def restart(self) -> None:
        """Stop and start again on the same port, with the same ``db`` and state directory: what
        clients see when the platform restarts (every socket closes with 1001, the world comes
        back from the SQLite file; without ``db`` it comes back empty).  The UI's fault panel
        calls it."""
        port = self.port
        own_state_dir, self._own_state_dir = self._own_state_dir, False
        try:
            await self.stop()
        finally:
            self._own_state_dir = own_state_dir
        self.world = World(scheduler=_LoopScheduler(), ring_expiry=self.settings.ring_expiry)
        configured, self.settings.port = self.settings.port, port
        try:
            await self.start()
        finally:
            self.settings.port = configured

    async def __aenter__(self) -> Emulator:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # ---------------------------------------------------------------- application

    def _make_app(self, ctx: Context) -> web.Application:
        @web.middleware
        async def connection_middleware(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            # The outermost middleware: a request reaching it has a complete head, which stops
            # the connection's header timeout (lpm.emulator.listener) until its next request.
            connection = Connection.of(request.transport)
            if connection is None:
                return await handler(request)
            connection.request_started()
            try:
                return await handler(request)
            finally:
                connection.request_finished()

        @web.middleware
        async def faults_middleware(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            if ctx.faults.enabled:
                target = _fault_target(request.path)
                fault = ctx.faults.next_http(target) if target else None
                if fault is not None:
                    if fault.action == "delay":
                        await asyncio.sleep(fault.delay)
                    elif fault.action == "drop":
                        if request.transport is not None:
                            request.transport.abort()
                        raise web.HTTPServiceUnavailable()
                    else:
                        headers = {"Retry-After": "1"} if fault.status == 429 else None
                        return web.json_response(
                            {"error": {"message": "injected fault", "internalCode": fault.status}},
                            status=fault.status,
                            headers=headers,
                        )
            return await handler(request)

        app = web.Application(
            # durable_responses: no answer before the writes it reveals are committed.
            middlewares=[connection_middleware, faults_middleware, http_common.durable_responses(ctx)],
            client_max_size=ctx.settings.max_file_size + 65536,
        )

        def bind(fn: RouteHandler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
            async def handler(request: web.Request) -> web.StreamResponse:
                return await fn(ctx, request)

            return handler

        acc = "/api/account/{account}"
        routes = [
            web.get(acc + "/service/baseURI.json", bind(http_csds.all_services)),
            web.get("/csdr/account/{account}/service/baseURI.json", bind(http_csds.all_services)),
            web.get(acc + "/service/{service}/baseURI.json", bind(http_csds.one_service)),
            web.get(
                "/csdr/account/{account}/service/{service}/baseURI.lpCsds", bind(http_csds.one_service_script)
            ),
            web.post(acc + "/login", bind(http_login.login)),
            web.post(acc + "/refresh", bind(http_login.refresh)),
            web.post(acc + "/logout", bind(http_login.logout)),
            web.get("/ws_api/account/{account}/messaging/brand/{token}", bind(brand_ws.brand_socket)),
            web.get("/ws_api/account/{account}/messaging/brand", bind(brand_ws.brand_socket)),
            web.get("/ws_api/account/{account}/messaging/consumer", bind(consumer_ws.consumer_socket)),
            web.get(
                "/ws_api/account/{account}/messaging/consumer/{token}", bind(consumer_ws.consumer_socket)
            ),
            web.put(files.PATH_PREFIX + "/{tail:.+}", bind(files.put_file)),
            web.get(files.PATH_PREFIX + "/{tail:.+}", bind(files.get_file)),
        ]
        from lpm.emulator import extensions

        for method, path, fn in extensions.routes(ctx):
            routes.append(web.route(method, path, bind(fn)))
        if self.ui is not None:
            routes.extend(self.ui.routes())
        app.add_routes(routes)
        return app

    # ---------------------------------------------------------------- description

    def describe(self) -> dict[str, Any]:
        """What ``lpm emulator --json`` prints: where to connect and the default credentials."""
        acc_spec = self.spec.accounts[0]
        return {
            "csds_domain": self.csds_domain,
            "ca_file": str(self.ca_file) if self.ca_file else None,
            "account_id": acc_spec.account_id,
            "users": [
                {
                    "username": u.login_name,
                    "password": u.password,
                    "app_key": u.app_key,
                    "secret": u.secret,
                    "access_token": u.access_token,
                    "access_token_secret": u.access_token_secret,
                    "user_id": u.user_id,
                    "user_pid": u.pid,
                    "is_bot": u.is_bot,
                }
                for u in acc_spec.users
            ],
            "skills": [{"id": s.skill_id, "name": s.name, "survey": s.survey} for s in acc_spec.skills],
            "connectors": [
                {
                    "id": c.connector_id,
                    "name": c.name,
                    "kind": c.kind,
                    "jwt_alg": c.jwt_alg,
                    "issuer": c.issuer,
                    "signing_key_file": c.private_key_file,
                }
                for c in self.world.accounts[acc_spec.account_id].connectors.values()
            ],
            "app_installs": [
                {"client_id": a.client_id, "client_secret": a.client_secret} for a in acc_spec.app_installs
            ],
            **({"ui_url": self.ui_url} if self.ui is not None else {}),
        }
