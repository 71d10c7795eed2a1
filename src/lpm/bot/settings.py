"""A bot's settings: given to :class:`~lpm.bot.Bot`, changed with ``bot.configure()``, and what
is left unset read from the environment when the bot starts.

Environment variables (read at :meth:`Bot.start <lpm.bot.Bot.start>`, never at import, so a
module that only defines a bot can be imported anywhere):

================================  ===========================================================
``LPM_ACCOUNT_ID``                account (site) id (``LPM_ACCOUNT`` as `lpm agent` spells it)
``LPM_USERNAME``                  the bot user's login name
``LPM_PASSWORD``                  its password, or the app keys below
``LPM_APP_KEY``, ``LPM_APP_SECRET``, ``LPM_ACCESS_TOKEN``, ``LPM_ACCESS_TOKEN_SECRET``
``LPM_CSDS_DOMAIN``               CSDS host (``http://127.0.0.1:8443`` for ``lpm emulator``)
``LPM_CA_FILE``                   a CA file to trust (``lpm emulator --tls``)
``LPM_BOT_STORE``                 conversation-state store URL (``memory://``, ``file:///dir``,
                                  ``redis://host:port/db``)
``LPM_BOT_REDIS``                 Redis URL for replicas (several processes share the work)
``LPM_BOT_REPLICA_ID``            this replica's name (default ``<host>-<pid>-<random>``)
``LPM_BOT_MAX_CONVERSATIONS``     capacity: rings beyond it are rejected
``LPM_BOT_HTTP_HOST``, ``LPM_BOT_HTTP_PORT``  the health/metrics endpoint (no port: none)
``LPM_BOT_GRACE``                 seconds handlers in flight get at shutdown
``LPM_BOT_LEASE``                 seconds after which a silent replica's conversations move on
``LPM_BOT_LOG_FORMAT``            ``text`` or ``json``
================================  ===========================================================

Secrets (password, app secrets) never appear in ``repr`` or logs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, TypeVar

from lpm.errors import ConfigurationError

if TYPE_CHECKING:
    from lpm.stores import ConversationStore

__all__ = ["BotSettings"]

_N = TypeVar("_N", int, float)

_SECRET = frozenset({"password", "app_secret", "access_token", "access_token_secret"})

#: setting -> environment variables (first one set wins).
ENVIRONMENT: dict[str, tuple[str, ...]] = {
    "account_id": ("LPM_ACCOUNT_ID", "LPM_ACCOUNT"),
    "username": ("LPM_USERNAME",),
    "password": ("LPM_PASSWORD",),
    "app_key": ("LPM_APP_KEY",),
    "app_secret": ("LPM_APP_SECRET",),
    "access_token": ("LPM_ACCESS_TOKEN",),
    "access_token_secret": ("LPM_ACCESS_TOKEN_SECRET",),
    "csds_domain": ("LPM_CSDS_DOMAIN",),
    "ca_file": ("LPM_CA_FILE",),
    "store": ("LPM_BOT_STORE",),
    "redis_url": ("LPM_BOT_REDIS",),
    "replica_id": ("LPM_BOT_REPLICA_ID",),
    "max_conversations": ("LPM_BOT_MAX_CONVERSATIONS",),
    "http_host": ("LPM_BOT_HTTP_HOST",),
    "http_port": ("LPM_BOT_HTTP_PORT",),
    "grace_period": ("LPM_BOT_GRACE",),
    "lease": ("LPM_BOT_LEASE",),
    "log_format": ("LPM_BOT_LOG_FORMAT",),
}


@dataclass
class BotSettings:
    """Everything a :class:`~lpm.bot.Bot` needs to run; None means "from the environment, else
    the default"."""

    #: Account (site) id.
    account_id: str | None = None
    #: Login name of the bot user, with ``password`` or the OAuth 1 app keys.
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    app_key: str | None = None
    app_secret: str | None = field(default=None, repr=False)
    access_token: str | None = field(default=None, repr=False)
    access_token_secret: str | None = field(default=None, repr=False)
    #: CSDS domain (None: LivePerson's); ``http://host:port`` for a plain emulator.
    csds_domain: str | None = None
    #: A CA file to trust (TLS emulator), or None for the system's.
    ca_file: str | None = None
    #: Where conversation state lives: a store URL or a :class:`~lpm.stores.ConversationStore`
    #: (default ``memory://``, or Redis at ``redis_url`` when replicas are on).
    store: str | ConversationStore | None = None
    #: Redis URL that several replicas of this bot coordinate through (None: one process).
    redis_url: str | None = None
    #: This replica's name (default: host, pid and a random suffix).
    replica_id: str | None = None
    #: Most conversations this process (replica) holds at once; rings beyond it are rejected.
    max_conversations: int | None = None
    #: Subscribe to rings and take conversations (False: a bot that only serves surveys or
    #: conversations it is added to).
    take_conversations: bool = True
    #: The health and metrics endpoint (``/healthz``, ``/readyz``, ``/metrics``); no port: none
    #: (0: a free port, see ``bot.http_url``).
    http_host: str | None = None
    http_port: int | None = None
    #: Seconds handlers in flight may still run after a stop was asked for.
    grace_period: float | None = None
    #: Replicas: seconds without a heartbeat after which a replica is taken for dead and its
    #: conversations move to the others.
    lease: float | None = None
    #: ``text`` or ``json`` (``bot.run()`` / ``lpm run`` configure logging with it).
    log_format: str | None = None
    #: OpenTelemetry spans around handlers and actions (needs ``opentelemetry-api``).
    tracing: bool = False
    #: More :func:`lpm.create_connection` options (timeouts, ``app_id``...).
    connection_options: dict[str, Any] = field(default_factory=dict)

    def merged(self, **changes: Any) -> BotSettings:
        """A copy with ``changes`` (None values are ignored: they do not unset)."""
        names = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ConfigurationError(f"unknown bot setting(s): {', '.join(unknown)}")
        kept = {k: v for k, v in changes.items() if v is not None}
        if "connection_options" in kept:
            kept["connection_options"] = {**self.connection_options, **kept["connection_options"]}
        return replace(self, **kept)

    def resolved(self, environ: Mapping[str, str] | None = None) -> BotSettings:
        """Fill unset values from ``environ`` (default ``os.environ``), then the defaults; check
        them (:class:`~lpm.errors.ConfigurationError` names what is missing or wrong)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, variables in ENVIRONMENT.items():
            if getattr(self, name) is not None:
                continue
            for variable in variables:
                raw = env.get(variable)
                if raw:
                    values[name] = raw
                    break
        out = replace(self, **values)
        out.max_conversations = _int(out.max_conversations, "max_conversations", minimum=1)
        out.http_port = _int(out.http_port, "http_port", minimum=0)
        out.grace_period = _float(out.grace_period, "grace_period", default=30.0)
        out.lease = _float(out.lease, "lease", default=10.0)
        out.http_host = out.http_host or "127.0.0.1"
        out.log_format = (out.log_format or "text").lower()
        if out.log_format not in ("text", "json"):
            raise ConfigurationError("log_format must be 'text' or 'json'")
        if not out.account_id:
            raise ConfigurationError("the bot needs an account id (account_id= or LPM_ACCOUNT_ID)")
        if not out.username:
            raise ConfigurationError("the bot needs a user (username= or LPM_USERNAME)")
        if not out.password and not (out.app_key and out.app_secret):
            raise ConfigurationError(
                "the bot needs a password (LPM_PASSWORD) or app keys (LPM_APP_KEY, LPM_APP_SECRET, "
                "LPM_ACCESS_TOKEN, LPM_ACCESS_TOKEN_SECRET)"
            )
        return out

    def auth_data(self) -> dict[str, str]:
        """The ``auth_data`` of the bot's connection (holds secrets: never log it)."""
        data = {"username": self.username or ""}
        if self.password:
            data["password"] = self.password
            return data
        for name in ("app_key", "secret", "access_token", "access_token_secret"):
            value = getattr(self, "app_secret" if name == "secret" else name)
            if value:
                data[name] = value
        return data

    def describe(self) -> dict[str, Any]:
        """The settings without secrets, for a log line."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name in _SECRET or f.name == "connection_options":
                continue
            value = getattr(self, f.name)
            if f.name in ("store", "redis_url") and value is not None:
                value = _redact(value)
            out[f.name] = value
        return out


def _redact(value: Any) -> str:
    """A store or Redis URL without its password."""
    if not isinstance(value, str):
        return repr(value)
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    if parts.password is None:
        return value
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://***@{host}{port}{parts.path}"


def _int(value: Any, name: str, *, minimum: int) -> int | None:
    if value is None:
        return None
    return _number(value, name, int, lambda n: n >= minimum, f"an integer >= {minimum}")


def _float(value: Any, name: str, *, default: float) -> float:
    if value is None:
        return default
    return _number(value, name, float, lambda n: n > 0, "a positive number of seconds")


def _number(value: Any, name: str, kind: Callable[[Any], _N], valid: Callable[[_N], bool], what: str) -> _N:
    """``value`` (a number or its text) as ``kind``, when ``valid``; else a
    :class:`~lpm.errors.ConfigurationError` saying that ``name`` must be ``what``."""
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{name} must be {what}, not {value!r}") from None
    if isinstance(value, bool) or not valid(number):
        raise ConfigurationError(f"{name} must be {what}, not {value!r}")
    return number
