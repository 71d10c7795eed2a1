"""Errors the world model raises; every face maps them to its own wire form.

WebSocket faces answer ``{"kind":"resp","code":status,"type":<string response>,"body":message}``;
HTTP faces answer with ``status`` and a JSON error body.  See docs/emulator.md for the table.
"""

from __future__ import annotations


class WorldError(Exception):
    """A request the platform refuses.  ``status`` is the HTTP-style code put on the wire."""

    status = 400

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class BadRequest(WorldError):
    status = 400


class Unauthorized(WorldError):
    status = 401


class Forbidden(WorldError):
    status = 403


class NotFound(WorldError):
    status = 404


class Conflict(WorldError):
    status = 409


class PayloadTooLarge(WorldError):
    status = 413
