"""Sans-I/O protocol layer shared by the SDK and the emulator.

Nothing here performs I/O: it knows the wire type names of both dialects (consumer v3 short
names and brand v2.1 ``.ams.*`` names), encodes and decodes frame envelopes, and validates
request bodies into typed msgspec models.  Every wire type name and JSON field spelling used by
the rest of the package lives in this package.
"""

from lpm.protocol.frames import (
    Frame,
    FrameError,
    Notification,
    Request,
    Response,
    decode_frame,
    encode,
)
from lpm.protocol.types import Dialect, Notif, Req

__all__ = [
    "Dialect",
    "Frame",
    "FrameError",
    "Notif",
    "Notification",
    "Req",
    "Request",
    "Response",
    "decode_frame",
    "encode",
]
