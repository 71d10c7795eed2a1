"""The first ``open()`` of every connection type fails fast on what cannot fix itself, and gives
up on transient failures after ``open_timeout`` (issue 12).

Each case asserts the error's type and that it came within its bound.  ``maintain_connection``
stays at its default (True): it governs only what happens after the first success.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

import lpm
from lpm.emulator.app import Emulator
from lpm.errors import (
    AccountNotFoundError,
    AuthenticationError,
    ConfigurationError,
    ConnectFailedError,
    HttpError,
)
from tests.security.faces import APP_ID

ACC = "12345678"
#: A permanent failure must come at once: well before any retry would (the first waits 5 s).
AT_ONCE = 3.0
SHORT_OPEN = {"open_timeout": 1.5, "reconnect_schedule": (0.2,)}


def brand(emulator: Emulator | None, csds_domain: str | None = None, **options: Any) -> lpm.Connection:
    return lpm.create_connection(
        **{
            "account_id": ACC,
            "user_type": lpm.UserType.BRAND,
            "auth_data": {"username": "bot", "password": "bot-password"},
            "csds_domain": csds_domain or (emulator.csds_domain if emulator else None),
            **options,
        }
    )


def consumer(emulator: Emulator, **options: Any) -> lpm.Connection:
    return lpm.create_connection(
        **{
            "account_id": ACC,
            "user_type": lpm.UserType.CONSUMER,
            "csds_domain": emulator.csds_domain,
            **options,
        }
    )


async def timed_failure(conn: lpm.Connection, expected: type[BaseException]) -> tuple[BaseException, float]:
    """Open ``conn`` expecting ``expected``; returns the error and the seconds it took."""
    start = time.monotonic()
    try:
        with pytest.raises(expected) as info:
            await asyncio.wait_for(conn.open(), 60)
    finally:
        await conn.close()
    return info.value, time.monotonic() - start


async def arm(emulator: Emulator, target: str, **fault: Any) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{emulator.base_url}/_emulator/http", json={"target": target, **fault}) as resp,
    ):
        assert resp.status == 200, await resp.text()


@pytest.fixture
async def dead_domain() -> AsyncIterator[str]:
    """``http://127.0.0.1:<port>`` where nothing listens (connections are refused)."""
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    yield f"http://127.0.0.1:{port}"


# ---------------------------------------------------------------- permanent: at once


@pytest.mark.parametrize("connection_type", [lpm.ConnectionType.WEBSOCKET, lpm.ConnectionType.REST])
async def test_a_wrong_password_raises_authentication_error_at_once(
    emulator: Emulator, connection_type: lpm.ConnectionType
) -> None:
    conn = brand(
        emulator,
        connection_type=connection_type,
        auth_data={"username": "bot", "password": "wrong-password"},
    )
    error, seconds = await timed_failure(conn, AuthenticationError)
    assert error.status == 401  # type: ignore[attr-defined]
    assert seconds < AT_ONCE
    assert conn.state == lpm.ConnectionState.CLOSED


@pytest.mark.parametrize("user_type", [lpm.UserType.BRAND, lpm.UserType.CONSUMER])
async def test_an_unknown_account_raises_account_not_found_at_once(
    emulator: Emulator, user_type: lpm.UserType
) -> None:
    options: dict[str, Any] = {"account_id": "99999999"}
    conn = brand(emulator, **options) if user_type == lpm.UserType.BRAND else consumer(emulator, **options)
    error, seconds = await timed_failure(conn, AccountNotFoundError)
    assert error.account_id == "99999999"  # type: ignore[attr-defined]
    assert "check the account id" in str(error)
    assert seconds < AT_ONCE


async def test_a_refused_jwt_raises_authentication_error_at_once(emulator: Emulator) -> None:
    conn = consumer(emulator, auth_connector_id="3002", id_token="eyJhbGciOiJSUzI1NiJ9.e30.c2lnbmF0dXJl")
    _, seconds = await timed_failure(conn, AuthenticationError)
    assert seconds < AT_ONCE


async def test_a_refused_send_api_secret_raises_authentication_error_at_once(emulator: Emulator) -> None:
    conn = lpm.create_connection(
        account_id=ACC,
        user_type=lpm.UserType.CONSUMER,
        connection_type=lpm.ConnectionType.SEND_API,
        auth_data={"client_id": APP_ID, "client_secret": "wrong-secret", "ext_consumer_id": "c-1"},
        csds_domain=emulator.csds_domain,
    )
    _, seconds = await timed_failure(conn, AuthenticationError)
    assert seconds < AT_ONCE


def test_invalid_options_raise_configuration_error_before_any_io() -> None:
    for bad in (-1, 0, "30", True):
        with pytest.raises(ConfigurationError, match="open_timeout"):
            brand(None, csds_domain="http://127.0.0.1:1", open_timeout=bad)


# ---------------------------------------------------------------- transient: until open_timeout


@pytest.mark.parametrize("connection_type", [lpm.ConnectionType.WEBSOCKET, lpm.ConnectionType.REST])
async def test_an_unreachable_csds_gives_up_after_open_timeout(
    dead_domain: str, connection_type: lpm.ConnectionType
) -> None:
    conn = brand(None, csds_domain=dead_domain, connection_type=connection_type, **SHORT_OPEN)
    error, seconds = await timed_failure(conn, ConnectFailedError)
    assert "open_timeout (1.5 s)" in str(error)
    assert isinstance(error.__cause__, HttpError)  # the last failure, named in the message too
    assert 1.5 <= seconds < 1.5 + AT_ONCE


async def test_a_consumer_with_an_unreachable_csds_gives_up_after_open_timeout(dead_domain: str) -> None:
    conn = lpm.create_connection(
        account_id=ACC, user_type=lpm.UserType.CONSUMER, csds_domain=dead_domain, **SHORT_OPEN
    )
    _, seconds = await timed_failure(conn, ConnectFailedError)
    assert 1.5 <= seconds < 1.5 + AT_ONCE


async def test_a_login_answering_503_gives_up_after_open_timeout(emulator: Emulator) -> None:
    await arm(emulator, "login", count=1000, action="refuse", status=503)
    error, seconds = await timed_failure(brand(emulator, **SHORT_OPEN), ConnectFailedError)
    assert isinstance(error.__cause__, HttpError) and error.__cause__.status == 503
    assert 1.5 <= seconds < 1.5 + AT_ONCE


async def test_transient_failures_that_clear_in_time_are_waited_out(emulator: Emulator) -> None:
    await arm(emulator, "csds", count=2, action="refuse", status=503)
    conn = brand(emulator, open_timeout=30, reconnect_schedule=(0.1,))
    try:
        await asyncio.wait_for(conn.open(), 30)
        assert conn.state == lpm.ConnectionState.CONNECTED
    finally:
        await conn.close()


async def test_open_timeout_none_waits_as_long_as_it_takes(emulator: Emulator) -> None:
    await arm(emulator, "csds", count=5, action="refuse", status=503)
    conn = brand(emulator, open_timeout=None, reconnect_schedule=(0.05,))
    try:
        await asyncio.wait_for(conn.open(), 30)
        assert conn.state == lpm.ConnectionState.CONNECTED
    finally:
        await conn.close()
