"""File-sharing temp URLs: the signature binds method, path and expiry (docs/emulator.md "File
sharing": a bad signature or an expired URL answers 401); download URLs are only issued for files
of the caller's account (400), and to a consumer only for its uploads and the files of its
conversations (403)."""

from __future__ import annotations

from typing import Any

import aiohttp

from lpm.emulator.app import Emulator
from tests.helpers import RawSocket, login, signup

PNG = b"\x89PNG\r\n\x1a\n" + b"0" * 64


def _url(emulator: Emulator, body: dict[str, Any], **query: str) -> str:
    params = {**body["queryParams"], **query}
    return f"{emulator.base_url}{body['relativePath']}?" + "&".join(f"{k}={v}" for k, v in params.items())


async def test_temp_urls_cannot_be_tampered_with(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    sock = await RawSocket.consumer(http, emulator, await signup(http, emulator))
    upload = (await sock.request("ms.GenerateURLForUploadFile", {"fileSize": len(PNG), "fileType": "PNG"}))[
        "body"
    ]
    other = (await sock.request("ms.GenerateURLForUploadFile", {"fileSize": len(PNG), "fileType": "PNG"}))[
        "body"
    ]
    sig = upload["queryParams"]["temp_url_sig"]
    expires = int(upload["queryParams"]["temp_url_expires"])
    forged = [
        _url(emulator, upload, temp_url_sig=("0" if sig[0] != "0" else "1") + sig[1:]),  # tampered signature
        _url(emulator, upload, temp_url_expires=str(expires + 3600)),  # extended lifetime
        _url(emulator, {**upload, "relativePath": other["relativePath"]}),  # another path
        _url(emulator, upload, temp_url_sig=""),
    ]
    for url in forged:
        async with http.put(url, data=PNG) as resp:
            assert resp.status == 401, url
    async with http.put(_url(emulator, upload), data=PNG) as resp:
        assert resp.status == 201
    # The upload URL does not read the file back: GET needs a download URL.
    async with http.get(_url(emulator, upload)) as resp:
        assert resp.status == 401
    download = (
        await sock.request("ms.GenerateURLForDownloadFile", {"relativePath": upload["relativePath"]})
    )["body"]
    async with http.get(_url(emulator, download)) as resp:
        assert resp.status == 200 and await resp.read() == PNG
    async with http.put(_url(emulator, download), data=b"overwrite") as resp:
        assert resp.status == 401
    # Files of another account are not signed for.
    foreign = upload["relativePath"].replace(f"/{emulator.account_id}/", "/99999999/")
    await sock.request("ms.GenerateURLForDownloadFile", {"relativePath": foreign}, expect=400)
    await sock.request("ms.GenerateURLForDownloadFile", {"relativePath": "/v1/../etc/passwd"}, expect=400)
    await sock.close()


async def test_expired_temp_urls_are_refused(http: aiohttp.ClientSession) -> None:
    async with Emulator(file_url_ttl=-1) as emulator:
        sock = await RawSocket.consumer(http, emulator, await signup(http, emulator))
        upload = (
            await sock.request("ms.GenerateURLForUploadFile", {"fileSize": len(PNG), "fileType": "PNG"})
        )["body"]
        async with http.put(_url(emulator, upload), data=PNG) as resp:
            assert resp.status == 401
        await sock.close()


async def test_consumers_get_download_urls_only_for_their_files(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    owner = await RawSocket.consumer(http, emulator, await signup(http, emulator))
    other = await RawSocket.consumer(http, emulator, await signup(http, emulator))
    upload = (await owner.request("ms.GenerateURLForUploadFile", {"fileSize": len(PNG), "fileType": "PNG"}))[
        "body"
    ]
    async with http.put(_url(emulator, upload), data=PNG) as resp:
        assert resp.status == 201
    path = upload["relativePath"]
    # Not yet published: only the uploader may read it.
    await owner.request("ms.GenerateURLForDownloadFile", {"relativePath": path})
    await other.request("ms.GenerateURLForDownloadFile", {"relativePath": path}, expect=403)
    # Published in the owner's conversation: still not the other consumer's business...
    conv = (await owner.request("cm.ConsumerRequestConversation", {"skillId": "11"}))["body"][
        "conversationId"
    ]
    message = {"caption": "receipt", "relativePath": path, "fileType": "PNG"}
    event = {"type": "ContentEvent", "contentType": "hosted/file", "message": message}
    await owner.request("ms.PublishEvent", {"dialogId": conv, "event": event})
    await other.request("ms.GenerateURLForDownloadFile", {"relativePath": path}, expect=403)
    # ...unless it lands in a conversation of theirs (an agent may forward it): then it is.
    bearer = (await login(http, emulator))["bearer"]
    agent = await RawSocket.brand(http, emulator, bearer)
    other_conv = (await other.request("cm.ConsumerRequestConversation", {"skillId": "11"}))["body"]
    join = {"field": "ParticipantsChange", "type": "ADD", "role": "MANAGER"}
    await agent.request(
        ".ams.cm.UpdateConversationField",
        {"conversationId": other_conv["conversationId"], "conversationField": join},
    )
    await agent.request(".ams.ms.PublishEvent", {"dialogId": other_conv["conversationId"], "event": event})
    await other.request("ms.GenerateURLForDownloadFile", {"relativePath": path})
    # The brand side reads the account's files; dot segments are refused.
    await agent.request(".ams.ms.GenerateURLForDownloadFile", {"relativePath": path})
    sneaky = path.replace(f"/{emulator.account_id}/", f"/{emulator.account_id}/../99999999/")
    await agent.request(".ams.ms.GenerateURLForDownloadFile", {"relativePath": sneaky}, expect=400)
    for sock in (owner, other, agent):
        await sock.close()
