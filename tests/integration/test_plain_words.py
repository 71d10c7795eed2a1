"""Plain words and consistent names (issue 12.5): what a stranger reads when something is off."""

from __future__ import annotations

import enum

import pytest

import lpm
from lpm.emulator.app import Emulator
from lpm.enums import parse_enum
from lpm.errors import ConfigurationError, NotConnectedError
from lpm.protocol.types import request_display_name

ACC = "12345678"


def bot(emulator: Emulator, **options: object) -> lpm.Connection:
    return lpm.create_connection(
        **{
            "account_id": ACC,
            "user_type": lpm.UserType.BRAND,
            "auth_data": {"username": "bot", "password": "bot-password"},
            "csds_domain": emulator.csds_domain,
            **options,
        }
    )


async def test_a_request_before_open_says_call_open_first(emulator: Emulator) -> None:
    conn = bot(emulator)
    with pytest.raises(NotConnectedError, match=r"never opened: call open\(\) first"):
        await conn.send("GetClock", {})
    await conn.close()
    with pytest.raises(NotConnectedError, match="the connection is closed"):
        await conn.send("GetClock", {})


def test_requests_are_named_one_way_whatever_the_dialect() -> None:
    assert request_display_name(".ams.ms.PublishEvent") == "ms.PublishEvent"
    assert request_display_name("ms.PublishEvent") == "ms.PublishEvent"
    assert request_display_name(".GetClock") == "GetClock"
    assert request_display_name(".ams.aam.SubscribeExConversations") == "cqm.SubscribeExConversations"
    assert request_display_name("my.Custom") == "my.Custom"


async def test_a_brand_timeout_names_the_request_canonically(emulator: Emulator) -> None:
    conn = bot(emulator, response_timeout=0.3)
    await conn.open()
    try:
        async with (
            __import__("aiohttp").ClientSession() as http,
            http.post(f"{emulator.base_url}/_emulator/requests", json={"count": 1, "action": "drop"}) as resp,
        ):
            assert resp.status == 200, await resp.text()
        with pytest.raises(lpm.RequestTimeoutError) as info:
            await conn.send(".GetClock", {})
        assert str(info.value).startswith("no response to GetClock within")
    finally:
        await conn.close()


@pytest.mark.parametrize(
    ("auth_data", "says"),
    [({"username": "bot"}, "no password"), ({"password": "x"}, "no username")],
)
def test_missing_credentials_say_what_is_missing(auth_data: dict[str, str], says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        lpm.create_connection(account_id=ACC, user_type=lpm.UserType.BRAND, auth_data=auth_data)


async def test_an_integer_account_id_is_accepted(emulator: Emulator) -> None:
    conn = bot(emulator, account_id=int(ACC))
    assert conn.account_id == ACC
    await conn.open()
    await conn.close()


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, None, ""])
def test_an_unusable_account_id_says_why(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="account_id"):
        lpm.create_connection(account_id=bad, user_type=lpm.UserType.CONSUMER)  # type: ignore[arg-type]


class Mode(enum.StrEnum):
    FAST = "fast"
    SLOW_START = "slow-start"
    SLOW = "Slow"


def test_enum_arguments_accept_the_member_its_value_or_its_name_in_any_case() -> None:
    assert parse_enum(lpm.UserType, "BRAND", "user_type") is lpm.UserType.BRAND
    assert parse_enum(lpm.UserType, "brand", "user_type") is lpm.UserType.BRAND
    assert parse_enum(lpm.UserType, lpm.UserType.CONSUMER, "user_type") is lpm.UserType.CONSUMER
    assert parse_enum(lpm.AgentState, "back_soon", "agent_state") is lpm.AgentState.BACK_SOON
    assert parse_enum(Mode, "SLOW_START", "mode") is Mode.SLOW_START
    assert parse_enum(Mode, "slow-start", "mode") is Mode.SLOW_START
    # "slow" folds to both SLOW's name and its value only: unambiguous.
    assert parse_enum(Mode, "slow", "mode") is Mode.SLOW
    with pytest.raises(ConfigurationError, match=r"invalid mode: 'medium' \(use Mode.FAST, Mode.SLOW_START"):
        parse_enum(Mode, "medium", "mode")
    with pytest.raises(ConfigurationError):
        parse_enum(Mode, 3, "mode")


async def test_set_agent_state_accepts_any_spelling(emulator: Emulator) -> None:
    conn = bot(emulator)
    await conn.open()
    try:
        await conn.set_agent_state("online")  # type: ignore[attr-defined]
        assert conn.agent_state == lpm.AgentState.ONLINE  # type: ignore[attr-defined]
        with pytest.raises(ConfigurationError, match="agent_state"):
            await conn.set_agent_state("sleepy")  # type: ignore[attr-defined]
    finally:
        await conn.close()
