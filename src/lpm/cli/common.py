"""What every ``lpm`` command shares: exit codes from the error hierarchy, JSON output, running.

Exit codes (documented in ``docs/cli.md``; stable, scripts may rely on them):

====  ====================================================================
0     success
1     the job ran but did not succeed (e.g. a demo conversation did not complete)
2     usage error (bad option or argument; click's own code)
3     :class:`~lpm.errors.ConfigurationError`
4     :class:`~lpm.errors.AuthenticationError` (login refused, token expired)
5     :class:`~lpm.errors.LpmConnectionError` (cannot connect, connection lost)
6     :class:`~lpm.errors.RequestError` (UMS refused a request)
7     :class:`~lpm.errors.RequestTimeoutError`
8     :class:`~lpm.errors.ProtocolError`
9     :class:`~lpm.errors.HttpError` (CSDS, IdP, REST... failed)
10    :class:`~lpm.errors.InvalidStateError`
11    any other :class:`~lpm.errors.LpmError`
130   interrupted (Ctrl-C)
====  ====================================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar, cast

import click

from lpm import errors

if TYPE_CHECKING:
    from lpm.client.connection import Connection

T = TypeVar("T")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130

#: Most specific first: the first class an error is an instance of decides its exit code.
_EXIT_CODES: tuple[tuple[type[errors.LpmError], int], ...] = (
    (errors.ConfigurationError, 3),
    (errors.AuthenticationError, 4),
    (errors.LpmConnectionError, 5),
    (errors.RequestError, 6),
    (errors.RequestTimeoutError, 7),
    (errors.ProtocolError, 8),
    (errors.HttpError, 9),
    (errors.InvalidStateError, 10),
    (errors.LpmError, 11),
)


def exit_code_for(error: BaseException) -> int:
    """The process exit code for ``error`` (see the module docstring's table)."""
    if isinstance(error, KeyboardInterrupt | asyncio.CancelledError):
        return EXIT_INTERRUPTED
    for cls, code in _EXIT_CODES:
        if isinstance(error, cls):
            return code
    return EXIT_FAILED


def fail(error: BaseException) -> NoReturn:
    """Report ``error`` on stderr (one line, its class and message) and exit with its code."""
    name = type(error).__name__
    click.echo(f"lpm: {name}: {error}", err=True)
    raise SystemExit(exit_code_for(error))


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion; map SDK errors and Ctrl-C to exit codes.

    Errors that are not :class:`~lpm.errors.LpmError` propagate (they are bugs, and a traceback
    is the useful report).
    """
    interrupted = False

    async def guarded() -> T:
        # Ctrl-C cancels the command, as asyncio.run does; the first one is also remembered, so
        # the command ends as interrupted even if the cancellation was absorbed on its way (the
        # demo once went on for 30 s after a Ctrl-C and exited 1).  A second one stops at once.
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        assert task is not None

        def interrupt() -> None:
            nonlocal interrupted
            if interrupted:
                raise KeyboardInterrupt
            interrupted = True
            task.cancel()

        installed = False
        # Not on Windows' event loop, nor outside the main thread: asyncio.run's own handling.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGINT, interrupt)
            installed = True
        try:
            return await coro
        finally:
            if installed:
                loop.remove_signal_handler(signal.SIGINT)

    try:
        result = asyncio.run(guarded())
    except (KeyboardInterrupt, asyncio.CancelledError):
        result = None
        interrupted = True
    except errors.LpmError as exc:
        if not interrupted:
            fail(exc)
    if interrupted:
        click.echo("lpm: interrupted", err=True)
        raise SystemExit(EXIT_INTERRUPTED)
    return cast(T, result)


async def open_connection(conn: Connection, timeout: float) -> None:
    """Open ``conn``, failing at its first reported error or after ``timeout`` seconds.

    The SDK keeps retrying a failed first connect in the background (each failure goes to the
    connection's ``error`` event); a command should instead say at once why it could not
    connect, e.g. a refused login (:class:`~lpm.errors.AuthenticationError`).
    """
    failed: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

    def on_error(error: BaseException) -> None:
        if not failed.done():
            failed.set_result(error)

    conn.on("error", on_error)
    opening = asyncio.ensure_future(conn.open())
    try:
        waiters: set[asyncio.Future[Any]] = {opening, failed}
        done, _ = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        # The caller gave up (cancelled).  Cancelling open() closes the connection -- unless
        # open() had completed in the same turn of the event loop: then it is open, and only
        # this close stops it (it went on reconnecting after the demo's emulator had stopped).
        await _stop(opening)
        await conn.close()
        raise
    finally:
        conn.off("error", on_error)
    if opening in done:
        opening.result()
        return
    await _stop(opening)
    if failed.done():
        error = failed.result()
        if isinstance(error, errors.LpmError):
            raise error
        raise errors.ConnectFailedError(f"cannot connect: {error}") from error
    raise errors.ConnectFailedError(f"not connected after {timeout:g} s")


async def _stop(opening: asyncio.Future[None]) -> None:
    """Cancel ``opening`` (an ``open()``) and wait until it has unwound; its outcome is dropped
    (the caller reports why it gave up).  ``asyncio.wait``, not ``await opening`` in a
    ``suppress(CancelledError)``: that would also swallow a cancellation of the caller."""
    opening.cancel()
    await asyncio.wait({opening})
    if not opening.cancelled():
        opening.exception()  # retrieved, so never logged as "never retrieved"


def print_json(data: Any) -> None:
    """Write ``data`` as one line of JSON on stdout (the only stdout output of a ``--json`` run)."""
    sys.stdout.write(json.dumps(data, separators=(",", ":"), default=str) + "\n")
    sys.stdout.flush()


json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout instead of rich text."
)


# ---------------------------------------------------------------- options shared by chat and agent

csds_domain_option = click.option(
    "--csds-domain",
    envvar="LPM_CSDS_DOMAIN",
    show_envvar=True,
    metavar="DOMAIN",
    help="CSDS host: host[:port] for TLS, http://host:port for plain HTTP.  [default: LivePerson's]",
)

embedded_port_option = click.option(
    "--embedded-port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="Port of the embedded emulator (0: a free one).",
)

ca_file_option = click.option(
    "--ca-file",
    "--ssl-ca",
    "ca_file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Trust this CA (PEM) for TLS, e.g. the one `lpm emulator --tls` prints.",
)

insecure_option = click.option(
    "--insecure", is_flag=True, default=False, help="Do not verify TLS certificates."
)


def ssl_setting(ca_file: str | None, insecure: bool) -> str | bool | None:
    """The SDK's ``ssl`` option for ``--ca-file``/``--insecure`` (None: the system's trust store)."""
    if ca_file and insecure:
        raise click.UsageError("--ca-file and --insecure exclude each other")
    if ca_file:
        return ca_file
    return False if insecure else None
