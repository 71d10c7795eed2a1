"""File storage (the ``swift`` service): PUT and GET with the temp-URL query of an upload or
download path (``GenerateURLForUploadFile`` / ``GenerateURLForDownloadFile``).  Shared by every
connection type that can share files.

Errors carry only aiohttp's error *type*, and are raised outside the ``except`` blocks so that
aiohttp's error is not even their context: its text quotes the URL, whose query (the temp-URL
signature) is a temporary credential.
"""

from __future__ import annotations

import aiohttp

from lpm.client.auth.http import HttpSettings, read_bounded
from lpm.errors import HttpError


async def upload(
    http: HttpSettings, swift_host: str, relative_path: str, query: dict[str, str], data: bytes
) -> None:
    """Store ``data`` at ``relative_path`` (the query is the temp-URL signature and expiry)."""
    session = await http.client_session()
    failure: HttpError | None = None
    try:
        async with session.put(
            http.base_url(swift_host) + relative_path, params=query, data=data, ssl=http.ssl
        ) as resp:
            if resp.status not in (200, 201):
                failure = HttpError(f"file upload failed with HTTP {resp.status}", status=resp.status)
    except aiohttp.ClientError as exc:
        failure = HttpError(f"file upload failed: {type(exc).__name__}")
    if failure is not None:
        raise failure


async def download(http: HttpSettings, swift_host: str, relative_path: str, query: dict[str, str]) -> bytes:
    """The bytes stored at ``relative_path`` (at most ``http.max_body_size`` of them)."""
    session = await http.client_session()
    failure: HttpError | None = None
    try:
        async with session.get(http.base_url(swift_host) + relative_path, params=query, ssl=http.ssl) as resp:
            if resp.status == 200:
                return await read_bounded(resp, http.max_body_size, "file download")
            failure = HttpError(f"file download failed with HTTP {resp.status}", status=resp.status)
    except aiohttp.ClientError as exc:
        failure = HttpError(f"file download failed: {type(exc).__name__}")
    raise failure
