"""The browser (JSONP) forms of CSDS and of the IdP's signup: scripts calling the page's callback
with the JSON forms' data; callback names validated."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

import aiohttp
import jwt
import pytest

from lpm.emulator.app import Emulator

ACC = "12345678"
SCRIPT = re.compile(r"/\*\*/([A-Za-z_$][\w$.]*)\((.*)\);", re.DOTALL)


def call_of(text: str) -> tuple[str, Any]:
    """(callback, argument) of a JSONP script."""
    match = SCRIPT.fullmatch(text)
    assert match is not None, text
    return match.group(1), json.loads(match.group(2))


async def get(http: aiohttp.ClientSession, url: str) -> tuple[int, str, str]:
    async with http.get(url) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), await resp.text()


async def test_lpcsds_script_matches_the_json_form(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    for service in ("asyncMessagingEnt", "idp", "msgHist", "accountConfigReadWrite"):
        status, kind, text = await get(
            http,
            f"{emulator.base_url}/csdr/account/{ACC}/service/{service}/baseURI.lpCsds?version=1.0&cb=domainCallback",
        )
        assert status == 200 and kind.startswith("application/javascript")
        name, data = call_of(text)
        async with http.get(f"{emulator.base_url}/api/account/{ACC}/service/{service}/baseURI.json") as resp:
            same = (await resp.json())["baseURI"]
        assert name == "domainCallback" and data == {"ResultSet": {"lpData": [{"lpServer": same}]}}
    # Unknown account or service: the callback still runs, with an lpCallError.
    for url in (
        "/csdr/account/99999999/service/idp/baseURI.lpCsds?version=1.0&cb=cb",
        f"/csdr/account/{ACC}/service/nothing/baseURI.lpCsds?version=1.0&cb=cb",
    ):
        status, _, text = await get(http, emulator.base_url + url)
        name, data = call_of(text)
        assert (
            status == 200
            and isinstance(data["ResultSet"]["lpCallError"], str)
            and "lpData" not in data["ResultSet"]
        )


async def test_signup_script_gives_a_working_jwt(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    async with http.get(
        f"{emulator.base_url}/api/account/{ACC}/signup.jsonp?callback=jQuery36_17000"
    ) as resp:
        assert resp.status == 200 and resp.content_type == "application/javascript"
        assert resp.headers["Cache-Control"] == "no-store"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        name, data = call_of(await resp.text())
    assert name == "jQuery36_17000" and set(data) == {"jwt"}
    consumer_id = jwt.decode(data["jwt"], options={"verify_signature": False})["sub"]
    assert emulator.world.accounts[ACC].consumers[consumer_id].kind == "anonymous"
    # The token opens a consumer socket.
    async with http.ws_connect(
        f"{emulator.ws_base_url}/ws_api/account/{ACC}/messaging/consumer?v=3",
        headers={"Authorization": f"jwt {data['jwt']}"},
    ) as ws:
        await ws.send_json({"kind": "req", "id": "1", "type": "GetClock"})
        assert (await ws.receive_json())["code"] == 200
    status, _, text = await get(http, f"{emulator.base_url}/api/account/99999999/signup.jsonp?callback=cb")
    assert status == 404 and call_of(text)[1]["error"]["internalErrorCode"] == 4040


@pytest.mark.parametrize(
    "callback",
    ["", "alert(1)", "a b", "x;y", "1abc", "a..b", "a.", '"quoted"', "a" * 129, "<script>", "a-b"],
)
async def test_bad_callback_names_are_refused(
    emulator: Emulator, http: aiohttp.ClientSession, callback: str
) -> None:
    for url, parameter in (
        (f"/csdr/account/{ACC}/service/idp/baseURI.lpCsds?version=1.0", "cb"),
        (f"/api/account/{ACC}/signup.jsonp", "callback"),
    ):
        joiner = "&" if "?" in url else "?"
        status, kind, text = await get(http, f"{emulator.base_url}{url}{joiner}{parameter}={quote(callback)}")
        assert status == 400 and kind.startswith("application/json"), (url, callback, text)
        assert "javascript" not in kind and "(" not in text.split(":", 1)[0]


async def test_missing_and_wrong_parameter_names(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    status, _, _ = await get(
        http, f"{emulator.base_url}/csdr/account/{ACC}/service/idp/baseURI.lpCsds?version=1.0"
    )
    assert status == 400
    status, _, _ = await get(http, f"{emulator.base_url}/api/account/{ACC}/signup.jsonp?cb=x")
    assert status == 400
    accounts_before = len(emulator.world.accounts[ACC].consumers)
    status, _, _ = await get(http, f"{emulator.base_url}/api/account/{ACC}/signup.jsonp?callback=a(b)")
    assert status == 400 and len(emulator.world.accounts[ACC].consumers) == accounts_before  # nothing made
    status, _, text = await get(
        http, f"{emulator.base_url}/api/account/{ACC}/signup.jsonp?callback=lp.cb.$x_1"
    )
    assert status == 200 and call_of(text)[0] == "lp.cb.$x_1"
