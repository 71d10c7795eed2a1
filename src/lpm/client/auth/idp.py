"""Consumer identity: the IdP's token flows, brand-signed id_tokens and connector (Send API) auth.

Every call takes the :class:`~lpm.client.auth.http.HttpSettings`, the service host from CSDS
(``idp``, or ``sentinel`` for :func:`sentinel_app_jwt`) and the account id, and returns a token
string (protocol §2.3 and §2.5, node SDK reference §3.12):

=================================  ===============================================================
:func:`signup`                     legacy anonymous consumer, ``POST signup`` → ``{"jwt"}``
:func:`anonymous_authorize`        external unauthenticated token, ``POST anonymous/authorize``
:func:`refresh_anonymous`          the same token refreshed (same ``sub``)
:func:`authenticate_unauthenticated`  LP JWT from an unauthenticated (ACR-0) connector
:func:`authenticate_with_id_token`  LP JWT from an authenticated connector; with ``lp_jwt``:
                                   step-up of that unauthenticated consumer
:func:`mock_authenticate`          test-only code flow (``app/default/authenticate?v=2``)
:func:`mock_step_up`               test-only step-up with a code
:func:`sentinel_app_jwt`           AppJWT (OAuth 2 client credentials)
:func:`connector_consumer_jws`     ConsumerJWS for a connector's external consumer id
=================================  ===============================================================

Errors: a refusal (HTTP 4xx other than 429) raises :class:`~lpm.errors.AuthenticationError`
carrying the status and the server's message (IdP bodies ``{"error": {"message",
"internalErrorCode"}}``, sentinel's OAuth 2 ``{"error", "error_description"}``); throttling after
the bounded retries, 5xx, timeouts and transport failures raise :class:`~lpm.errors.HttpError`.
Tokens and secrets never appear in messages or logs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jwt as pyjwt

from lpm.client.auth.http import HttpSettings
from lpm.errors import AuthenticationError, ConfigurationError, HttpError

log = logging.getLogger("lpm.client.auth.idp")

#: ``redirect_uri`` the Node SDK sends with mock codes.
MOCK_REDIRECT_URI = "https://liveperson.net"
#: Lifetime given to signed claims that carry no ``exp``, in seconds.
DEFAULT_CLAIMS_TTL = 3600.0
#: Algorithms :func:`sign_jwt_claims` accepts (never ``none``).
SIGNING_ALGORITHMS = frozenset(
    {
        "RS256",
        "RS384",
        "RS512",
        "PS256",
        "PS384",
        "PS512",
        "ES256",
        "ES384",
        "ES512",
        "HS256",
        "HS384",
        "HS512",
    }
)
# IdP refusals: every 4xx except throttling.
_REFUSALS = tuple(s for s in range(400, 500) if s != 429)


def _url(http: HttpSettings, host: str, account_id: str, path: str) -> str:
    return f"{http.base_url(host)}/api/account/{account_id}/{path}"


def _token_of(body: Any, what: str, *fields: str) -> str:
    """The first of ``fields`` in a success body (the IdP says ``token`` or ``jwt``)."""
    if isinstance(body, Mapping):
        for name in fields:
            value = body.get(name)
            if isinstance(value, str) and value:
                return value
    raise HttpError(f"{what}: the response carries no {' or '.join(fields)}")


async def _post(
    http: HttpSettings,
    url: str,
    what: str,
    *,
    body: Any = None,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    expected: tuple[int, ...] = (200,),
    secrets: tuple[str | None, ...] = (),
    fields: tuple[str, ...] = ("token", "jwt"),
) -> str:
    response = await http.request(
        "POST",
        url,
        json=body,
        params=params,
        headers=headers,
        expected=expected,
        auth_statuses=_REFUSALS,
        what=what,
        secrets=secrets,
    )
    return _token_of(response.body, what, *fields)


def _require(value: str | None, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{name} is required")
    return value


async def signup(http: HttpSettings, idp_host: str, account_id: str) -> str:
    """A new anonymous consumer's LP JWT (the legacy demo flow, used without a connector)."""
    return await _post(
        http, _url(http, idp_host, account_id, "signup"), "IdP signup", fields=("jwt", "token")
    )


async def anonymous_authorize(http: HttpSettings, idp_host: str, account_id: str) -> str:
    """A new external unauthenticated token (10 minutes by default) for an ACR-0 connector.

    HTTP 428 means the account lacks the ``Messaging.Un_Auth_Messaging`` feature.
    """
    return await _anonymous(http, idp_host, account_id, {})


