"""JWTs the emulator issues and verifies: LP consumer JWTs, anonymous tokens, AppJWTs, ConsumerJWS.

All are real RS256 tokens signed with the emulator's own key (``kid`` ``00001`` for the IdP,
``appjwt-<date>`` for sentinel), carrying ``sub``, ``aud``, ``iss``, ``exp`` and ``iat``.  The key
is generated at start, or loaded from the store so tokens survive a restart with ``--db``.
Brand-signed id_tokens of authenticated connectors are verified with the connector's public key
(RS256) or shared secret (HS256).
"""

from __future__ import annotations

import contextlib
import time
import uuid
import warnings
from collections.abc import Callable
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.warnings import InsecureKeyLengthWarning

from lpm.emulator.entities import Connector
from lpm.emulator.world_errors import Unauthorized

IDP_ISSUER = "https://idp.liveperson.net"
ANON_ISSUER = "https://idp.liveperson.net/anonymous"
SENTINEL_ISSUER = "Sentinel"
IDP_KID = "00001"

#: Test hook: callbacks told about every secret the emulator issues (see :func:`observe_issued`).
#: Empty in normal runs, so issuing costs nothing extra.
_issued_observers: list[Callable[[str], None]] = []


def observe_issued(callback: Callable[[str], None]) -> Callable[[], None]:
    """Call ``callback`` with every secret the emulator issues from now on — each JWT it signs,
    each agent bearer, csrf and session id — until the returned function is called.

    Process-wide and meant for test suites that hunt leaked secrets in logs and error messages.
    """
    _issued_observers.append(callback)

    def stop() -> None:
        with contextlib.suppress(ValueError):
            _issued_observers.remove(callback)

    return stop


def record_issued(*values: str) -> None:
    """Tell the observers (if any) about freshly issued secrets."""
    for callback in _issued_observers:
        for value in values:
            callback(value)


class WrongIssuer(Unauthorized):
    """A validly signed token of the right audience whose ``iss`` is not the expected issuer."""


def generate_private_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def public_key_pem(private_pem: str) -> str:
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


class TokenService:
    """Issues and verifies the emulator's own tokens."""

    def __init__(self, private_key_pem: str | None = None, clock: Callable[[], float] = time.time) -> None:
        self.private_key_pem = private_key_pem or generate_private_key_pem()
        self.public_key_pem = public_key_pem(self.private_key_pem)
        self._private = serialization.load_pem_private_key(self.private_key_pem.encode(), password=None)
        self._public = self._private.public_key()
        self.clock = clock
        #: Tokens revoked by the fault API (their ``jti``), refused from then on.
        self.revoked: set[str] = set()

    def _sign(self, claims: dict[str, Any], kid: str) -> str:
        token = jwt.encode(claims, self._private, algorithm="RS256", headers={"kid": kid})  # type: ignore[arg-type]
        record_issued(token)
        return token

    def _base(self, sub: str, aud: str, iss: str, ttl: float | None) -> dict[str, Any]:
        now = int(self.clock())
        claims: dict[str, Any] = {"sub": sub, "aud": aud, "iss": iss, "iat": now, "jti": uuid.uuid4().hex}
        if ttl is not None:
            claims["exp"] = now + int(ttl)
        return claims

    # ---------------------------------------------------------------- consumer JWTs

    def issue_consumer(
        self,
        account_id: str,
        consumer_id: str,
        ttl: float | None,
        ext: dict[str, Any] | None = None,
    ) -> str:
        """An LP consumer JWT (``sub`` = consumer id, ``aud`` = ``acc:{account}``)."""
        claims = self._base(consumer_id, f"acc:{account_id}", IDP_ISSUER, ttl)
        if ext:
            claims["lp.ext"] = ext
        return self._sign(claims, IDP_KID)

    def verify_consumer(self, token: str, account_id: str) -> dict[str, Any]:
        """Claims of a valid LP consumer JWT for ``account_id``; :class:`Unauthorized` otherwise."""
        return self._verify(token, audience=f"acc:{account_id}", issuer=IDP_ISSUER)

    def issue_anonymous(self, account_id: str, ttl: float, sub: str | None = None) -> str:
        """The external unauthenticated token of ``anonymous/authorize`` (refreshable)."""
        return self._sign(
            self._base(sub or str(uuid.uuid4()), f"acc:{account_id}", ANON_ISSUER, ttl), IDP_KID
        )

    def verify_anonymous(self, token: str, account_id: str, *, allow_expired: bool = False) -> dict[str, Any]:
        return self._verify(
            token, audience=f"acc:{account_id}", issuer=ANON_ISSUER, verify_exp=not allow_expired
        )

    # ---------------------------------------------------------------- connector (server) tokens

    def issue_app_jwt(self, account_id: str, client_id: str, ttl: float) -> str:
        claims = self._base(client_id, f"le{account_id}", SENTINEL_ISSUER, ttl)
        claims["azp"] = client_id
        claims["scope"] = "msg.consumer"
        kid = "appjwt-" + time.strftime("%d-%m-%Y", time.gmtime(self.clock()))
        return self._sign(claims, kid)

    def verify_app_jwt(self, token: str, account_id: str) -> dict[str, Any]:
        return self._verify(token, audience=f"le{account_id}", issuer=SENTINEL_ISSUER)

    def issue_consumer_jws(self, account_id: str, consumer_id: str, client_id: str) -> str:
        """The Send API's ConsumerJWS: never expires."""
        claims = self._base(consumer_id, f"acc:{account_id}", IDP_ISSUER, None)
        claims["azp"] = client_id
        return self._sign(claims, IDP_KID)

    # ---------------------------------------------------------------- verification

    def _verify(self, token: str, *, audience: str, issuer: str, verify_exp: bool = True) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._public,  # type: ignore[arg-type]
                algorithms=["RS256"],
                audience=audience,
                issuer=issuer,
                options={"verify_exp": verify_exp, "require": ["sub", "iat"]},
                leeway=0,
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token expired") from None
        except jwt.InvalidAudienceError:
            raise Unauthorized("token has the wrong audience") from None
        except jwt.InvalidIssuerError:
            raise WrongIssuer("token has the wrong issuer") from None
        except jwt.PyJWTError:
            raise Unauthorized("invalid token") from None
        if claims.get("jti") in self.revoked:
            raise Unauthorized("token revoked")
        return claims


def verify_brand_id_token(connector: Connector, token: str) -> dict[str, Any]:
    """Verify an id_token the brand signed for an authenticated connector."""
    if connector.jwt_alg == "HS256":
        if not connector.secret:
            raise Unauthorized("connector has no secret configured")
        key: Any = connector.secret
    else:
        if not connector.public_key_pem:
            raise Unauthorized("connector has no public key configured")
        key = serialization.load_pem_public_key(connector.public_key_pem.encode())
    try:
        with warnings.catch_warnings():
            # The brand picks its HS256 secret; a short one is its business, not a reason to fail.
            warnings.simplefilter("ignore", InsecureKeyLengthWarning)
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[connector.jwt_alg],
                issuer=connector.issuer,
                options={"verify_aud": False, "require": ["sub", "exp", "iat"]},
            )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("id_token expired") from None
    except jwt.PyJWTError as exc:
        raise Unauthorized(f"invalid id_token: {type(exc).__name__}") from None
    return claims
