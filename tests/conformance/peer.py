"""Async wrapper around ``node/driver.js``: LivePerson's node-agent-sdk as a black-box peer.

The driver runs the unmodified SDK in a Node subprocess; this module sends it one JSON command
per line and collects the JSON events it prints.  Every event is kept in :attr:`NodePeer.events`;
:meth:`NodePeer.wait_event` hands out matching events once each, so an event that arrived before
the test started waiting is not lost, and waiting twice for ``connected`` finds the second one.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lpm.emulator.app import Emulator

NODE_DIR = Path(__file__).resolve().parent / "node"
DRIVER = NODE_DIR / "driver.js"
SDK_PACKAGE = NODE_DIR / "node_modules" / "node-agent-sdk" / "package.json"
#: Default wait for one event; every step of a scenario takes well under this.
TIMEOUT = 10.0
#: Events that make a wait fail at once (see :meth:`NodePeer.wait_event`).
FAILURE_EVENTS = ("error", "fatal", "driver_error")

Event = dict[str, Any]
Predicate = Callable[[Event], bool]


class PeerCallError(AssertionError):
    """A request callback came back with an error (``err`` is what the SDK passed)."""

    def __init__(self, method: str, err: Any) -> None:
        super().__init__(f"{method} failed: {json.dumps(err)[:2000]}")
        self.method = method
        self.err = err


def require_peer() -> str:
    """Path of ``node``; fails the test (never skips: CI must notice) when the peer is missing."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: the node-agent-sdk conformance tests need Node.js on PATH")
    if not SDK_PACKAGE.is_file():
        pytest.fail(
            f"node-agent-sdk is not installed in {NODE_DIR}: run `make conformance` (or `npm ci` there)"
        )
    pinned = json.loads((NODE_DIR / "package.json").read_text())["dependencies"]["node-agent-sdk"]
    installed = json.loads(SDK_PACKAGE.read_text())["version"]
    if installed != pinned:
        pytest.fail(f"node-agent-sdk {installed} is installed but package.json pins {pinned}: run `npm ci`")
    return node


def event_matches(event: Event, name: str, predicate: Predicate | None) -> bool:
    """True when ``event`` is named ``name`` and satisfies ``predicate`` (errors count as no)."""
    if event.get("event") != name:
        return False
    if predicate is None:
        return True
    try:
        return bool(predicate(event))
    except (KeyError, IndexError, TypeError, AttributeError):
        return False


