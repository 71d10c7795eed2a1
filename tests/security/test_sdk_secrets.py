"""The SDK's public API: refused credentials raise typed errors, and no secret reaches a log line,
an error message or the ``repr``/``str`` of connections, options, conversations and errors."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import jwt
import pytest

import lpm
from lpm.emulator.app import Emulator
from lpm.errors import AuthenticationError, LpmError, TokenExpiredError
from tests.security import forge
from tests.security.faces import APP_ID, APP_SECRET

STATIC_SECRETS = ["agent-password", "bot-password", APP_SECRET, "wrong-password-77", "wrong-secret-77"]


def _options(emulator: Emulator, **options: Any) -> dict[str, Any]:
    return {"account_id": emulator.account_id, "csds_domain": emulator.csds_domain, **options}


def _assert_clean(texts: list[str], secrets: list[str]) -> None:
    for secret in secrets:
        assert secret, "an empty secret would match anything"
        for text in texts:
            assert secret not in text, f"secret leaked into: {text[:200]}"


def _texts_of(error: BaseException) -> list[str]:
    """What the error and every exception chained to it (``__cause__`` *and* ``__context__``, the
    one a traceback prints as "During handling of the above exception...") would show."""
    texts: list[str] = []
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        exc = pending.pop()
        if id(exc) in seen:
            continue
        seen.add(id(exc))
        texts += [str(exc), repr(exc), repr(getattr(exc, "body", None)), repr(exc.args)]
        pending += [e for e in (exc.__cause__, exc.__context__) if e is not None]
    return texts


async def _refused(conn: Any) -> LpmError:
    with pytest.raises(LpmError) as info:
        try:
            await asyncio.wait_for(conn.open(), 30)
        finally:
            await conn.close()
    return info.value


async def test_refused_credentials_raise_typed_errors_without_secrets(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="lpm")
    now = int(time.time())
    private = forge.emulator_keys(emulator)[0]
    claims = {"sub": "c-1", "aud": f"acc:{emulator.account_id}", "iss": "https://idp.liveperson.net"}
    expired = jwt.encode({**claims, "iat": now - 100, "exp": now - 50}, private, algorithm="RS256")
    forged_id_token = forge.variants(emulator, {**claims, "iss": "https://brand.example.com", "iat": now})[
        "wrong-key"
    ]
    bad_bearer = "f" * 64
    once = {"maintain_connection": False}
    cases: list[tuple[dict[str, Any], type[LpmError], int | None]] = [
        (
            {
                "user_type": lpm.UserType.BRAND,
                "auth_data": {"username": "agent", "password": "wrong-password-77"},
            },
            AuthenticationError,
            401,
        ),
        (
            {
                "user_type": lpm.UserType.BRAND,
                "connection_type": lpm.ConnectionType.REST,
                "auth_data": {"username": "bot", "password": "agent-password"},
            },
            AuthenticationError,
            401,
        ),
        ({"user_type": lpm.UserType.CONSUMER, "token": expired}, TokenExpiredError, None),
        (
            {"user_type": lpm.UserType.CONSUMER, "auth_connector_id": "3002", "id_token": forged_id_token},
            AuthenticationError,
            401,
        ),
        (
            {
                "user_type": lpm.UserType.CONSUMER,
                "connection_type": lpm.ConnectionType.SEND_API,
                "auth_data": {
                    "client_id": APP_ID,
                    "client_secret": "wrong-secret-77",
                    "ext_consumer_id": "c-9",
                },
            },
            AuthenticationError,
            401,
        ),
        # A caller's bearer refused at the upgrade cannot be renewed: an authentication failure.
        (
            {"user_type": lpm.UserType.BRAND, "token": bad_bearer, "agent_id": "1001"},
            AuthenticationError,
            401,
        ),
    ]
    texts: list[str] = []
    for options, error_type, status in cases:
        conn = lpm.create_connection(**_options(emulator, **once, **options))
        texts += [repr(conn), str(conn), repr(conn.options)]
        error = await _refused(conn)
        assert isinstance(error, error_type), (options, error)
        assert getattr(error, "status", None) == status, (options, error)
        texts += _texts_of(error)
    texts.append(caplog.text)
    _assert_clean(texts, [*STATIC_SECRETS, expired, forged_id_token, bad_bearer])


async def test_a_full_session_at_debug_level_leaks_nothing(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    agent = lpm.create_connection(
        **_options(
            emulator,
            user_type=lpm.UserType.BRAND,
            auth_data={"username": "agent", "password": "agent-password"},
        )
    )
    consumer = lpm.create_connection(**_options(emulator, user_type=lpm.UserType.CONSUMER))
    sender = lpm.create_connection(
        **_options(
            emulator,
            user_type=lpm.UserType.CONSUMER,
            connection_type=lpm.ConnectionType.SEND_API,
            auth_data={"client_id": APP_ID, "client_secret": APP_SECRET, "ext_consumer_id": "c-42"},
        )
    )
    async with agent, consumer, sender:
        await agent.set_agent_state(lpm.AgentState.ONLINE)
        rings = await agent.create_routing_task_subscription()
        accepted = asyncio.Event()

        async def accept(ring: Any) -> None:
            await ring.accept()
            accepted.set()

        rings.on("ring", accept)
        conversation = await consumer.create_conversation(skill_id="12")  # support: the agent's
        await conversation.send_message("hello")
        await asyncio.wait_for(accepted.wait(), 10)
        other = await sender.create_conversation(skill_id="11")
        await other.send_message("from the connector")
        secrets = [
            "agent-password",
            APP_SECRET,
            await agent.get_token(),
            str(await consumer.get_token()),
        ]
        texts = [
            repr(agent),
            str(agent),
            repr(consumer),
            repr(sender),
            repr(agent.options),
            repr(sender.options),
        ]
        texts += [repr(conversation), str(conversation), repr(other)]
        texts += [repr(c) for c in agent.get_all_known_conversations()]
        try:
            await other.close()
            await other.close()  # closing twice is refused
        except LpmError as exc:
            texts += _texts_of(exc)
        await conversation.close()
    texts.append(caplog.text)
    assert "lpm" in caplog.text  # DEBUG lines were produced...
    _assert_clean(texts, secrets)  # ...and none holds a secret
