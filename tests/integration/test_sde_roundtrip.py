"""SDEs end to end: claims built with ``lpm.sde``, signed by the brand, authenticated at the
emulator's IdP, and read back by an agent with ``GetUserProfile``."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Any

import aiohttp
import jwt

from lpm.emulator.app import Emulator
from lpm.sde import (
    CustomerAge,
    PersonalContact,
    create_customer_info_sde,
    create_jwt_claims_set,
    create_personal_info_sde,
)
from tests.helpers import RawSocket, login

AUTH_CONNECTOR = "3002"  # the default world's authenticated (RS256) connector
BRAND_ISS = "https://brand.example.com"


def _connector_key(emu: Emulator) -> str:
    """The brand's private signing key, which the emulator writes for the authenticated connector."""
    key_file = emu.world.accounts[emu.account_id].connectors[AUTH_CONNECTOR].private_key_file
    assert key_file is not None
    return Path(key_file).read_text()


async def test_sdes_reach_the_agent(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    customer = create_customer_info_sde(
        cstatus="active",
        ctype="vip",
        balance=1250.5,
        customer_id="c-1815",
        last_payment_date=dt.date(2024, 5, 17),
        registration_date=(2018, 1, 9),
        company_size=42,
        account_name="Analytical Engines Ltd",
    )
    personal = create_personal_info_sde(
        firstname="Ada",
        lastname="Lovelace",
        gender="female",
        language="en-GB",
        age=CustomerAge(age=36, year=1815, month=12, day=10),
        contacts=[PersonalContact(email="ada@example.com", phone="+44 20 7946 0958")],
    )
    now = dt.datetime.now(dt.UTC)
    claims = create_jwt_claims_set(
        "customer-1815",
        BRAND_ISS,
        exp=now + dt.timedelta(minutes=10),
        iat=now,
        email="ada@example.com",
        phone_number="+44 20 7946 0958",
        sdes=[customer, personal],
    )
    id_token = jwt.encode(claims, _connector_key(emulator), algorithm="RS256")

    async with http.post(
        f"{emulator.base_url}/api/account/{emulator.account_id}/app/{AUTH_CONNECTOR}/authenticate?v=3.0",
        json={"id_token": id_token},
    ) as resp:
        assert resp.status == 200, await resp.text()
        lp_jwt: str = (await resp.json())["token"]
    consumer_id = jwt.decode(lp_jwt, options={"verify_signature": False})["sub"]
    assert consumer_id == hashlib.sha256(f"{BRAND_ISS}|customer-1815".encode()).hexdigest()

    brand = await RawSocket.brand(http, emulator, (await login(http, emulator))["bearer"])
    try:
        resp_frame = await brand.request(".ams.userprofile.GetUserProfile", consumer_id)
    finally:
        await brand.close()
    assert resp_frame["type"] == ".ams.userprofile.GetUserProfile$Response"
    body: Any = resp_frame["body"]
    profile: dict[str, Any] = body[0] if isinstance(body, list) else body
    assert profile["userId"] == consumer_id and profile["role"] == "CONSUMER"
    assert profile["claims"]["lp_sdes"] == [customer, personal]
    assert profile["claims"]["email"] == "ada@example.com"
    info = profile["claims"]["lp_sdes"][0]["info"]
    assert info["lastPaymentDate"] == {"day": 17, "month": 5, "year": 2024}
    assert profile["claims"]["lp_sdes"][1]["personal"]["contacts"] == [
        {"email": "ada@example.com", "phone": "+44 20 7946 0958"}
    ]
