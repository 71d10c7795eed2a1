"""Skill shift status (issue 14.4): the emulator's ``GET /api/account/{acc}/shift-status`` (shifts
per skill in the world file, changed through the fault API) and the SDK's poller
(``poll_shift_status=True``, the Node SDK's ``ShiftStatusPoller``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import lpm
from lpm.client.shift_status import (
    FIRST_JITTER,
    JITTER,
    POLL_INTERVAL,
    ShiftStatusEvent,
    ShiftStatusPoller,
    process_shift_status_response,
)
from lpm.emulator.app import Emulator
from lpm.emulator.config import load_toml
from lpm.errors import AuthenticationError, ConfigurationError
from tests.helpers import login

ACC = "12345678"
LATER = 1_900_000_000_000


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(faults=True) as emulator:
        yield emulator


async def get_status(http: aiohttp.ClientSession, emu: Emulator, bearer: str | None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    async with http.get(f"{emu.base_url}/api/account/{ACC}/shift-status", headers=headers) as resp:
        return resp.status, await resp.json()


async def control(http: aiohttp.ClientSession, emu: Emulator, body: dict[str, Any]) -> tuple[int, Any]:
    async with http.post(f"{emu.base_url}/_emulator/shifts", json=body) as resp:
        return resp.status, await resp.json(content_type=None) if resp.status != 404 else None


# ---------------------------------------------------------------- the emulator's endpoint


async def test_endpoint_and_control_api(emu: Emulator, http: aiohttp.ClientSession) -> None:
    bearer = (await login(http, emu))["bearer"]
    status, body = await get_status(http, emu, bearer)
    assert status == 200
    assert body == [
        {"skillId": "11", "onShift": True, "nextOn": None, "nextOff": None},
        {"skillId": "12", "onShift": True, "nextOn": None, "nextOff": None},
    ]
    assert (await get_status(http, emu, None))[0] == 401
    assert (await get_status(http, emu, "not-a-bearer"))[0] == 401

    status, item = await control(http, emu, {"skill_id": "12", "on_shift": False, "next_on": LATER})
    assert status == 200 and item == {"skillId": "12", "onShift": False, "nextOn": LATER, "nextOff": None}
    assert (await get_status(http, emu, bearer))[1][1] == item
    async with http.get(f"{emu.base_url}/_emulator/shifts") as resp:
        assert (await resp.json())[ACC][1] == item
    for bad in (
        {"skill_id": "99", "on_shift": True},
        {"skill_id": "12"},
        {"skill_id": "12", "on_shift": "no"},
        {"skill_id": "12", "on_shift": True, "next_on": -1},
        {"skill_id": "12", "on_shift": True, "color": "red"},
        {"account_id": "1", "skill_id": "12", "on_shift": True},
    ):
        assert (await control(http, emu, bad))[0] == 400, bad


async def test_shifts_from_the_world_file(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    world = tmp_path / "world.toml"
    world.write_text(
        f"""
[[accounts]]
id = "{ACC}"

[[accounts.users]]
user_id = "7"
login_name = "ada"
password = "ada-password"