class NodePeer:
    """One driver process holding (at most) one ``Agent``."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        #: Every event printed by the driver, in order.
        self.events: list[Event] = []
        self._consumed: set[int] = set()
        self._changed = asyncio.Condition()
        self._stderr: list[str] = []
        self._ids = itertools.count(1)
        self._readers = [
            asyncio.create_task(self._read_stdout(), name="node-peer-stdout"),
            asyncio.create_task(self._read_stderr(), name="node-peer-stderr"),
        ]
        self._eof = False
        #: Version of the installed node-agent-sdk, as the driver reports it when ready.
        self.sdk_version = ""

    @classmethod
    async def start(cls, emu: Emulator) -> NodePeer:
        """Start the driver trusting the emulator's CA, and wait until it is ready."""
        node = require_peer()
        assert emu.ca_file is not None, "the peer hard-codes https/wss: start the emulator with tls=True"
        env = {k: v for k, v in os.environ.items() if not k.startswith("NODE_")}
        # The only trust anchor is the emulator's CA (no NODE_TLS_REJECT_UNAUTHORIZED=0): the
        # tests also prove the emulator's certificate chain is acceptable to Node.
        env["NODE_EXTRA_CA_CERTS"] = str(emu.ca_file)
        proc = await asyncio.create_subprocess_exec(
            node,
            str(DRIVER),
            cwd=str(NODE_DIR),
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            # Notifications are printed as one line each; the default 64 KiB line limit is too small.
            limit=16 * 1024 * 1024,
        )
        peer = cls(proc)
        try:
            ready = await peer.wait_event("ready")
            peer.sdk_version = str(ready["data"]["sdk"])
        except BaseException:
            await peer.close()
            raise
        return peer

    # ---------------------------------------------------------------- I/O

    async def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        try:
            while line := await self.proc.stdout.readline():
                text = line.decode(errors="replace").strip()
                if not text:
                    continue
                try:
                    event = json.loads(text)
                except json.JSONDecodeError:
                    # console.log/console.warn from the SDK itself end up here.
                    event = {"event": "stdout", "data": text}
                async with self._changed:
                    self.events.append(event)
                    self._changed.notify_all()
        finally:
            async with self._changed:
                self._eof = True
                self._changed.notify_all()

    async def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            self._stderr.append(line.decode(errors="replace").rstrip())

    async def send(self, cmd: dict[str, Any]) -> None:
        """Write one command line to the driver."""
        assert self.proc.stdin is not None
        if self._eof:
            raise AssertionError(f"the node peer has exited; {self._diagnostics()}")
        self.proc.stdin.write(json.dumps(cmd).encode() + b"\n")
        await self.proc.stdin.drain()

    # ---------------------------------------------------------------- events

    def mark(self) -> int:
        """Index of the next event; pass as ``after=`` to ignore everything seen so far."""
        return len(self.events)

    def find(self, name: str, predicate: Predicate | None = None, *, after: int = 0) -> list[Event]:
        """Every event so far (consumed or not) named ``name`` matching ``predicate``."""
        return [e for e in self.events[after:] if event_matches(e, name, predicate)]

    async def wait_event(
        self,
        name: str,
        predicate: Predicate | None = None,
        *,
        within: float = TIMEOUT,
        after: int | None = None,
        fail_on: tuple[str, ...] = FAILURE_EVENTS,
    ) -> Event:
        """The first not yet consumed event ``name`` (index >= ``after``) matching ``predicate``.

        Fails with the recent event history when nothing matches ``within`` seconds, when the
        driver exits, or as soon as an event named in ``fail_on`` (other than ``name``) arrives
        after ``after`` (default: while waiting): an ``error`` usually means the awaited event
        will never come (e.g. the peer's Transformer dropped the notification), so there is no
        point in waiting out the timeout.
        """
        first = after or 0
        watch_from = len(self.events) if after is None else min(after, len(self.events))
        fatal = tuple(n for n in fail_on if n != name)

        def take() -> Event | None:
            for index in range(first, len(self.events)):
                if index not in self._consumed and event_matches(self.events[index], name, predicate):
                    self._consumed.add(index)
                    return self.events[index]
            return None

        async def wait() -> Event:
            async with self._changed:
                while True:
                    found = take()
                    if found is not None:
                        return found
                    failure = next((e for e in self.events[watch_from:] if e.get("event") in fatal), None)
                    if failure is not None:
                        raise AssertionError(
                            f"the node peer reported {failure.get('event')!r} while waiting for {name!r}: "
                            f"{json.dumps(failure)[:3000]}\n{self._diagnostics()}"
                        )
                    if self._eof:
                        raise AssertionError(
                            f"the node peer exited while waiting for {name!r}; {self._diagnostics()}"
                        )
                    await self._changed.wait()

        try:
            return await asyncio.wait_for(wait(), within)
        except TimeoutError:
            raise AssertionError(
                f"no {name!r} event from the node peer within {within}s; {self._diagnostics()}"
            ) from None

    def errors(self) -> list[Event]:
        """``error``/``fatal``/``driver_error`` events seen so far."""
        return [e for e in self.events if e.get("event") in FAILURE_EVENTS]

    def _diagnostics(self, last: int = 25) -> str:
        recent = "\n  ".join(json.dumps(e)[:600] for e in self.events[-last:])
        stderr = "\n  ".join(self._stderr[-20:])
        return f"exit code {self.proc.returncode}; last events:\n  {recent}\nstderr:\n  {stderr}"

    # ---------------------------------------------------------------- commands

    async def connect(self, conf: dict[str, Any]) -> None:
        """``new Agent(conf)``: starts CSDS -> login -> WS; wait for ``connected`` separately."""
        await self.send({"cmd": "connect", "conf": conf})

    async def call_raw(
        self, method: str, body: Any = None, *, within: float = TIMEOUT, **extra: Any
    ) -> tuple[Any, Any]:
        """Call request method ``method`` and return the callback's ``(err, resp)``.

        ``extra`` may hold ``headers``, ``metadata`` and ``encodedMetadata`` (positional
        arguments of the SDK's request methods).
        """
        call_id = f"c{next(self._ids)}"
        await self.send({"cmd": "call", "id": call_id, "method": method, "body": body, **extra})
        event = await self.wait_event("callback", lambda e: e["id"] == call_id, within=within)
        return event.get("err"), event.get("resp")

    async def call(self, method: str, body: Any = None, *, within: float = TIMEOUT, **extra: Any) -> Any:
        """Call ``method`` and return the response body; raises :class:`PeerCallError` on ``err``."""
        err, resp = await self.call_raw(method, body, within=within, **extra)
        if err is not None:
            raise PeerCallError(method, err)
        return resp

    async def reconnect(self, dont_regenerate_token: bool | None = None) -> None:
        """``agent.reconnect()`` (fresh login) or ``agent.reconnect(true)`` (same token)."""
        cmd: dict[str, Any] = {"cmd": "reconnect"}
        if dont_regenerate_token is not None:
            cmd["dontRegenerateToken"] = dont_regenerate_token
        await self.send(cmd)

    async def info(self) -> dict[str, Any]:
        """The agent's identity as the SDK holds it: ``agentId`` (PID), ``userId``, ``oldAgentId``."""
        info_id = f"i{next(self._ids)}"
        await self.send({"cmd": "info", "id": info_id})
        event = await self.wait_event("info", lambda e: e["id"] == info_id)
        data: dict[str, Any] = event["data"]
        return data

    async def dispose(self) -> None:
        """``agent.dispose()``."""
        await self.send({"cmd": "dispose"})
        await self.wait_event("disposed")

    async def close(self) -> None:
        """Stop the driver: EOF on stdin (it disposes the agent and exits), killed if it lingers.

        The kill is in a ``finally`` so that a teardown interrupted by a timeout still leaves no
        Node process behind.
        """
        try:
            if self.proc.returncode is None:
                if self.proc.stdin is not None and not self.proc.stdin.is_closing():
                    self.proc.stdin.close()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.proc.wait(), 2.0)
        finally:
            if self.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
            # The pipes reach EOF once the process is gone; cancel the readers if they do not.
            _, pending = await asyncio.wait(self._readers, timeout=2.0)
            for task in pending:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*self._readers, return_exceptions=True)
