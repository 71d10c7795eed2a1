"""Who handles which conversation: one process alone, or several replicas through Redis.

Every replica logs in as the same bot user, so every replica receives every ring and every
message of the bot's conversations.  Exactly one of them must act on each; Redis decides, with
two kinds of keys (no protocol of our own: plain keys, expiry and one Lua script):

* ``<prefix>replica:<id>`` -- a replica's heartbeat, written every ``lease / 3`` seconds with an
  expiry of ``lease`` seconds.  A replica whose key expired is dead (killed, frozen, cut off).
* ``<prefix>owner:<conversation id>`` -- the replica that owns the conversation.  A replica
  *claims* a conversation with one atomic script: it gets it when nobody owns it or when its
  owner's heartbeat is gone (a takeover), and never while the owner is alive.
* ``<prefix>ring:<ring id>`` -- ``SET NX`` with an expiry: the replica that sets it answers the
  ring; the others leave it alone.

A replica trusts its own claims without asking Redis again only while its heartbeat is known to
be alive (until the last successful write plus ``lease``, less a margin); past that it stops
acting and claims again, so a replica that was frozen longer than the lease never answers a
message its successor has answered.  A replica that stops cleanly releases its conversations at
once; a dead one loses them when its heartbeat expires, after at most ``lease`` seconds, and the
others' sweep (every ``lease / 3``) takes them over.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import importlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Iterable
from typing import Any, Protocol

from lpm.errors import ConfigurationError

__all__ = ["Claim", "Coordinator", "LocalCoordinator", "RedisCoordinator", "default_replica_id"]

log = logging.getLogger("lpm.bot.replicas")

#: Seconds before the heartbeat's expiry at which a replica stops trusting its own claims.
SAFETY_MARGIN = 0.2
#: How long a ring decision key lives (rings expire long before).
RING_KEY_MS = 120_000

_CLAIM = """
local owner = redis.call('GET', KEYS[1])
if owner == ARGV[1] then return {1, owner} end
if owner and redis.call('EXISTS', ARGV[2] .. owner) == 1 then return {0, owner} end
redis.call('SET', KEYS[1], ARGV[1])
if owner then return {3, owner} end
return {2, ''}
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Claim(enum.Enum):
    """The answer to "may this process handle the conversation?"."""

    #: It already owned it.
    MINE = "mine"
    #: Nobody owned it; now this process does.
    ACQUIRED = "acquired"
    #: Its owner was dead; now this process owns it (a failover).
    TAKEN_OVER = "taken-over"
    #: Another live replica owns it.
    OTHER = "other"

    @property
    def granted(self) -> bool:
        return self is not Claim.OTHER


