"""Connection options: every option of the Node SDK's ``createConnection`` in snake_case.

Times are in seconds.  :func:`validate_options` checks types and combinations before any I/O
and raises :class:`lpm.errors.ConfigurationError` with a message that names the option.
"""

from __future__ import annotations

import dataclasses
import ssl as ssl_module
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lpm.client.retry import Backoff
from lpm.errors import ConfigurationError

#: Reconnect schedule (seconds) of the Node SDK; the last value repeats forever.
EXTENDED_RECONNECT_SCHEDULE: tuple[float, ...] = (
    5,
    10,
    30,
    60,
    120,
    180,
    240,
    300,
    600,
    1800,
    3600,
    7200,
    14400,
)
#: With ``use_extended_reconnect_schedule=False`` the wait never exceeds 10 minutes.
SHORT_RECONNECT_SCHEDULE: tuple[float, ...] = (5, 10, 30, 60, 120, 180, 240, 300, 600)

SslOption = ssl_module.SSLContext | str | Path | bool | None

#: Options that are credentials (masked by ``repr``).
SECRET_OPTIONS = frozenset({"token", "jwt_signing_key", "id_token", "auth_agent_session_data"})
#: ``auth_data`` keys that name someone rather than prove it (shown by ``repr``; the rest is masked).
PUBLIC_AUTH_FIELDS = frozenset({"username", "client_id", "ext_consumer_id"})
MASK = "***"


