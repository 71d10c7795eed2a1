"""File storage (the ``swift`` service): PUT and GET with the temp-URL query of an upload or
download path (``GenerateURLForUploadFile`` / ``GenerateURLForDownloadFile``).  Shared by every
connection type that can share files."""

from __future__ import annotations

import aiohttp

from lpm.client.auth.http import HttpSettings
from lpm.errors import HttpError


async def upload(
    http: HttpSettings, swift_host: str, relative_path: str, query: dict[str, str], data: bytes
) -> None:
    """Store ``data`` at ``relative_path`` (the query is the temp-URL signature and expiry)."""
    session = await http.client_session()
    try:
        async with session.put(
            http.base_url(swift_host) + relative_path, params=query, data=data, ssl=http.ssl
        ) as resp:
            if resp.status not in (200, 201):
                raise HttpError(f"file upload failed with HTTP {resp.status}", status=resp.status)
    except aiohttp.ClientError as exc:
        # Only the type: the message may quote the URL, whose query is a temporary credential.
        raise HttpError(f"file upload failed: {type(exc).__name__}") from None


async def download(http: HttpSettings, swift_host: str, relative_path: str, query: dict[str, str]) -> bytes:
    """The bytes stored at ``relative_path``."""
    session = await http.client_session()
    try:
        async with session.get(http.base_url(swift_host) + relative_path, params=query, ssl=http.ssl) as resp:
            if resp.status != 200:
                raise HttpError(f"file download failed with HTTP {resp.status}", status=resp.status)
            return await resp.read()
    except aiohttp.ClientError as exc:
        raise HttpError(f"file download failed: {type(exc).__name__}") from None
