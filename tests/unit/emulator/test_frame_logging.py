"""``--log-frames`` never logs a secret: file-URL signatures, download tokens, JWTs."""

from __future__ import annotations

import logging

import aiohttp
import pytest

from lpm.emulator.app import Emulator
from lpm.emulator.ws_session import _redact
from tests.helpers import RawSocket, signup


def test_redact_cuts_signatures_tokens_and_jwts_and_keeps_the_rest() -> None:
    frame = (
        b'{"kind":"resp","reqId":"1","body":{"relativePath":"/v1/AUTH_async-images/1/f.PNG",'
        b'"queryParams":{"temp_url_sig":"0123abcd","temp_url_expires":"1700000000"}},'
        b'"url":"https://h/v1/f?temp_url_sig=feedbeef&temp_url_expires=1700000000",'
        b'"token":{"readOtk":"5e5e5e"},"headers":[{"jwt" : "opaque-token"}],"x":"eyJhbGc.eyJzdWI.c2ln"}'
    )
    text = _redact(frame)
    for secret in ("0123abcd", "feedbeef", "5e5e5e", "opaque-token", "eyJhbGc"):
        assert secret not in text
    assert '"temp_url_sig":"<redacted>"' in text and "temp_url_sig=<redacted>&" in text
    # The expiry and the path are no secrets and help reading the log.
    assert '"temp_url_expires":"1700000000"' in text and "/v1/AUTH_async-images/1/f.PNG" in text


async def test_logged_frames_hold_no_file_url_signature(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="lpm.emulator.ws_session")
    async with Emulator(log_frames=True) as emu, aiohttp.ClientSession() as http:
        sock = await RawSocket.consumer(http, emu, await signup(http, emu))
        upload = await sock.request("ms.GenerateURLForUploadFile", {"fileSize": 10, "fileType": "PNG"})
        download = await sock.request(
            "ms.GenerateURLForDownloadFile", {"relativePath": upload["body"]["relativePath"]}
        )
        await sock.close()
    frames = [r.getMessage() for r in caplog.records if r.name == "lpm.emulator.ws_session"]
    assert any("GenerateURLForUploadFile" in f for f in frames), "the frames were logged"
    for answer in (upload, download):
        signature = answer["body"]["queryParams"]["temp_url_sig"]
        assert not any(signature in f for f in frames)
    assert any('"temp_url_sig":"<redacted>"' in f for f in frames)