@dataclass(slots=True)
class ConnectionOptions:
    """Validated options of one connection (see :func:`lpm.create_connection`)."""

    #: The brand's account id (``brandId`` on the wire); required.
    account_id: str
    #: :class:`lpm.UserType` value: ``brand`` (agents, managers, bots) or ``consumer``; required.
    user_type: str
    #: :class:`lpm.ConnectionType` value: ``ws`` (default), ``rest``, ``sendapi`` or ``null``.
    connection_type: str = "ws"
    #: Brand credentials: ``{username, password}`` or ``{username, appKey, secret, accessToken,
    #: accessTokenSecret}`` (an API user or bot); for consumers the Send API's app credentials.
    auth_data: dict[str, Any] | None = None
    #: Consumer: the client properties sent with ``InitConnection`` and in each new conversation's
    #: context (see :func:`lpm.create_client_properties`).
    client_properties: dict[str, Any] | None = None
    #: Reconnect after a lost socket, on the reconnect schedule, with subscriptions restored.
    maintain_connection: bool = True
    #: Subscribe to conversations once connected (:attr:`Connection.default_subscription`).
    create_default_subscription: bool = True
    #: The default subscription's query; None: brands ``{stage: [OPEN]}``, consumers all stages.
    default_subscription_query: dict[str, Any] | None = None
    #: ``open()`` returns only once the default subscription's first notification has arrived.
    wait_for_first_notification: bool = False
    #: ``open()`` returns only once the default subscription has loaded every existing conversation
    #: (the ``ready`` event).
    wait_for_ready: bool = False
    #: Brand: poll the account's skill shift status (:mod:`lpm.client.shift_status`).
    poll_shift_status: bool = False
    #: A ready token: the consumer's JWT, or a brand bearer for REST (then never refreshed).
    token: str | None = None
    #: Consumer: the unauthenticated connector whose anonymous identity flow to use.
    unauth_connector_id: str | None = None
    #: Consumer: the authenticated connector (with ``jwt_claims_set`` or ``id_token``).
    auth_connector_id: str | None = None
    #: Consumer: claims of the brand-signed JWT for the authenticated connector
    #: (see :func:`lpm.create_jwt_claims_set`).
    jwt_claims_set: dict[str, Any] | None = None
    #: Key that signs ``jwt_claims_set``: an RS256 private key (PEM text or file path) or an HS256 secret.
    jwt_signing_key: str | Path | None = None
    #: How ``jwt_signing_key`` signs: ``RS256`` or ``HS256``.
    jwt_algorithm: str = "RS256"
    #: A ready brand-signed id_token for the authenticated connector (instead of claims + key).
    id_token: str | None = None
    #: Brand: load a newly discovered conversation's history before announcing it.
    get_all_messages: bool = False
    #: Your application's id, sent for tracking (``appid``).
    app_id: str | None = None
    #: Your application's version, sent for tracking (``appvn``).
    app_version: str | None = None
    #: Page past UMS's cap of about 1,000 conversations per subscription snapshot.
    limit_break_enabled: bool = True
    #: Reconnect waits grow to 4 hours (True) or to 10 minutes (False).
    use_extended_reconnect_schedule: bool = True
    #: Brand: an existing agentVep session ``{token, csrf, sessionId}`` to use instead of a login.
    auth_agent_session_data: dict[str, Any] | None = None
    #: Brand: your own token maintainer (an object with the :class:`lpm.TokenMaintainer` methods).
    token_maintainer: Any = None
    #: Seconds a request waits for its response.
    response_timeout: float = 60.0
    #: Seconds of silence after which a keep-alive ``GetClock`` is sent.
    keep_alive_interval: float = 10.0
    #: Seconds after a socket was lost during which new requests are still queued (later ones
    #: fail at once with :class:`~lpm.errors.NotConnectedError`).
    max_request_queue_time: float = 60.0
    #: Seconds a queued request waits for the connection before it fails.
    request_queue_timeout: float = 60.0
    #: Seconds before the first reconnect attempt after a lost socket.
    wait_to_reconnect: float = 2.0
    #: Seconds a conversation that left every subscription stays cached.
    conversations_cache_duration: float = 600.0
    #: Seconds ``Ring.accept()`` (and ``wait_for_conversation``) wait for the accepted
    #: conversation to be announced (the Node SDK's ``ringConversationTimeout``).
    ring_conversation_timeout: float = 30.0
    #: The agent id a NULL connection reports (``{account}.{user id}``); others learn it at login.
    agent_id: str | None = None
    #: Where to discover the services: ``host[:port]`` (HTTPS and WSS) or ``http://host[:port]``
    #: (plain, e.g. a local emulator).
    csds_domain: str = "adminlogin.liveperson.net"
    #: Per-service host overrides (CSDS service name to ``host[:port]``).
    domains: dict[str, str] = field(default_factory=dict)
    #: TLS: an :class:`ssl.SSLContext`, a CA file to trust, False to skip verification, or None
    #: (the system's trust store).
    ssl: SslOption = None
    #: Seconds between attempts; overrides the schedule chosen by ``use_extended_reconnect_schedule``.
    reconnect_schedule: tuple[float, ...] | None = None
    #: Seconds a socket upgrade (handshake) may take.
    connect_timeout: float = 30.0
    #: Seconds the first ``open()`` keeps retrying transient failures (an unreachable host, 5xx,
    #: timeouts) before it raises :class:`~lpm.errors.ConnectFailedError`; None retries forever
    #: (the Node SDK's behaviour).  Permanent failures (refused credentials, an unknown account)
    #: raise at once.  ``maintain_connection`` governs only what happens after the first success.
    open_timeout: float | None = 30.0
    #: Seconds between agentVep session refreshes (the Node SDK refreshes every 4 minutes).
    token_refresh_interval: float = 240.0
    #: Seconds without any frame from UMS after which a socket is declared dead and replaced (a
    #: keep-alive request goes out after ``keep_alive_interval`` seconds of silence, so a live
    #: server always answers well within it).  Catches what TCP does not report: a NAT or load
    #: balancer that dropped the connection, a frozen server.
    dead_connection_timeout: float = 20.0
    #: Largest WebSocket frame accepted from UMS (bytes); a larger one closes the socket (1009),
    #: is reported as :class:`~lpm.errors.LimitExceededError` and the connection reconnects.
    max_frame_size: int = 16 * 1024 * 1024
    #: Largest HTTP answer body read (bytes); a larger one fails the call with
    #: :class:`~lpm.errors.LimitExceededError`.
    max_body_size: int = 16 * 1024 * 1024
    #: Most conversations the connection caches; the conversations a notification brings beyond
    #: it are not cached (reported once per notification as
    #: :class:`~lpm.errors.LimitExceededError`; they come back when the cache has room again).
    max_conversations: int = 100_000
    #: Ask UMS for permessage-deflate at the WebSocket upgrade (RFC 7692; used only if the server
    #: agrees).  Frames then cross the network compressed, several times smaller, for zlib work on
    #: every frame in both directions: worth it on a slow or metered link, not on a fast one
    #: where the CPU is the limit (see docs/performance.md).  Off by default.
    compression: bool = False

    def __repr__(self) -> str:
        # Credentials never reach logs or tracebacks: secret options and auth_data values are masked.
        parts = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is not None and f.name in SECRET_OPTIONS:
                value = MASK
            elif f.name == "auth_data" and isinstance(value, dict):
                value = {k: v if k in PUBLIC_AUTH_FIELDS else MASK for k, v in value.items()}
            parts.append(f"{f.name}={value!r}")
        return f"ConnectionOptions({', '.join(parts)})"

    def schedule(self) -> tuple[float, ...]:
        """Seconds between reconnect attempts, the last value repeating forever."""
        if self.reconnect_schedule is not None:
            return self.reconnect_schedule
        return (
            EXTENDED_RECONNECT_SCHEDULE if self.use_extended_reconnect_schedule else SHORT_RECONNECT_SCHEDULE
        )

    def reconnect_backoff(self) -> Backoff:
        """:meth:`schedule` as the :class:`~lpm.client.retry.Backoff` of reconnect attempts."""
        return Backoff(self.schedule())


