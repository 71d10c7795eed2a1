"""The emulator refuses what the platform refuses, unless the world is lenient (issue 14.3).

Strict by default: a skill's name in place of its id, a ``?v=`` other than the documented ones
on the WebSocket paths, a PID (or login name) in place of an agent's user id in ``agentUserId`` /
``agentId``, a ``fileSize`` that is not a whole number of bytes, a hosted-file message naming a
file never uploaded.  ``lenient = true`` in the world file's ``[settings]`` (``Emulator(lenient=
True)``) accepts them.  The documented forms (old ids, numeric user ids, ``fileSize`` as a string
of digits or a number, ``v=3`` / ``v=2`` / ``v=2.1``) are accepted either way; the published
requests of the corpus are all accepted by the strict emulator
(``tests/fidelity/test_published_shapes.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from lpm.emulator.app import Emulator
from lpm.emulator.config import load_toml
from tests.helpers import RawSocket, login, signup

ACC = "12345678"


@pytest.fixture
async def strict() -> AsyncIterator[Emulator]:
    async with Emulator() as emu:
        yield emu


@pytest.fixture
async def lenient() -> AsyncIterator[Emulator]:
    async with Emulator(lenient=True) as emu:
        yield emu


async def upgrade_status(http: aiohttp.ClientSession, url: str) -> int:
    try:
        ws = await http.ws_connect(url)
    except aiohttp.WSServerHandshakeError as exc:
        return exc.status
    await ws.close()
    return 101


async def test_lenient_is_off_by_default_and_a_world_file_setting(tmp_path: Path) -> None:
    assert Emulator().settings.lenient is False
    world = tmp_path / "world.toml"
    world.write_text('[settings]\nlenient = true\n\n[[accounts]]\nid = "55555555"\n', encoding="utf-8")
    spec = load_toml(world)
    assert spec.settings.lenient is True
    async with Emulator(spec) as emu:
        assert emu.world.lenient is True


@pytest.mark.parametrize(
    ("path", "version", "status"),
    [
        ("consumer", "3", 101),
        ("consumer", "2", 400),
        ("consumer", "3.0", 400),
        ("brand", "2", 101),
        ("brand", "2.1", 101),
        ("brand", "3", 400),
        ("brand", None, 101),
    ],
)
async def test_websocket_api_versions(
    strict: Emulator, http: aiohttp.ClientSession, path: str, version: str | None, status: int
) -> None:
    query = f"?v={version}" if version is not None else ""
    if path == "consumer":
        jwt = await signup(http, strict)
        url = f"{strict.ws_base_url}/ws_api/account/{ACC}/messaging/consumer/{jwt}{query}"
    else:
        bearer = (await login(http, strict))["bearer"]
        url = f"{strict.ws_base_url}/ws_api/account/{ACC}/messaging/brand/{bearer}{query}"
    assert await upgrade_status(http, url) == status


async def test_any_version_when_lenient(lenient: Emulator, http: aiohttp.ClientSession) -> None:
    jwt = await signup(http, lenient)
    url = f"{lenient.ws_base_url}/ws_api/account/{ACC}/messaging/consumer/{jwt}?v=9"
    assert await upgrade_status(http, url) == 101


async def test_a_refused_version_is_answered_before_the_token_is_checked(
    strict: Emulator, http: aiohttp.ClientSession
) -> None:
    url = f"{strict.ws_base_url}/ws_api/account/{ACC}/messaging/brand/not-a-bearer?v=7"
    try:
        await http.ws_connect(url)
    except aiohttp.WSServerHandshakeError as exc:
        assert exc.status == 400
    else:  # pragma: no cover
        raise AssertionError("upgraded")


async def consumer_socket(http: aiohttp.ClientSession, emu: Emulator) -> RawSocket:
    return await RawSocket.consumer(http, emu, await signup(http, emu))


async def test_skill_names_are_refused(strict: Emulator, http: aiohttp.ClientSession) -> None:
    sock = await consumer_socket(http, strict)
    resp = await sock.request("cm.ConsumerRequestConversation", {"skillId": "sales"}, expect=400)
    assert resp["type"] == "StringResponse" and "unknown skill sales" in resp["body"]
    assert "sales is 11" in resp["body"]  # the message says which id to use
    ok = await sock.request("cm.ConsumerRequestConversation", {"skillId": "11"})
    conv_id = ok["body"]["conversationId"]
    assert strict.world.accounts[ACC].conversations[conv_id].skill_id == "11"
    await sock.close()


async def test_skill_names_when_lenient(lenient: Emulator, http: aiohttp.ClientSession) -> None:
    sock = await consumer_socket(http, lenient)
    ok = await sock.request("cm.ConsumerRequestConversation", {"skillId": "sales"})
    assert lenient.world.accounts[ACC].conversations[ok["body"]["conversationId"]].skill_id == "11"
    await sock.close()


async def agent_socket(http: aiohttp.ClientSession, emu: Emulator) -> tuple[RawSocket, dict[str, Any]]:
    info = await login(http, emu)
    return await RawSocket.brand(http, emu, info["bearer"]), info


@pytest.mark.parametrize("form", ["old id", "user id", "pid", "login"])
async def test_agent_user_ids(strict: Emulator, http: aiohttp.ClientSession, form: str) -> None:
    sock, info = await agent_socket(http, strict)
    ids = {
        "old id": f"{ACC}.{info['config']['userId']}",
        "user id": info["config"]["userId"],
        "pid": info["config"]["userPid"],
        "login": "agent",
    }
    accepted = form in ("old id", "user id")
    state = {"channels": ["MESSAGING"], "agentUserId": ids[form], "availability": "ONLINE"}
    resp = await sock.request(".ams.routing.SetAgentState", state, expect=202 if accepted else 400)
    routing = {"brandId": ACC, "agentId": ids[form], "channelType": "MESSAGING"}
    resp2 = await sock.request(".ams.routing.SubscribeRoutingTasks", routing, expect=200 if accepted else 400)
    if not accepted:
        for refused in (resp, resp2):
            assert refused["type"] == ".ReqBody$StringResp"
            assert f"must be the agent's user id {ACC}.1001" in refused["body"]
    await sock.close()


async def test_agent_pids_when_lenient(lenient: Emulator, http: aiohttp.ClientSession) -> None:
    sock, info = await agent_socket(http, lenient)
    pid = info["config"]["userPid"]
    await sock.request(
        ".ams.routing.SetAgentState",
        {"channels": ["MESSAGING"], "agentUserId": pid, "availability": "ONLINE"},
        expect=202,
    )
    await sock.request(".ams.routing.SubscribeAgentsState", {"brandId": ACC, "agentId": pid})
    await sock.close()


@pytest.mark.parametrize(
    ("size", "accepted"),
    [("1000", True), (1000, True), ("1 KB", False), (1000.5, False), (" 1000", False), (True, False)],
)
async def test_file_sizes(strict: Emulator, http: aiohttp.ClientSession, size: Any, accepted: bool) -> None:
    sock = await consumer_socket(http, strict)
    resp = await sock.request(
        "ms.GenerateURLForUploadFile", {"fileSize": size, "fileType": "PNG"}, expect=200 if accepted else 400
    )
    assert resp["type"] == ("ms.BaseGenerateURLResponse" if accepted else "StringResponse")
    await sock.close()


async def test_odd_file_sizes_when_lenient(lenient: Emulator, http: aiohttp.ClientSession) -> None:
    sock = await consumer_socket(http, lenient)
    await sock.request("ms.GenerateURLForUploadFile", {"fileSize": 1000.0, "fileType": "PNG"})
    await sock.close()


def hosted_file(conv_id: str, path: str) -> dict[str, Any]:
    return {
        "dialogId": conv_id,
        "event": {
            "type": "ContentEvent",
            "contentType": "hosted/file",
            "message": {"caption": "logo", "relativePath": path, "fileType": "PNG"},
        },
    }


@pytest.mark.parametrize("mode", ["strict", "lenient"])
async def test_hosted_files_must_have_been_uploaded(http: aiohttp.ClientSession, mode: str) -> None:
    async with Emulator(lenient=mode == "lenient") as emu:
        sock = await consumer_socket(http, emu)
        conv_id = (await sock.request("cm.ConsumerRequestConversation", {"skillId": "11"}))["body"][
            "conversationId"
        ]
        never = f"/v1/AUTH_async-images/{ACC}/never-uploaded.PNG"
        resp = await sock.request("ms.PublishEvent", hosted_file(conv_id, never), expect=None)
        if mode == "strict":
            assert resp["code"] == 400 and "was never uploaded" in resp["body"]
        else:
            assert resp["code"] == 200
        # An uploaded file is accepted in both modes.
        url = (await sock.request("ms.GenerateURLForUploadFile", {"fileSize": "8", "fileType": "PNG"}))[
            "body"
        ]
        async with http.put(
            f"{emu.base_url}{url['relativePath']}", params=url["queryParams"], data=b"\x89PNG\r\n\x1a\n"
        ) as put:
            assert put.status == 201
        await sock.request("ms.PublishEvent", hosted_file(conv_id, url["relativePath"]))
        await sock.close()
