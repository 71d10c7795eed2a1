"""IdP (consumer identity) and sentinel faces of the emulator, over real loopback HTTP."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest

from lpm.emulator.app import Emulator
from lpm.emulator.config import AccountSpec, WorldSpec
from lpm.emulator.entities import AppInstall, Connector
from lpm.emulator.token_issuer import ANON_ISSUER, IDP_ISSUER, IDP_KID, generate_private_key_pem
from tests.helpers import RawSocket, login, signup

ACC = "12345678"
AUTH_CONNECTOR = "3002"
UNAUTH_CONNECTOR = "3001"
BRAND_ISS = "https://brand.example.com"
HS_SECRET = "an-hs256-shared-secret-of-at-least-32-bytes"


# ---------------------------------------------------------------- helpers


async def post(
    http: aiohttp.ClientSession, emu: Emulator, path: str, body: Any = None, **kwargs: Any
) -> tuple[int, Any]:
    """POST to the emulator; (status, decoded JSON body or None)."""
    if body is not None:
        kwargs["json"] = body
    async with http.post(f"{emu.base_url}{path}", **kwargs) as resp:
        data = await resp.json() if resp.content_type == "application/json" else None
        return resp.status, data


def decode(token: str) -> dict[str, Any]:
    """Claims of a token (signature not checked: the emulator is the issuer under test)."""
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def brand_key(emu: Emulator, connector_id: str = AUTH_CONNECTOR) -> str:
    key_file = emu.world.accounts[ACC].connectors[connector_id].private_key_file
    assert key_file is not None
    return Path(key_file).read_text()


def brand_token(emu: Emulator, key: str | None = None, alg: str = "RS256", **claims: Any) -> str:
    """An id_token signed as the brand (connector 3002's private key unless ``key`` is given)."""
    now = int(time.time())
    payload: dict[str, Any] = {"iss": BRAND_ISS, "sub": "customer-42", "iat": now, "exp": now + 600}
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not None}
    return jwt.encode(payload, key if key is not None else brand_key(emu), algorithm=alg)


def tamper(token: str) -> str:
    """The token with another ``sub`` under the original signature (which no longer matches)."""
    header, _, signature = token.split(".")
    claims = {**decode(token), "sub": "someone-else"}
    forged = jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()
    return f"{header}.{forged}.{signature}"


def anonymous_token(emu: Emulator, *, iat: int, exp: int, sub: str = "anon-sub") -> str:
    """An anonymous token signed with the emulator's own key, with chosen times."""
    claims = {"sub": sub, "aud": f"acc:{ACC}", "iss": ANON_ISSUER, "iat": iat, "exp": exp}
    assert emu.ctx is not None
    return jwt.encode(claims, emu.ctx.tokens.private_key_pem, algorithm="RS256", headers={"kid": IDP_KID})


def assert_error(status: int, body: Any, want_status: int, want_code: int) -> None:
    assert status == want_status, body
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["internalErrorCode"] == want_code, body


async def authenticate(
    http: aiohttp.ClientSession, emu: Emulator, connector: str, body: Any, v: str = "3.0"
) -> tuple[int, Any]:
    return await post(http, emu, f"/api/account/{ACC}/app/{connector}/authenticate?v={v}", body)


async def anonymous(http: aiohttp.ClientSession, emu: Emulator) -> str:
    status, body = await post(http, emu, f"/api/account/{ACC}/anonymous/authorize", data=b"")
    assert status == 200, body
    token: str = body["token"]
    return token


async def unauthenticated_jwt(http: aiohttp.ClientSession, emu: Emulator) -> str:
    status, body = await authenticate(http, emu, UNAUTH_CONNECTOR, {"id_token": await anonymous(http, emu)})
    assert status == 200, body
    token: str = body["token"]
    return token


async def agent_profile_of(http: aiohttp.ClientSession, emu: Emulator, consumer_id: str) -> dict[str, Any]:
    """GetUserProfile of a consumer, as an agent on a brand socket."""
    brand = await RawSocket.brand(http, emu, (await login(http, emu))["bearer"])
    try:
        resp = await brand.request(".ams.userprofile.GetUserProfile", consumer_id)
    finally:
        await brand.close()
    body = resp["body"]
    profile: dict[str, Any] = body[0] if isinstance(body, list) else body
    return profile


