"""The SDK's auth side calls (lpm.client.auth) against the emulator over real loopback HTTP:
CSDS cache, agentVep login/refresh/logout, TokenMaintainer, consumer IdP flows and sentinel."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest

from lpm.client.auth import CSDS as SHARED_CSDS
from lpm.client.auth import agent_login, idp
from lpm.client.auth.agent_login import AgentSession
from lpm.client.auth.csds import CSDSCache
from lpm.client.auth.http import HttpSettings, RetryPolicy, redact
from lpm.client.auth.tokens import (
    MaintainerState,
    StaticTokenMaintainer,
    TokenMaintainer,
    TokenMaintainerProtocol,
)
from lpm.emulator.app import Emulator
from lpm.errors import AuthenticationError, ConfigurationError, HttpError, InvalidStateError

ACC = "12345678"
UNAUTH_CONNECTOR = "3001"
AUTH_CONNECTOR = "3002"
BRAND_ISS = "https://brand.example.com"
AGENT = {"username": "agent", "password": "agent-password"}
BOT_KEYS = {
    "username": "bot",
    "appKey": "bot-app-key",
    "secret": "bot-app-secret",
    "accessToken": "bot-access-token",
    "accessTokenSecret": "bot-access-token-secret",
}
APP_ID, APP_SECRET = "lpm-emulator-app", "lpm-emulator-app-secret"
#: Retries shrunk so tests do not wait LivePerson's real seconds.
FAST_RETRY = RetryPolicy(max_retries=3, min_wait=0.01, login_min_wait=0.02, max_wait=0.05)
FAST_SCHEDULE = (0.01, 0.02)


# ---------------------------------------------------------------- helpers


@pytest.fixture
async def settings(emulator: Emulator) -> AsyncIterator[HttpSettings]:
    """HttpSettings pointed at the emulator with a private session and shrunk retries."""
    async with HttpSettings(emulator.csds_domain, retry=FAST_RETRY) as s:
        yield s


async def arm(http: aiohttp.ClientSession, emu: Emulator, target: str, **fault: Any) -> None:
    """Arm an HTTP fault (``/_emulator/http``)."""
    async with http.post(f"{emu.base_url}/_emulator/http", json={"target": target, **fault}) as resp:
        assert resp.status == 200, await resp.text()


async def emulator_state(http: aiohttp.ClientSession, emu: Emulator) -> dict[str, Any]:
    async with http.get(f"{emu.base_url}/_emulator/state") as resp:
        assert resp.status == 200
        body: dict[str, Any] = await resp.json()
        return body


async def expire_agent(http: aiohttp.ClientSession, emu: Emulator, user_id: str = "1001") -> None:
    async with http.post(f"{emu.base_url}/_emulator/tokens/expire", json={"user_id": user_id}) as resp:
        assert resp.status == 200, await resp.text()


def host(emu: Emulator) -> str:
    """What CSDS answers for every service of the emulator."""
    return emu.public_host


def brand_key_file(emu: Emulator) -> str:
    key_file = emu.world.accounts[ACC].connectors[AUTH_CONNECTOR].private_key_file
    assert key_file is not None
    return key_file


def claims_of(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def maintainer_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("lpm-token") and not t.done()]


class Recorder:
    """Collects the events of an emitter."""

    def __init__(self, emitter: Any, *names: str) -> None:
        self.events: dict[str, list[Any]] = {name: [] for name in names}
        for name in names:
            emitter.on(name, lambda payload=None, _n=name: self.events[_n].append(payload))

    def __getitem__(self, name: str) -> list[Any]:
        return self.events[name]


def maintainer(emu: Emulator, s: HttpSettings, **kwargs: Any) -> TokenMaintainer:
    options: dict[str, Any] = {
        "account_id": ACC,
        "auth_data": AGENT,
        "http": s,
        "csds": CSDSCache(),
        "retry_schedule": FAST_SCHEDULE,
    }
    options.update(kwargs)
    return TokenMaintainer(**options)


# ---------------------------------------------------------------- HttpSettings


def test_http_settings_schemes_and_hosts() -> None:
    tls = HttpSettings("127.0.0.1:8443")
    assert (tls.base_url("h:1"), tls.ws_url("h:1")) == ("https://h:1", "wss://h:1")
    assert tls.csds_host(ACC) == "127.0.0.1:8443"
    plain = HttpSettings("http://127.0.0.1:8080/")
    assert (plain.base_url("h:1"), plain.ws_url("h:1")) == ("http://h:1", "ws://h:1")
    assert plain.csds_host(ACC) == "127.0.0.1:8080"
    assert HttpSettings("https://x.example").base_url("y") == "https://y"
    default = HttpSettings()
    assert default.csds_host(ACC) == "adminlogin.liveperson.net"
    assert default.csds_host("le12345") == "hc1n.dev.lprnd.net"
    assert HttpSettings("http://[::1]:80").csds_host(ACC) == "[::1]:80"
    for bad in ("ftp://x", "x/path", "http://", "user@x", "x:port"):
        with pytest.raises(ConfigurationError):
            HttpSettings(bad)


def test_http_settings_ssl_options(tmp_path: Path) -> None:
    context = ssl.create_default_context()
    assert HttpSettings(ssl=context).ssl is context
    assert HttpSettings(ssl=False).ssl is False
    assert HttpSettings(ssl=True).ssl is True
    assert HttpSettings().ssl is True
    with pytest.raises(ConfigurationError, match="does not exist"):
        HttpSettings(ssl=str(tmp_path / "missing.pem"))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    with pytest.raises(ConfigurationError, match="cannot load CA file"):
        HttpSettings(ssl=garbage)


def test_retry_policy_honours_retry_after_with_floors() -> None:
    policy = RetryPolicy()
    assert policy.wait(None, login=False) == 1.0
    assert policy.wait(0.2, login=False) == 1.0
    assert policy.wait(3.0, login=False) == 3.0
    assert policy.wait(1.0, login=True) == 5.0
    assert policy.wait(10_000.0, login=False) == policy.max_wait


def test_redact_removes_secrets_and_tokens() -> None:
    token = jwt.encode({"sub": "x"}, "k" * 32, algorithm="HS256")
    text = redact(
        f"password=hunter22 secret: 's3cr3t' Bearer abc.def {token} and my-own-secret",
        ["my-own-secret"],
    )
    for leaked in ("hunter22", "s3cr3t", "abc.def", token, "my-own-secret"):
        assert leaked not in text


def _assert_unchained(error: BaseException) -> None:
    """aiohttp's error is neither the cause nor the context of ours (its text quotes the URL,
    which may carry a credential); its type is named in our message instead."""
    assert error.__cause__ is None and error.__context__ is None
    assert "Error" in str(error)


async def test_tls_emulator_with_ca_file() -> None:
    async with Emulator(tls=True) as emu:
        assert emu.ca_file is not None
        async with HttpSettings(emu.csds_domain, ssl=emu.ca_file) as s:
            assert s.scheme == "https"
            cache = CSDSCache()
            agentvep = await cache.lookup(ACC, "agentVep", http=s)
            session = await agent_login.login(s, agentvep, ACC, AGENT)
            assert session.user_id == "1001"
            await agent_login.refresh(s, agentvep, session)
        # Without the emulator's CA the certificate is refused: an HttpError, never aiohttp's own.
        async with HttpSettings(emu.csds_domain) as untrusting:
            with pytest.raises(HttpError) as info:
                await CSDSCache().lookup(ACC, "agentVep", http=untrusting)
            _assert_unchained(info.value)
            assert "certificate" in str(info.value).lower()


async def test_transport_failures_become_http_errors(
    emulator: Emulator, settings: HttpSettings, http: aiohttp.ClientSession
) -> None:
    # Nothing listens on a port we just released.
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    async with HttpSettings(f"http://127.0.0.1:{port}") as dead:
        with pytest.raises(HttpError) as info:
            await CSDSCache().lookup(ACC, "idp", http=dead)
        assert info.value.status is None
        _assert_unchained(info.value)
    # A server slower than the timeout.
    await arm(http, emulator, "csds", action="delay", delay=0.4)
    async with HttpSettings(emulator.csds_domain, timeout=0.1) as impatient:
        with pytest.raises(HttpError, match="timed out"):
            await CSDSCache().lookup(ACC, "idp", http=impatient)
    # A dropped connection.  (A POST: aiohttp itself retries an idempotent GET once when the
    # server disconnects before answering, which hides a single dropped CSDS lookup.)
    await arm(http, emulator, "login", action="drop")
    with pytest.raises(HttpError) as info:
        await agent_login.login(settings, host(emulator), ACC, AGENT)
    assert not isinstance(info.value, AuthenticationError)
    _assert_unchained(info.value)


# ---------------------------------------------------------------- CSDS


async def test_csds_lookup_all_and_cache_hits(
    emulator: Emulator, settings: HttpSettings, http: aiohttp.ClientSession
) -> None:
    cache = CSDSCache()
    assert await cache.lookup(ACC, "agentVep", http=settings) == host(emulator)
    services = await cache.all(ACC, http=settings)
    assert services["facadeMsg"] == services["idp"] == services["asyncMessagingEnt"] == host(emulator)
    assert cache.requests == 1
    # CSDS now refuses: the cache still answers, and the fault stays armed (nobody asked CSDS).
    await arm(http, emulator, "csds", action="refuse", status=503)
    assert await cache.lookup(ACC, "sentinel", http=settings) == host(emulator)
    assert cache.requests == 1
    assert (await emulator_state(http, emulator))["faults"]["http"]["csds"][0]["count"] == 1
    cache.clear()
    with pytest.raises(HttpError) as info:
        await cache.lookup(ACC, "sentinel", http=settings)
    assert info.value.status == 503
    # The failure was not cached.
    assert await cache.lookup(ACC, "sentinel", http=settings) == host(emulator)
    assert cache.requests == 3


async def test_csds_single_flight(
    emulator: Emulator, settings: HttpSettings, http: aiohttp.ClientSession
) -> None:
    cache = CSDSCache()
    # A slow CSDS makes sure the lookups overlap.
    await arm(http, emulator, "csds", action="delay", delay=0.2)
    hosts = await asyncio.gather(
        *(cache.lookup(ACC, name, http=settings) for name in ("idp", "agentVep") * 5)
    )
    assert set(hosts) == {host(emulator)}
    assert cache.requests == 1
    # A shared failure reaches every waiter, once, and is not cached.
    cache.clear()
    await arm(http, emulator, "csds", action="delay", delay=0.2)
    await arm(http, emulator, "csds", action="refuse", status=500)
    # The delay fault is consumed first; spend it on a lookup of its own.
    await CSDSCache().lookup(ACC, "idp", http=settings)
    results = await asyncio.gather(
        *(cache.lookup(ACC, "idp", http=settings) for _ in range(4)), return_exceptions=True
    )
    assert all(isinstance(r, HttpError) and r.status == 500 for r in results)
    assert cache.requests == 2
    assert await cache.lookup(ACC, "idp", http=settings) == host(emulator)


async def test_csds_cancelled_leader_hands_over(
    emulator: Emulator, settings: HttpSettings, http: aiohttp.ClientSession
) -> None:
    cache = CSDSCache()
    await arm(http, emulator, "csds", action="delay", delay=0.3)
    leader = asyncio.create_task(cache.lookup(ACC, "idp", http=settings))
    await asyncio.sleep(0.05)
    follower = asyncio.create_task(cache.lookup(ACC, "idp", http=settings))
    await asyncio.sleep(0.05)
    leader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leader
    assert await follower == host(emulator)
    assert cache.requests == 2


async def test_csds_overrides_ttl_and_errors(emulator: Emulator, settings: HttpSettings) -> None:
    now = [1000.0]
    cache = CSDSCache(domains={"idp": "idp.example:1"}, clock=lambda: now[0])
    # An overridden service needs no CSDS request at all.
    assert await cache.lookup(ACC, "idp", http=settings) == "idp.example:1"
    assert cache.requests == 0
    assert await cache.lookup(ACC, "idp", http=settings, domains={"idp": "other:2"}) == "other:2"
    services = await cache.all(ACC, http=settings, domains={"facadeMsg": "proxy:3"})
    assert services["idp"] == "idp.example:1"
    assert services["facadeMsg"] == "proxy:3"
    assert services["agentVep"] == host(emulator)
    assert cache.requests == 1
    now[0] += 599
    await cache.lookup(ACC, "agentVep", http=settings)
    assert cache.requests == 1
    now[0] += 2  # past the 600 s TTL
    await cache.lookup(ACC, "agentVep", http=settings)
    assert cache.requests == 2
    with pytest.raises(HttpError, match="no service 'nope'"):
        await cache.lookup(ACC, "nope", http=settings)
    with pytest.raises(HttpError, match="does not know account 99999999") as info:
        await cache.lookup("99999999", "agentVep", http=settings)
    assert info.value.status == 401
    with pytest.raises(ConfigurationError):
        await cache.lookup("", "idp", http=settings)
    assert isinstance(SHARED_CSDS, CSDSCache)


# ---------------------------------------------------------------- agentVep


async def test_login_with_password(emulator: Emulator, settings: HttpSettings) -> None:
    session = await agent_login.login(settings, host(emulator), ACC, AGENT)
    assert session.user_id == "1001"
    assert session.agent_id == f"{ACC}.1001"
    assert session.user_pid
    assert session.csrf and session.session_id and session.refreshable
    assert session.session_ttl == 8 * 3600
    assert emulator.world.session(session.token) is not None
    # Secrets stay out of repr (and so out of logged objects).
    for secret in (session.token, session.csrf, session.session_id):
        assert secret not in repr(session)


async def test_login_with_app_keys_both_spellings(emulator: Emulator, settings: HttpSettings) -> None:
    bot = await agent_login.login(settings, host(emulator), ACC, BOT_KEYS)
    assert bot.user_id == "2001"
    snake = {
        "username": "agent",
        "app_key": "agent-app-key",
        "secret": "agent-app-secret",
        "access_token": "agent-access-token",
        "access_token_secret": "agent-access-token-secret",
    }
    agent = await agent_login.login(settings, host(emulator), ACC, snake)
    assert agent.user_id == "1001"


@pytest.mark.parametrize(
    ("auth_data", "message"),
    [
        ({"username": "bot", "appKey": "k"}, "appKey provided, but missing secret"),
        ({"username": "bot", "app_key": "k", "secret": "s"}, "appKey provided, but missing accessToken"),
        (
            {"username": "bot", "appKey": "k", "secret": "s", "accessToken": "t"},
            "appKey provided, but missing accessTokenSecret",
        ),
        ({"username": "bot"}, "Invalid Login Information"),
        ({"password": "x"}, "Invalid Login Information"),
        ({"jwt": "dummy", "assertion": "<saml/>"}, "SAML assertion login is not supported"),
    ],
)
async def test_login_validation_before_io(auth_data: dict[str, str], message: str) -> None:
    # Nothing listens at this address: validation must fail before any request.
    async with HttpSettings("http://127.0.0.1:9") as s:
        with pytest.raises(ConfigurationError, match=message):
            await agent_login.login(s, "127.0.0.1:9", ACC, auth_data)


async def test_login_refused(emulator: Emulator, settings: HttpSettings) -> None:
    with pytest.raises(AuthenticationError) as info:
        await agent_login.login(
            settings, host(emulator), ACC, {"username": "agent", "password": "wrong-pw-123"}
        )
    assert info.value.status == 401
    assert "Bad credentials" in str(info.value)
    assert "wrong-pw-123" not in str(info.value)
    with pytest.raises(AuthenticationError) as info:
        await agent_login.login(settings, host(emulator), "99999999", AGENT)
    assert info.value.status == 401


async def test_login_429_is_retried(
    emulator: Emulator, settings: HttpSettings, http: aiohttp.ClientSession
) -> None:
    await arm(http, emulator, "login", action="refuse", status=429, count=1)
    started = time.monotonic()
    session = await agent_login.login(settings, host(emulator), ACC, AGENT)
    assert session.user_id == "1001"
    assert time.monotonic() - started >= FAST_RETRY.login_min_wait
    # Retries are bounded: more 429s than retries surface as an HttpError.
    await arm(http, emulator, "login", action="refuse", status=429, count=FAST_RETRY.max_retries + 1)
    with pytest.raises(HttpError) as info:
        await agent_login.login(settings, host(emulator), ACC, AGENT)
    assert info.value.status == 429
    assert (await emulator_state(http, emulator))["faults"]["http"] == {}
    # A server error is not a refusal of the credentials.
    await arm(http, emulator, "login", action="refuse", status=503)
    with pytest.raises(HttpError) as info:
        await agent_login.login(settings, host(emulator), ACC, AGENT)
    assert info.value.status == 503
    assert not isinstance(info.value, AuthenticationError)


async def test_login_429_honours_retry_after(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    policy = RetryPolicy(max_retries=1, min_wait=0.0, login_min_wait=0.0, max_wait=5.0)
    await arm(http, emulator, "login", action="refuse", status=429)
    async with HttpSettings(emulator.csds_domain, retry=policy) as s:
        started = time.monotonic()
        await agent_login.login(s, host(emulator), ACC, AGENT)
        assert time.monotonic() - started >= 1.0  # the emulator says Retry-After: 1


async def test_refresh_and_expiry(
    emulator: Emulator, settings: HttpSettings, http: aiohttp.ClientSession
) -> None:
    session = await agent_login.login(settings, host(emulator), ACC, AGENT)
    await agent_login.refresh(settings, host(emulator), session)
    await expire_agent(http, emulator)
    with pytest.raises(AuthenticationError) as info:
        await agent_login.refresh(settings, host(emulator), session)
    assert info.value.status == 401
    with pytest.raises(ConfigurationError):
        await agent_login.refresh(settings, host(emulator), AgentSession(account_id=ACC, token="t"))


async def test_logout_ends_the_session(emulator: Emulator, settings: HttpSettings) -> None:
    session = await agent_login.login(settings, host(emulator), ACC, AGENT)
    await agent_login.logout(settings, host(emulator), session)
    assert emulator.world.session(session.token) is None
    with pytest.raises(AuthenticationError) as info:
        await agent_login.refresh(settings, host(emulator), session)
    assert info.value.status == 401


async def test_shared_session_keeps_each_agents_cookie(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    # The fixture's session has a cookie jar that stores Session_id for the IP host: the second
    # login overwrites the first's cookie there, yet each refresh must send its own.
    async with HttpSettings(emulator.csds_domain, session=http) as shared:
        agent = await agent_login.login(shared, host(emulator), ACC, AGENT)
        bot = await agent_login.login(shared, host(emulator), ACC, BOT_KEYS)
        await agent_login.refresh(shared, host(emulator), agent)
        await agent_login.refresh(shared, host(emulator), bot)
        await agent_login.logout(shared, host(emulator), agent)
        assert emulator.world.session(agent.token) is None
        assert emulator.world.session(bot.token) is not None
    assert not http.closed  # a shared session belongs to its owner


async def test_no_secret_in_logs_or_errors(
    emulator: Emulator, settings: HttpSettings, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="lpm")
    secrets = ["wrong-pw-123", "bot-app-secret", "bot-access-token-secret", APP_SECRET]
    texts: list[str] = []

    async def failing(coro: Any) -> None:
        with pytest.raises((AuthenticationError, HttpError)) as info:
            await coro
        texts.extend([str(info.value), repr(info.value), repr(getattr(info.value, "body", None))])

    bad_password = {"username": "agent", "password": "wrong-pw-123"}
    await failing(agent_login.login(settings, host(emulator), ACC, bad_password))
    await failing(agent_login.login(settings, host(emulator), ACC, {**BOT_KEYS, "username": "agent"}))
    await arm(http, emulator, "login", action="refuse", status=429, count=10)
    await failing(agent_login.login(settings, host(emulator), ACC, bad_password))
    await http.post(f"{emulator.base_url}/_emulator/reset")  # the 429s not consumed
    await arm(http, emulator, "login", action="refuse", status=503)
    await failing(agent_login.login(settings, host(emulator), ACC, bad_password))
    await arm(http, emulator, "login", action="drop")
    await failing(agent_login.login(settings, host(emulator), ACC, bad_password))
    await failing(idp.sentinel_app_jwt(settings, host(emulator), ACC, APP_ID, APP_SECRET + "-x"))
    # Tokens: a real session's secrets, then a consumer token sent where it is refused.
    session = await agent_login.login(settings, host(emulator), ACC, AGENT)
    secrets += [session.token, session.csrf or "", session.session_id or ""]
    await expire_agent(http, emulator)
    await failing(agent_login.refresh(settings, host(emulator), session))
    anonymous = await idp.anonymous_authorize(settings, host(emulator), ACC)
    secrets.append(anonymous)
    await failing(idp.authenticate_with_id_token(settings, host(emulator), ACC, AUTH_CONNECTOR, anonymous))
    maint = maintainer(emulator, settings, auth_data=bad_password)
    await failing(maint.start())
    await maint.stop()
    logged = caplog.text
    assert logged  # something was logged, and none of it is secret
    for secret in secrets:
        assert secret not in logged
        for text in texts:
            assert secret not in text


# ---------------------------------------------------------------- TokenMaintainer


async def test_maintainer_start_and_properties(emulator: Emulator, settings: HttpSettings) -> None:
    maint = maintainer(emulator, settings)
    assert isinstance(maint, TokenMaintainerProtocol)
    assert maint.state.value == "INITIAL"
    with pytest.raises(InvalidStateError, match="token maintainer not started"):
        await maint.get_token()
    with pytest.raises(InvalidStateError, match="token maintainer not started"):
        await maint.on_token_invalid("test")
    events = Recorder(maint, "getAgentToken#request", "getAgentToken#response")
    # Concurrent starts share one login.
    await asyncio.gather(maint.start(), maint.start(), maint.start())
    await maint.start()
    assert maint.state is MaintainerState.STARTED
    assert len(events["getAgentToken#request"]) == 1
    response = events["getAgentToken#response"][0]
    assert response["end"] >= response["start"]
    token = await maint.get_token()
    assert emulator.world.session(token) is not None
    assert maint.user_id == "1001" and maint.agent_id == f"{ACC}.1001" and maint.user_pid
    info = await maint.get_auth_session_info()
    assert info.token == token == maint.token
    await maint.stop()
    assert maint.state.value == "STOPPED"
    with pytest.raises(InvalidStateError):
        await maint.get_token()
    assert maintainer_tasks() == []


async def test_maintainer_refresh_loop(emulator: Emulator, settings: HttpSettings) -> None:
    maint = maintainer(emulator, settings, refresh_interval=0.05)
    events = Recorder(maint, "refresh-token", "getAgentToken#request")
    await maint.start()
    token = await maint.get_token()
    for _ in range(2):
        assert await maint.wait_for("refresh-token", timeout=5) == {"agent_id": f"{ACC}.1001"}
    assert await maint.get_token() == token
    assert len(events["getAgentToken#request"]) == 1
    await maint.stop()
    assert maintainer_tasks() == []


async def test_maintainer_regenerates_when_refresh_answers_401(
    emulator: Emulator, settings: HttpSettings, http: aiohttp.ClientSession
) -> None:
    maint = maintainer(emulator, settings, refresh_interval=0.05)
    events = Recorder(maint, "token-invalid", "token-regenerated")
    await maint.start()
    old = await maint.get_token()
    await expire_agent(http, emulator)
    assert await maint.wait_for("token-regenerated", timeout=5) == {"agent_id": f"{ACC}.1001"}
    new = await maint.get_token()
    assert new != old
    assert emulator.world.session(new) is not None
    assert events["token-invalid"] == [{"source": "refresh"}]
    # The refresh loop runs again on the new session.
    await maint.wait_for("refresh-token", timeout=5)
    await maint.stop()
    assert maintainer_tasks() == []


async def test_on_token_invalid_regenerates_once(emulator: Emulator, settings: HttpSettings) -> None:
    maint = maintainer(emulator, settings)
    await maint.start()
    old = await maint.get_token()
    events = Recorder(maint, "token-invalid", "token-regenerated", "getAgentToken#request")
    results = await asyncio.gather(
        *(maint.on_token_invalid(f"test-{i}") for i in range(5)), maint.get_token(), maint.get_token()
    )
    assert len(set(results)) == 1
    new = results[0]
    assert new != old
    assert len(events["getAgentToken#request"]) == 1
    assert len(events["token-regenerated"]) == 1
    assert sorted(e["source"] for e in events["token-invalid"]) == [f"test-{i}" for i in range(5)]
    # A late report about the old token does not log in again.
    assert await maint.on_token_invalid("late", token=old) == new
    assert len(events["getAgentToken#request"]) == 1
    # A report about the current token does.
    assert await maint.on_token_invalid("again", token=new) != new
    assert len(events["getAgentToken#request"]) == 2
    await maint.stop()


async def test_generation_retries_on_schedule(
    emulator: Emulator, settings: HttpSettings, http: aiohttp.ClientSession
) -> None:
    maint = maintainer(emulator, settings)
    events = Recorder(maint, "error", "generate-token-wait", "getAgentToken#request")
    await arm(http, emulator, "login", action="refuse", status=503, count=3)
    await maint.start()  # transient failures are retried, even at start
    assert await maint.get_token()
    assert [e["seconds"] for e in events["generate-token-wait"]] == [0.01, 0.02, 0.02]
    assert [type(e) for e in events["error"]] == [HttpError] * 3
    assert all(e.status == 503 for e in events["error"])
    assert len(events["getAgentToken#request"]) == 4
    # Regeneration retries even refusals (the credentials may come back) until it succeeds.
    await arm(http, emulator, "login", action="refuse", status=401, count=2)
    await maint.on_token_invalid("test")
    assert [e.status for e in events["error"][3:]] == [401, 401]
    await maint.stop()


async def test_start_fails_fast_on_refused_credentials(emulator: Emulator, settings: HttpSettings) -> None:
    maint = maintainer(emulator, settings, auth_data={"username": "agent", "password": "nope-nope"})
    with pytest.raises(AuthenticationError) as info:
        await maint.start()
    assert info.value.status == 401
    assert maint.state is MaintainerState.INITIAL
    assert maintainer_tasks() == []
    await maint.stop()


async def test_stop_cancels_retries_and_waiters(
    emulator: Emulator, settings: HttpSettings, http: aiohttp.ClientSession
) -> None:
    maint = maintainer(emulator, settings, retry_schedule=(60.0,))
    listener_calls: list[Any] = []
    maint.on("error", listener_calls.append)
    await arm(http, emulator, "login", action="refuse", status=503, count=100)
    starting = asyncio.create_task(maint.start())
    assert await maint.wait_for("generate-token-wait", timeout=5) == {"seconds": 60.0}
    waiter = asyncio.create_task(maint.get_token())
    await asyncio.sleep(0)
    await maint.stop()
    with pytest.raises(InvalidStateError):
        await starting
    with pytest.raises(InvalidStateError):
        await waiter
    assert maint.state is MaintainerState.STOPPED
    assert maintainer_tasks() == []
    assert not maint.has_listeners("error")  # stop() removes every listener, as in the Node SDK
    await maint.stop()  # idempotent


async def test_cancelling_start_aborts_it(
    emulator: Emulator, settings: HttpSettings, http: aiohttp.ClientSession
) -> None:
    maint = maintainer(emulator, settings, retry_schedule=(60.0,))
    await arm(http, emulator, "login", action="refuse", status=503, count=100)
    starting = asyncio.create_task(maint.start())
    await maint.wait_for("generate-token-wait", timeout=5)
    starting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await starting
    assert maint.state is MaintainerState.INITIAL
    assert maintainer_tasks() == []
    await http.post(f"{emulator.base_url}/_emulator/reset")
    await maint.start()  # and it can be started again
    assert await maint.get_token()
    await maint.stop()


async def test_maintainer_with_existing_session(
    emulator: Emulator, settings: HttpSettings, http: aiohttp.ClientSession
) -> None:
    session = await agent_login.login(settings, host(emulator), ACC, AGENT)
    # A live session is refreshed, not replaced.
    maint = maintainer(emulator, settings, auth_data=None, auth_session_info=session)
    events = Recorder(maint, "getAgentToken#request")
    await maint.start()
    assert await maint.get_token() == session.token
    assert events["getAgentToken#request"] == []
    await maint.stop()
    # The Node shape (camelCase mapping) works too.
    mapping = {
        "token": session.token,
        "csrf": session.csrf,
        "sessionId": session.session_id,
        "userId": "1001",
    }
    maint = maintainer(emulator, settings, auth_data=None, auth_session_info=mapping)
    await maint.start()
    assert maint.agent_id == f"{ACC}.1001"
    await maint.stop()
    # An expired session with credentials: log in again.
    await expire_agent(http, emulator)
    maint = maintainer(emulator, settings, auth_session_info=session)
    await maint.start()
    assert await maint.get_token() != session.token
    await maint.stop()
    # An expired session without credentials cannot be replaced.
    maint = maintainer(emulator, settings, auth_data=None, auth_session_info=session)
    with pytest.raises(AuthenticationError, match="no auth_data") as info:
        await maint.start()
    assert info.value.status == 401
    assert maint.state is MaintainerState.INITIAL


async def test_stop_with_logout(emulator: Emulator, settings: HttpSettings) -> None:
    maint = maintainer(emulator, settings)
    await maint.start()
    token = await maint.get_token()
    await maint.stop(logout=True)
    assert emulator.world.session(token) is None


async def test_maintainer_options_validated() -> None:
    with pytest.raises(ConfigurationError, match="accountId"):
        TokenMaintainer(account_id="", auth_data=AGENT)
    with pytest.raises(ConfigurationError, match="auth_data or auth_session_info"):
        TokenMaintainer(account_id=ACC)
    with pytest.raises(ConfigurationError, match="missing secret"):
        TokenMaintainer(account_id=ACC, auth_data={"username": "bot", "appKey": "k"})
    with pytest.raises(ConfigurationError):
        TokenMaintainer(account_id=ACC, auth_data=AGENT, retry_schedule=())
    with pytest.raises(ConfigurationError):
        TokenMaintainer(account_id=ACC, auth_session_info={"csrf": "x"})


async def test_maintainer_uses_the_shared_csds_cache(emulator: Emulator, settings: HttpSettings) -> None:
    SHARED_CSDS.invalidate(ACC)
    before = SHARED_CSDS.requests
    maint = TokenMaintainer(account_id=ACC, auth_data=AGENT, http=settings)
    await maint.start()
    # The connection's own lookups of the same account are then answered from the cache.
    assert await SHARED_CSDS.lookup(ACC, "facadeMsg", http=settings) == host(emulator)
    assert SHARED_CSDS.requests == before + 1
    await maint.stop()
    SHARED_CSDS.invalidate(ACC)


async def test_static_token_maintainer() -> None:
    static = StaticTokenMaintainer(account_id=ACC, token="caller-bearer", user_id="1001")
    assert isinstance(static, TokenMaintainerProtocol)
    with pytest.raises(InvalidStateError, match="token maintainer not started"):
        await static.get_token()
    await static.start()
    assert await static.get_token() == "caller-bearer"
    assert static.agent_id == f"{ACC}.1001"
    assert (await static.get_auth_session_info()).token == "caller-bearer"
    invalid = Recorder(static, "token-invalid")
    with pytest.raises(AuthenticationError) as info:
        await static.on_token_invalid("Websocket-open")
    assert info.value.status == 401
    assert "caller-bearer" not in str(info.value)
    assert invalid["token-invalid"] == [{"source": "Websocket-open"}]
    await static.stop()
    assert static.state is MaintainerState.STOPPED
    with pytest.raises(ConfigurationError):
        StaticTokenMaintainer(account_id=ACC, token="")


# ---------------------------------------------------------------- consumer identity


async def test_signup(emulator: Emulator, settings: HttpSettings) -> None:
    token = await idp.signup(settings, host(emulator), ACC)
    consumer_id = idp.decode_consumer_id(token)
    assert emulator.world.accounts[ACC].consumers[consumer_id].kind == "anonymous"
    with pytest.raises(AuthenticationError) as info:
        await idp.signup(settings, host(emulator), "99999999")
    assert info.value.status == 404
    assert "unknown account" in str(info.value)


async def test_anonymous_and_unauthenticated_connector(emulator: Emulator, settings: HttpSettings) -> None:
    anonymous = await idp.anonymous_authorize(settings, host(emulator), ACC)
    refreshed = await idp.refresh_anonymous(settings, host(emulator), ACC, anonymous)
    assert claims_of(refreshed)["sub"] == claims_of(anonymous)["sub"]
    token = await idp.authenticate_unauthenticated(settings, host(emulator), ACC, UNAUTH_CONNECTOR, anonymous)
    again = await idp.authenticate_unauthenticated(settings, host(emulator), ACC, UNAUTH_CONNECTOR, refreshed)
    consumer_id = idp.decode_consumer_id(token)
    assert idp.decode_consumer_id(again) == consumer_id  # same anonymous identity, same consumer
    assert emulator.world.accounts[ACC].consumers[consumer_id].kind == "unauthenticated"
    # Errors: unknown connector, a brand token on the unauthenticated connector, garbage.
    with pytest.raises(AuthenticationError) as info:
        await idp.authenticate_unauthenticated(settings, host(emulator), ACC, "9999", anonymous)
    assert info.value.status == 404
    brand = idp.sign_jwt_claims({"iss": BRAND_ISS, "sub": "c-1"}, brand_key_file(emulator))
    with pytest.raises(AuthenticationError) as info:
        await idp.authenticate_unauthenticated(settings, host(emulator), ACC, UNAUTH_CONNECTOR, brand)
    assert info.value.status == 401
    assert "anonymous token" in str(info.value)
    with pytest.raises(AuthenticationError) as info:
        await idp.refresh_anonymous(settings, host(emulator), ACC, "not-a-token")
    assert info.value.status == 401


async def test_authenticated_connector(emulator: Emulator, settings: HttpSettings) -> None:
    key_file = brand_key_file(emulator)
    pem = Path(key_file).read_bytes().decode()  # noqa: ASYNC240 - a small local file
    # The key as a path string, a Path and PEM text all sign alike.
    for key in (key_file, Path(key_file), pem):
        id_token = idp.sign_jwt_claims({"iss": BRAND_ISS, "sub": "customer-42"}, key)
        claims = claims_of(id_token)
        assert set(claims) == {"iss", "sub", "iat", "exp"}
        assert claims["exp"] == claims["iat"] + 3600
        token = await idp.authenticate_with_id_token(settings, host(emulator), ACC, AUTH_CONNECTOR, id_token)
        assert (
            idp.decode_consumer_id(token) == hashlib.sha256(f"{BRAND_ISS}|customer-42".encode()).hexdigest()
        )
    # Expired and wrongly signed id_tokens are refused with the IdP's message.
    expired = idp.sign_jwt_claims({"iss": BRAND_ISS, "sub": "c", "iat": 1, "exp": 2}, key_file)
    with pytest.raises(AuthenticationError, match="id_token expired") as info:
        await idp.authenticate_with_id_token(settings, host(emulator), ACC, AUTH_CONNECTOR, expired)
    assert info.value.status == 401
    forged = idp.sign_jwt_claims(
        {"iss": BRAND_ISS, "sub": "c"}, "a-secret-of-32-bytes-or-more-for-hs256", "HS256"
    )
    with pytest.raises(AuthenticationError, match="invalid") as info:
        await idp.authenticate_with_id_token(settings, host(emulator), ACC, AUTH_CONNECTOR, forged)
    assert info.value.status == 401
    anonymous = await idp.anonymous_authorize(settings, host(emulator), ACC)
    with pytest.raises(AuthenticationError, match="signed by the brand") as info:
        await idp.authenticate_with_id_token(settings, host(emulator), ACC, AUTH_CONNECTOR, anonymous)
    assert info.value.status == 401


async def test_step_up(emulator: Emulator, settings: HttpSettings) -> None:
    anonymous = await idp.anonymous_authorize(settings, host(emulator), ACC)
    unauth = await idp.authenticate_unauthenticated(
        settings, host(emulator), ACC, UNAUTH_CONNECTOR, anonymous
    )
    id_token = idp.sign_jwt_claims({"iss": BRAND_ISS, "sub": "stepper"}, brand_key_file(emulator))
    stepped = await idp.authenticate_with_id_token(
        settings, host(emulator), ACC, AUTH_CONNECTOR, id_token, lp_jwt=unauth
    )
    consumer_id = idp.decode_consumer_id(stepped)
    assert consumer_id == hashlib.sha256(f"{BRAND_ISS}|stepper".encode()).hexdigest()
    assert emulator.world.accounts[ACC].consumers[consumer_id].kind == "authenticated"
    # An authenticated consumer cannot be stepped up again.
    with pytest.raises(AuthenticationError, match="cannot be stepped up") as info:
        await idp.authenticate_with_id_token(
            settings, host(emulator), ACC, AUTH_CONNECTOR, id_token, lp_jwt=stepped
        )
    assert info.value.status == 401
    # Nor can a step-up go to an unauthenticated connector.
    with pytest.raises(AuthenticationError) as info:
        await idp.authenticate_with_id_token(
            settings, host(emulator), ACC, UNAUTH_CONNECTOR, anonymous, lp_jwt=unauth
        )
    assert info.value.status == 401


async def test_mock_authentication_and_step_up(emulator: Emulator, settings: HttpSettings) -> None:
    token = await idp.mock_authenticate(settings, host(emulator), ACC, "Alice")
    assert idp.decode_consumer_id(token) == hashlib.sha256(b"mock|Alice").hexdigest()
    anonymous = await idp.anonymous_authorize(settings, host(emulator), ACC)
    unauth = await idp.authenticate_unauthenticated(
        settings, host(emulator), ACC, UNAUTH_CONNECTOR, anonymous
    )
    stepped = await idp.mock_step_up(settings, host(emulator), ACC, AUTH_CONNECTOR, unauth, "Bob")
    assert idp.decode_consumer_id(stepped) == hashlib.sha256(b"mock|Bob").hexdigest()
    with pytest.raises(AuthenticationError) as info:
        await idp.mock_step_up(settings, host(emulator), ACC, AUTH_CONNECTOR, "bad-jwt", "Bob")
    assert info.value.status == 401
    with pytest.raises(ConfigurationError):
        await idp.mock_authenticate(settings, host(emulator), ACC, "")


async def test_sentinel_and_consumer_jws(emulator: Emulator, settings: HttpSettings) -> None:
    app_jwt = await idp.sentinel_app_jwt(settings, host(emulator), ACC, APP_ID, APP_SECRET)
    assert claims_of(app_jwt)["azp"] == APP_ID
    jws = await idp.connector_consumer_jws(settings, host(emulator), ACC, app_jwt, "ext-1")
    again = await idp.connector_consumer_jws(settings, host(emulator), ACC, app_jwt, "ext-1")
    assert idp.decode_consumer_id(jws) == idp.decode_consumer_id(again)
    with pytest.raises(AuthenticationError, match="invalid_client") as info:
        await idp.sentinel_app_jwt(settings, host(emulator), ACC, APP_ID, "wrong-secret")
    assert info.value.status == 401
    with pytest.raises(AuthenticationError) as info:
        await idp.sentinel_app_jwt(settings, host(emulator), "99999999", APP_ID, APP_SECRET)
    assert info.value.status == 404
    with pytest.raises(AuthenticationError, match="AppJWT is invalid") as info:
        await idp.connector_consumer_jws(settings, host(emulator), ACC, "not-an-app-jwt", "ext-1")
    assert info.value.status == 401


async def test_idp_throttling_and_server_errors(
    emulator: Emulator, settings: HttpSettings, http: aiohttp.ClientSession
) -> None:
    await arm(http, emulator, "idp", action="refuse", status=429, count=2)
    assert await idp.signup(settings, host(emulator), ACC)
    await arm(http, emulator, "idp", action="refuse", status=502)
    with pytest.raises(HttpError) as info:
        await idp.signup(settings, host(emulator), ACC)
    assert info.value.status == 502
    assert not isinstance(info.value, AuthenticationError)
    await arm(http, emulator, "idp", action="refuse", status=428)
    with pytest.raises(AuthenticationError, match="unAuth messaging feature is not enabled") as auth_info:
        await idp.anonymous_authorize(settings, host(emulator), ACC)
    assert auth_info.value.status == 428


def test_local_jwt_helpers(tmp_path: Path) -> None:
    secret = "an-hs256-shared-secret-of-at-least-32-bytes"
    token = idp.sign_jwt_claims({"sub": "x", "iat": 100}, secret, "HS256", ttl=50, headers={"kid": "k1"})
    assert jwt.get_unverified_header(token)["kid"] == "k1"
    claims = jwt.decode(token, secret, algorithms=["HS256"], options={"verify_exp": False})
    assert claims == {"sub": "x", "iat": 100, "exp": 150}
    assert idp.decode_consumer_id(token) == "x"
    with pytest.raises(ConfigurationError, match="unsupported"):
        idp.sign_jwt_claims({"sub": "x"}, secret, "none")
    with pytest.raises(ConfigurationError, match="cannot read"):
        idp.sign_jwt_claims({"sub": "x"}, tmp_path / "missing.pem")
    with pytest.raises(ConfigurationError, match="cannot sign"):
        idp.sign_jwt_claims({"sub": "x"}, "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    with pytest.raises(AuthenticationError):
        idp.decode_consumer_id("garbage")
    with pytest.raises(AuthenticationError, match="no sub"):
        idp.decode_consumer_id(jwt.encode({"iss": "x"}, secret, algorithm="HS256"))
