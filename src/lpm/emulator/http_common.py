"""Small helpers shared by the emulator's HTTP faces."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from lpm.protocol.frames import FrameError, decode_json, encode


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
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


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body (``{}`` when empty); :class:`NotAJsonObject` otherwise (each
    face words its own 400)."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        value = decode_json(raw)
    except FrameError as exc:
        raise NotAJsonObject(exc) from None
    if not isinstance(value, dict):
        raise NotAJsonObject(None)
    return value


async def read_json(request: web.Request, *, allow_empty: bool = True) -> Any:
    """The request's JSON body (``{}`` when empty and allowed); 400 on malformed JSON."""
    raw = await request.read()
    if not raw.strip():
        if allow_empty:
            return {}
        raise web.HTTPBadRequest(text="request body is required")
    try:
        return decode_json(raw)
    except FrameError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