@pytest.fixture
async def hs_emulator() -> AsyncIterator[Emulator]:
    """An account whose only authenticated connector verifies HS256 id_tokens with a secret."""
    spec = WorldSpec(
        accounts=[
            AccountSpec(
                account_id=ACC,
                connectors=[
                    Connector(connector_id="4001", name="unauth", kind="unauthenticated"),
                    Connector(
                        connector_id="4002",
                        name="hs",
                        kind="authenticated",
                        jwt_alg="HS256",
                        secret=HS_SECRET,
                        issuer=BRAND_ISS,
                    ),
                    Connector(connector_id="4003", name="odd", kind="federated"),
                ],
                app_installs=[AppInstall(client_id="app", client_secret="app-secret")],
            )
        ]
    )
    async with Emulator(spec) as emu:
        yield emu


# ---------------------------------------------------------------- signup


async def test_signup_creates_an_anonymous_consumer(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    token = await signup(http, emulator)
    claims = decode(token)
    assert claims["iss"] == IDP_ISSUER and claims["aud"] == f"acc:{ACC}"
    assert str(uuid.UUID(claims["sub"])) == claims["sub"]
    assert jwt.get_unverified_header(token)["kid"] == IDP_KID
    assert emulator.world.accounts[ACC].consumers[claims["sub"]].kind == "anonymous"
    assert claims["sub"] != decode(await signup(http, emulator))["sub"]
    c = await RawSocket.consumer(http, emulator, token)
    await c.request("GetClock")
    await c.close()


async def test_signup_unknown_account(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    status, body = await post(http, emulator, "/api/account/999/signup")
    assert_error(status, body, 404, 4040)


# ---------------------------------------------------------------- anonymous/authorize


async def test_anonymous_authorize_and_refresh(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    token = await anonymous(http, emulator)
    claims = decode(token)
    assert claims["iss"] == ANON_ISSUER and claims["exp"] - claims["iat"] == 600
    # an empty JSON object is "no body" too
    status, other = await post(http, emulator, f"/api/account/{ACC}/anonymous/authorize", {})
    assert status == 200 and decode(other["token"])["sub"] != claims["sub"]

    status, body = await post(http, emulator, f"/api/account/{ACC}/anonymous/authorize", {"id_token": token})
    assert status == 200, body
    refreshed = decode(body["token"])
    assert refreshed["sub"] == claims["sub"] and refreshed["jti"] != claims["jti"]


async def test_refresh_accepts_an_expired_token_within_730_hours(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    now = int(time.time())
    expired = anonymous_token(emulator, iat=now - 3600, exp=now - 3000, sub="old-anon")
    status, body = await post(
        http, emulator, f"/api/account/{ACC}/anonymous/authorize", {"id_token": expired}
    )
    assert status == 200, body
    fresh = decode(body["token"])
    assert fresh["sub"] == "old-anon" and fresh["exp"] > now

    too_old = anonymous_token(emulator, iat=now - 731 * 3600, exp=now - 731 * 3600 + 600)
    status, body = await post(
        http, emulator, f"/api/account/{ACC}/anonymous/authorize", {"id_token": too_old}
    )
    assert_error(status, body, 401, 4013)


async def test_refresh_errors(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    path = f"/api/account/{ACC}/anonymous/authorize"
    token = await anonymous(http, emulator)
    status, body = await post(http, emulator, path, {"id_token": tamper(token)})
    assert_error(status, body, 401, 4010)
    # a brand token is not an anonymous token
    status, body = await post(http, emulator, path, {"id_token": brand_token(emulator)})
    assert_error(status, body, 401, 4010)
    status, body = await post(http, emulator, path, {"id_token": 17})
    assert_error(status, body, 400, 4000)
    status, body = await post(
        http, emulator, path, data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert_error(status, body, 400, 4000)
    status, body = await post(http, emulator, path, [token])
    assert_error(status, body, 400, 4000)
    status, body = await post(http, emulator, "/api/account/999/anonymous/authorize", {})
    assert_error(status, body, 404, 4040)


# ---------------------------------------------------------------- unauthenticated connector


async def test_unauthenticated_connector(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    anon = await anonymous(http, emulator)
    status, body = await authenticate(http, emulator, UNAUTH_CONNECTOR, {"id_token": anon})
    assert status == 200, body
    claims = decode(body["token"])
    consumer_id = claims["sub"]
    assert str(uuid.UUID(consumer_id)) == consumer_id and "lp.ext" not in claims
    consumer = emulator.world.accounts[ACC].consumers[consumer_id]
    assert consumer.kind == "unauthenticated" and consumer.ext_sub == decode(anon)["sub"]

    # the same anonymous identity (even refreshed) maps to the same consumer
    again = await authenticate(http, emulator, UNAUTH_CONNECTOR, {"id_token": anon})
    assert decode(again[1]["token"])["sub"] == consumer_id
    _, refreshed = await post(http, emulator, f"/api/account/{ACC}/anonymous/authorize", {"id_token": anon})
    third = await authenticate(http, emulator, UNAUTH_CONNECTOR, {"id_token": refreshed["token"]})
    assert decode(third[1]["token"])["sub"] == consumer_id
    other = await authenticate(
        http, emulator, UNAUTH_CONNECTOR, {"id_token": await anonymous(http, emulator)}
    )
    assert decode(other[1]["token"])["sub"] != consumer_id

    c = await RawSocket.consumer(http, emulator, body["token"])
    await c.request("cm.ConsumerRequestConversation", {"skillId": "-1"})
    await c.close()


async def test_unauthenticated_connector_errors(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    now = int(time.time())
    expired = anonymous_token(emulator, iat=now - 700, exp=now - 100)
    assert_error(*await authenticate(http, emulator, UNAUTH_CONNECTOR, {"id_token": expired}), 401, 4011)
    anon = await anonymous(http, emulator)
    assert_error(*await authenticate(http, emulator, UNAUTH_CONNECTOR, {"id_token": tamper(anon)}), 401, 4010)
    assert_error(*await authenticate(http, emulator, UNAUTH_CONNECTOR, {"id_token": "garbage"}), 401, 4010)
    # a brand-signed token on the unauthenticated connector: wrong kind
    brand = brand_token(emulator)
    assert_error(*await authenticate(http, emulator, UNAUTH_CONNECTOR, {"id_token": brand}), 401, 4012)
    assert_error(*await authenticate(http, emulator, UNAUTH_CONNECTOR, {}), 400, 4000)


# ---------------------------------------------------------------- authenticated connector


async def test_authenticated_connector_rs256(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    sdes = [
        {"type": "ctmrinfo", "info": {"customerId": "c-42", "ctype": "gold"}},
        {"type": "personal", "personal": {"firstname": "Ada", "lastname": "Lovelace"}},
    ]
    token = brand_token(
        emulator, lp_sdes=sdes, given_name="Ada", phone_number="+100", email="ada@example.com", aud="ignored"
    )
    status, body = await authenticate(http, emulator, AUTH_CONNECTOR, {"id_token": token})
    assert status == 200, body
    claims = decode(body["token"])
    expected_id = hashlib.sha256(f"{BRAND_ISS}|customer-42".encode()).hexdigest()
    assert claims["sub"] == expected_id and len(expected_id) == 64
    assert claims["lp.ext"]["sub"] == "customer-42" and claims["lp.ext"]["iss"] == BRAND_ISS
    assert isinstance(claims["lp.ext"]["lp_sdes"], str)
    consumer = emulator.world.accounts[ACC].consumers[expected_id]
    assert consumer.kind == "authenticated" and consumer.ext_iss == BRAND_ISS
    assert consumer.claims["lp_sdes"] == sdes and consumer.claims["iss"] == BRAND_ISS

    profile = await agent_profile_of(http, emulator, expected_id)
    assert profile["claims"]["lp_sdes"] == sdes
    assert profile["claims"]["given_name"] == "Ada" and profile["claims"]["email"] == "ada@example.com"

    # a second login of the same brand customer is the same consumer; its token's claims win
    again = await authenticate(http, emulator, AUTH_CONNECTOR, {"id_token": brand_token(emulator)})
    assert decode(again[1]["token"])["sub"] == expected_id
    assert "lp_sdes" not in decode(again[1]["token"])["lp.ext"]
    assert emulator.world.accounts[ACC].consumers[expected_id].claims["lp_sdes"] == []
    c = await RawSocket.consumer(http, emulator, body["token"])
    await c.request("GetClock")
    await c.close()


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("expired", 4011),
        ("tampered", 4010),
        ("wrong-issuer", 4010),
        ("other-key", 4010),
        ("hs256-on-rs256", 4010),
        ("no-sub", 4010),
        ("anonymous-token", 4012),
    ],
)
async def test_authenticated_connector_rejects(
    emulator: Emulator, http: aiohttp.ClientSession, case: str, code: int
) -> None:
    now = int(time.time())
    if case == "expired":
        token = brand_token(emulator, iat=now - 1200, exp=now - 600)
    elif case == "tampered":
        token = tamper(brand_token(emulator))
    elif case == "wrong-issuer":
        token = brand_token(emulator, iss="https://evil.example.com")
    elif case == "other-key":
        token = brand_token(emulator, key=generate_private_key_pem())
    elif case == "hs256-on-rs256":
        # only the connector's own algorithm is accepted
        token = brand_token(emulator, key="x" * 64, alg="HS256")
    elif case == "no-sub":
        token = brand_token(emulator, sub=None)
    else:
        token = await anonymous(http, emulator)
    status, body = await authenticate(http, emulator, AUTH_CONNECTOR, {"id_token": token})
    assert_error(status, body, 401, code)
    assert token not in body["error"]["message"]


async def test_authenticate_request_errors(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    token = brand_token(emulator)
    assert_error(*await authenticate(http, emulator, "9999", {"id_token": token}), 404, 4041)
    assert_error(*await authenticate(http, emulator, AUTH_CONNECTOR, {"id_token": ""}), 400, 4000)
    assert_error(*await authenticate(http, emulator, AUTH_CONNECTOR, {"idToken": token}), 400, 4000)
    status, body = await post(
        http,
        emulator,
        f"/api/account/{ACC}/app/{AUTH_CONNECTOR}/authenticate?v=3.0",
        data=b'{"id_token": ',
        headers={"Content-Type": "application/json"},
    )
    assert_error(status, body, 400, 4000)
    status, body = await post(
        http, emulator, "/api/account/999/app/3002/authenticate?v=3.0", {"id_token": token}
    )
    assert_error(status, body, 404, 4040)


async def test_hs256_connector(hs_emulator: Emulator, http: aiohttp.ClientSession) -> None:
    emu = hs_emulator
    good = brand_token(
        emu, key=HS_SECRET, alg="HS256", lp_sdes={"type": "personal", "personal": {"firstname": "H"}}
    )
    status, body = await authenticate(http, emu, "4002", {"id_token": good})
    assert status == 200, body
    consumer_id = decode(body["token"])["sub"]
    consumer = emu.world.accounts[ACC].consumers[consumer_id]
    # a single SDE object stands for a one-element array (protocol §3.4)
    assert consumer.claims["lp_sdes"] == [{"type": "personal", "personal": {"firstname": "H"}}]

    wrong_secret = brand_token(emu, key="another-secret-that-is-also-32-bytes-long", alg="HS256")
    assert_error(*await authenticate(http, emu, "4002", {"id_token": wrong_secret}), 401, 4010)
    rs256 = brand_token(emu, key=generate_private_key_pem())
    assert_error(*await authenticate(http, emu, "4002", {"id_token": rs256}), 401, 4010)
    # a connector of a kind the IdP does not know cannot authenticate anybody
    assert_error(*await authenticate(http, emu, "4003", {"id_token": good}), 401, 4012)


# ---------------------------------------------------------------- mock authentication


@pytest.mark.parametrize("version", ["2", "3.0"])
async def test_mock_authentication(emulator: Emulator, http: aiohttp.ClientSession, version: str) -> None:
    body = {"code": "Alice", "redirect_uri": "https://liveperson.net"}
    status, resp = await authenticate(http, emulator, "default", body, v=version)
    assert status == 200, resp
    claims = decode(resp["token"])
    assert claims["sub"] == hashlib.sha256(b"mock|Alice").hexdigest()
    assert claims["lp.ext"]["sub"] == "Alice"
    assert emulator.world.accounts[ACC].consumers[claims["sub"]].kind == "mock"

    profile = await agent_profile_of(http, emulator, claims["sub"])
    assert profile["role"] == "CONSUMER" and profile["userId"] == claims["sub"]
    assert profile["claims"]["lp_sdes"] == [
        {"type": "ctmrinfo", "info": {"customerId": "lpTestAlice"}},
        {"type": "personal", "personal": {"firstname": "Alice"}},
    ]
    assert_error(*await authenticate(http, emulator, "default", {"code": ""}, v=version), 400, 4000)
    # "default" is no connector: only the code flow works there
    assert_error(*await authenticate(http, emulator, "default", {"id_token": "x"}, v=version), 404, 4041)


# ---------------------------------------------------------------- step-up


async def _open_conversation(http: aiohttp.ClientSession, emu: Emulator, token: str) -> tuple[RawSocket, str]:
    c = await RawSocket.consumer(http, emu, token)
    await c.request("cqm.SubscribeExConversations", {"convState": ["OPEN"]})
    await c.notification("cqm.ExConversationChangeNotification")
    conv_id = (await c.request("cm.ConsumerRequestConversation", {"skillId": "-1"}))["body"]["conversationId"]
    await c.notification("cqm.ExConversationChangeNotification")
    await c.request(
        "ms.PublishEvent", {"dialogId": conv_id, "event": {"type": "ContentEvent", "message": "hi"}}
    )
    return c, conv_id


async def _assert_taken_over(
    http: aiohttp.ClientSession, emu: Emulator, old: RawSocket, new_token: str, conv_id: str
) -> None:
    new_id = decode(new_token)["sub"]
    # the old socket is told the conversation is no longer its own
    while True:
        note = await old.notification("cqm.ExConversationChangeNotification")
        if note["body"]["changes"][0]["type"] == "DELETE":
            assert note["body"]["changes"][0]["result"]["convId"] == conv_id
            break
    c = await RawSocket.consumer(http, emu, new_token)
    await c.request("cqm.SubscribeExConversations", {"convState": ["OPEN"]})
    snapshot = await c.notification("cqm.ExConversationChangeNotification")
    [change] = snapshot["body"]["changes"]
    assert change["result"]["convId"] == conv_id
    participants = change["result"]["conversationDetails"]["participants"]
    assert {"id": new_id, "role": "CONSUMER"} in participants
    pub = await c.request(
        "ms.PublishEvent", {"dialogId": conv_id, "event": {"type": "ContentEvent", "message": "me again"}}
    )
    assert pub["body"] == {"sequence": 1}
    refused = await old.request(
        "ms.PublishEvent",
        {"dialogId": conv_id, "event": {"type": "ContentEvent", "message": "x"}},
        expect=403,
    )
    assert refused["code"] == 403
    await c.close()


async def test_step_up_with_a_brand_id_token(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    old_token = await unauthenticated_jwt(http, emulator)
    old_id = decode(old_token)["sub"]
    old, conv_id = await _open_conversation(http, emulator, old_token)
    status, body = await authenticate(
        http,
        emulator,
        AUTH_CONNECTOR,
        {"id_token": brand_token(emulator, sub="stepper"), "lp_jwt": old_token},
    )
    assert status == 200, body
    new_id = decode(body["token"])["sub"]
    assert new_id == hashlib.sha256(f"{BRAND_ISS}|stepper".encode()).hexdigest()
    acc = emulator.world.accounts[ACC]
    assert acc.conversations[conv_id].consumer_id == new_id
    assert acc.consumers[new_id].stepped_up_from == old_id
    await _assert_taken_over(http, emulator, old, body["token"], conv_id)
    await old.close()


async def test_mock_step_up_from_signup(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    old_token = await signup(http, emulator)
    old, conv_id = await _open_conversation(http, emulator, old_token)
    status, body = await authenticate(http, emulator, AUTH_CONNECTOR, {"lp_jwt": old_token, "code": "Bob"})
    assert status == 200, body
    assert decode(body["token"])["sub"] == hashlib.sha256(b"mock|Bob").hexdigest()
    await _assert_taken_over(http, emulator, old, body["token"], conv_id)
    await old.close()


async def test_step_up_without_an_open_conversation(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    old_token = await unauthenticated_jwt(http, emulator)
    status, body = await authenticate(http, emulator, "any-id", {"lp_jwt": old_token, "code": "Carol"})
    assert status == 200, body
    new_id = decode(body["token"])["sub"]
    assert emulator.world.accounts[ACC].consumers[new_id].stepped_up_from == decode(old_token)["sub"]


async def test_step_up_errors(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    old_token = await unauthenticated_jwt(http, emulator)
    brand = brand_token(emulator, sub="dave")
    # tampered / garbage lp_jwt
    assert_error(
        *await authenticate(http, emulator, AUTH_CONNECTOR, {"id_token": brand, "lp_jwt": tamper(old_token)}),
        401,
        4014,
    )
    assert_error(
        *await authenticate(http, emulator, AUTH_CONNECTOR, {"code": "E", "lp_jwt": "nope"}), 401, 4014
    )
    # an already authenticated consumer cannot be stepped up
    _, authed = await authenticate(http, emulator, AUTH_CONNECTOR, {"id_token": brand})
    assert_error(
        *await authenticate(http, emulator, AUTH_CONNECTOR, {"code": "E", "lp_jwt": authed["token"]}),
        401,
        4015,
    )
    # step-up needs an authenticated connector
    anon = await anonymous(http, emulator)
    assert_error(
        *await authenticate(http, emulator, UNAUTH_CONNECTOR, {"id_token": anon, "lp_jwt": old_token}),
        401,
        4012,
    )
    assert_error(*await authenticate(http, emulator, AUTH_CONNECTOR, {"code": "E", "lp_jwt": 5}), 400, 4000)

    # both identities have an open conversation: refused, nothing moves
    dave, dave_conv = await _open_conversation(http, emulator, authed["token"])
    old, old_conv = await _open_conversation(http, emulator, old_token)
    status, body = await authenticate(
        http, emulator, AUTH_CONNECTOR, {"id_token": brand, "lp_jwt": old_token}
    )
    assert_error(status, body, 409, 4090)
    acc = emulator.world.accounts[ACC]
    assert acc.conversations[old_conv].consumer_id == decode(old_token)["sub"]
    assert acc.conversations[dave_conv].consumer_id == decode(authed["token"])["sub"]
    await dave.close()
    await old.close()


# ---------------------------------------------------------------- legacy implicit authenticate


async def test_legacy_authenticate(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    path = f"/api/account/{ACC}/authenticate"
    status, body = await post(http, emulator, path, {"authCode": brand_token(emulator)})
    assert status == 200, body
    assert decode(body["jwt"])["sub"] == hashlib.sha256(f"{BRAND_ISS}|customer-42".encode()).hexdigest()
    status, body = await post(http, emulator, path, {"authCode": tamper(brand_token(emulator))})
    assert_error(status, body, 401, 4010)
    status, body = await post(http, emulator, path, {})
    assert_error(status, body, 400, 4000)


async def test_legacy_authenticate_without_authenticated_connector(http: aiohttp.ClientSession) -> None:
    spec = WorldSpec(
        accounts=[
            AccountSpec(
                account_id=ACC, connectors=[Connector(connector_id="1", name="u", kind="unauthenticated")]
            )
        ]
    )
    async with Emulator(spec) as emu:
        status, body = await post(http, emu, f"/api/account/{ACC}/authenticate", {"authCode": "x"})
        assert_error(status, body, 404, 4041)


# ---------------------------------------------------------------- sentinel and the Send API identity


async def app_jwt(http: aiohttp.ClientSession, emu: Emulator) -> str:
    status, body = await post(
        http,
        emu,
        f"/sentinel/api/account/{ACC}/app/token?v=1.0&grant_type=client_credentials",
        data={"client_id": "lpm-emulator-app", "client_secret": "lpm-emulator-app-secret"},
    )
    assert status == 200, body
    token: str = body["access_token"]
    return token


async def test_sentinel_client_credentials(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    path = f"/sentinel/api/account/{ACC}/app/token?v=1.0&grant_type=client_credentials"
    creds = {"client_id": "lpm-emulator-app", "client_secret": "lpm-emulator-app-secret"}
    status, body = await post(http, emulator, path, data=creds)
    assert status == 200, body
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    claims = decode(body["access_token"])
    assert claims["aud"] == f"le{ACC}" and claims["azp"] == "lpm-emulator-app"
    assert claims["iss"] == "Sentinel" and claims["scope"] == "msg.consumer"
    assert jwt.get_unverified_header(body["access_token"])["kid"].startswith("appjwt-")

    # lp-messaging-sdk puts the credentials in the query
    query = "&client_id=lpm-emulator-app&client_secret=lpm-emulator-app-secret"
    status, body = await post(http, emulator, path + query)
    assert status == 200 and "access_token" in body


async def test_sentinel_errors(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    base = f"/sentinel/api/account/{ACC}/app/token?v=1.0"
    good = {"client_id": "lpm-emulator-app", "client_secret": "lpm-emulator-app-secret"}
    cases: list[tuple[str, dict[str, str], int, str]] = [
        (base + "&grant_type=client_credentials", {**good, "client_secret": "wrong"}, 401, "invalid_client"),
        (base + "&grant_type=client_credentials", {**good, "client_id": "nobody"}, 401, "invalid_client"),
        (base + "&grant_type=client_credentials", {"client_id": "lpm-emulator-app"}, 401, "invalid_client"),
        (base + "&grant_type=password", good, 400, "unsupported_grant_type"),
        (base, good, 400, "invalid_request"),
        ("/sentinel/api/account/999/app/token?v=1.0&grant_type=client_credentials", good, 404, "not_found"),
    ]
    for path, form, want_status, want_error in cases:
        status, body = await post(http, emulator, path, data=form)
        assert status == want_status, (path, body)
        assert body["error"] == want_error and "error_description" in body
        assert "wrong" not in body["error_description"]


async def test_connector_consumer_jws(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    token = await app_jwt(http, emulator)
    path = f"/api/account/{ACC}/consumer?v=1.0"
    status, body = await post(
        http, emulator, path, {"ext_consumer_id": "ext-1"}, headers={"Authorization": token}
    )
    assert status == 201, body
    claims = decode(body["token"])
    assert "exp" not in claims and claims["azp"] == "lpm-emulator-app"
    consumer = emulator.world.accounts[ACC].consumers[claims["sub"]]
    assert consumer.kind == "connector" and consumer.ext_sub == "ext-1"
    # deterministic per (app, ext_consumer_id); a Bearer prefix is tolerated
    status, again = await post(
        http, emulator, path, {"ext_consumer_id": "ext-1"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert status == 201 and decode(again["token"])["sub"] == claims["sub"]
    _, other = await post(
        http, emulator, path, {"ext_consumer_id": "ext-2"}, headers={"Authorization": token}
    )
    assert decode(other["token"])["sub"] != claims["sub"]


async def test_connector_consumer_errors(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    path = f"/api/account/{ACC}/consumer?v=1.0"
    token = await app_jwt(http, emulator)
    assert_error(*await post(http, emulator, path, {"ext_consumer_id": "e"}), 401, 4016)
    assert_error(
        *await post(http, emulator, path, {"ext_consumer_id": "e"}, headers={"Authorization": "junk"}),
        401,
        4016,
    )
    consumer_token = await signup(http, emulator)
    assert_error(
        *await post(
            http, emulator, path, {"ext_consumer_id": "e"}, headers={"Authorization": consumer_token}
        ),
        401,
        4016,
    )
    assert_error(*await post(http, emulator, path, {}, headers={"Authorization": token}), 400, 4000)
    assert_error(
        *await post(
            http,
            emulator,
            path,
            data=b"[",
            headers={"Authorization": token, "Content-Type": "application/json"},
        ),
        400,
        4000,
    )
    assert_error(
        *await post(http, emulator, "/api/account/999/consumer?v=1.0", {}, headers={"Authorization": token}),
        404,
        4040,
    )
