"""Small helpers shared by the emulator's faces: responses, untrusted JSON, durability.

Every JSON a client sends (HTTP bodies, WebSocket frames) is decoded by :func:`decode_body`, the
one place that turns hostile input -- malformed, not UTF-8, nested deeper than
:data:`MAX_JSON_DEPTH` -- into :class:`~lpm.protocol.frames.FrameError`, which each face answers
with a 4xx in its own error shape.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, TypeVar

from aiohttp import web
from aiohttp.typedefs import Middleware

from lpm.emulator.world_errors import BadRequest
from lpm.protocol.frames import FrameError, decode_json, encode

if TYPE_CHECKING:
    from lpm.emulator.context import Context

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_D = TypeVar("_D", int, None)

#: Deepest nesting of arrays and objects accepted in a client's JSON (a frame counts as one
#: level).  Far above any real body (structured content nests about ten deep), far below what
#: would make decoding, storing or rendering it recurse out of the interpreter's stack.
MAX_JSON_DEPTH: Final = 64


def decode_body(raw: bytes | str) -> Any:
    """Decode a client's JSON; :class:`FrameError` for malformed JSON, bytes that are not UTF-8,
    and nesting deeper than :data:`MAX_JSON_DEPTH`.

    msgspec raises :class:`RecursionError` (not a decode error) past the interpreter's recursion
    limit, and a body just under it would break later code that recurses over it (encoding it
    for the store or for subscribers): both are refused here, before anything sees the value.
    """
    try:
        value = decode_json(raw)
    except RecursionError:
        raise FrameError("malformed JSON: nested too deeply") from None
    check_depth(raw, value)
    return value


def _brackets(raw: bytes | str) -> int:
    if isinstance(raw, str):
        return raw.count("[") + raw.count("{")
    return raw.count(b"[") + raw.count(b"{")


def check_depth(raw: bytes | str, value: Any) -> None:
    """:class:`FrameError` if ``value`` (decoded from ``raw``) nests deeper than
    :data:`MAX_JSON_DEPTH`."""
    # Fast path for nearly every body: fewer brackets than the limit cannot nest deeper.
    if _brackets(raw) <= MAX_JSON_DEPTH:
        return
    # Iterative, so the check itself cannot exhaust the stack.
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        if depth > MAX_JSON_DEPTH:
            raise FrameError(f"malformed JSON: nested deeper than {MAX_JSON_DEPTH} levels")
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON response encoded with msgspec."""
    return web.Response(body=encode(data), status=status, content_type="application/json", headers=headers)


def agentvep_error(status: int, message: str, internal_code: int = 10) -> web.Response:
    """The agentVep / login-service error body node-agent-sdk reads (``error.internalCode``)."""
    status_name = {400: "BAD_REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND"}.get(
        status, "INTERNAL_SERVER_ERROR"
    )
    body = {
        "error": {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "message": message,
            "internalCode": internal_code,
            "responseStatus": status_name,
        }
    }
    return json_response(body, status)


class NotAJsonObject(ValueError):
    """A request body that is not a JSON object (:attr:`decode_error`: it is not JSON at all)."""

    def __init__(self, decode_error: FrameError | None) -> None:
        super().__init__(str(decode_error) if decode_error else "not a JSON object")
        self.decode_error = decode_error


def query_int(request: web.Request, name: str, default: _D, low: int, high: int | None = None) -> int | _D:
    """The integer query parameter ``name`` (``default`` when absent or empty);
    :class:`~lpm.emulator.world_errors.BadRequest` when it is no integer from ``low`` to ``high``."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"query parameter {name} must be an integer") from None
    if value < low or (high is not None and value > high):
        limit = f"between {low} and {high}" if high is not None else f">= {low}"
        raise BadRequest(f"query parameter {name} must be {limit}")
    return value


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body (``{}`` when empty); :class:`NotAJsonObject` otherwise (each
    face words its own 400)."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        value = decode_body(raw)
    except FrameError as exc:
        raise NotAJsonObject(exc) from None
    if not isinstance(value, dict):
        raise NotAJsonObject(None)
    return value


def durable_responses(ctx: Context) -> Middleware:
    """Middleware: an HTTP answer is sent only once the writes made before it are committed.

    The HTTP twin of the socket writers' wait (see :mod:`lpm.emulator.persistence`, group
    commit): a Send API or REST publish is acknowledged, a login's bearer handed out, only when a
    crash can no longer lose them.  With the in-memory store nothing is ever pending.
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException:
            if ctx.world.store.pending:
                await ctx.world.store.durable()
            raise
        # A prepared response (a WebSocket, a stream) has gone out already: nothing to hold back.
        if ctx.world.store.pending and not response.prepared:
            await ctx.world.store.durable()
        return response

    return middleware
