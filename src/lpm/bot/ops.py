"""The bot's small HTTP endpoint for its operators (aiohttp, already a dependency of the SDK).

* ``GET /healthz`` -- 200 ``{"status": "ok"}`` while the process runs (a liveness probe);
* ``GET /readyz`` -- 200 when the bot can take work: connected, subscribed (conversations, and
  rings unless ``take_conversations=False``), agent ONLINE and not stopping; else 503.  The body
  says which check failed (a readiness probe; a load balancer's health check);
* ``GET /metrics`` -- the Prometheus text format (:mod:`lpm.bot.metrics`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from lpm.bot.metrics import CONTENT_TYPE_LATEST, BotMetrics

__all__ = ["OpsServer"]


@dataclass(slots=True, kw_only=True, eq=False)
class OpsServer:
    """Serves ``/healthz``, ``/readyz`` and ``/metrics`` on ``host:port`` (0: a free port)."""

    host: str
    port: int
    readiness: Callable[[], dict[str, Any]]
    metrics: BotMetrics
    _runner: web.AppRunner | None = field(default=None, init=False)

    @property
    def url(self) -> str | None:
        """``http://host:port`` once started."""
        if self._runner is None or not self._runner.addresses:
            return None
        address = self._runner.addresses[0]
        return f"http://{self.host}:{address[1]}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics_page)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, request: web.Request) -> web.Response:
        report = self.readiness()
        return web.json_response(report, status=200 if report.get("ready") else 503)

    async def _metrics_page(self, request: web.Request) -> web.Response:
        body = self.metrics.exposition()
        response = web.Response(body=body)
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response
