"""pytest plugin: test your own bots offline against an in-process emulator.

Installed with the package (entry point ``pytest11``), it provides the ``lpm_emulator`` fixture:
a started :class:`TestEmulator` (an :class:`lpm.emulator.Emulator`) with the default world on a
free loopback port, plus helpers that open SDK connections to it and close them after the test::

    async def test_my_bot(lpm_emulator):
        bot = await lpm_emulator.agent(username="bot")          # an opened brand connection
        consumer = await lpm_emulator.consumer()                 # an opened consumer connection
        conversation = await consumer.create_conversation(skill_id="11")

``lpm_emulator.csds_domain``, ``lpm_emulator.account_id``, ``lpm_emulator.ca_file`` and the
rest of the :class:`~lpm.emulator.Emulator` API stay available for connections you create
yourself.  Mark a test to run it against another world or other settings::

    @pytest.mark.lpm_emulator(spec=lpm.emulator.load_toml("world.toml"), ring_expiry=1)
    async def test_ring_expiry(lpm_emulator): ...

Bots written on :mod:`lpm.bot` run against the fixture with ``await lpm_emulator.start_bot(bot)``
(stopped after the test), and conversation scripts check them::

    await lpm_emulator.start_bot(bot)
    await ConversationScript([say("hi"), expect("Hello!")]).run(await lpm_emulator.consumer())

The fixture is async and runs on pytest-asyncio (``pip install 'lp-messaging-sdk[testing]'``).
The settings docs/testing.md recommends (``asyncio_mode = "auto"``,
``asyncio_default_fixture_loop_scope = "function"``) run every async test and fixture with no
warning; without them (pytest-asyncio's strict mode) an ``async def`` test that uses
``lpm_emulator`` is still run as an asyncio test: the plugin marks it ``asyncio``.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Generator
from typing import Any, TypeVar, cast

import pytest

from lpm.bot import Bot
from lpm.bot.testing import (
    ConversationScript,
    ScriptFailure,
    Step,
    consumer_close,
    expect,
    expect_close,
    expect_no_reply,
    expect_transfer,
    say,
)
from lpm.client.connection import Connection
from lpm.client.factory import create_connection
from lpm.client.transport.brand import BrandWebsocketConnection
from lpm.client.transport.consumer import ConsumerWebsocketConnection
from lpm.emulator.app import Emulator
from lpm.enums import UserType
from lpm.errors import ConfigurationError

_F = TypeVar("_F", bound=Callable[..., Any])


def _async_fixture(fn: _F) -> _F:
    """``pytest_asyncio.fixture`` (strict mode needs it; auto mode accepts it), else ``pytest.fixture``."""
    try:
        import pytest_asyncio
    except ImportError:  # pragma: no cover - without pytest-asyncio async fixtures cannot run anyway
        return cast(_F, pytest.fixture(fn))
    return cast(_F, pytest_asyncio.fixture(fn))


__all__ = [
    "ConversationScript",
    "ScriptFailure",
    "Step",
    "TestEmulator",
    "consumer_close",
    "expect",
    "expect_close",
    "expect_no_reply",
    "expect_transfer",
    "lpm_emulator",
    "say",
]

#: The fixture's name (the plugin marks the async tests that use it; see the module docstring).
FIXTURE = "lpm_emulator"

#: Options every helper-made connection gets unless the caller overrides them: a failure in a test
#: should surface in seconds, not after the production minute, and reconnects should not wait.
TEST_CONNECTION_OPTIONS: dict[str, Any] = {
    "response_timeout": 10.0,
    "wait_to_reconnect": 0.05,
    "reconnect_schedule": (0.05, 0.1, 0.2, 0.5, 1.0),
}


class TestEmulator(Emulator):
    """An :class:`~lpm.emulator.Emulator` that opens SDK connections for tests and closes them at stop.

    It takes the same arguments as :class:`~lpm.emulator.Emulator`.

    Every connection made by :meth:`consumer`, :meth:`agent` or :meth:`connection` is closed when
    the emulator stops (the ``lpm_emulator`` fixture stops it after the test), before the server
    goes away, so a test leaves no socket or task behind.
    """

    # pytest would otherwise try to collect this class from a test module that imports it.
    __test__ = False

    #: The connections the helpers opened, oldest first (a tuple: rebound, never shared).
    _clients: tuple[Connection, ...] = ()
    #: The bots :meth:`start_bot` started.
    _bots: tuple[Bot, ...] = ()

    def connection_options(self, **options: Any) -> dict[str, Any]:
        """The :func:`lpm.create_connection` keywords that point a connection at this emulator.

        ``account_id``, ``csds_domain`` and, under TLS, ``ssl`` (the emulator's CA file), plus the
        quick test timeouts of :data:`TEST_CONNECTION_OPTIONS`; ``options`` override any of them.
        """
        merged: dict[str, Any] = {"account_id": self.account_id, "csds_domain": self.csds_domain}
        if self.ca_file is not None:
            merged["ssl"] = str(self.ca_file)
        merged.update(TEST_CONNECTION_OPTIONS)
        merged.update(options)
        return merged

    async def connection(self, *, user_type: str, **options: Any) -> Connection:
        """Create and open any connection type against this emulator (closed at stop).

        ``options`` are :func:`lpm.create_connection` keywords (``connection_type``,
        ``auth_data``...); the emulator's account, CSDS domain and CA are filled in.
        """
        conn = create_connection(user_type=user_type, **self.connection_options(**options))
        # Registered before open(): a half-opened connection still has a reconnect task to stop.
        self._clients = (*self._clients, conn)
        await conn.open()
        return conn

    async def consumer(self, **options: Any) -> ConsumerWebsocketConnection:
        """An opened consumer WebSocket connection (an anonymous consumer unless ``options`` say
        otherwise, e.g. ``unauth_connector_id="3001"`` or ``auth_connector_id`` + ``jwt_claims_set``)."""
        conn = await self.connection(user_type=UserType.CONSUMER, **options)
        assert isinstance(conn, ConsumerWebsocketConnection)
        return conn

    async def agent(
        self, username: str = "agent", password: str | None = None, **options: Any
    ) -> BrandWebsocketConnection:
        """An opened brand WebSocket connection logged in as ``username``.

        ``password`` defaults to the user's password in the emulator's world (in the default
        world ``agent`` / ``agent-password`` on support, skill 12; ``bot`` / ``bot-password`` on
        sales, 11; ``survey-bot`` / ``survey-bot-password``, the bot of support's survey).  Pass
        ``auth_data=`` or ``token=`` in ``options`` to log in another way.
        """
        if "auth_data" not in options and "token" not in options:
            if password is None:
                password = self._password_of(username)
            options["auth_data"] = {"username": username, "password": password}
        conn = await self.connection(user_type=UserType.BRAND, **options)
        assert isinstance(conn, BrandWebsocketConnection)
        return conn

    async def start_bot(
        self, bot: Bot, username: str = "bot", password: str | None = None, **settings: Any
    ) -> Bot:
        """Start an :class:`lpm.bot.Bot` logged in as ``username`` on this emulator (stopped,
        without a grace period, when the emulator stops); ``settings`` are more bot settings
        (``store=``, ``http_port=0``...)."""
        options = self.connection_options()
        bot.configure(
            account_id=self.account_id,
            csds_domain=self.csds_domain,
            ca_file=options.get("ssl"),
            username=username,
            password=password if password is not None else self._password_of(username),
            connection_options=dict(TEST_CONNECTION_OPTIONS),
            **settings,
        )
        self._bots = (*self._bots, bot)
        await bot.start()
        return bot

    def _password_of(self, username: str) -> str:
        for account in self.spec.accounts:
            if account.account_id != self.account_id:
                continue
            for user in account.users:
                if user.login_name == username and user.password is not None:
                    return user.password
        raise ConfigurationError(f"no user {username!r} with a password in the emulator's world")

    async def close_clients(self) -> None:
        """Stop the bots, then close every connection the helpers opened (most recent first)."""
        bots, self._bots = self._bots, ()
        for bot in reversed(bots):
            await bot.stop(grace=0)
        clients, self._clients = self._clients, ()
        for conn in reversed(clients):
            await conn.close()

    async def stop(self) -> None:
        """Close the helpers' connections, then stop the server."""
        try:
            await self.close_clients()
        finally:
            await super().stop()

    async def __aenter__(self) -> TestEmulator:
        await self.start()
        return self


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_pycollect_makeitem(
    collector: pytest.Module | pytest.Class, name: str, obj: object
) -> Generator[None, Any, Any]:
    """Mark ``async def`` tests that use ``lpm_emulator`` ``asyncio`` when nothing else does.

    In pytest-asyncio's strict mode (its default: a project that set nothing) an unmarked
    coroutine test is not run but failed; such a test asks for an asyncio fixture, so it can
    only mean to run on asyncio.  The hook runs inside pytest-asyncio's own (``trylast``): the
    mark is there when pytest-asyncio looks for it.  Tests already marked, tests of other async
    frameworks that do not use the fixture, and auto mode are left as they are.
    """
    result = yield
    if not collector.config.pluginmanager.hasplugin("asyncio"):
        return result  # without pytest-asyncio there is nothing to mark for
    items = result if isinstance(result, list) else [result]
    for item in items:
        if (
            isinstance(item, pytest.Function)
            and inspect.iscoroutinefunction(item.obj)
            and FIXTURE in item.fixturenames
            and item.get_closest_marker("asyncio") is None
        ):
            item.add_marker(pytest.mark.asyncio)
    return result


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``lpm_emulator`` marker (unknown markers are errors under ``--strict-markers``)."""
    config.addinivalue_line(
        "markers",
        "lpm_emulator(spec=None, **settings): start the lpm_emulator fixture with this WorldSpec and "
        "these lpm.emulator.Settings (e.g. tls=True, ring_expiry=1)",
    )


@_async_fixture
async def lpm_emulator(request: pytest.FixtureRequest) -> AsyncIterator[TestEmulator]:
    """A running emulator (plain HTTP, default world, fault API on), stopped after the test.

    ``@pytest.mark.lpm_emulator(spec=..., **settings)`` changes the world or the settings.
    """
    kwargs: dict[str, Any] = {"faults": True}
    marker = request.node.get_closest_marker("lpm_emulator")
    if marker is not None:
        if marker.args:
            kwargs["spec"] = marker.args[0]
        kwargs.update(marker.kwargs)
    async with TestEmulator(**kwargs) as emu:
        yield emu
