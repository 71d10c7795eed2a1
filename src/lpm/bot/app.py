"""The :class:`Bot`: handlers by decorator, a life cycle (``start`` / ``stop`` / ``serve`` /
``run``), rings, readiness, and the parts it is made of (engine, coordinator, store, metrics,
HTTP endpoint)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar, overload

import lpm
from lpm.bot.context import RingContext
from lpm.bot.coordination import Coordinator, LocalCoordinator, RedisCoordinator
from lpm.bot.engine import Engine, from_consumer
from lpm.bot.handlers import (
    ConversationHandler,
    MessageFilter,
    MessageHandler,
    Registration,
    Registry,
    RingDecision,
    RingHandler,
    SkillFilter,
    SurveyHandler,
    check_handler,
    message_matcher,
    skill_set,
)
from lpm.bot.logs import BotLogger, configure_logging
from lpm.bot.metrics import BotMetrics
from lpm.bot.ops import OpsServer
from lpm.bot.settings import BotSettings
from lpm.bot.tracing import Tracer
from lpm.stores import ConversationStore, FileConversationStore, MemoryConversationStore, store_from_url

__all__ = ["Bot"]

RH = TypeVar("RH", bound=RingHandler)
CH = TypeVar("CH", bound=ConversationHandler)
MH = TypeVar("MH", bound=MessageHandler)
SH = TypeVar("SH", bound=SurveyHandler)
_H = TypeVar("_H", bound=Callable[..., Any])

_log = logging.getLogger("lpm.bot")

#: Seconds the last steps of a stop (agent state, closing) may take each.
STOP_STEP_TIMEOUT = 5.0


class Bot:
    """A bot on one brand user: rings accepted by policy, handlers by decorator, state per
    conversation, graceful stop, health and metrics, and replicas on Redis.

    ::

        bot = Bot("greeter")

        @bot.conversation_started
        async def hello(ctx: ConversationContext) -> None:
            await ctx.reply("Hello! How can I help?")

        @bot.message(re.compile(r"\\bprice"))
        async def prices(ctx: MessageContext) -> None:
            await ctx.reply("Plans start at 10 EUR a month.")

        bot.run()          # or: lpm run my_module:bot

    ``name`` names the bot in logs and in the keys it keeps in a shared store or Redis (two bots
    sharing a Redis keep apart by name; replicas of one bot share it).  ``settings`` are the
    fields of :class:`~lpm.bot.BotSettings`; whatever is not given is read from the environment
    when the bot starts (``LPM_ACCOUNT_ID``, ``LPM_USERNAME``, ``LPM_PASSWORD``,
    ``LPM_CSDS_DOMAIN``...; see :mod:`lpm.bot.settings`).
    """

    def __init__(self, name: str = "bot", **settings: Any) -> None:
        if not isinstance(name, str) or not name or any(c.isspace() or c in ":/" for c in name):
            raise lpm.ConfigurationError("a bot's name must be a non-empty word (no blanks, ':' or '/')")
        self.name = name
        self.settings = BotSettings().merged(**settings)
        self.metrics = BotMetrics()
        self._registry = Registry()
        self._conn: lpm.BrandWebsocketConnection | None = None
        self._routing: lpm.RoutingTaskSubscription | None = None
        self._engine: Engine | None = None
        self._coordinator: Coordinator | None = None
        self._store: ConversationStore | None = None
        self._own_store = False
        self._ops: OpsServer | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._ring_tasks: set[asyncio.Task[None]] = set()
        #: Rings being accepted now (they count against max_conversations already).
        self._accepting_rings = 0
        self._stop_requested: asyncio.Event | None = None
        self._stopping = False
        self._running = False
        self._force = False
        self._resolved: BotSettings | None = None
        self.logger = BotLogger(_log, {"bot": name})

    def __repr__(self) -> str:
        state = "running" if self._running else "stopping" if self._stopping else "stopped"
        return f"<Bot {self.name} {state}>"

    def configure(self, **settings: Any) -> Self:
        """Change settings before the bot starts (None values are ignored); returns the bot."""
        if self._running:
            raise lpm.InvalidStateError("configure() before start(): the bot is running")
        self.settings = self.settings.merged(**settings)
        return self

    # ---------------------------------------------------------------- decorators

    def ring(self, *, skill: SkillFilter = None) -> Callable[[RH], RH]:
        """Decide rings (of ``skill`` only, when given): the handler returns
        :class:`~lpm.bot.RingDecision` ``ACCEPT`` / ``REJECT`` / ``DEFER`` (or True / False).

        Without a ring handler for a ring's skill the bot accepts it; past ``max_conversations``
        it rejects it without asking, and while it stops it leaves rings alone.
        """
        return self._registrar(self._registry.rings, "ring", skill)

    @overload
    def conversation_started(self, handler: CH, /) -> CH: ...
    @overload
    def conversation_started(
        self, handler: None = None, /, *, skill: SkillFilter = None
    ) -> Callable[[CH], CH]: ...
    def conversation_started(self, handler: Any = None, /, *, skill: SkillFilter = None) -> Any:
        """Called once when the bot takes a conversation (a ring accepted, a transfer to it),
        before its first consumer message is handled."""
        return self._register(self._registry.started, "conversation_started", handler, skill)

    def message(self, what: MessageFilter = None, *, skill: SkillFilter = None) -> Callable[[MH], MH]:
        """Handle consumer messages: ``@bot.message("hi")`` (the whole text, any case),
        ``@bot.message(re.compile(r"price"))`` (a search; ``ctx.match``), ``@bot.message(lambda
        m: ...)`` (a predicate on the :class:`lpm.Message`) or ``@bot.message()`` (every message
        that is not a file).  The first handler that matches gets the message."""
        return self._registrar(self._registry.messages, "message", skill, message_matcher(what))

    @overload
    def file(self, handler: MH, /) -> MH: ...
    @overload
    def file(self, handler: None = None, /, *, skill: SkillFilter = None) -> Callable[[MH], MH]: ...
    def file(self, handler: Any = None, /, *, skill: SkillFilter = None) -> Any:
        """Handle files the consumer shares (``ctx.message.relative_path``, ``file_type``,
        ``caption``; ``await ctx.conversation.download_file(path)`` reads one)."""
        return self._register(self._registry.files, "file", handler, skill)

    @overload
    def survey(self, handler: SH, /) -> SH: ...
    @overload
    def survey(self, handler: None = None, /, *, skill: SkillFilter = None) -> Callable[[SH], SH]: ...
    def survey(self, handler: Any = None, /, *, skill: SkillFilter = None) -> Any:
        """Run post-conversation surveys: called when a survey dialog opens (``ctx.message`` is
        None) and for each consumer answer; ``await ctx.close()`` ends the survey."""
        return self._register(self._registry.surveys, "survey", handler, skill)

    @overload
    def conversation_closed(self, handler: CH, /) -> CH: ...
    @overload
    def conversation_closed(
        self, handler: None = None, /, *, skill: SkillFilter = None
    ) -> Callable[[CH], CH]: ...
    def conversation_closed(self, handler: Any = None, /, *, skill: SkillFilter = None) -> Any:
        """Called once when a conversation the bot took part in closes (``ctx.state`` is its
        last state; actions are no longer possible).  The state is deleted afterwards."""
        return self._register(self._registry.closed, "conversation_closed", handler, skill)

    def _register(self, target: list[Registration[Any]], kind: str, handler: Any, skill: SkillFilter) -> Any:
        """``handler`` registered, or (without one) the decorator that registers it."""
        register = self._registrar(target, kind, skill)
        return register(handler) if handler is not None else register

    def _registrar(
        self,
        target: list[Registration[Any]],
        kind: str,
        skill: SkillFilter,
        matcher: Callable[[lpm.Message], tuple[bool, re.Match[str] | None]] | None = None,
    ) -> Callable[[_H], _H]:
        """The decorator that checks a ``@bot.<kind>`` handler and adds it to ``target``."""
        skills = skill_set(skill)

        def register(handler: _H) -> _H:
            check_handler(handler, kind)
            target.append(Registration(handler, skills, matcher))
            return handler

        return register

    # ---------------------------------------------------------------- what the bot is made of

    @property
    def connection(self) -> lpm.BrandWebsocketConnection:
        """The bot's brand connection (once started)."""
        if self._conn is None:
            raise lpm.InvalidStateError("the bot is not started")
        return self._conn

    @property
    def store(self) -> ConversationStore:
        """Where conversation state lives (once started)."""
        if self._store is None:
            raise lpm.InvalidStateError("the bot is not started")
        return self._store

    @property
    def replica_id(self) -> str | None:
        return None if self._coordinator is None else self._coordinator.replica_id

    @property
    def http_url(self) -> str | None:
        """``http://host:port`` of the health and metrics endpoint, when it runs."""
        return None if self._ops is None else self._ops.url

    @property
    def running(self) -> bool:
        return self._running

    def stats(self) -> dict[str, Any]:
        """Counters for tests and reports: handler runs started / finished / in flight, open
        conversations."""
        engine = self._engine
        return {
            "started_runs": engine.started_runs if engine else 0,
            "finished_runs": engine.finished_runs if engine else 0,
            "in_flight": engine.in_flight if engine else 0,
            "open_conversations": engine.open_conversations() if engine and self._conn else 0,
        }

    def readiness(self) -> dict[str, Any]:
        """The checks of ``/readyz``: ``{"ready": bool, "checks": {name: bool}}``."""
        conn = self._conn
        checks: dict[str, bool] = {
            "running": self._running and not self._stopping,
            "connected": conn is not None and conn.state == lpm.ConnectionState.CONNECTED,
            "subscribed": False,
            "agent_online": conn is not None and conn.agent_state == lpm.AgentState.ONLINE,
        }
        if conn is not None:
            default = conn.default_subscription
            subscribed = default is None or default.state == lpm.SubscriptionState.SUBSCRIBED
            if self._resolved is not None and self._resolved.take_conversations:
                routing = self._routing
                subscribed = (
                    subscribed
                    and routing is not None
                    and routing.state == lpm.RoutingSubscriptionState.SUBSCRIBED
                )
            checks["subscribed"] = subscribed
        return {"ready": all(checks.values()), "checks": checks, "replica": self.replica_id}

    @property
    def ready(self) -> bool:
        return bool(self.readiness()["ready"])

    def _make_store(self, settings: BotSettings) -> ConversationStore:
        given = settings.store
        if given is not None and not isinstance(given, str):
            return given
        self._own_store = True
        if given is None:
            if settings.redis_url:
                return store_from_url(settings.redis_url, prefix=f"lpm:bot:{self.name}:state:")
            return MemoryConversationStore()
        store = store_from_url(given, prefix=f"lpm:bot:{self.name}:state:")
        if isinstance(store, FileConversationStore):
            # One directory per bot: two bots pointed at one directory keep apart.
            return FileConversationStore(Path(store.directory) / self.name)
        return store

    # ---------------------------------------------------------------- life cycle

    async def start(self) -> None:
        """Log in, go ONLINE, subscribe to rings, serve conversations; returns once the bot is
        ready (raises the login's error when it is refused or the platform cannot be reached)."""
        if self._running or self._stopping:
            raise lpm.InvalidStateError("the bot is already started")
        settings = self.settings.resolved()
        self._resolved = settings
        self._stop_requested = asyncio.Event()
        self._force = False
        tracer = Tracer(settings.tracing)
        coordinator: Coordinator
        if settings.redis_url:
            coordinator = RedisCoordinator(
                settings.redis_url,
                bot_name=self.name,
                replica_id=settings.replica_id,
                lease=settings.lease or 10.0,
            )
        else:
            coordinator = LocalCoordinator(settings.replica_id)
        self._coordinator = coordinator
        self.logger = BotLogger(_log, {"bot": self.name, "replica": coordinator.replica_id})
        store = self._store = self._make_store(settings)
        options: dict[str, Any] = {
            "account_id": settings.account_id,
            "auth_data": settings.auth_data(),
            **({"csds_domain": settings.csds_domain} if settings.csds_domain else {}),
            **({"ssl": settings.ca_file} if settings.ca_file else {}),
            **settings.connection_options,
        }
        conn = lpm.create_connection(user_type=lpm.UserType.BRAND, **options)
        if not isinstance(conn, lpm.BrandWebsocketConnection):
            raise lpm.ConfigurationError("a bot runs on a brand WebSocket connection")
        self._conn = conn
        engine = self._engine = Engine(
            host=self,
            store=store,
            coordinator=coordinator,
            registry=self._registry,
            metrics=self.metrics,
            tracer=tracer,
            logger=self.logger,
        )
        self.metrics.track_open_conversations(self._open_count)
        self._listen(conn, engine)
        self._running = True
        try:
            await coordinator.start()
            await conn.open()
            await conn.set_agent_state(lpm.AgentState.ONLINE)
            if settings.take_conversations:
                routing = await conn.create_routing_task_subscription()
                routing.on("ring", self._on_ring)
                self._routing = routing
            if settings.http_port is not None:
                ops = OpsServer(
                    host=settings.http_host or "127.0.0.1",
                    port=settings.http_port,
                    readiness=self.readiness,
                    metrics=self.metrics,
                )
                await ops.start()
                self._ops = ops
            if coordinator.replicated:
                self._sweeper = asyncio.create_task(self._sweep_forever(), name="lpm-bot-sweeper")
            engine.kick_all()
        except BaseException:
            self._running = False
            await self._teardown()
            raise
        self.logger.info(
            "bot %s started as %s (replica %s)%s",
            self.name,
            conn.agent_id,
            coordinator.replica_id,
            f"; health and metrics at {self.http_url}" if self._ops else "",
            extra={"event": "started"},
        )

    def _open_count(self) -> int:
        engine = self._engine
        return engine.open_conversations() if engine is not None and self._conn is not None else 0

    def _listen(self, conn: lpm.BrandWebsocketConnection, engine: Engine) -> None:
        def kick(conversation: lpm.Conversation, *_: Any) -> None:
            engine.kick(conversation.conversation_id)

        def on_message(conversation: lpm.Conversation, message: lpm.Message) -> None:
            if from_consumer(message):
                self.metrics.messages_received.inc()
                engine.kick(conversation.conversation_id)

        def on_state(state: str) -> None:
            with contextlib.suppress(ValueError):
                self.metrics.connection_state.state(str(state))

        def on_reconnect() -> None:
            self.metrics.reconnects.inc()
            self.logger.info("connection restored", extra={"event": "reconnect"})
            engine.kick_all()

        def on_error(error: BaseException) -> None:
            self.logger.warning("connection: %s: %s", type(error).__name__, str(error))

        conn.on("conversation", lambda conversation: engine.kick(conversation.conversation_id))
        conn.on("conversation:message", on_message)
        conn.on("conversation:participant-added", kick)
        conn.on("conversation:participant-removed", kick)
        conn.on("conversation:dialog", kick)
        conn.on("conversation:close", kick)
        conn.on("conversation:dialog:close", kick)
        conn.on("state", on_state)
        conn.on("reconnect", on_reconnect)
        conn.on("error", on_error)

    # ---------------------------------------------------------------- rings

    def _on_ring(self, ring: lpm.Ring) -> None:
        task = asyncio.create_task(self._answer_ring(ring), name=f"lpm-bot-ring-{ring.ring_id}")
        self._ring_tasks.add(task)
        task.add_done_callback(self._ring_tasks.discard)

    async def _answer_ring(self, ring: lpm.Ring) -> None:
        engine, coordinator, settings = self._engine, self._coordinator, self._resolved
        if engine is None or coordinator is None or settings is None or self._stopping:
            return
        log = self.logger.bind(conversation_id=ring.conversation_id, ring_id=ring.ring_id)
        limit = settings.max_conversations
        full = limit is not None and engine.open_conversations() + self._accepting_rings >= limit
        self._accepting_rings += 1
        try:
            if full and coordinator.replicated:
                await asyncio.sleep(0.3)  # let a replica with room take it first
            if not await coordinator.claim_ring(ring.ring_id):
                return  # another replica answers it
            if full:
                decision = RingDecision.REJECT
                log.info("at capacity (%s conversations): ring rejected", limit)
            else:
                decision = await self._decide(ring, engine.open_conversations(), limit, log)
            if decision is RingDecision.ACCEPT and not self._stopping and ring.is_waiting:
                claim = await coordinator.claim(ring.conversation_id)
                if not claim.granted:
                    decision = RingDecision.DEFER
                else:
                    try:
                        await ring.accept()
                    except BaseException:
                        await coordinator.release(ring.conversation_id)
                        raise
                    engine.kick(ring.conversation_id)
            elif decision is RingDecision.ACCEPT:
                decision = RingDecision.DEFER
            elif decision is RingDecision.REJECT and ring.is_waiting:
                await ring.reject()
            self.metrics.rings.labels(decision.value).inc()
            log.info("ring %s", decision.value, extra={"event": "ring"})
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("ring not answered: %s: %s", type(exc).__name__, str(exc))
        finally:
            self._accepting_rings -= 1

    async def _decide(
        self, ring: lpm.Ring, open_count: int, limit: int | None, log: BotLogger
    ) -> RingDecision:
        registration = self._registry.first(self._registry.rings, ring.skill_id)
        if registration is None:
            return RingDecision.ACCEPT
        ctx = RingContext(ring, open_conversations=open_count, max_conversations=limit, logger=log)
        started = asyncio.get_running_loop().time()
        try:
            result = await registration.handler(ctx)
        except Exception as exc:
            self.metrics.handler_errors.labels("ring").inc()
            log.error("ring handler %s failed: %s: %s", registration.name, type(exc).__name__, str(exc))
            return RingDecision.DEFER
        finally:
            self.metrics.handler_seconds.labels("ring").observe(asyncio.get_running_loop().time() - started)
        if isinstance(result, RingDecision):
            return result
        if isinstance(result, bool):
            return RingDecision.ACCEPT if result else RingDecision.REJECT
        log.error("ring handler %s returned %r, not a RingDecision: deferred", registration.name, result)
        return RingDecision.DEFER

    # ---------------------------------------------------------------- replicas

    async def _sweep_forever(self) -> None:
        """Replicas: every lease / 3, take over the conversations whose owner died."""
        engine, coordinator, settings = self._engine, self._coordinator, self._resolved
        assert engine is not None and coordinator is not None and settings is not None
        interval = (settings.lease or 10.0) / 3
        while True:
            await asyncio.sleep(interval)
            try:
                for cid in await coordinator.orphans(engine.serving()):
                    engine.kick(cid)
            except Exception as exc:
                self.logger.warning("replica sweep failed: %s: %s", type(exc).__name__, str(exc))

    # ---------------------------------------------------------------- stopping

    def request_stop(self) -> None:
        """Ask :meth:`serve` to stop (what SIGTERM and SIGINT do); a second call stops without
        waiting for the handlers in flight."""
        if self._stop_requested is None:
            return
        if self._stop_requested.is_set():
            self._force = True
        self._stop_requested.set()

    async def stop(self, grace: float | None = None) -> None:
        """Stop: no new rings, handlers in flight finish (``grace`` seconds at most, default the
        ``grace_period`` setting), conversations released to the other replicas, agent AWAY
        (unless other replicas still run), connection closed."""
        if not self._running or self._stopping:
            return
        self._stopping = True
        settings = self._resolved
        wait = grace if grace is not None else (settings.grace_period if settings else 30.0) or 30.0
        if self._force:
            wait = 0.0
        self.logger.info("stopping: handlers in flight get %.1f s", wait, extra={"event": "stopping"})
        cut = 0
        if self._engine is not None:
            self._engine.stop_accepting()
            rings = [t for t in self._ring_tasks if not t.done()]
            if rings:
                await asyncio.wait(rings, timeout=max(wait, 0.01))
            cut = await self._engine.drain(max(wait, 0.0))
        if cut:
            self.logger.warning("%s handler(s) cut off after the grace period", cut)
        await self._teardown()
        self.logger.info("bot %s stopped", self.name, extra={"event": "stopped"})

    async def _teardown(self) -> None:
        """Release everything (safe on a half-started bot)."""
        self._running = False
        self._stopping = True
        try:
            for task in list(self._ring_tasks):
                task.cancel()
            if self._sweeper is not None:
                self._sweeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._sweeper
                self._sweeper = None
            coordinator, conn = self._coordinator, self._conn
            others = 0
            if coordinator is not None and coordinator.replicated:
                try:
                    await coordinator.release_all()
                    await coordinator.retire()  # our heartbeat is gone: then count the others
                    others = await asyncio.wait_for(coordinator.others_alive(), STOP_STEP_TIMEOUT)
                except Exception as exc:
                    self.logger.warning("replica not retired cleanly: %s", str(exc))
            if conn is not None and conn.state == lpm.ConnectionState.CONNECTED and others == 0:
                try:
                    await asyncio.wait_for(conn.set_agent_state(lpm.AgentState.AWAY), STOP_STEP_TIMEOUT)
                except Exception as exc:
                    self.logger.warning("agent state not set to AWAY: %s", str(exc))
            if conn is not None:
                await conn.close()
            if coordinator is not None:
                await coordinator.close()
            if self._store is not None and self._own_store:
                with contextlib.suppress(Exception):
                    await self._store.close()
            if self._ops is not None:
                await self._ops.stop()
                self._ops = None
        finally:
            self._stopping = False
            self._routing = None

    # ---------------------------------------------------------------- running

    async def serve(self) -> None:
        """Start, run until SIGTERM / SIGINT (or :meth:`request_stop`), then stop gracefully."""
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        await self.start()
        assert self._stop_requested is not None
        try:
            for sig in (signal.SIGTERM, signal.SIGINT):
                try:
                    loop.add_signal_handler(sig, self._on_signal, sig)
                    installed.append(sig)
                except (NotImplementedError, RuntimeError):  # not the main thread, or Windows
                    pass
            await self._stop_requested.wait()
        finally:
            try:
                await self.stop()
            finally:
                for sig in installed:
                    loop.remove_signal_handler(sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        self.logger.info("%s received", sig.name, extra={"event": "signal"})
        self.request_stop()
        if self._force and self._engine is not None:
            self._engine.stop_accepting()
            for task in list(self._engine._workers.values()):
                task.cancel()

    def run(self, **settings: Any) -> None:
        """Configure logging (``log_format``), then :meth:`serve` until a signal stops the bot."""
        if settings:
            self.configure(**settings)
        fmt = (self.settings.log_format or os.environ.get("LPM_BOT_LOG_FORMAT") or "text").lower()
        configure_logging("json" if fmt == "json" else "text")
        asyncio.run(self.serve())

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
