"""File sharing: temp-URL generation (GenerateURLForUploadFile / -DownloadFile) and the storage face.

Works like OpenStack Swift temp URLs, as LivePerson's ``swift`` service does: the URL carries
``temp_url_sig`` (HMAC-SHA1 of ``METHOD\\nexpires\\npath`` with a server secret) and
``temp_url_expires`` (epoch seconds).  ``PUT {swift}{relativePath}?...`` stores the bytes (201),
``GET`` returns them; a bad or expired signature answers 401, a body over the 3 MB limit 413.
Download URLs are signed for files of the caller's account only (400), and for a consumer only
for its own uploads and files published (to everyone) in its conversations (403).
Uploads accept JPG, JPEG, PNG and GIF.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from typing import TYPE_CHECKING, Any

from aiohttp import web

from lpm.emulator.world_errors import BadRequest, Forbidden, PayloadTooLarge

if TYPE_CHECKING:
    from lpm.emulator.context import Context
    from lpm.emulator.entities import Actor

UPLOAD_TYPES = frozenset({"JPG", "JPEG", "PNG", "GIF"})
PATH_PREFIX = "/v1/AUTH_async-images"
_SECRET = secrets.token_bytes(32)


def _sign(method: str, expires: int, path: str) -> str:
    return hmac.new(_SECRET, f"{method}\n{expires}\n{path}".encode(), hashlib.sha1).hexdigest()


def _url(ctx: Context, method: str, path: str) -> dict[str, Any]:
    expires = int(ctx.world.clock() + ctx.settings.file_url_ttl)
    return {
        "relativePath": path,
        "queryParams": {"temp_url_sig": _sign(method, expires, path), "temp_url_expires": str(expires)},
    }


def is_file_size(value: Any) -> bool:
    """Whether ``value`` is a ``fileSize`` as the platform takes it: a string of digits (the
    schema's type and the examples' form, ``"1000"``) or a JSON integer (the tutorial's trace
    sends ``1000``).  Anything else (``"1 KB"``, ``12.5``, ``true``) is accepted only when lenient."""
    if isinstance(value, str):
        return value.isascii() and value.isdigit()
    return isinstance(value, int) and not isinstance(value, bool)


def upload_url(ctx: Context, actor: Actor, file_size: int, file_type: str) -> dict[str, Any]:
    """A signed PUT URL for a new file of ``file_type`` (JPG/JPEG/PNG/GIF, at most 3 MB)."""
    kind = file_type.upper()
    if kind not in UPLOAD_TYPES:
        raise BadRequest(
            f"fileType {file_type} is not allowed (use one of {', '.join(sorted(UPLOAD_TYPES))})"
        )
    if file_size <= 0:
        raise BadRequest("fileSize must be positive")
    if file_size > ctx.settings.max_file_size:
        raise PayloadTooLarge(f"fileSize {file_size} exceeds the {ctx.settings.max_file_size} byte limit")
    stamp = time.strftime("%d-%m-%Y_%H-%M-%S-000", time.gmtime(ctx.world.clock()))
    path = f"{PATH_PREFIX}/{actor.account_id}/{actor.id}_uuid_{uuid.uuid4()}_{stamp}.{kind}"
    return _url(ctx, "PUT", path)


def download_url(ctx: Context, actor: Actor, relative_path: str) -> dict[str, Any]:
    """A signed GET URL for a stored file of the caller's account; a consumer only gets one for a
    file it uploaded or that was published in one of its conversations."""
    if not relative_path.startswith(f"{PATH_PREFIX}/{actor.account_id}/") or "/../" in relative_path:
        raise BadRequest(f"relativePath {relative_path} is not a file of account {actor.account_id}")
    if actor.is_consumer and not _consumer_may_read(ctx, actor, relative_path):
        raise Forbidden("relativePath is neither your upload nor a file of your conversations")
    return _url(ctx, "GET", relative_path)


def _consumer_may_read(ctx: Context, actor: Actor, relative_path: str) -> bool:
    if relative_path.startswith(f"{PATH_PREFIX}/{actor.account_id}/{actor.id}_uuid_"):
        return True
    acc = ctx.world.account(actor.account_id)
    for conv in acc.conversations.values():
        if conv.consumer_id != actor.id:
            continue
        for dialog in conv.dialogs:
            for record in acc.events.get(dialog.dialog_id, ()):
                message = record.event.get("message")
                if (
                    isinstance(message, dict)
                    and message.get("relativePath") == relative_path
                    and record.audience == "ALL"
                ):
                    return True
    return False


def _check(ctx: Context, request: web.Request, method: str) -> str:
    path = request.path
    sig = request.query.get("temp_url_sig", "")
    try:
        expires = int(request.query.get("temp_url_expires", ""))
    except ValueError:
        raise web.HTTPUnauthorized(text="missing or invalid temp_url_expires") from None
    if not hmac.compare_digest(sig, _sign(method, expires, path)):
        raise web.HTTPUnauthorized(text="invalid temp_url_sig")
    if expires < ctx.world.clock():
        raise web.HTTPUnauthorized(text="temp URL expired")
    return path


async def put_file(ctx: Context, request: web.Request) -> web.Response:
    path = _check(ctx, request, "PUT")
    if request.content_length is not None and request.content_length > ctx.settings.max_file_size:
        raise web.HTTPRequestEntityTooLarge(
            max_size=ctx.settings.max_file_size, actual_size=request.content_length
        )
    data = bytearray()
    async for chunk in request.content.iter_chunked(65536):
        data += chunk
        if len(data) > ctx.settings.max_file_size:
            raise web.HTTPRequestEntityTooLarge(max_size=ctx.settings.max_file_size, actual_size=len(data))
    ctx.files[path] = bytes(data)
    ctx.world.uploaded.add(path)
    return web.Response(status=201)


async def get_file(ctx: Context, request: web.Request) -> web.Response:
    path = _check(ctx, request, "GET")
    data = ctx.files.get(path)
    if data is None:
        raise web.HTTPNotFound(text="no such file")
    ext = path.rsplit(".", 1)[-1].lower()
    content_type = {"jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "gif": "image/gif"}.get(
        ext, "application/octet-stream"
    )
    return web.Response(body=data, content_type=content_type)
