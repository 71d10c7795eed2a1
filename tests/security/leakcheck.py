"""Secret-leak check over a whole pytest run (issue 6).

Registered from ``tests/conftest.py``.  From ``pytest_configure`` to ``pytest_unconfigure``:

* a handler on the root logger records every log record of the process, with the ``lpm`` and
  ``aiohttp`` loggers lowered to DEBUG (when nobody configured them) so their debug lines are
  produced and checked too;
* every :class:`lpm.errors.LpmError` and emulator :class:`~lpm.emulator.world_errors.WorldError` is
  checked when it is *constructed* (so errors a test catches count as well), and the SDK's,
  emulator's and aiohttp's exceptions a test raises are checked with their causes (a test's own
  assertion messages may quote tokens on purpose);
* the emulator reports each secret it issues (signed JWTs, agent bearers, csrf values, session
  ids) through :func:`lpm.emulator.token_issuer.observe_issued`.

Each text is checked when it appears against the default world's static secrets (passwords, app
key secrets, the app install's client secret), the issued secrets (found by their shapes: JWTs and
hex runs) and any JWT at all.  Tokens are always issued before anything can log them, so checking
on arrival misses nothing.  At the end of the session the leaks are listed, with the secret
replaced by its kind, and the run fails.  ``LPM_LEAKCHECK=0`` turns the check off.  Measured cost:
none visible (tests/unit + two integration files, 422 tests: 20.8 s with and without; three
integration files, 67 tests: 14.5 s vs 14.2 s).
"""

from __future__ import annotations

import functools
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest

#: JWTs: three base64url parts, the first two JSON objects (so starting with ``eyJ``).
JWT_RE = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")
#: Agent bearers (64 hex), csrf values and session ids (32 hex) of the emulator.
HEX_RE = re.compile(r"[0-9a-f]{32,}")
#: Loggers lowered to DEBUG for the run (only when their level was not set by anyone).
DEBUG_LOGGERS = ("lpm", "aiohttp")


def default_world_secrets() -> dict[str, str]:
    """The static secrets of the default world: value -> what it is."""
    from lpm.emulator.config import default_world

    found: dict[str, str] = {}
    for account in default_world().accounts:
        for user in account.users:
            for attr in ("password", "secret", "access_token", "access_token_secret"):
                value = getattr(user, attr, None)
                if value:
                    found[value] = f"{attr} of user {user.login_name}"
        for install in account.app_installs:
            found[install.client_secret] = f"client secret of app {install.client_id}"
    return found


@dataclass(slots=True)
class Leak:
    """One secret found where it must not be."""

    where: str
    source: str
    kind: str
    excerpt: str


@dataclass
class LeakCheck:
    """Collects issued secrets and checks texts for them (thread-safe: the emulator may run in a
    thread in some tests)."""

    static: dict[str, str] = field(default_factory=default_world_secrets)
    issued: set[str] = field(default_factory=set)
    leaks: list[Leak] = field(default_factory=list)
    current_test: str = "<session>"
    checked: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add_issued(self, value: str) -> None:
        with self._lock:
            self.issued.add(value)

    def findings(self, text: str) -> list[tuple[str, str]]:
        """(secret, kind) pairs found in ``text``."""
        found: list[tuple[str, str]] = []
        for secret, kind in self.static.items():
            if secret in text:
                found.append((secret, kind))
        for match in JWT_RE.finditer(text):
            token = match.group(0)
            found.append((token, "issued JWT" if token in self.issued else "JWT"))
        for match in HEX_RE.finditer(text):
            run = match.group(0)
            # A bearer is two uuid4 hex strings; csrf and session ids are one.
            pieces = {run, run[:32], run[32:64]} if len(run) == 64 else {run}
            for piece in pieces:
                if piece in self.issued:
                    found.append((piece, "agent bearer, csrf or session id"))
        return found

    def check(self, text: str, source: str) -> None:
        """Record a leak for each secret in ``text``."""
        if not text:
            return
        self.checked += 1
        found = self.findings(text)
        for secret, kind in found:
            excerpt = redact(text, secret, kind, [other for other, _ in found])
            with self._lock:
                self.leaks.append(Leak(self.current_test, source, kind, excerpt))

    def report_lines(self) -> list[str]:
        lines = [f"secret-leak check: {len(self.leaks)} leak(s) in {self.checked} checked texts"]
        for leak in self.leaks[:50]:
            lines.append(f"  {leak.where} [{leak.source}] {leak.kind}: {leak.excerpt}")
        if len(self.leaks) > 50:
            lines.append(f"  ... and {len(self.leaks) - 50} more")
        return lines


def redact(text: str, secret: str, kind: str, others: Iterable[str] = ()) -> str:
    """An excerpt of ``text`` around ``secret`` with the secret, the ``others`` and any JWT replaced."""
    index = text.find(secret)
    start = max(0, index - 80)
    excerpt = text[start : index + len(secret) + 80].replace(secret, f"<{kind}>")
    for other in sorted(others, key=len, reverse=True):
        excerpt = excerpt.replace(other, "<secret>")
    excerpt = JWT_RE.sub("<JWT>", excerpt)
    return excerpt.replace("\n", "\\n")


