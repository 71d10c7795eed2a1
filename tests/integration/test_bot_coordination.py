"""The replicas' coordination on a real redis-server: claims, ring claims, takeover of a dead
replica's conversations, release, and a replica that lapsed (frozen past its lease) never acting
on its old claims."""

from __future__ import annotations

import asyncio
import time

from lpm.bot.coordination import Claim, RedisCoordinator
from tests.redis_server import start_redis


async def test_claims_takeover_and_release() -> None:
    with start_redis() as server:
        a = RedisCoordinator(server.url, bot_name="t", replica_id="a", lease=1.0)
        b = RedisCoordinator(server.url, bot_name="t", replica_id="b", lease=1.0)
        await a.start()
        await b.start()
        try:
            assert await a.claim("c1") is Claim.ACQUIRED
            assert await a.claim("c1") is Claim.MINE
            assert await b.claim("c1") is Claim.OTHER
            assert a.owns("c1") and not b.owns("c1")
            assert await b.claim_ring("ring") and not await a.claim_ring("ring")
            assert await b.others_alive() == 1
            assert await b.orphans(["c1", "c2"]) == ["c2"]  # nobody owns c2

            # a dies (no clean stop): its heartbeat expires within the lease.
            assert a._heartbeat is not None
            a._heartbeat.cancel()
            started = time.monotonic()
            while await b.orphans(["c1"]) != ["c1"]:
                assert time.monotonic() - started < 3
                await asyncio.sleep(0.05)
            assert await b.claim("c1") is Claim.TAKEN_OVER
            assert b.owns("c1")

            await b.release("c1")
            assert await b.orphans(["c1"]) == ["c1"]
        finally:
            await a.close()
            await b.close()


async def test_a_lapsed_replica_checks_its_claims_again() -> None:
    with start_redis() as server:
        a = RedisCoordinator(server.url, bot_name="t", replica_id="a", lease=1.0)
        b = RedisCoordinator(server.url, bot_name="t", replica_id="b", lease=1.0)
        await a.start()
        await b.start()
        try:
            assert await a.claim("c") is Claim.ACQUIRED
            assert a._heartbeat is not None
            a._heartbeat.cancel()  # a freezes: no heartbeat
            await asyncio.sleep(1.2)
            assert not a.owns("c")  # past its lease it trusts nothing
            assert await a.claim("c") is Claim.OTHER  # and does not act while it may be dead
            assert await b.claim("c") is Claim.TAKEN_OVER
            await a._beat()  # a wakes up
            assert await a.claim("c") is Claim.OTHER  # b has it now
        finally:
            await a.close()
            await b.close()
