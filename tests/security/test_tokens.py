"""Broken, forged and misplaced tokens are refused on every face, with the documented status.

Consumer JWTs (consumer socket: HTTP 401 at the upgrade, or a 401 response to InitConnection
and close 4401; Send API ``X-LP-ON-BEHALF``: 401/40103, also for another app's ConsumerJWS),
AppJWTs (Send API: 401/40102, a bad ``iss`` 400/40001 as protocol §7.1 says; UMS REST: 401; IdP
``consumer``: 401/4016), agent bearers (brand socket: 401 at the upgrade; REST: 401) and
brand id_tokens of the authenticated connector 3002 (IdP: 401/4010, expired 4011).  Tokens of
one kind are refused where another kind is expected.  No error body echoes the token.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest

from lpm.emulator.app import Emulator
from tests.helpers import RawSocket, login, signup
from tests.security import forge
from tests.security.faces import (
    app_jwt,
    brand_ws_url,
    consumer_jws,
    consumer_ws_url,
    rest,
    send_api,
    upgrade_status,
)

BROKEN = [
    "expired",
    "tampered",
    "wrong-audience",
    "wrong-issuer",
    "alg-none",
    "wrong-key",
    "hs256-public-key",
]
PUBLISH_FRAME = {"kind": "req", "id": "1", "type": "GetClock"}


def _body_text(body: Any) -> str:
    return str(body)


# ---------------------------------------------------------------- consumer JWTs


async def test_broken_consumer_jwts_are_refused_on_the_consumer_socket(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    valid = await signup(http, emulator)
    claims = forge.consumer_claims(emulator, forge.subject(valid))
    # The forged claims are right: signed with the emulator's key they are accepted.
    good = forge.sign(claims, forge.emulator_keys(emulator)[0])
    assert await upgrade_status(http, consumer_ws_url(emulator), {"Authorization": f"jwt {good}"}) == 101
    for name, token in forge.variants(emulator, claims).items():
        status = await upgrade_status(http, consumer_ws_url(emulator), {"Authorization": f"jwt {token}"})
        assert status == 401, name
        # The browser form: InitConnection answers 401 and the socket closes with 4401.
        sock = await RawSocket.consumer(http, emulator, None)
        resp = await sock.request(
            "InitConnection",
            headers=[{"type": ".ams.headers.ConsumerAuthentication", "jwt": token}],
            expect=401,
        )
        assert token not in _body_text(resp["body"])
        await asyncio.wait_for(sock.closed.wait(), 10)
        assert sock.close_code == 4401, name


async def test_broken_consumer_jws_is_refused_by_the_send_api(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    app = await app_jwt(http, emulator)
    jws = await consumer_jws(http, emulator, app, "ext-1")
    claims = {**forge.consumer_claims(emulator, forge.subject(jws)), "azp": "lpm-emulator-app"}
    del claims["exp"]  # a ConsumerJWS never expires
    status, _ = await send_api(http, emulator, app, jws, PUBLISH_FRAME)
    assert status == 200
    for name, token in forge.variants(emulator, claims).items():
        status, body = await send_api(http, emulator, app, token, PUBLISH_FRAME)
        assert (status, body["body"]["errorCode"]) == (401, 40103), name
        assert token not in str(body)


# ---------------------------------------------------------------- AppJWTs


async def test_broken_app_jwts_are_refused_by_send_api_rest_and_idp(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    app = await app_jwt(http, emulator)
    jws = await consumer_jws(http, emulator, app, "ext-1")
    conv_path = "/v1/conversations/no-such-conversation"
    assert (await rest(http, emulator, "GET", conv_path, app))[0] == 404  # the valid one gets through
    for name, token in forge.variants(
        emulator, forge.app_jwt_claims(emulator), kid="appjwt-01-01-2026"
    ).items():
        status, body = await send_api(http, emulator, token, jws, PUBLISH_FRAME)
        # Protocol 7.1: a bad iss claim answers 40001 (HTTP 400, as every 400xx here).
        want = (400, 40001) if name == "wrong-issuer" else (401, 40102)
        assert (status, body["body"]["errorCode"]) == want, name
        assert token not in str(body)
        status, body = await rest(http, emulator, "GET", conv_path, token)
        assert status == 401, name
        assert token not in str(body)
        async with http.post(
            f"{emulator.base_url}/api/account/{emulator.account_id}/consumer?v=1.0",
            headers={"Authorization": token},
            json={"ext_consumer_id": "x"},
        ) as resp:
            assert resp.status == 401, name
            assert (await resp.json())["error"]["internalErrorCode"] == 4016


async def test_app_jwt_of_another_account_is_a_brand_id_mismatch_on_rest(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """UMS REST words a token of another account as a Brand-ID mismatch (400, documented)."""
    claims = {**forge.app_jwt_claims(emulator), "aud": "le99999999"}
    token = forge.sign(claims, forge.emulator_keys(emulator)[0])
    status, body = await rest(http, emulator, "GET", "/v1/conversations/x", token)
    assert status == 400 and "Brand-ID" in body["message"]


# ---------------------------------------------------------------- agent bearers


async def test_bad_agent_bearers_are_refused(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    body = await login(http, emulator)
    bearer = body["bearer"]
    assert await upgrade_status(http, brand_ws_url(emulator, bearer)) == 101
    unknown = "0" * 64
    tampered = bearer[:-1] + ("0" if bearer[-1] != "0" else "1")
    for token in (unknown, tampered):
        assert await upgrade_status(http, brand_ws_url(emulator, token)) == 401
        assert (await rest(http, emulator, "GET", "/v1/conversations/x", token))[0] == 401
    assert (await rest(http, emulator, "GET", "/v1/conversations/x", None))[0] == 401
    # Expired (fault API) and logged out: refused from then on.
    async with http.post(f"{emulator.base_url}/_emulator/tokens/expire", json={"user_id": "1001"}) as resp:
        assert resp.status == 200
    assert await upgrade_status(http, brand_ws_url(emulator, bearer)) == 401
    assert (await rest(http, emulator, "GET", "/v1/conversations/x", bearer))[0] == 401
    second = await login(http, emulator, "bot")
    async with http.post(
        f"{emulator.base_url}/api/account/{emulator.account_id}/logout", json={"csrf": second["csrf"]}
    ) as resp:
        assert resp.status == 200
    assert await upgrade_status(http, brand_ws_url(emulator, second["bearer"])) == 401


async def test_login_refresh_and_sentinel_refuse_wrong_secrets(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    base = f"{emulator.base_url}/api/account/{emulator.account_id}"
    async with http.post(
        f"{base}/login?v=1.3", json={"username": "agent", "password": "bot-password"}
    ) as resp:
        assert resp.status == 401
        text = await resp.text()
        assert "bot-password" not in text and (await resp.json())["error"]["internalCode"] == 10
    keys = {"username": "agent", "appKey": "agent-app-key", "secret": "bot-app-secret"}
    keys |= {"accessToken": "agent-access-token", "accessTokenSecret": "agent-access-token-secret"}
    async with http.post(f"{base}/login?v=1.3", json=keys) as resp:
        assert resp.status == 401 and "secret" not in (await resp.json())["error"]["message"]
    body = await login(http, emulator)
    async with http.post(f"{base}/refresh?v=1.3", json={"csrf": "0" * 32}) as resp:
        assert resp.status == 401
    async with http.post(f"{base}/refresh?v=1.3", json={"csrf": body["csrf"]}) as resp:
        assert resp.status == 200  # the cookie jar holds Session_id: the right csrf works
    async with (
        aiohttp.ClientSession() as cookieless,
        cookieless.post(f"{base}/refresh?v=1.3", json={"csrf": body["csrf"]}) as resp,
    ):
        assert resp.status == 401  # the csrf alone is not enough
    async with http.post(
        f"{emulator.base_url}/sentinel/api/account/{emulator.account_id}/app/token?v=1.0"
        "&grant_type=client_credentials",
        data={"client_id": "lpm-emulator-app", "client_secret": "agent-password"},
    ) as resp:
        assert resp.status == 401
        error = await resp.json()
        assert error["error"] == "invalid_client" and "agent-password" not in str(error)


# ---------------------------------------------------------------- brand id_tokens (connector 3002)


def _read(path: str) -> str:
    return Path(path).read_text()


def _brand_claims() -> dict[str, Any]:
    now = int(time.time())
    return {"iss": "https://brand.example.com", "sub": "customer-1", "iat": now, "exp": now + 600}


async def test_broken_brand_id_tokens_are_refused_by_the_authenticated_connector(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    connector = emulator.world.accounts[emulator.account_id].connectors["3002"]
    assert connector.private_key_file is not None and connector.public_key_pem is not None
    brand_key = _read(connector.private_key_file)
    claims = _brand_claims()
    now = int(time.time())
    cases = {
        "expired": jwt.encode({**claims, "iat": now - 1200, "exp": now - 600}, brand_key, algorithm="RS256"),
        "tampered": forge.tamper(jwt.encode(claims, brand_key, algorithm="RS256"), sub="customer-2"),
        "wrong-issuer": jwt.encode(
            {**claims, "iss": "https://evil.example.com"}, brand_key, algorithm="RS256"
        ),
        "wrong-key": jwt.encode(claims, forge.other_key(), algorithm="RS256"),
        "alg-none": forge.variants(emulator, claims)["alg-none"],
    }
    hs = forge.variants(emulator, claims)["hs256-public-key"]  # keyed with the *emulator's* public key
    cases["hs256-public-key"] = hs
    url = f"{emulator.base_url}/api/account/{emulator.account_id}/app/3002/authenticate?v=3.0"
    async with http.post(url, json={"id_token": jwt.encode(claims, brand_key, algorithm="RS256")}) as resp:
        assert resp.status == 200
    for name, token in cases.items():
        async with http.post(url, json={"id_token": token}) as resp:
            body = await resp.json()
            assert resp.status == 401, name
            assert body["error"]["internalErrorCode"] == (4011 if name == "expired" else 4010), name
            assert token not in str(body)


# ---------------------------------------------------------------- tokens on the wrong face


async def test_each_kind_of_token_is_refused_where_another_is_expected(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    consumer = await signup(http, emulator)
    bearer = (await login(http, emulator))["bearer"]
    app = await app_jwt(http, emulator)
    jws = await consumer_jws(http, emulator, app, "ext-1")
    # Brand socket: neither a consumer JWT, nor an AppJWT, nor a ConsumerJWS.
    for token in (consumer, app, jws):
        assert await upgrade_status(http, brand_ws_url(emulator, token)) == 401
    # Consumer socket: neither an agent bearer nor an AppJWT.
    for token in (bearer, app):
        for scheme in ("jwt", "Bearer"):
            headers = {"Authorization": f"{scheme} {token}"}
            assert await upgrade_status(http, consumer_ws_url(emulator), headers) == 401
    # UMS REST (brand): no consumer tokens.
    for token in (consumer, jws):
        assert (await rest(http, emulator, "GET", "/v1/conversations/x", token))[0] == 401
    # Send API: the AppJWT slot takes no bearer or consumer token; the on-behalf slot no AppJWT
    # or agent bearer.
    status, body = await send_api(http, emulator, bearer, jws, PUBLISH_FRAME)
    assert (status, body["body"]["errorCode"]) == (401, 40102)
    for token in (consumer, jws):  # signed by the emulator, but the IdP is not Sentinel
        status, body = await send_api(http, emulator, token, jws, PUBLISH_FRAME)
        assert (status, body["body"]["errorCode"]) == (400, 40001)
    for token in (app, bearer):
        status, body = await send_api(http, emulator, app, token, PUBLISH_FRAME)
        assert (status, body["body"]["errorCode"]) == (401, 40103)
    # A plain LP consumer JWT is not a ConsumerJWS of this app (no azp).
    status, body = await send_api(http, emulator, app, consumer, PUBLISH_FRAME)
    assert (status, body["body"]["errorCode"]) == (401, 40103)
    status, body = await send_api(http, emulator, None, jws, PUBLISH_FRAME)
    assert (status, body["body"]["errorCode"]) == (401, 40105)
    status, body = await send_api(http, emulator, app, None, PUBLISH_FRAME)
    assert (status, body["body"]["errorCode"]) == (401, 40104)
    # The IdP's Send API identity wants an AppJWT, not an agent bearer or consumer JWT.
    for token in (bearer, consumer):
        async with http.post(
            f"{emulator.base_url}/api/account/{emulator.account_id}/consumer?v=1.0",
            headers={"Authorization": token},
            json={"ext_consumer_id": "x"},
        ) as resp:
            assert resp.status == 401


@pytest.mark.parametrize("where", ["path", "header"])
async def test_the_consumer_socket_takes_no_token_of_another_account(
    emulator: Emulator, http: aiohttp.ClientSession, where: str
) -> None:
    token = forge.variants(emulator, forge.consumer_claims(emulator, "c-1"))["wrong-audience"]
    if where == "path":
        url, headers = consumer_ws_url(emulator).replace("/consumer?", f"/consumer/{token}?"), {}
    else:
        url, headers = consumer_ws_url(emulator), {"Authorization": f"jwt {token}"}
    assert await upgrade_status(http, url, headers) == 401


async def test_a_consumer_jws_is_bound_to_its_app(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    """A second app install cannot act for the first one's consumers (401/40103)."""
    manager = {"Authorization": f"Bearer {(await login(http, emulator))['bearer']}"}
    async with http.post(
        f"{emulator.base_url}/api/account/{emulator.account_id}/configuration/app-install/installations",
        headers=manager,
        json={"client_name": "other", "capabilities": {"webhooks": {}}},
    ) as resp:
        other = await resp.json()
    async with http.post(
        f"{emulator.base_url}/sentinel/api/account/{emulator.account_id}/app/token?v=1.0"
        "&grant_type=client_credentials",
        data={"client_id": other["client_id"], "client_secret": other["client_secret"]},
    ) as resp:
        other_app = (await resp.json())["access_token"]
    jws = await consumer_jws(http, emulator, await app_jwt(http, emulator), "ext-1")
    status, body = await send_api(http, emulator, other_app, jws, PUBLISH_FRAME)
    assert (status, body["body"]["errorCode"]) == (401, 40103)
    own = await consumer_jws(http, emulator, other_app, "ext-1")
    assert (await send_api(http, emulator, other_app, own, PUBLISH_FRAME))[0] == 200
