"""What every example shares: common options, logging, waiting helpers, and the runner that
starts an embedded emulator unless ``--csds-domain`` points at a running one (or LivePerson)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Awaitable, Callable

import lpm
from lpm.emulator import Emulator

Scenario = Callable[[argparse.Namespace, str], Awaitable[None]]


def parser(doc: str, *, timeout: float = 10.0) -> argparse.ArgumentParser:
    """An argument parser with the options every example takes."""
    result = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    result.add_argument("--csds-domain", help="default: start an embedded emulator")
    result.add_argument("--ca-file", help="CA file for a TLS csds domain")
    result.add_argument("--account-id", default="12345678")
    result.add_argument("--timeout", type=float, default=timeout)
    return result


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


async def wait_message(
    conversation: lpm.Conversation, check: Callable[[lpm.Message], bool], timeout: float
) -> lpm.Message:
    """The first message passing ``check``: one already received, or the next one to arrive."""
    waiter = asyncio.ensure_future(conversation.wait_for("message", check, timeout=timeout))
    for dialog in conversation.dialogs:
        for message in dialog.messages:
            if check(message):
                waiter.cancel()
                return message
    got: lpm.Message = await waiter
    return got


async def until(condition: Callable[[], bool], timeout: float) -> None:
    """Wait (polling the object model) until ``condition()`` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.02)


async def run(args: argparse.Namespace, scenario: Scenario) -> None:
    async with contextlib.AsyncExitStack() as stack:
        csds_domain = args.csds_domain
        if csds_domain is None:
            emulator = await stack.enter_async_context(Emulator())
            csds_domain = emulator.csds_domain
            log(f"embedded emulator at {csds_domain}")
        await asyncio.wait_for(scenario(args, csds_domain), args.timeout * 3)


def main(args: argparse.Namespace, scenario: Scenario) -> int:
    """Run ``scenario`` (on an embedded emulator unless ``--csds-domain`` is given); the exit code."""
    try:
        asyncio.run(run(args, scenario))
    except Exception as exc:
        reason = str(exc) or ("no answer in time" if isinstance(exc, TimeoutError) else "")
        print(f"FAILED: {type(exc).__name__}: {reason}", file=sys.stderr)
        return 1
    return 0
