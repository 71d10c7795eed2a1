"""Forged and broken tokens for the security tests.

Every variant starts from the claims a valid token of that kind carries and breaks exactly one
thing: expired, tampered (claims changed under the original signature), wrong audience, wrong
issuer, ``alg: none``, another RSA key, or HS256 keyed with the issuer's *public* key (the
classic algorithm-confusion attack).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt

from lpm.emulator.app import Emulator
from lpm.emulator.token_issuer import generate_private_key_pem

#: One RSA key that is not the emulator's (generating one costs ~0.1 s: do it once).
_OTHER_KEY: list[str] = []


def other_key() -> str:
    if not _OTHER_KEY:
        _OTHER_KEY.append(generate_private_key_pem())
    return _OTHER_KEY[0]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segments(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())


def emulator_keys(emu: Emulator) -> tuple[str, str]:
    """(private, public) PEM of the emulator's token signer."""
    assert emu.ctx is not None
    return emu.ctx.tokens.private_key_pem, emu.ctx.tokens.public_key_pem


def sign(claims: dict[str, Any], key: str, *, kid: str = "00001") -> str:
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


def tamper(token: str, **changes: Any) -> str:
    """``token`` with changed claims under its original signature."""
    header, _, signature = token.split(".")
    claims = {**jwt.decode(token, options={"verify_signature": False}), **changes}
    return f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"


def variants(emu: Emulator, claims: dict[str, Any], *, kid: str = "00001") -> dict[str, str]:
    """Broken versions of a token with ``claims`` signed by the emulator (``aud``/``iss`` set)."""
    private, public = emulator_keys(emu)
    now = int(time.time())
    valid = sign(claims, private, kid=kid)
    hs_header = {"alg": "HS256", "typ": "JWT", "kid": kid}
    hs_input = _segments(hs_header, claims)
    hs_signature = _b64(hmac.new(public.encode(), hs_input.encode(), hashlib.sha256).digest())
    return {
        "expired": sign({**claims, "iat": now - 7200, "exp": now - 3600}, private, kid=kid),
        "tampered": tamper(valid, sub="someone-else"),
        "wrong-audience": sign({**claims, "aud": "acc:99999999"}, private, kid=kid),
        "wrong-issuer": sign({**claims, "iss": "https://evil.example.com"}, private, kid=kid),
        "alg-none": _segments({"alg": "none", "typ": "JWT"}, claims) + ".",
        "wrong-key": sign(claims, other_key(), kid=kid),
        "hs256-public-key": f"{hs_input}.{hs_signature}",
    }


def consumer_claims(emu: Emulator, consumer_id: str) -> dict[str, Any]:
    """Claims of a valid LP consumer JWT (and of a ConsumerJWS, with ``azp``)."""
    now = int(time.time())
    return {
        "sub": consumer_id,
        "aud": f"acc:{emu.account_id}",
        "iss": "https://idp.liveperson.net",
        "iat": now,
        "exp": now + 3600,
    }


def app_jwt_claims(emu: Emulator, client_id: str = "lpm-emulator-app") -> dict[str, Any]:
    """Claims of a valid AppJWT."""
    now = int(time.time())
    return {
        "sub": client_id,
        "azp": client_id,
        "aud": f"le{emu.account_id}",
        "iss": "Sentinel",
        "scope": "msg.consumer",
        "iat": now,
        "exp": now + 3600,
    }


def subject(token: str) -> str:
    sub: str = jwt.decode(token, options={"verify_signature": False})["sub"]
    return sub