async def refresh_anonymous(http: HttpSettings, idp_host: str, account_id: str, anonymous_token: str) -> str:
    """A fresh anonymous token with the same ``sub`` as ``anonymous_token`` (expired or not, up to
    730 h after it was issued), so the consumer keeps its identity across sessions."""
    return await _anonymous(
        http, idp_host, account_id, {"id_token": _require(anonymous_token, "anonymous_token")}
    )


async def _anonymous(http: HttpSettings, idp_host: str, account_id: str, body: dict[str, str]) -> str:
    try:
        return await _post(
            http,
            _url(http, idp_host, account_id, "anonymous/authorize"),
            "IdP anonymous authorize" + (" (refresh)" if body else ""),
            body=body,
            secrets=tuple(body.values()),
        )
    except AuthenticationError as exc:
        if exc.status == 428:
            raise AuthenticationError(
                f"unAuth messaging feature is not enabled for accountId: {account_id}", status=428
            ) from exc
        raise


async def authenticate_unauthenticated(
    http: HttpSettings, idp_host: str, account_id: str, connector_id: str, anonymous_token: str
) -> str:
    """The LP consumer JWT of an anonymous token on an unauthenticated (ACR-0) connector."""
    _require(connector_id, "connector_id")
    token = _require(anonymous_token, "anonymous_token")
    body = {"id_token": token}
    return await _connector_authenticate(http, idp_host, account_id, connector_id, "IdP authenticate", body)


async def _connector_authenticate(
    http: HttpSettings, idp_host: str, account_id: str, connector_id: str, what: str, body: dict[str, str]
) -> str:
    """``POST app/{connector_id}/authenticate`` (v3.0): the LP consumer JWT of ``body``'s tokens."""
    return await _post(
        http,
        _url(http, idp_host, account_id, f"app/{connector_id}/authenticate"),
        f"{what} (connector {connector_id})",
        body=body,
        params={"v": "3.0"},
        secrets=tuple(body.values()),
    )


async def authenticate_with_id_token(
    http: HttpSettings,
    idp_host: str,
    account_id: str,
    connector_id: str,
    id_token: str,
    lp_jwt: str | None = None,
) -> str:
    """The LP consumer JWT of a brand-signed ``id_token`` on an authenticated connector.

    With ``lp_jwt`` (the current LP JWT of an anonymous or unauthenticated consumer) this is a
    step-up: the authenticated consumer takes over that consumer's open conversation, and the
    caller must reconnect with the returned token.
    """
    _require(connector_id, "connector_id")
    body = {"id_token": _require(id_token, "id_token")}
    if lp_jwt is not None:
        body["lp_jwt"] = _require(lp_jwt, "lp_jwt")
    what = "IdP step-up" if lp_jwt else "IdP authenticate"
    return await _connector_authenticate(http, idp_host, account_id, connector_id, what, body)


async def mock_authenticate(http: HttpSettings, idp_host: str, account_id: str, customer_name: str) -> str:
    """Test-only mock code flow: an authenticated consumer named ``customer_name``.

    Its SDEs are "Customer ID" ``lpTest<name>`` and first name ``<name>`` (the Node SDK's
    ``{useMockAuth: true, customerName}``).
    """
    return await _post(
        http,
        _url(http, idp_host, account_id, "app/default/authenticate"),
        "IdP mock authenticate",
        body={"code": _require(customer_name, "customer_name"), "redirect_uri": MOCK_REDIRECT_URI},
        params={"v": "2"},
    )


async def mock_step_up(
    http: HttpSettings, idp_host: str, account_id: str, connector_id: str, lp_jwt: str, customer_name: str
) -> str:
    """Test-only step-up of ``lp_jwt``'s consumer to the mock identity ``customer_name``."""
    _require(connector_id, "connector_id")
    body = {"lp_jwt": _require(lp_jwt, "lp_jwt"), "code": _require(customer_name, "customer_name")}
    return await _connector_authenticate(http, idp_host, account_id, connector_id, "IdP mock step-up", body)


async def sentinel_app_jwt(
    http: HttpSettings, sentinel_host: str, account_id: str, client_id: str, client_secret: str
) -> str:
    """An AppJWT for an app install (OAuth 2 client credentials; valid about an hour).

    The credentials go in the form body, never the query string, so they cannot end up in
    access logs.
    """
    secret = _require(client_secret, "client_secret")
    response = await http.request(
        "POST",
        f"{http.base_url(sentinel_host)}/sentinel/api/account/{account_id}/app/token",
        params={"v": "1.0", "grant_type": "client_credentials"},
        data={"client_id": _require(client_id, "client_id"), "client_secret": secret},
        auth_statuses=_REFUSALS,
        what="sentinel AppJWT",
        secrets=(secret,),
    )
    return _token_of(response.body, "sentinel AppJWT", "access_token")