def default_replica_id() -> str:
    """``<host>-<pid>-<random>``: unique even when a restarted process gets the same pid."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class Coordinator(Protocol):
    """What the bot asks of its coordination (one process, or replicas)."""

    replica_id: str
    #: True when other processes share the work.
    replicated: bool

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def claim(self, conversation_id: str) -> Claim: ...

    def owns(self, conversation_id: str) -> bool: ...

    def owned(self) -> set[str]: ...

    async def claim_ring(self, ring_id: str) -> bool: ...

    async def release(self, conversation_id: str) -> None: ...

    async def release_all(self) -> None: ...

    async def retire(self) -> None: ...

    async def orphans(self, conversation_ids: Iterable[str]) -> list[str]: ...

    async def others_alive(self) -> int: ...

    def forget(self, conversation_id: str) -> None: ...


class LocalCoordinator:
    """One process: it owns every conversation it sees."""

    replicated = False

    def __init__(self, replica_id: str | None = None) -> None:
        self.replica_id = replica_id or default_replica_id()
        self._owned: set[str] = set()

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        self._owned.clear()

    async def claim(self, conversation_id: str) -> Claim:
        if conversation_id in self._owned:
            return Claim.MINE
        self._owned.add(conversation_id)
        return Claim.ACQUIRED

    def owns(self, conversation_id: str) -> bool:
        return True

    def owned(self) -> set[str]:
        return set(self._owned)

    async def claim_ring(self, ring_id: str) -> bool:
        return True

    async def release(self, conversation_id: str) -> None:
        self._owned.discard(conversation_id)

    async def release_all(self) -> None:
        self._owned.clear()

    async def retire(self) -> None:
        pass

    async def orphans(self, conversation_ids: Iterable[str]) -> list[str]:
        return []

    async def others_alive(self) -> int:
        return 0

    def forget(self, conversation_id: str) -> None:
        pass


class RedisCoordinator:
    """Replicas coordinated through Redis (see the module docstring)."""

    replicated = True

    def __init__(
        self,
        url: str,
        *,
        bot_name: str,
        replica_id: str | None = None,
        lease: float = 10.0,
        prefix: str | None = None,
    ) -> None:
        try:
            module: Any = importlib.import_module("redis.asyncio")
        except ImportError:
            raise ConfigurationError(
                "replicas need the 'redis' package: pip install 'lp-messaging-sdk[redis]'"
            ) from None
        if lease < 1.0:
            raise ConfigurationError("lease must be at least 1 second")
        self.replica_id = replica_id or default_replica_id()
        self.prefix = prefix if prefix is not None else f"lpm:bot:{bot_name}:"
        self.lease = lease
        self._client: Any = module.from_url(url, decode_responses=True)
        self._claim_script: Any = self._client.register_script(_CLAIM)
        self._release_script: Any = self._client.register_script(_RELEASE)
        self._owned: set[str] = set()
        #: Conversation -> its owner, when another replica owns it (refreshed by the sweep).
        self._others: dict[str, str] = {}
        #: Our heartbeat is known to be alive until this monotonic time.
        self._valid_until = 0.0
        #: The heartbeat lapsed: every claim must be confirmed by Redis again.
        self._lapsed = False
        self._heartbeat: asyncio.Task[None] | None = None
        self._stopped = False

    def __repr__(self) -> str:
        return f"<RedisCoordinator {self.replica_id} prefix={self.prefix!r}>"

    def _key(self, kind: str, name: str) -> str:
        return f"{self.prefix}{kind}:{name}"

    # ---------------------------------------------------------------- heartbeat

    async def _beat(self) -> None:
        sent = time.monotonic()
        await self._client.set(
            self._key("replica", self.replica_id), str(int(time.time())), px=int(self.lease * 1000)
        )
        if sent > self._valid_until and self._valid_until:
            # Our heartbeat may have expired meanwhile: others may have taken our conversations.
            self._lapsed = True
            self._owned.clear()
            log.warning("replica %s: heartbeat lapsed; claims are checked again", self.replica_id)
        self._valid_until = sent + self.lease - SAFETY_MARGIN

    async def _beat_forever(self) -> None:
        interval = self.lease / 3
        while not self._stopped:
            await asyncio.sleep(interval)
            try:
                await self._beat()
            except Exception as exc:
                log.warning("replica %s: heartbeat failed: %s", self.replica_id, str(exc))

    async def start(self) -> None:
        await self._beat()
        self._heartbeat = asyncio.create_task(self._beat_forever(), name="lpm-bot-heartbeat")

    async def retire(self) -> None:
        """Stop the heartbeat and delete it: to the others, this replica is gone."""
        self._stopped = True
        self._valid_until = 0.0
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None
        await self._client.delete(self._key("replica", self.replica_id))

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.retire()
        with contextlib.suppress(Exception):
            await self._client.aclose()

    def _alive(self) -> bool:
        return time.monotonic() < self._valid_until

    # ---------------------------------------------------------------- conversations

    async def claim(self, conversation_id: str) -> Claim:
        if conversation_id in self._owned and self._alive() and not self._lapsed:
            return Claim.MINE
        if conversation_id in self._others:
            return Claim.OTHER  # its owner was alive at the last sweep
        if not self._alive():
            return Claim.OTHER  # we may be dead to the others: act on nothing
        code, owner = await self._claim_script(
            keys=[self._key("owner", conversation_id)],
            args=[self.replica_id, self.prefix + "replica:"],
        )
        code = int(code)
        self._lapsed = False
        if code == 0:
            self._others[conversation_id] = str(owner)
            self._owned.discard(conversation_id)
            return Claim.OTHER
        first = conversation_id not in self._owned
        self._owned.add(conversation_id)
        if code == 3:
            log.info("replica %s took over conversation %s from %s", self.replica_id, conversation_id, owner)
            return Claim.TAKEN_OVER
        return Claim.ACQUIRED if first or code == 2 else Claim.MINE

    def owns(self, conversation_id: str) -> bool:
        return conversation_id in self._owned and self._alive()

    def owned(self) -> set[str]:
        return set(self._owned)

    async def claim_ring(self, ring_id: str) -> bool:
        if not self._alive():
            return False
        won = await self._client.set(self._key("ring", ring_id), self.replica_id, nx=True, px=RING_KEY_MS)
        return bool(won)

    async def release(self, conversation_id: str) -> None:
        self._others.pop(conversation_id, None)
        if conversation_id in self._owned:
            self._owned.discard(conversation_id)
            await self._release_script(keys=[self._key("owner", conversation_id)], args=[self.replica_id])

    async def release_all(self) -> None:
        owned, self._owned = list(self._owned), set()
        for cid in owned:
            with contextlib.suppress(Exception):
                await self._release_script(keys=[self._key("owner", cid)], args=[self.replica_id])

    async def orphans(self, conversation_ids: Iterable[str]) -> list[str]:
        """Of these conversations (not ours), those whose owner is gone or dead: one MGET of the
        owners, one EXISTS per distinct owner."""
        ids = [cid for cid in conversation_ids if cid not in self._owned]
        if not ids:
            return []
        owners = await self._client.mget([self._key("owner", cid) for cid in ids])
        distinct = sorted({o for o in owners if o})
        alive: dict[str, bool] = {}
        if distinct:
            async with self._client.pipeline(transaction=False) as pipe:
                for owner in distinct:
                    pipe.exists(self._key("replica", owner))
                answers = await pipe.execute()
            alive = {owner: bool(n) for owner, n in zip(distinct, answers, strict=True)}
        out = []
        for cid, owner in zip(ids, owners, strict=True):
            if owner and alive.get(owner):
                self._others[cid] = owner
            else:
                self._others.pop(cid, None)
                out.append(cid)
        return out

    async def others_alive(self) -> int:
        count = 0
        async for key in self._client.scan_iter(match=self.prefix + "replica:*", count=100):
            if key != self._key("replica", self.replica_id):
                count += 1
        return count

    def forget(self, conversation_id: str) -> None:
        """The conversation left this replica's view (closed, transferred)."""
        self._others.pop(conversation_id, None)
