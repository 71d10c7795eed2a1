"""Shared fixtures: an in-process emulator on a free port and an HTTP client session."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from lpm.emulator.app import Emulator


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    """A plain-HTTP emulator with the default world and the fault API enabled."""
    async with Emulator(faults=True) as emu:
        yield emu


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    # unsafe=True: the emulator lives on an IP address, whose cookies (agentVep's Session_id)
    # aiohttp's default jar refuses to keep.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


# Secret-leak check over the whole run (issue 6): see tests/security/leakcheck.py.
def pytest_configure(config: pytest.Config) -> None:
    from tests.security import leakcheck

    leakcheck.register(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    from tests.security import leakcheck

    leakcheck.unregister(config)
