"""``lpm emulator`` as a real child process that a test can kill, freeze and restart.

The emulator runs exactly as a user runs it (``python -m lpm.cli.main emulator --port 0 --json``),
so what a test proves holds for the shipped command, not for an object in the test's own loop::

    async with EmulatorProcess(db=tmp_path / "world.db") as emu:
        conn = lpm.create_connection(..., csds_domain=emu.csds_domain)
        ...
        await emu.kill()        # SIGKILL: no shutdown code runs, as in a crash or the OOM killer
        await emu.start()       # same port, same --db file
        emu.stop()              # SIGSTOP: the process holds its sockets but answers nothing
        emu.cont()              # SIGCONT
        await emu.restart()     # kill (if running) + start
        await emu.terminate()   # graceful stop (SIGINT, as Ctrl-C)

``start()`` waits for the one JSON line the emulator prints once it listens (its description:
``csds_domain``, account, users...), available afterwards as :attr:`EmulatorProcess.info`.  The
first start binds a free port (``--port 0``); every later start binds that same port again, so
clients reconnect to the address they know.  The child's stderr (logs) is drained continuously
(a full pipe would block the emulator) and its last lines are kept in :attr:`stderr_tail` for
failure messages.  :meth:`cleanup` (also run by ``async with``) kills the process if it still
runs; it never signals anything but the child it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import ssl
import sys
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["EmulatorProcess", "EmulatorProcessError"]

#: Generous: start-up imports the package and may generate RSA keys.  Only hit on failure.
START_TIMEOUT = 60.0
#: How long a graceful stop (SIGINT) may take before the process is killed.
STOP_TIMEOUT = 10.0
_STDERR_LINES = 200
_LINE_LIMIT = 1 << 20


class EmulatorProcessError(RuntimeError):
    """The emulator process did not start, or exited when it should be running."""


class EmulatorProcess:
    """One ``lpm emulator`` child process, restartable on the same port and database file.

    ``db``: the ``--db`` file (None: in memory, which makes restarts forget everything);
    ``faults``: serve the ``/_emulator`` fault API (``--faults``); ``args``: more command-line
    options (e.g. ``["--idle-timeout", "30"]``); ``env``: extra environment variables.
    """

    def __init__(
        self,
        db: str | Path | None = None,
        *,
        faults: bool = False,
        args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        self.db = Path(db) if db is not None else None
        self.faults = faults
        self.args = list(args)
        self.env = env
        self.start_timeout = start_timeout
        #: The port bound by the first start (0 until then); later starts reuse it.
        self.port = 0
        #: The JSON description the running emulator printed (empty before the first start).
        self.info: dict[str, Any] = {}
        #: The last lines the emulator wrote to stderr (its logs), over all its runs.
        self.stderr_tail: deque[str] = deque(maxlen=_STDERR_LINES)
        #: How many times the process was started.
        self.starts = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._stderr_task: asyncio.Task[None] | None = None

    # ---------------------------------------------------------------- where to connect

    @property
    def csds_domain(self) -> str:
        """What SDK connections take as ``csds_domain`` (``http://127.0.0.1:PORT`` when plain)."""
        return str(self.info["csds_domain"])

    @property
    def base_url(self) -> str:
        """``http(s)://host:port``: the root of every HTTP face."""
        domain = self.csds_domain
        return domain if "://" in domain else f"https://{domain}"

    @property
    def ws_base_url(self) -> str:
        """``ws(s)://host:port``: the root of both WebSocket APIs."""
        return self.base_url.replace("http", "ws", 1)

    @property
    def account_id(self) -> str:
        """The first account of the world (``12345678`` in the default world)."""
        return str(self.info["account_id"])

    @property
    def ca_file(self) -> str | None:
        """The PEM file of the emulator's CA (``--tls``), None when plain."""
        value = self.info.get("ca_file")
        return str(value) if value else None

    def client_ssl_context(self) -> ssl.SSLContext | None:
        """An SSL context trusting the emulator's CA (None when plain), as
        :meth:`lpm.emulator.app.Emulator.client_ssl_context`: the raw-protocol helpers of
        ``tests/helpers.py`` and ``tests/security/faces.py`` accept this object as well."""
        return ssl.create_default_context(cafile=self.ca_file) if self.ca_file else None

    @property
    def pid(self) -> int | None:
        """The running child's pid (None when not running)."""
        return self._proc.pid if self.running and self._proc is not None else None

    @property
    def running(self) -> bool:
        """True while the child process exists (also when frozen)."""
        return self._proc is not None and self._proc.returncode is None

    @property
    def returncode(self) -> int | None:
        """The last child's exit status (negative: the signal that ended it), None while running."""
        return None if self._proc is None else self._proc.returncode

    # ---------------------------------------------------------------- life cycle

    def command(self) -> list[str]:
        """The command line of the next start."""
        argv = [sys.executable, "-m", "lpm.cli.main", "emulator", "--port", str(self.port), "--json"]
        if self.db is not None:
            argv += ["--db", str(self.db)]
        if self.faults:
            argv.append("--faults")
        return argv + self.args

    async def start(self) -> dict[str, Any]:
        """Start the emulator and wait until it listens; returns its description.

        Raises :class:`EmulatorProcessError` if it exits first (with its stderr) or does not
        answer within ``start_timeout`` seconds.
        """
        if self.running:
            raise EmulatorProcessError("the emulator is already running")
        env = dict(os.environ)
        env.update(self.env or {})
        self._proc = await asyncio.create_subprocess_exec(
            *self.command(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            limit=_LINE_LIMIT,
        )
        self.starts += 1
        assert self._proc.stdout is not None and self._proc.stderr is not None
        self._stderr_task = asyncio.create_task(self._drain(self._proc.stderr), name="emulator-stderr")
        try:
            line = await asyncio.wait_for(self._proc.stdout.readline(), self.start_timeout)
        except TimeoutError:
            await self.cleanup()
            raise EmulatorProcessError(
                f"the emulator printed nothing in {self.start_timeout} s:\n{self.stderr_text()}"
            ) from None
        if not line:
            await self._reap()
            raise EmulatorProcessError(
                f"the emulator exited ({self.returncode}) before listening:\n{self.stderr_text()}"
            )
        self.info = json.loads(line)
        # The description's csds_domain holds the port: keep it for the next start.
        self.port = int(self.csds_domain.rsplit(":", 1)[1])
        return self.info

    async def kill(self) -> None:
        """SIGKILL the emulator and wait until it is gone (a crash: no shutdown code runs)."""
        if not self.running:
            return
        assert self._proc is not None
        self._proc.send_signal(signal.SIGKILL)
        await self._reap()

    def stop(self) -> None:
        """SIGSTOP: freeze the process; it keeps its sockets open but runs nothing (a hung server).

        Not a shutdown (that is :meth:`terminate`): :meth:`cont` resumes it where it was.
        """
        self._signal(signal.SIGSTOP)

    def cont(self) -> None:
        """SIGCONT: a frozen (:meth:`stop`) emulator runs again."""
        self._signal(signal.SIGCONT)

    async def restart(self) -> dict[str, Any]:
        """Kill the emulator if it runs, then start it on the same port and database file."""
        await self.kill()
        return await self.start()

    async def terminate(self, timeout: float = STOP_TIMEOUT) -> int:
        """Stop gracefully (SIGINT, as Ctrl-C); killed after ``timeout`` s.  Returns the exit status."""
        if self.running:
            assert self._proc is not None
            # A frozen process would never see SIGINT.
            self._proc.send_signal(signal.SIGCONT)
            self._proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(self._proc.wait(), timeout)
            except TimeoutError:
                self._proc.send_signal(signal.SIGKILL)
        await self._reap()
        assert self.returncode is not None
        return self.returncode

    async def cleanup(self) -> None:
        """Kill the process if it still runs and release its pipes; idempotent."""
        if self.running:
            assert self._proc is not None
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(signal.SIGKILL)
        await self._reap()

    async def __aenter__(self) -> EmulatorProcess:
        try:
            await self.start()
        except BaseException:
            await self.cleanup()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.cleanup()

    # ---------------------------------------------------------------- diagnostics

    def peak_rss(self) -> int | None:
        """The running process's peak resident memory so far, in bytes (Linux ``VmHWM``; None
        when not running or not on Linux)."""
        if self.pid is None:
            return None
        try:
            with open(f"/proc/{self.pid}/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return None

    def stderr_text(self) -> str:
        """The kept stderr lines as one string (for assertion messages)."""
        return "\n".join(self.stderr_tail)

    # ---------------------------------------------------------------- internals

    def _signal(self, sig: signal.Signals) -> None:
        if not self.running:
            raise EmulatorProcessError("the emulator is not running")
        assert self._proc is not None
        self._proc.send_signal(sig)

    async def _drain(self, stream: asyncio.StreamReader) -> None:
        while True:
            try:
                line = await stream.readline()
            except ValueError:  # a line over the limit: keep its start
                line = await stream.read(_LINE_LIMIT)
            if not line:
                return
            self.stderr_tail.append(line.decode(errors="replace").rstrip()[:2000])

    async def _reap(self) -> None:
        """Wait for the child to exit and for its stderr to be read to the end."""
        if self._proc is not None:
            await self._proc.wait()
        if self._stderr_task is not None:
            # The pipe closes with the process: the drain ends by itself.
            with contextlib.suppress(asyncio.CancelledError):
                await self._stderr_task
            self._stderr_task = None
