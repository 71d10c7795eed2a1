"""Frame envelopes (``req`` / ``resp`` / ``notification``) and their JSON codec.

Bodies stay untyped here (``Any``): a body is validated against its model only by the party
that knows what the type means (see :mod:`lpm.protocol.requests`).  ``encode`` writes compact
UTF-8 JSON with msgspec.
"""

from __future__ import annotations

from typing import Any

import msgspec

_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()


class FrameError(ValueError):
    """A frame that is not valid JSON or not a valid envelope.  ``req_id`` is set when known."""

    def __init__(self, message: str, req_id: str | None = None) -> None:
        super().__init__(message)
        self.req_id = req_id


class Request(msgspec.Struct, omit_defaults=True, tag_field="kind", tag="req"):
    """A client request: ``{"kind":"req","id","type","body","headers","metadata"}``."""

    id: str
    type: str
    body: Any = None
    headers: Any = None
    metadata: Any = None
    encodedMetadata: Any = None


class Response(msgspec.Struct, omit_defaults=True, tag_field="kind", tag="resp"):
    """A server response correlated to a request by ``reqId`` (``null`` when the request could
    not be read, e.g. malformed JSON)."""

    reqId: str | None
    code: int
    type: str
    body: Any = None


class Notification(msgspec.Struct, tag_field="kind", tag="notification"):
    """A server push; subscription-bound ones carry ``body.subscriptionId``."""

    type: str
    body: Any = None


Frame = Request | Response | Notification


def _id_str(value: Any) -> str | None:
    # Clients send numbers as ids in practice; the server echoes them back as strings.
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise FrameError("request id must be a string or a number")
    return str(value)


def decode_frame(data: str | bytes) -> Frame:
    """Decode one WebSocket text frame.

    Raises :class:`FrameError` for invalid JSON (nested too deeply included), a non-object, an
    unknown ``kind`` or a missing mandatory field.  A frame without ``kind`` but with an ``id``
    is taken as a request, as the schema makes ``kind`` optional.
    """
    try:
        raw = _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise FrameError(f"malformed JSON: {exc}") from None
    except RecursionError:
        # Nested deeper than the decoder goes: hostile input, refused like malformed JSON.
        raise FrameError("malformed JSON: nested too deeply") from None
    if not isinstance(raw, dict):
        raise FrameError("a frame must be a JSON object")
    kind = raw.get("kind")
    if kind == "req" or (kind is None and "id" in raw):
        req_id = _id_str(raw.get("id"))
        if req_id is None or not 1 <= len(req_id) <= 64:
            raise FrameError("request id must be 1-64 characters", req_id)
        type_ = raw.get("type")
        if not isinstance(type_, str) or not type_:
            raise FrameError("request type is missing", req_id)
        return Request(
            id=req_id,
            type=type_,
            body=raw.get("body"),
            headers=raw.get("headers"),
            metadata=raw.get("metadata"),
            encodedMetadata=raw.get("encodedMetadata"),
        )
    if kind == "resp":
        code = raw.get("code")
        type_ = raw.get("type")
        if isinstance(code, str) and code.upper() == "OK":
            code = 200  # the Send API answers with the string "OK"
        if not isinstance(code, int) or isinstance(code, bool):
            raise FrameError("response code must be an integer")
        return Response(
            reqId=_id_str(raw.get("reqId")), code=code, type=str(type_ or ""), body=raw.get("body")
        )
    if kind == "notification":
        type_ = raw.get("type")
        if not isinstance(type_, str):
            raise FrameError("notification type is missing")
        return Notification(type=type_, body=raw.get("body"))
    raise FrameError(f"unknown frame kind {kind!r}")


def encode(frame: Any) -> bytes:
    """Encode a frame (or any msgspec-encodable value) to compact JSON bytes."""
    return _encoder.encode(frame)


def decode_json(data: str | bytes) -> Any:
    """Decode arbitrary JSON (HTTP bodies), raising :class:`FrameError` on malformed input."""
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise FrameError(f"malformed JSON: {exc}") from None
