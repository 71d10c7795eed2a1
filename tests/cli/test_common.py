"""What every command shares (:mod:`lpm.cli.common`): opening a connection, Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

import pytest

import lpm
from lpm.cli import common
from lpm.emulator.app import Emulator


def consumer(emulator: Emulator) -> lpm.Connection:
    return lpm.create_connection(
        user_type=lpm.UserType.CONSUMER, account_id=emulator.account_id, csds_domain=emulator.csds_domain
    )


async def test_a_caller_cancelled_as_open_completes_leaves_no_connection_open(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The caller gives up in the very turn of the event loop in which open() completes: open()
    # is not cancelled then (it is done), so only open_connection can close what it opened.
    # (The demo's consumers cancelled on Ctrl-C went on reconnecting after the emulator stopped.)
    conn = consumer(emulator)
    real_open = conn.open
    caller: asyncio.Task[None] | None = None

    async def open_then_caller_gives_up() -> None:
        await real_open()
        assert caller is not None
        caller.cancel()

    monkeypatch.setattr(conn, "open", open_then_caller_gives_up)
    caller = asyncio.create_task(common.open_connection(conn, 10))
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert conn.state == lpm.ConnectionState.CLOSED


async def test_a_caller_cancelled_while_open_unwinds_stays_cancelled(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # open() reported an error and is being stopped; the caller is cancelled meanwhile: that
    # cancellation must reach the caller, not be taken for open()'s own.
    conn = consumer(emulator)
    unwinding = asyncio.Event()
    caller: asyncio.Task[None] | None = None

    async def open_that_fails_slowly() -> None:
        conn.report_error(lpm.ConnectFailedError("refused"))
        try:
            await asyncio.sleep(60)
        finally:
            unwinding.set()
            await asyncio.sleep(0.05)  # still unwinding when the caller is cancelled

    monkeypatch.setattr(conn, "open", open_that_fails_slowly)
    caller = asyncio.create_task(common.open_connection(conn, 10))
    await unwinding.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    await conn.close()


def test_ctrl_c_ends_a_command_as_interrupted_even_if_its_cancellation_is_absorbed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async def absorbs_the_cancellation() -> str:
        os.kill(os.getpid(), signal.SIGINT)
        with contextlib.suppress(asyncio.CancelledError):  # a cancellation swallowed on its way
            await asyncio.sleep(60)
        return "finished"

    with pytest.raises(SystemExit) as exited:
        common.run(absorbs_the_cancellation())
    assert exited.value.code == common.EXIT_INTERRUPTED
    assert capsys.readouterr().err.strip() == "lpm: interrupted"


def test_ctrl_c_cancels_a_command() -> None:
    async def waits() -> None:
        os.kill(os.getpid(), signal.SIGINT)
        await asyncio.sleep(60)

    with pytest.raises(SystemExit) as exited:
        common.run(waits())
    assert exited.value.code == common.EXIT_INTERRUPTED
