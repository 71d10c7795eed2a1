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


class _Inbound(msgspec.Struct):
    """What a client reads of any frame in one pass: the envelope's fields, the body left as
    JSON (:class:`msgspec.Raw`, validated but not built) so that each body is decoded once,
    straight into the structs of whoever reads it."""

    kind: Any = None
    type: Any = None
    body: msgspec.Raw = msgspec.Raw(b"null")
    reqId: Any = None
    code: Any = None


_inbound_decoder = msgspec.json.Decoder(_Inbound)


class InboundNotification:
    """A notification received by a client: its ``type`` and its body as received (``raw``,
    JSON bytes).  ``body`` decodes them into Python objects on first use (the same value
    :func:`decode_frame` gives), so the typed decoders of :mod:`lpm.protocol.notifications`
    read the JSON once and nobody pays for dicts nobody reads."""

    __slots__ = ("_body", "raw", "type")

    _UNSET: Any = object()

    def __init__(self, type_: str, raw: msgspec.Raw) -> None:
        self.type = type_
        self.raw = raw
        self._body: Any = InboundNotification._UNSET

    @property
    def body(self) -> Any:
        body = self._body
        if body is InboundNotification._UNSET:
            body = self._body = _decoder.decode(self.raw)
        return body

    def __repr__(self) -> str:
        return f"<InboundNotification {self.type}>"


def decode_inbound(data: str | bytes, *, raw_response_body: bool = False) -> Frame | InboundNotification:
    """:func:`decode_frame` for a client: the same frames and errors, but a notification comes
    as an :class:`InboundNotification` whose body is not built into Python objects yet.

    ``raw_response_body``: a response's body too stays JSON (:class:`msgspec.Raw`), for whoever
    matches it to its request to decode (see :func:`materialize_body`).
    """
    try:
        head = _inbound_decoder.decode(data)
    except (msgspec.DecodeError, RecursionError):
        head = None
    if head is not None:
        kind = head.kind
        if kind == "notification" and isinstance(head.type, str):
            return InboundNotification(head.type, head.body)
        if kind == "resp":
            code = head.code
            if isinstance(code, str) and code.upper() == "OK":
                code = 200  # the Send API answers with the string "OK"
            if isinstance(code, int) and not isinstance(code, bool):
                req_id = head.reqId
                if req_id is None or isinstance(req_id, str):
                    body = head.body if raw_response_body else _decoder.decode(head.body)
                    return Response(reqId=req_id, code=code, type=str(head.type or ""), body=body)
    # Anything else (requests, errors, unusual shapes): the reference decoder says what it is.
    return decode_frame(data)


def materialize_body(response: Response) -> Response:
    """``response`` with its body as Python objects (decoded if still JSON); returns it."""
    if type(response.body) is msgspec.Raw:
        response.body = _decoder.decode(response.body)
    return response


def json_value(value: Any) -> Any:
    """``value`` as Python objects: decoded if it is still JSON (:class:`msgspec.Raw`)."""
    return _decoder.decode(value) if type(value) is msgspec.Raw else value


def encode(frame: Any) -> bytes:
    """Encode a frame (or any msgspec-encodable value) to compact JSON bytes."""
    return _encoder.encode(frame)


def decode_json(data: str | bytes) -> Any:
    """Decode arbitrary JSON (HTTP bodies), raising :class:`FrameError` on malformed input."""
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise FrameError(f"malformed JSON: {exc}") from None