OPTION_NAMES = frozenset(f.name for f in dataclasses.fields(ConnectionOptions))

_POSITIVE = (
    "response_timeout",
    "keep_alive_interval",
    "max_request_queue_time",
    "request_queue_timeout",
    "conversations_cache_duration",
    "ring_conversation_timeout",
    "connect_timeout",
    "token_refresh_interval",
    "dead_connection_timeout",
)
#: Options that are a positive whole number (of bytes, of conversations).
_POSITIVE_COUNTS = ("max_frame_size", "max_body_size", "max_conversations")


def validate_options(opts: ConnectionOptions) -> ConnectionOptions:
    """Check every option; raise ConfigurationError naming the first bad one."""
    if isinstance(opts.account_id, int) and not isinstance(opts.account_id, bool) and opts.account_id > 0:
        # LivePerson account ids are digits; 12345678 means "12345678".
        opts.account_id = str(opts.account_id)
    if not opts.account_id or not isinstance(opts.account_id, str):
        raise ConfigurationError(
            f"account_id is a required parameter: the account's id as a string such as '12345678', got "
            f"{opts.account_id!r}"
        )
    for name in _POSITIVE:
        value = getattr(opts, name)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ConfigurationError(f"{name} must be a positive number of seconds, got {value!r}")
    if opts.open_timeout is not None and (
        isinstance(opts.open_timeout, bool)
        or not isinstance(opts.open_timeout, int | float)
        or opts.open_timeout <= 0
    ):
        raise ConfigurationError(
            f"open_timeout must be a positive number of seconds or None, got {opts.open_timeout!r}"
        )
    for name in _POSITIVE_COUNTS:
        value = getattr(opts, name)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigurationError(f"{name} must be a positive whole number, got {value!r}")
    if opts.dead_connection_timeout <= opts.keep_alive_interval:
        raise ConfigurationError(
            "dead_connection_timeout must be longer than keep_alive_interval (a keep-alive must "
            f"have time to be answered), got {opts.dead_connection_timeout!r} <= {opts.keep_alive_interval!r}"
        )
    if isinstance(opts.wait_to_reconnect, bool) or not isinstance(opts.wait_to_reconnect, int | float):
        raise ConfigurationError("wait_to_reconnect must be a number of seconds")
    if opts.wait_to_reconnect < 0:
        raise ConfigurationError("wait_to_reconnect must be >= 0")
    if opts.reconnect_schedule is not None and (
        not opts.reconnect_schedule
        or any(
            isinstance(s, bool) or not isinstance(s, int | float) or s < 0 for s in opts.reconnect_schedule
        )
    ):
        raise ConfigurationError("reconnect_schedule must be a non-empty sequence of seconds >= 0")
    if not isinstance(opts.csds_domain, str) or not opts.csds_domain:
        raise ConfigurationError("csds_domain must be a non-empty string")
    if not isinstance(opts.domains, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in opts.domains.items()
    ):
        raise ConfigurationError("domains must map service names to hosts")
    if opts.ssl is not None and not isinstance(opts.ssl, ssl_module.SSLContext | str | Path | bool):
        raise ConfigurationError("ssl must be an ssl.SSLContext, a CA file path, True or False")
    if isinstance(opts.ssl, str | Path) and not Path(opts.ssl).is_file():
        raise ConfigurationError(f"ssl CA file {opts.ssl} does not exist")
    if opts.auth_data is not None and not isinstance(opts.auth_data, dict):
        raise ConfigurationError("auth_data must be a dict")
    if opts.default_subscription_query is not None and not isinstance(opts.default_subscription_query, dict):
        raise ConfigurationError("default_subscription_query must be a dict")
    if not isinstance(opts.compression, bool):
        raise ConfigurationError(f"compression must be True or False, got {opts.compression!r}")
    if not isinstance(opts.poll_shift_status, bool):
        raise ConfigurationError(f"poll_shift_status must be True or False, got {opts.poll_shift_status!r}")
    if opts.poll_shift_status and (opts.user_type != "brand" or opts.connection_type not in ("ws", "rest")):
        raise ConfigurationError(
            "poll_shift_status needs a brand WebSocket or REST connection (it polls with the agent's bearer)"
        )
    return opts
