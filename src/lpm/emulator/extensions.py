"""The emulator's optional faces, each a module with a small interface.

A face module provides ``routes(ctx) -> list[(method, path, handler)]`` where a handler is
``async def handler(ctx, request) -> web.StreamResponse``, ``sink(ctx) -> WorldSink | None`` (a
receiver of world changes, e.g. webhooks), or both; it may also provide ``async def
shutdown(ctx)``.  The core faces (CSDS, agentVep, both WebSockets, file storage)
are wired in :mod:`lpm.emulator.app` directly.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from lpm.emulator.context import Context

Route = tuple[str, str, Callable[["Context", web.Request], Awaitable[web.StreamResponse]]]

FACE_MODULES: list[str] = [
    "lpm.emulator.http_idp",
    "lpm.emulator.http_send_api",
    "lpm.emulator.rest_v1",
    "lpm.emulator.http_shift_status",
    "lpm.emulator.webhook_delivery",
    "lpm.emulator.http_app_install",
    "lpm.emulator.http_history",
    "lpm.emulator.control",
    "lpm.emulator.bench_api",
]


def _modules() -> list[ModuleType]:
    return [importlib.import_module(name) for name in FACE_MODULES]


def routes(ctx: Context) -> list[Route]:
    out: list[Route] = []
    for module in _modules():
        make = getattr(module, "routes", None)
        if make is not None:
            out.extend(make(ctx))
    return out


def sinks(ctx: Context) -> list[Any]:
    out = []
    for module in _modules():
        make = getattr(module, "sink", None)
        sink = make(ctx) if make is not None else None
        if sink is not None:
            out.append(sink)
    return out


async def shutdown(ctx: Context) -> None:
    for module in _modules():
        stop = getattr(module, "shutdown", None)
        if stop is not None:
            await stop(ctx)
