"""Brand (agent / bot) authentication with agentVep: login, refresh and logout.

``POST {agentVep}/api/account/{acc}/login?v=1.3`` with ``{username, password}`` (a person) or
``{username, appKey, secret, accessToken, accessTokenSecret}`` (a bot / API user) answers the
bearer, the csrf token, the user's ids and sets the ``Session_id`` cookie; ``refresh`` (cookie +
csrf) extends the session and ``logout`` ends it (node SDK reference §3.2, protocol §2.1).

Errors: a refused login, refresh or logout (HTTP 400/401/403, or a 200 whose body carries an
``error``) raises :class:`~lpm.errors.AuthenticationError` with the server's message and status;
throttling (429, after the bounded retries of :class:`~lpm.client.auth.http.RetryPolicy`), server
errors, timeouts and transport failures raise :class:`~lpm.errors.HttpError`; malformed
``auth_data`` raises :class:`~lpm.errors.ConfigurationError` before any I/O.  No message or log line
contains a password, secret, bearer or csrf token.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lpm.client.auth.http import HttpSettings, redact
from lpm.errors import AuthenticationError, ConfigurationError

log = logging.getLogger("lpm.client.auth.agent_login")

#: agentVep API version the Node SDK uses.
LOGIN_API_VERSION = "1.3"
#: Name of agentVep's session cookie.
SESSION_COOKIE = "Session_id"
#: HTTP statuses that mean "these credentials / this session are refused".
_AUTH_STATUSES = (400, 401, 403)
_LOGIN_WHAT = "Error while getting auth token from AgentVEP"

# (wire name, accepted spellings) of the app-key login fields, in the order they are checked.
_KEY_FIELDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("appKey", ("appKey", "app_key")),
    ("secret", ("secret",)),
    ("accessToken", ("accessToken", "access_token")),
    ("accessTokenSecret", ("accessTokenSecret", "access_token_secret")),
)


@dataclass(slots=True)
class AgentSession:
    """An agentVep login session (the Node SDK's ``authSessionInfo``).

    Secrets are left out of ``repr`` so that logging the object is safe.  ``csrf`` and
    ``session_id`` are None for a caller-supplied bearer, which then cannot be refreshed.
    """

    account_id: str
    token: str = field(repr=False)
    csrf: str | None = field(default=None, repr=False)
    session_id: str | None = field(default=None, repr=False)
    user_id: str | None = None
    user_pid: str | None = None
    #: Session lifetime in seconds, as announced by the login (extended by each refresh).
    session_ttl: float | None = None

    @property
    def agent_id(self) -> str | None:
        """The agent's old-style id ``{account_id}.{user_id}`` (None without a user id)."""
        return f"{self.account_id}.{self.user_id}" if self.user_id else None

    @property
    def refreshable(self) -> bool:
        """Whether :func:`refresh` can extend this session (it needs the cookie and csrf)."""
        return bool(self.csrf and self.session_id)

    @classmethod
    def from_mapping(cls, account_id: str, data: Mapping[str, Any]) -> AgentSession:
        """An existing session from the ``auth_agent_session_data`` option.

        Accepts ``{token, csrf, sessionId, userId, userPid}`` in camelCase or snake_case
        (``bearer`` is accepted for ``token``).
        """
        token = _first(data, "token", "bearer")
        if not token:
            raise ConfigurationError("auth_agent_session_data must contain token")
        ttl = _first(data, "sessionTTl", "session_ttl")
        return cls(
            account_id=account_id,
            token=token,
            csrf=_first(data, "csrf"),
            session_id=_first(data, "sessionId", "session_id", SESSION_COOKIE),
            user_id=_first(data, "userId", "user_id"),
            user_pid=_first(data, "userPid", "user_pid"),
            session_ttl=float(ttl) if ttl else None,
        )

    def as_dict(self) -> dict[str, Any]:
        """The Node SDK's ``authSessionInfo`` shape (camelCase; contains secrets)."""
        return {
            "accountId": self.account_id,
            "token": self.token,
            "sessionId": self.session_id,
            "csrf": self.csrf,
            "userId": self.user_id,
            "userPid": self.user_pid,
        }


def _first(data: Mapping[str, Any], *names: str) -> str | None:
    for name in names:
        value = data.get(name)
        if value is not None and value != "":
            if not isinstance(value, str | int):
                raise ConfigurationError(f"{name} must be a string")
            return str(value)
    return None


def login_body(auth_data: Mapping[str, Any]) -> dict[str, str]:
    """The login request body for ``auth_data`` (validated, keys in agentVep's camelCase).

    Raises :class:`ConfigurationError` with the Node SDK's messages: ``appKey provided, but
    missing secret`` (and so on for ``accessToken`` / ``accessTokenSecret``), or ``Invalid Login
    Information`` followed by what is missing when neither shape is given.
    """
    if not isinstance(auth_data, Mapping):
        raise ConfigurationError("auth_data must be a mapping")
    if auth_data.get("assertion") is not None:
        raise ConfigurationError("SAML assertion login is not supported")
    username = _first(auth_data, "username")
    password = _first(auth_data, "password")
    app_key = _first(auth_data, *_KEY_FIELDS[0][1])
    if username and password:
        return {"username": username, "password": password}
    if username and app_key:
        body = {"username": username}
        for wire, spellings in _KEY_FIELDS:
            value = _first(auth_data, *spellings)
            if not value:
                raise ConfigurationError(f"appKey provided, but missing {wire}")
            body[wire] = value
        return body
    # The Node SDK says "Invalid Login Information" for all of these: say which part is missing.
    if not username:
        raise ConfigurationError(
            "Invalid Login Information: auth_data has no username (give username and password, "
            "or username with app_key, secret, access_token and access_token_secret)"
        )
    raise ConfigurationError(
        "Invalid Login Information: auth_data has a username but no password (or app_key, secret, "
        "access_token and access_token_secret for an API-key login)"
    )


def _secrets(*values: Any) -> list[str]:
    return [v for v in values if isinstance(v, str) and v]


def _url(http: HttpSettings, host: str, account_id: str, action: str) -> str:
    return f"{http.base_url(host)}/api/account/{account_id}/{action}"


async def login(
    http: HttpSettings, agentvep_host: str, account_id: str, auth_data: Mapping[str, Any]
) -> AgentSession:
    """Log in to agentVep and return the new session.

    ``agentvep_host`` is the ``agentVep`` CSDS entry.  Raises :class:`AuthenticationError` when
    the credentials are refused, :class:`HttpError` for throttling and server or transport
    failures, :class:`ConfigurationError` for malformed ``auth_data``.
    """
    body = login_body(auth_data)
    secrets = _secrets(*body.values())
    response = await http.request(
        "POST",
        _url(http, agentvep_host, account_id, "login"),
        params={"v": LOGIN_API_VERSION},
        json=body,
        headers={"Content-Type": "application/json"},
        auth_statuses=_AUTH_STATUSES,
        what=_LOGIN_WHAT,
        login=True,
        secrets=secrets,
    )
    data = response.body
    if not isinstance(data, dict):
        raise AuthenticationError(f"{_LOGIN_WHAT}: the response is not a JSON object", status=response.status)
    if data.get("error"):
        error = data["error"]
        detail = error.get("message") if isinstance(error, dict) else error
        raise AuthenticationError(
            redact(f"{_LOGIN_WHAT}: {detail}", secrets + _secrets(data.get("bearer"))),
            status=response.status,
        )
    config_value = data.get("config")
    config: dict[str, Any] = config_value if isinstance(config_value, dict) else {}
    bearer = data.get("bearer")
    user_id = config.get("userId")
    if not isinstance(bearer, str) or not bearer:
        raise AuthenticationError(f"{_LOGIN_WHAT}: the response has no bearer", status=response.status)
    if user_id is None:
        # The Node SDKs refuse such a login too: the agent's ids are needed on every request.
        raise AuthenticationError(f"{_LOGIN_WHAT}: the response has no config.userId", status=response.status)
    session_id = _cookie(response.cookies, SESSION_COOKIE) or data.get("sessionId")
    ttl = data.get("sessionTTl")
    try:
        session_ttl = float(ttl) / 1000.0 if ttl is not None else None
    except (TypeError, ValueError):
        session_ttl = None
    user_pid = config.get("userPid")
    session = AgentSession(
        account_id=account_id,
        token=bearer,
        csrf=data.get("csrf") if isinstance(data.get("csrf"), str) else None,
        session_id=session_id if isinstance(session_id, str) else None,
        user_id=str(user_id),
        user_pid=str(user_pid) if user_pid is not None else None,
        session_ttl=session_ttl,
    )
    log.info("agent %s logged in to account %s", body["username"], account_id)
    return session


def _cookie(cookies: Mapping[str, str], name: str) -> str | None:
    # Cookie names are case sensitive, but agentVep has been seen spelling this one both ways.
    for key, value in cookies.items():
        if key.lower() == name.lower() and value:
            return value
    return None


async def _session_call(http: HttpSettings, agentvep_host: str, session: AgentSession, action: str) -> None:
    if not session.refreshable:
        raise ConfigurationError(f"cannot {action} a session without csrf and session id")
    assert session.csrf is not None and session.session_id is not None
    await http.request(
        "POST",
        _url(http, agentvep_host, session.account_id, action),
        params={"v": LOGIN_API_VERSION},
        json={"csrf": session.csrf},
        headers={"Content-Type": "application/json"},
        cookies={SESSION_COOKIE: session.session_id},
        expected=range(200, 300),
        auth_statuses=_AUTH_STATUSES,
        what=f"agentVep {action} for account {session.account_id}",
        secrets=_secrets(session.token, session.csrf, session.session_id),
    )


async def refresh(http: HttpSettings, agentvep_host: str, session: AgentSession) -> None:
    """Extend ``session``.

    A session that is no longer valid raises :class:`AuthenticationError` with status 401
    (log in again); other failures raise :class:`HttpError`.
    """
    await _session_call(http, agentvep_host, session, "refresh")
    log.debug("agent session of user %s refreshed", session.user_id)


async def logout(http: HttpSettings, agentvep_host: str, session: AgentSession) -> None:
    """End ``session`` (its bearer stops working and its sockets are closed by the server)."""
    await _session_call(http, agentvep_host, session, "logout")
    log.info("agent user %s logged out of account %s", session.user_id, session.account_id)