[[accounts.skills]]
skill_id = "100"
name = "billing"
on_shift = false
next_on = {LATER}
""",
        encoding="utf-8",
    )
    async with Emulator(load_toml(world)) as emulator:
        bearer = (await login(http, emulator, "ada"))["bearer"]
        status, body = await get_status(http, emulator, bearer)
        assert (status, body) == (
            200,
            [{"skillId": "100", "onShift": False, "nextOn": LATER, "nextOff": None}],
        )


async def test_control_api_needs_faults(http: aiohttp.ClientSession) -> None:
    async with Emulator() as emulator:
        assert (await control(http, emulator, {"skill_id": "12", "on_shift": False}))[0] == 404


# ---------------------------------------------------------------- the SDK's poller


def test_option_is_for_brand_connections() -> None:
    with pytest.raises(ConfigurationError, match="poll_shift_status needs a brand"):
        lpm.create_connection(account_id=ACC, user_type=lpm.UserType.CONSUMER, poll_shift_status=True)
    with pytest.raises(ConfigurationError, match="poll_shift_status must be True or False"):
        lpm.create_connection(
            account_id=ACC,
            user_type=lpm.UserType.BRAND,
            auth_data={"username": "a", "password": "b"},
            poll_shift_status="yes",
        )
    conn = lpm.create_connection(
        account_id=ACC,
        user_type=lpm.UserType.BRAND,
        auth_data={"username": "a", "password": "b"},
        poll_shift_status=True,
    )
    assert isinstance(conn, lpm.BrandWebsocketConnection) and conn.shift_status_poller is not None


@pytest.mark.parametrize("connection_type", [lpm.ConnectionType.WEBSOCKET, lpm.ConnectionType.REST])
async def test_poller_updates_skills_and_emits_shift_changes(
    emu: Emulator, http: aiohttp.ClientSession, connection_type: lpm.ConnectionType
) -> None:
    conn = lpm.create_connection(
        account_id=ACC,
        user_type=lpm.UserType.BRAND,
        connection_type=connection_type,
        auth_data={"username": "agent", "password": "agent-password"},
        csds_domain=emu.csds_domain,
        poll_shift_status=True,
        create_default_subscription=False,
    )
    assert isinstance(conn, lpm.BrandWebsocketConnection | lpm.BrandRestConnection)
    poller = conn.shift_status_poller
    assert poller is not None
    data: list[list[dict[str, Any]]] = []
    responses: list[dict[str, Any]] = []
    changes: list[tuple[str, dict[str, Any]]] = []
    polled = asyncio.Event()
    poller.on(ShiftStatusEvent.DATA, data.append)
    poller.on(ShiftStatusEvent.DATA, lambda _items: polled.set())
    conn.on(ShiftStatusEvent.RESPONSE, responses.append)
    conn.on(ShiftStatusEvent.SKILL_ENTERED_OFF_HOURS, lambda item: changes.append(("off", item)))
    conn.on(ShiftStatusEvent.SKILL_ENTERED_WORK_HOURS, lambda item: changes.append(("on", item)))
    await conn.open()
    try:
        await asyncio.wait_for(polled.wait(), 5)  # the first poll runs at once
        assert poller.running and responses and responses[0]["end"] >= responses[0]["start"]
        skill = conn.conversations.skill("12")
        assert (skill.on_shift, skill.next_on, skill.is_in_off_hours()) == (True, None, False)
        assert changes == []  # the first status only sets what is known

        await control(http, emu, {"skill_id": "12", "on_shift": False, "next_on": LATER})
        await poller.poll()
        assert (skill.on_shift, skill.next_on, skill.is_in_off_hours()) == (False, LATER, True)
        assert changes == [("off", {"skillId": "12", "onShift": False, "nextOn": LATER, "nextOff": None})]
        await control(http, emu, {"skill_id": "12", "on_shift": True, "next_off": LATER})
        await poller.poll()
        assert [c[0] for c in changes] == ["off", "on"] and skill.next_off == LATER
    finally:
        await conn.close()
    assert not poller.running


async def test_a_401_renews_the_token_and_retries_once(emu: Emulator, http: aiohttp.ClientSession) -> None:
    conn = lpm.create_connection(
        account_id=ACC,
        user_type=lpm.UserType.BRAND,
        connection_type=lpm.ConnectionType.REST,
        auth_data={"username": "agent", "password": "agent-password"},
        csds_domain=emu.csds_domain,
    )
    assert isinstance(conn, lpm.BrandRestConnection)
    await conn.open()
    regenerated: list[Any] = []
    conn.token_maintainer.on("token-regenerated", regenerated.append)
    try:
        async with http.post(f"{emu.base_url}/_emulator/tokens/expire", json={"user_id": "agent"}) as resp:
            assert resp.status == 200
        items = await ShiftStatusPoller(conn).poll()
        assert [i["skillId"] for i in items] == ["11", "12"] and len(regenerated) == 1
    finally:
        await conn.close()


class FakeHost:
    """What the poller needs of a connection, with scripted HTTP answers."""

    def __init__(self, answers: list[Any]) -> None:
        self.account_id = ACC
        self.answers = answers
        self.invalidated: list[str] = []
        self.emitted: list[tuple[str, tuple[Any, ...]]] = []
        self.errors: list[BaseException] = []
        self.http = self
        self.token_maintainer = self
        self.conversations = self
        self.skills: dict[str, lpm.Skill] = {}

    # http
    def base_url(self, host: str) -> str:
        return f"https://{host}"

    async def request_json(self, method: str, url: str, **options: Any) -> Any:
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    # token maintainer
    async def get_token(self) -> str:
        return "bearer"

    async def on_token_invalid(self, source: str) -> None:
        self.invalidated.append(source)

    # cache
    def skill(self, skill_id: str) -> lpm.Skill:
        return self.skills.setdefault(skill_id, lpm.Skill(skill_id))

    async def lookup_service(self, service: str) -> str:
        return "msg.example.com"

    def emit(self, name: str, *args: Any) -> bool:
        self.emitted.append((name, args))
        return True

    def report_error(self, error: BaseException) -> None:
        self.errors.append(error)


async def test_only_one_retry_after_a_401() -> None:
    host = FakeHost([AuthenticationError("401", status=401), AuthenticationError("401", status=401)])
    with pytest.raises(AuthenticationError):
        await ShiftStatusPoller(host).poll()  # type: ignore[arg-type]
    assert host.invalidated == ["shift-status"] and host.answers == []


async def test_polls_once_a_minute_with_jitter() -> None:
    sleeps: list[float] = []
    done = asyncio.Event()

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 3:
            done.set()
            await asyncio.Event().wait()

    host = FakeHost(
        [[{"skillId": "1", "onShift": True}], RuntimeError("boom"), [{"skillId": "1", "onShift": False}]]
    )
    poller = ShiftStatusPoller(host, jitter=lambda: 1.0, sleep=sleep)  # type: ignore[arg-type]
    poller.start()
    poller.start()  # idempotent
    await asyncio.wait_for(done.wait(), 5)
    await poller.stop()
    # 60 s less up to 99.9 % before the second poll, less up to 10 % later.
    assert sleeps == pytest.approx(
        [POLL_INTERVAL * (1 - FIRST_JITTER), POLL_INTERVAL * (1 - JITTER), POLL_INTERVAL * (1 - JITTER)]
    )
    names = [name for name, _ in host.emitted]
    assert names == [
        ShiftStatusEvent.RESPONSE,  # re-emitted from the poller
        ShiftStatusEvent.ERROR,
        ShiftStatusEvent.RESPONSE,
        ShiftStatusEvent.SKILL_ENTERED_OFF_HOURS,
    ]
    assert [type(e).__name__ for e in host.errors] == ["RuntimeError"]  # a failed poll is reported
    assert poller.polls == 2 and not poller.running


def test_process_shift_status_response_skips_items_without_a_skill() -> None:
    host = FakeHost([])
    process_shift_status_response(host, [{"onShift": True}, "x", {"skillId": 5, "onShift": False}])  # type: ignore[arg-type]
    assert host.skills["5"].on_shift is False and host.emitted == []
