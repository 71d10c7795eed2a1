"""A handler's exception is never lost and never mislabelled (issue 12.2).

Raised by a sync or async handler registered with ``on``, ``once`` or as a decorator, it reaches
the error sink as a :class:`~lpm.errors.HandlerError` naming the event, the object and the
handler, with the original as ``__cause__``.  With no ``error`` listener on a connection it is
logged with its full traceback under ``lpm.handlers`` -- not as a "connection error".
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

import lpm
from lpm.client.events import EventEmitter
from lpm.errors import HandlerError


class Thing(EventEmitter):
    def __repr__(self) -> str:
        return "<Thing 7>"


def failing(*_: Any) -> None:
    raise KeyError("missing-key")


async def failing_later(*_: Any) -> None:
    await asyncio.sleep(0)
    raise KeyError("missing-key")


async def collect(register: str, handler: Any) -> HandlerError:
    reported: list[BaseException] = []
    thing = Thing(reported.append)
    if register == "decorator":
        thing.on("message")(handler)
    else:
        getattr(thing, register)("message", handler)
    thing.emit("message", "hello")
    for _ in range(5):
        await asyncio.sleep(0)
    assert len(reported) == 1
    error = reported[0]
    assert isinstance(error, HandlerError)
    return error


@pytest.mark.parametrize("register", ["on", "once", "decorator"])
@pytest.mark.parametrize("handler", [failing, failing_later], ids=["sync", "async"])
async def test_a_handler_error_names_event_object_and_handler(register: str, handler: Any) -> None:
    error = await collect(register, handler)
    assert isinstance(error.__cause__, KeyError)
    assert error.event == "message"
    assert error.emitter == "<Thing 7>"
    assert error.handler.endswith(handler.__qualname__) and error.handler.startswith(__name__)
    assert "KeyError" in str(error) and "missing-key" in str(error) and "'message'" in str(error)
    assert error.__cause__.__traceback__ is not None  # the handler's own frames are kept


async def test_with_no_error_listener_it_is_logged_with_its_traceback_under_lpm_handlers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    conn = lpm.create_connection(
        account_id="12345678", user_type=lpm.UserType.BRAND, connection_type=lpm.ConnectionType.NULL
    )
    conn.on("state", failing)
    with caplog.at_level(logging.DEBUG):
        conn.emit("state", "connected")
    records = [r for r in caplog.records if r.name == "lpm.handlers"]
    assert len(records) == 1
    record = records[0]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None and isinstance(record.exc_info[1], KeyError)
    assert "handler" in record.getMessage() and "'state'" in record.getMessage()
    text = logging.Formatter().formatException(record.exc_info)
    assert "in failing" in text  # the traceback reaches into the handler
    assert not [r for r in caplog.records if "unhandled connection error" in r.getMessage()]
    await conn.close()


async def test_an_error_listener_receives_it_and_nothing_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    conn = lpm.create_connection(
        account_id="12345678", user_type=lpm.UserType.BRAND, connection_type=lpm.ConnectionType.NULL
    )
    errors: list[BaseException] = []
    conn.on("error", errors.append)
    conn.on("state", failing)
    with caplog.at_level(logging.DEBUG):
        conn.emit("state", "connected")
    assert [type(e) for e in errors] == [HandlerError]
    assert not [r for r in caplog.records if r.name == "lpm.handlers"]
    await conn.close()


async def test_a_failing_error_handler_is_logged_not_fed_back(caplog: pytest.LogCaptureFixture) -> None:
    conn = lpm.create_connection(
        account_id="12345678", user_type=lpm.UserType.BRAND, connection_type=lpm.ConnectionType.NULL
    )
    conn.on("error", failing)
    conn.on("state", failing)
    with caplog.at_level(logging.DEBUG):
        conn.emit("state", "connected")
    records = [r for r in caplog.records if r.name == "lpm.handlers"]
    assert len(records) == 1 and "'error'" in records[0].getMessage()
    await conn.close()