class _CaptureHandler(logging.Handler):
    """Checks the formatted message (and traceback) of every record."""

    def __init__(self, leakcheck: LeakCheck) -> None:
        super().__init__(logging.DEBUG)
        self.leakcheck = leakcheck

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + logging.Formatter().formatException(record.exc_info)
            self.leakcheck.check(text, f"log {record.name}:{record.levelname}")
        except Exception:  # a log call must never fail because of the check
            self.handleError(record)


def _exception_texts(exc: BaseException | None) -> Iterable[str]:
    """Messages of the SDK's, the emulator's and aiohttp's exceptions in a chain (a test's own
    assertion messages may quote tokens on purpose: they are the test's business)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if type(exc).__module__.split(".")[0] in ("lpm", "aiohttp"):
            yield f"{type(exc).__name__}: {exc}"
        exc = exc.__cause__ or exc.__context__


def _keep_metadata(own: Any) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """``functools.wraps(own)`` when the class wrote its own ``__init__`` (so introspection, e.g.
    ``inspect.signature``, still sees it); the wrapper unchanged otherwise."""
    if own is None:
        return lambda fn: fn
    return functools.wraps(own)


def _wrap_init(cls: type[BaseException], leakcheck: LeakCheck, source: str) -> Callable[[], None]:
    """Check the string arguments of every ``cls`` constructed; returns the undo function."""
    own = cls.__dict__.get("__init__")

    @_keep_metadata(own)
    def __init__(self: BaseException, *args: Any, **kwargs: Any) -> None:
        for arg in args:
            if isinstance(arg, str):
                leakcheck.check(arg, f"{source} {type(self).__name__}")
        if own is not None:
            own(self, *args, **kwargs)
        else:
            super(cls, self).__init__(*args, **kwargs)  # type: ignore[arg-type]

    cls.__init__ = __init__  # type: ignore[misc]

    def undo() -> None:
        if own is not None:
            cls.__init__ = own  # type: ignore[misc]
        else:
            del cls.__init__  # type: ignore[misc]

    return undo


def _level_restorer(logger: logging.Logger) -> Callable[[], None]:
    return lambda: logger.setLevel(logging.NOTSET)


class LeakCheckPlugin:
    """The pytest plugin object (registered by tests/conftest.py)."""

    def __init__(self) -> None:
        self.leakcheck = LeakCheck()
        self._undo: list[Callable[[], None]] = []
        self._handler = _CaptureHandler(self.leakcheck)

    # ------------------------------------------------------------------ install / remove

    def install(self) -> None:
        from lpm.emulator.token_issuer import observe_issued
        from lpm.emulator.world_errors import WorldError
        from lpm.errors import LpmError

        self._undo.append(observe_issued(self.leakcheck.add_issued))
        root = logging.getLogger()
        root.addHandler(self._handler)
        self._undo.append(lambda: root.removeHandler(self._handler))
        for name in DEBUG_LOGGERS:
            logger = logging.getLogger(name)
            if logger.level == logging.NOTSET:
                logger.setLevel(logging.DEBUG)
                self._undo.append(_level_restorer(logger))
        self._undo.append(_wrap_init(LpmError, self.leakcheck, "exception"))
        self._undo.append(_wrap_init(WorldError, self.leakcheck, "emulator error"))

    def remove(self) -> None:
        while self._undo:
            self._undo.pop()()

    # ------------------------------------------------------------------ hooks

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Any:
        self.leakcheck.current_test = item.nodeid
        yield
        self.leakcheck.current_test = "<session>"

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        yield
        if call.excinfo is not None:
            for text in _exception_texts(call.excinfo.value):
                self.leakcheck.check(text, f"raised in {call.when}")

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.leakcheck.leaks and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.leakcheck.leaks:
            terminalreporter.section("secret leaks", red=True)
            for line in self.leakcheck.report_lines():
                terminalreporter.line(line, red=True)


PLUGIN_NAME = "lpm-leakcheck"


def register(config: pytest.Config) -> None:
    """Install the check for this run (called from ``pytest_configure``); ``LPM_LEAKCHECK=0``
    turns it off (to measure what it costs)."""
    if os.environ.get("LPM_LEAKCHECK") == "0":
        return
    plugin = LeakCheckPlugin()
    plugin.install()
    config.pluginmanager.register(plugin, PLUGIN_NAME)


def unregister(config: pytest.Config) -> None:
    """Remove it (``pytest_unconfigure``)."""
    plugin = config.pluginmanager.get_plugin(PLUGIN_NAME)
    if isinstance(plugin, LeakCheckPlugin):
        plugin.remove()
        config.pluginmanager.unregister(plugin)


def active(config: pytest.Config) -> LeakCheck | None:
    """The run's :class:`LeakCheck` (tests of the check itself use it)."""
    plugin = config.pluginmanager.get_plugin(PLUGIN_NAME)
    return plugin.leakcheck if isinstance(plugin, LeakCheckPlugin) else None
