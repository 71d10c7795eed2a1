"""``create_connection``: validate options and pick the connection class."""

from __future__ import annotations

from typing import Any, Literal, overload

from lpm.client.connection import Connection
from lpm.client.options import OPTION_NAMES, ConnectionOptions, validate_options
from lpm.client.transport.brand import BrandWebsocketConnection
from lpm.client.transport.consumer import ConsumerWebsocketConnection
from lpm.client.transport.null import NullConnection
from lpm.client.transport.rest import BrandRestConnection
from lpm.client.transport.send_api import ConsumerSendApiConnection
from lpm.enums import ConnectionType, UserType, parse_enum
from lpm.errors import ConfigurationError

USER_TYPES = ("consumer", "brand")
CONNECTION_TYPES = ("ws", "rest", "sendapi", "null")

# The overloads below give ``mypy`` the class each combination returns (typing only: a call runs
# the last definition).  ``user_type`` / ``connection_type`` known only at run time (a ``str``)
# give the base :class:`~lpm.client.connection.Connection`.
_Brand = Literal[UserType.BRAND, "brand"]
_Consumer = Literal[UserType.CONSUMER, "consumer"]
_Websocket = Literal[ConnectionType.WEBSOCKET, "ws"]


@overload
def create_connection(
    *, account_id: str, user_type: _Brand, connection_type: _Websocket = ..., **options: Any
) -> BrandWebsocketConnection: ...
@overload
def create_connection(
    *, account_id: str, user_type: _Consumer, connection_type: _Websocket = ..., **options: Any
) -> ConsumerWebsocketConnection: ...
@overload
def create_connection(
    *,
    account_id: str,
    user_type: _Brand,
    connection_type: Literal[ConnectionType.REST, "rest"],
    **options: Any,
) -> BrandRestConnection: ...
@overload
def create_connection(
    *,
    account_id: str,
    user_type: _Consumer,
    connection_type: Literal[ConnectionType.SEND_API, "sendapi"],
    **options: Any,
) -> ConsumerSendApiConnection: ...
@overload
def create_connection(
    *,
    account_id: str,
    user_type: _Brand | _Consumer,
    connection_type: Literal[ConnectionType.NULL, "null"],
    **options: Any,
) -> NullConnection: ...
@overload
def create_connection(*, account_id: str, user_type: str, **options: Any) -> Connection: ...


def create_connection(*, account_id: str, user_type: str, **options: Any) -> Connection:
    """Create (but do not open) a connection.

    ``user_type`` is :class:`lpm.UserType` (``CONSUMER`` or ``BRAND``); ``connection_type`` is
    :class:`lpm.ConnectionType` (``WEBSOCKET`` by default).  The connection's class follows from
    them, and type checkers see it: :class:`~lpm.BrandWebsocketConnection`,
    :class:`~lpm.ConsumerWebsocketConnection`, :class:`~lpm.BrandRestConnection`,
    :class:`~lpm.ConsumerSendApiConnection` or :class:`~lpm.NullConnection` (the base
    :class:`~lpm.Connection` when the values are only known at run time).  Every option of the Node SDK's
    ``createConnection`` has a snake_case twin (times in seconds), plus ``csds_domain`` (``host[:port]``
    for HTTPS/WSS, ``http://host[:port]`` for plain HTTP/WS), ``domains`` (per-service host
    overrides) and ``ssl`` (an ``ssl.SSLContext``, a CA file path, or ``False``).

    Raises :class:`lpm.errors.ConfigurationError` for a missing account id, an unknown user or
    connection type, an unsupported combination, an unknown option or a bad value.
    """
    unknown = sorted(set(options) - OPTION_NAMES)
    if unknown:
        raise ConfigurationError(f"unknown option(s): {', '.join(unknown)}")
    # The member, its wire value or its name, in any case ("BRAND", "brand", UserType.BRAND).
    user = parse_enum(UserType, user_type, "user_type").value
    kind = parse_enum(ConnectionType, options.pop("connection_type", None) or "ws", "connection_type").value
    if "domains" in options and options["domains"] is None:
        options.pop("domains")
    if "csds_domain" in options and options["csds_domain"] is None:
        options.pop("csds_domain")
    opts = validate_options(
        ConnectionOptions(account_id=account_id, user_type=user, connection_type=kind, **options)
    )
    if kind == "null":
        # Any user type: no transport, conversations are fed by webhooks.
        return NullConnection(opts)
    if kind == "ws":
        if user == "brand":
            return BrandWebsocketConnection(opts)
        return ConsumerWebsocketConnection(opts)
    if kind == "rest":
        if user == "brand":
            return BrandRestConnection(opts)
        raise ConfigurationError(
            "Unsupported connection_type 'rest' for user_type 'consumer': UMS REST v1 is a brand API; "
            "consumers connect with ConnectionType.WEBSOCKET"
        )
    # sendapi: the connector Send API acts for a consumer only.
    if user == "consumer":
        return ConsumerSendApiConnection(opts)
    raise ConfigurationError(
        "Unsupported connection_type 'sendapi' for user_type 'brand': the Send API is a consumer API "
        "(brands use ConnectionType.WEBSOCKET or REST)"
    )
