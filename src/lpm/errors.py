"""The SDK's exception hierarchy.  Every error the public API raises is an :class:`LpmError`.

::

    LpmError
    ├── ConfigurationError (also ValueError)     bad argument / option; raised before any I/O
    ├── InvalidStateError                        operation not allowed in the object's current state
    │   ├── NoOpenDialogError                    conversation has no open dialog
    │   └── UnsupportedActionError               the connection's transport cannot do that (``action``)
    ├── LpmConnectionError                       transport-level problems
    │   ├── NotConnectedError                    request could not be sent or queued
    │   ├── ConnectionClosedError                socket closed while a request was pending
    │   ├── ConnectFailedError                   one connect attempt failed (``close_code`` when known)
    │   └── QueueTimeoutError                    queued request expired before the connection came back
    ├── AuthenticationError                      login, token or identity problems (``status``)
    │   └── TokenExpiredError                    the server closed the socket with 4401/4407
    ├── RequestError                             UMS answered a request with ``code`` > 399
    │   └── UnexpectedResponseError              success code but not the documented success body
    ├── RequestTimeoutError                      no response within ``response_timeout``
    ├── HandlerError                             an event handler of the application raised (``__cause__``)
    ├── WaitTimeoutError (also TimeoutError)     ``wait_for`` saw no matching event in time
    ├── ProtocolError                            a malformed frame from the server (never raised from the
    │   │                                        reader: reported on the connection's "error" event)
    │   └── LimitExceededError                   more than a documented limit allows (``limit``)
    └── HttpError                                an HTTP side call (CSDS, IdP, REST...) failed (``status``)
        └── AccountNotFoundError                 the platform does not know ``account_id``

Errors carry data as attributes (``code``, ``request_type``, ``body``, ``conversation_id``...).
aiohttp exceptions never leak through, not even chained as a cause or context (their text quotes
URLs, and some URLs carry credentials): messages name their type instead.  Messages never contain
tokens, passwords or JWTs.
"""

from __future__ import annotations

from typing import Any


class LpmError(Exception):
    """Root of every exception raised by the SDK."""


class ConfigurationError(LpmError, ValueError):
    """An invalid argument or option (raised before any I/O)."""


class InvalidStateError(LpmError):
    """The operation is not allowed in the object's current state."""


class NoOpenDialogError(InvalidStateError):
    """The conversation has no open dialog to act on."""

    def __init__(self, conversation_id: str | None) -> None:
        super().__init__(f"conversation {conversation_id} has no open dialog")
        #: The conversation acted on.
        self.conversation_id = conversation_id


class UnsupportedActionError(InvalidStateError):
    """The connection's transport cannot do this at all (a NULL connection publishing, a REST
    connection subscribing, a consumer answering a ring...); raised before any I/O.

    ``action`` says what was attempted (``"query messages"``), ``transport`` names the connection
    (``"a REST connection (UMS REST v1)"``); the message adds why and what to use instead.
    """

    def __init__(self, action: str, transport: str, hint: str = "") -> None:
        message = f"cannot {action} on {transport}"
        super().__init__(f"{message}: {hint}" if hint else message)
        #: What was attempted (``"query messages"``).
        self.action = action
        #: The connection that cannot do it (``"a REST connection (UMS REST v1)"``).
        self.transport = transport


class LpmConnectionError(LpmError):
    """A transport-level failure."""


class NotConnectedError(LpmConnectionError):
    """The connection is not open and the request cannot be queued."""


