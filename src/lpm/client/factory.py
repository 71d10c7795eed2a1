"""``create_connection``: validate options and pick the connection class."""

from __future__ import annotations

from typing import Any

from lpm.client.connection import Connection
from lpm.client.options import OPTION_NAMES, ConnectionOptions, validate_options
from lpm.client.transport.brand import BrandWebsocketConnection
from lpm.client.transport.consumer import ConsumerWebsocketConnection
from lpm.client.transport.null import NullConnection
from lpm.client.transport.rest import BrandRestConnection
from lpm.client.transport.send_api import ConsumerSendApiConnection
from lpm.errors import ConfigurationError

USER_TYPES = ("consumer", "brand")
CONNECTION_TYPES = ("ws", "rest", "sendapi", "null")


def create_connection(*, account_id: str, user_type: str, **options: Any) -> Connection:
    """Create (but do not open) a connection.

    ``user_type`` is :class:`lpm.UserType` (``CONSUMER`` or ``BRAND``); ``connection_type`` is
    :class:`lpm.ConnectionType` (``WEBSOCKET`` by default).  Every option of the Node SDK's
    ``createConnection`` has a snake_case twin (times in seconds), plus ``csds_domain`` (``host[:port]``
    for HTTPS/WSS, ``http://host[:port]`` for plain HTTP/WS), ``domains`` (per-service host
    overrides) and ``ssl`` (an ``ssl.SSLContext``, a CA file path, or ``False``).

    Raises :class:`lpm.errors.ConfigurationError` for a missing account id, an unknown user or
    connection type, an unsupported combination, an unknown option or a bad value.
    """
    unknown = sorted(set(options) - OPTION_NAMES)
    if unknown:
        raise ConfigurationError(f"unknown option(s): {', '.join(unknown)}")
    user = str(user_type) if user_type is not None else ""
    if user not in USER_TYPES:
        raise ConfigurationError(f"Invalid user_type: {user_type!r} (use lpm.UserType.CONSUMER or BRAND)")
    kind = str(options.pop("connection_type", "ws") or "ws")
    if kind not in CONNECTION_TYPES:
        raise ConfigurationError(f"Unsupported connection_type: {kind!r}")
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
