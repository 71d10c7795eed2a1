"""The first ``open()`` of every connection type: what fails at once, what is retried, until when.

A failure that cannot fix itself raises from ``open()`` at once (:func:`is_permanent`): refused
credentials or tokens (:class:`~lpm.errors.AuthenticationError`), an account the platform does
not know (:class:`~lpm.errors.AccountNotFoundError`), an invalid option
(:class:`~lpm.errors.ConfigurationError`), another 4xx answer to a side call.  Anything else --
a host that does not answer, a refused TCP connection, a 5xx or 429, a timeout, a garbled answer
-- is retried on the reconnect back-off until ``open_timeout`` seconds have passed since
``open()`` was called, and then raises :class:`~lpm.errors.ConnectFailedError` whose cause is the
last failure.  ``maintain_connection`` governs only what happens after the first success.

The Node SDK retries the first connect forever; ``open_timeout=None`` does the same here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from lpm.client.retry import Backoff, retry
from lpm.errors import (
    AccountNotFoundError,
    AuthenticationError,
    ConfigurationError,
    ConnectFailedError,
    HttpError,
    TokenExpiredError,
)

__all__ = ["first_open", "is_permanent"]

#: 4xx statuses that say "not now" rather than "never".
_TRANSIENT_CLIENT_STATUSES = frozenset({408, 425, 429})


def is_permanent(error: BaseException) -> bool:
    """Whether retrying the first ``open()`` cannot help.

    A :class:`~lpm.errors.TokenExpiredError` is not: the connection obtains a new token unless
    the refused one was the caller's (the connection decides that itself).
    """
    if isinstance(error, TokenExpiredError):
        return False
    if isinstance(error, ConfigurationError | AuthenticationError | AccountNotFoundError):
        return True
    return (
        isinstance(error, HttpError)
        and error.status is not None
        and 400 <= error.status < 500
        and error.status not in _TRANSIENT_CLIENT_STATUSES
    )


async def first_open(
    attempt: Callable[[], Awaitable[None]],
    *,
    timeout: float | None,
    backoff: Backoff,
    on_retry: Callable[[BaseException, int, float], None] | None = None,
    last_reported: Callable[[], BaseException | None] = lambda: None,
) -> None:
    """Run ``attempt`` until it succeeds, a permanent failure is raised, or ``timeout`` seconds
    have passed (None: no limit).

    ``last_reported()`` names the most recent failure reported meanwhile (an attempt can itself
    wait out transient failures, a login's retries for instance); the
    :class:`~lpm.errors.ConnectFailedError` raised at the deadline is chained to it, or to the
    last failed attempt.
    """
    last: BaseException | None = None

    def retryable(error: BaseException) -> bool:
        nonlocal last
        last = error
        return not is_permanent(error)

    deadline = asyncio.timeout(timeout)
    try:
        async with deadline:
            await retry(attempt, backoff=backoff, is_retryable=retryable, on_retry=on_retry)
    except TimeoutError:
        if not deadline.expired():
            raise  # an attempt's own timeout error, judged permanent: not the deadline
        assert timeout is not None
        cause = last_reported() or last
        detail = f"; last error: {cause}" if cause is not None else ""
        raise ConnectFailedError(f"not connected within open_timeout ({timeout:g} s){detail}") from cause