class ConnectionClosedError(LpmConnectionError):
    """The socket closed while a request was waiting for its response."""

    def __init__(self, message: str, *, code: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        #: The socket's close code, when it closed with one.
        self.code = code
        #: The socket's close reason.
        self.reason = reason


class ConnectFailedError(LpmConnectionError):
    """A connect attempt failed; ``close_code`` is set when the socket closed during verification."""

    def __init__(self, message: str, *, close_code: int | None = None, status: int | None = None) -> None:
        super().__init__(message)
        #: The close code when the socket closed during verification.
        self.close_code = close_code
        #: The HTTP status of a failed HTTP step (CSDS, login), if any.
        self.status = status


class QueueTimeoutError(LpmConnectionError):
    """A request queued while disconnected expired before the connection was restored."""


class AuthenticationError(LpmError):
    """Login, token refresh or consumer identity failed; ``status`` is the HTTP status if any."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        #: The HTTP status of the refusal, if any.
        self.status = status


class TokenExpiredError(AuthenticationError):
    """The server closed the socket because the token expired or was revoked (4401 / 4407)."""


class RequestError(LpmError):
    """UMS refused a request (``code`` > 399).  ``body`` is the response body as received."""

    def __init__(self, code: int, request_type: str, body: Any, *, response_type: str | None = None) -> None:
        detail = body if isinstance(body, str) else repr(body)
        super().__init__(f"{request_type} failed with code {code}: {detail}")
        #: The response code UMS answered (400, 403, 404, 500...).
        self.code = code
        #: The request refused, by its canonical name (``ms.PublishEvent``).
        self.request_type = request_type
        #: The response body as received (a string or a JSON value).
        self.body = body
        #: The response's type, when it had one.
        self.response_type = response_type
        #: The conversation the request was about, when the SDK knows it.
        self.conversation_id: str | None = None
        #: The dialog the request was about, when the SDK knows it.
        self.dialog_id: str | None = None


class UnexpectedResponseError(RequestError):
    """The request succeeded on the wire but the body is not the documented success value."""


class RequestTimeoutError(LpmError, TimeoutError):
    """No response arrived within the response timeout."""

    def __init__(self, request_type: str, timeout: float) -> None:
        super().__init__(f"no response to {request_type} within {timeout:g} s")
        #: The request that got no response.
        self.request_type = request_type
        #: How long it waited (seconds).
        self.timeout = timeout


class ProtocolError(LpmError):
    """The server sent a frame the SDK cannot understand."""

    def __init__(self, message: str, *, frame: Any = None) -> None:
        super().__init__(message)
        #: The offending frame or body (possibly cut short), for diagnosis.
        self.frame = frame


class LimitExceededError(ProtocolError):
    """The server sent more than a documented limit allows (a frame, a body, conversations).

    ``limit`` names the option that sets it (``max_frame_size``, ``max_body_size``,
    ``max_conversations``): raise it if the server is right.
    """

    def __init__(self, message: str, *, limit: str, frame: Any = None) -> None:
        super().__init__(message, frame=frame)
        #: The option that sets the limit (``max_frame_size``...).
        self.limit = limit


class HttpError(LpmError):
    """An HTTP side call failed."""

    def __init__(self, message: str, *, status: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        #: The HTTP status, when a response came.
        self.status = status
        #: The response body, when a response came.
        self.body = body


class AccountNotFoundError(HttpError):
    """The platform does not know the account id (CSDS refused it): check ``account_id``."""

    def __init__(self, account_id: str, message: str, *, status: int | None = None, body: Any = None) -> None:
        super().__init__(message, status=status, body=body)
        #: The account id the platform does not know.
        self.account_id = account_id


class HandlerError(LpmError):
    """An event handler of the application raised (sync or async); the original is ``__cause__``.

    Emitted on the connection's ``error`` event; with no ``error`` listener it is logged with
    the full traceback under the ``lpm.handlers`` logger.  ``event`` is the event name,
    ``emitter`` a description of the object it was emitted on, ``handler`` the handler's
    qualified name.
    """

    def __init__(self, event: str, emitter: str, handler: str, error: BaseException) -> None:
        super().__init__(
            f"handler {handler} of event {event!r} on {emitter} raised {type(error).__name__}: {error}"
        )
        #: The event whose handler raised.
        self.event = event
        #: A description of the object the event was emitted on.
        self.emitter = emitter
        #: The handler's qualified name.
        self.handler = handler
        self.__cause__ = error


class WaitTimeoutError(LpmError, TimeoutError):
    """``wait_for`` saw no matching event in time; names the event and the object awaited."""

    def __init__(self, event: str, emitter: str, timeout: float) -> None:
        super().__init__(f"no {event!r} event on {emitter} within {timeout:g} s")
        #: The event awaited.
        self.event = event
        #: A description of the object awaited.
        self.emitter = emitter
        #: How long it waited (seconds).
        self.timeout = timeout