async def connector_consumer_jws(
    http: HttpSettings, idp_host: str, account_id: str, app_jwt: str, ext_consumer_id: str
) -> str:
    """A ConsumerJWS (never expires) for ``ext_consumer_id`` of the app behind ``app_jwt``.

    The AppJWT goes raw in ``Authorization``, as the connector docs show.
    """
    token = _require(app_jwt, "app_jwt")
    return await _post(
        http,
        _url(http, idp_host, account_id, "consumer"),
        "IdP ConsumerJWS",
        body={"ext_consumer_id": _require(ext_consumer_id, "ext_consumer_id")},
        params={"v": "1.0"},
        headers={"Authorization": token},
        expected=(200, 201),
        secrets=(token,),
    )


# ---------------------------------------------------------------- local JWT helpers


def _signing_key(key: str | bytes | Path, algorithm: str) -> str | bytes:
    """The key material: an HMAC secret as given, or a PEM private key (text or file path)."""
    if algorithm.startswith("HS"):
        if isinstance(key, Path):
            raise ConfigurationError(f"{algorithm} needs a shared secret, not a key file")
        return key
    if isinstance(key, bytes):
        return key
    if isinstance(key, str) and key.lstrip().startswith("-----BEGIN"):
        return key
    path = Path(key)
    try:
        return path.read_text()
    except OSError as exc:
        raise ConfigurationError(f"cannot read the private key file {path}: {exc.strerror}") from exc


def sign_jwt_claims(
    claims: Mapping[str, Any],
    key: str | bytes | Path,
    algorithm: str = "RS256",
    *,
    ttl: float = DEFAULT_CLAIMS_TTL,
    headers: Mapping[str, Any] | None = None,
) -> str:
    """Sign ``claims`` as the brand does for an authenticated connector's ``id_token``.

    ``key`` is a PEM private key (text, bytes, or the path of a PEM file) for RS*/PS*/ES*, or the
    shared secret for HS*.  Nothing is added to the claims the caller gave except, when missing,
    ``iat`` (now) and ``exp`` (``iat + ttl``): the IdP requires both, and a brand's ``iss``,
    ``sub`` and ``aud`` are for the brand to decide.  ``headers`` go in the JWT header (``kid``).
    """
    if algorithm not in SIGNING_ALGORITHMS:
        raise ConfigurationError(f"unsupported signing algorithm {algorithm!r}")
    payload = dict(claims)
    now = int(time.time())
    payload.setdefault("iat", now)
    if "exp" not in payload:
        iat = payload["iat"]
        payload["exp"] = int((iat if isinstance(iat, int | float) else now) + ttl)
    material = _signing_key(key, algorithm)
    try:
        return pyjwt.encode(
            payload, material, algorithm=algorithm, headers=dict(headers) if headers else None
        )
    except (pyjwt.PyJWTError, ValueError, TypeError) as exc:
        # The exception text may quote the key; only its type is safe to show.
        raise ConfigurationError(f"cannot sign the claims with {algorithm}: {type(exc).__name__}") from None


def decode_claims_unverified(token: str) -> dict[str, Any]:
    """A JWT's claims, read WITHOUT verifying its signature (see :func:`decode_consumer_id`)."""
    try:
        claims = pyjwt.decode(token, options={"verify_signature": False})
    except pyjwt.PyJWTError as exc:
        raise AuthenticationError(f"the token is not a decodable JWT ({type(exc).__name__})") from None
    if not isinstance(claims, dict):  # pragma: no cover - PyJWT always answers a dict
        raise AuthenticationError("the token's payload is not a JSON object")
    return claims


def decode_consumer_id(token: str) -> str:
    """The consumer id (``sub``) of an LP consumer JWT, decoded WITHOUT verification.

    The client does not hold the IdP's key, so it cannot verify the token, and it need not: the
    server verifies it on every use.  The id is only used to recognise the consumer's own
    messages and participants (``originatorId == sub``), never to grant anything.
    """
    sub = decode_claims_unverified(token).get("sub")
    if not isinstance(sub, str) or not sub:
        raise AuthenticationError("the consumer JWT has no sub claim")
    return sub
