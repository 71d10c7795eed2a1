"""pytest plugin: test your own bots offline against an in-process emulator.

Installed with the package (entry point ``pytest11``), it provides the ``lpm_emulator`` fixture:
a started :class:`lpm.emulator.Emulator` with the default world on a free loopback port::

    async def test_my_bot(lpm_emulator):
        conn = lpm.create_connection(..., csds_domain=lpm_emulator.csds_domain)
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from lpm.emulator.app import Emulator


@pytest.fixture
async def lpm_emulator() -> AsyncIterator[Emulator]:
    """A running emulator (plain HTTP, default world, fault API on), stopped after the test."""
    async with Emulator(faults=True) as emu:
        yield emu
