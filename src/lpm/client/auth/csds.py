"""CSDS (LivePerson's Domain API): which host serves which service for an account.

:class:`CSDSCache` asks CSDS once per (CSDS domain, account) for *every* service with the bulk
endpoint ``GET {scheme}://{csds}/api/account/{acc}/service/baseURI.json?version=1.0`` and keeps
the answer for ten minutes (the Node SDK's TTL).  Concurrent lookups of the same account share
one request (single flight) and a failure is never cached, so the next lookup asks again.
Per-service overrides (the connection option ``domains``) are applied on every lookup; an
overridden service needs no CSDS request at all.

:data:`CSDS` is the module-wide instance every connection uses by default, so all connections of
an account share lookups (``lpm.CSDS`` points at it, like the Node SDK's singleton).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from lpm.client.auth.http import HttpSettings
from lpm.errors import AccountNotFoundError, ConfigurationError, HttpError

log = logging.getLogger("lpm.client.auth.csds")

#: How long a CSDS answer is kept, in seconds (the Node SDK's 600 000 ms).
CSDS_TTL = 600.0


class ServiceName:
    """The CSDS service names the SDK uses (case sensitive on the wire)."""

    #: Consumer WS, UMS REST, Send API, message statistics.
    ASYNC_MESSAGING_ENT = "asyncMessagingEnt"
    #: Brand WebSocket.
    FACADE_MSG = "facadeMsg"
    #: Agent login, refresh, logout.
    AGENT_VEP = "agentVep"
    #: Consumer identity.
    IDP = "idp"
    #: AppJWT for connectors.
    SENTINEL = "sentinel"
    #: File storage.
    SWIFT = "swift"
    #: AC connectors.
    AC_CDN_DOMAIN = "acCdnDomain"
    MESSAGING_REST_API = "messagingRestApiDomain"
    MSG_HIST = "msgHist"
    ACCOUNT_CONFIG_READ_ONLY = "accountConfigReadOnly"
    ACCOUNT_CONFIG_READ_WRITE = "accountConfigReadWrite"


@dataclass(frozen=True, slots=True)
class _Entry:
    services: Mapping[str, str]
    expires_at: float


class _LeaderCancelled(Exception):
    """The caller doing a shared lookup was cancelled: the others must ask again themselves."""


class CSDSCache:
    """Cached, single-flight CSDS lookups.

    ``ttl`` is in seconds; ``domains`` are overrides applied to every lookup of this cache (the
    ``domains`` argument of a lookup adds to them and wins); ``clock`` is injectable for tests.
    """

    def __init__(
        self,
        *,
        ttl: float = CSDS_TTL,
        domains: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.domains: dict[str, str] = dict(domains or {})
        self._clock = clock
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._inflight: dict[tuple[str, str], asyncio.Future[Mapping[str, str]]] = {}
        #: Requests actually sent to CSDS (for diagnostics and tests).
        self.requests = 0

    def clear(self) -> None:
        """Forget every cached answer (in-flight lookups still complete for their callers)."""
        self._entries.clear()

    def invalidate(self, account_id: str) -> None:
        """Forget the cached answers for ``account_id`` (from every CSDS domain)."""
        for key in [k for k in self._entries if k[1] == account_id]:
            del self._entries[key]

    async def lookup(
        self,
        account_id: str,
        service: str,
        *,
        http: HttpSettings | None = None,
        domains: Mapping[str, str] | None = None,
    ) -> str:
        """The ``host[:port]`` of ``service`` for ``account_id``.

        Raises :class:`HttpError` when CSDS cannot be asked, does not know the account (401) or
        has no such service.
        """
        if not account_id:
            raise ConfigurationError("accountId is a required parameter")
        if not service:
            raise ConfigurationError("service is a required parameter")
        overrides = self._overrides(domains)
        if service in overrides:
            return overrides[service]
        services = await self._services(account_id, http)
        host = services.get(service)
        if not host:
            raise HttpError(f"CSDS has no service {service!r} for account {account_id}")
        return host

    async def all(
        self,
        account_id: str,
        *,
        http: HttpSettings | None = None,
        domains: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        """Every service of ``account_id`` (service name → ``host[:port]``), overrides applied."""
        services = dict(await self._services(account_id, http))
        services.update(self._overrides(domains))
        return services

    # ---------------------------------------------------------------- internals

    def _overrides(self, domains: Mapping[str, str] | None) -> dict[str, str]:
        overrides = dict(self.domains)
        if domains:
            overrides.update(domains)
        return overrides

    async def _services(self, account_id: str, http: HttpSettings | None) -> Mapping[str, str]:
        if not account_id:
            raise ConfigurationError("accountId is a required parameter")
        if http is None:
            # A throwaway client for this one request: default settings point at LivePerson.
            async with HttpSettings() as temporary:
                return await self._services(account_id, temporary)
        key = (http.base_url(http.csds_host(account_id)), account_id)
        loop = asyncio.get_running_loop()
        while True:
            entry = self._entries.get(key)
            if entry is not None and entry.expires_at > self._clock():
                return entry.services
            pending = self._inflight.get(key)
            # A future of another event loop (a previous asyncio.run) cannot be awaited here.
            if pending is not None and pending.get_loop() is loop and not pending.done():
                try:
                    # Shielded: a cancelled follower must not cancel the others' shared result.
                    return await asyncio.shield(pending)
                except _LeaderCancelled:
                    continue
            return await self._lead(key, account_id, http, loop)

    async def _lead(
        self,
        key: tuple[str, str],
        account_id: str,
        http: HttpSettings,
        loop: asyncio.AbstractEventLoop,
    ) -> Mapping[str, str]:
        """Fetch for everyone waiting on ``key``; the caller's own task does the I/O, so no
        background task outlives it."""
        future: asyncio.Future[Mapping[str, str]] = loop.create_future()
        self._inflight[key] = future
        try:
            services = await self._fetch(account_id, http)
        except asyncio.CancelledError:
            future.set_exception(_LeaderCancelled())
            raise
        except BaseException as exc:
            future.set_exception(exc)
            raise
        else:
            self._entries[key] = _Entry(services, self._clock() + self.ttl)
            future.set_result(services)
            return services
        finally:
            if self._inflight.get(key) is future:
                del self._inflight[key]
            if future.done() and not future.cancelled():
                # Mark the exception retrieved: with no follower, asyncio would log it.
                future.exception()

    async def _fetch(self, account_id: str, http: HttpSettings) -> Mapping[str, str]:
        csds = http.csds_host(account_id)
        url = f"{http.base_url(csds)}/api/account/{account_id}/service/baseURI.json"
        self.requests += 1
        log.debug("CSDS lookup for account %s at %s", account_id, csds)
        failure: AccountNotFoundError | None = None
        try:
            body = await http.request_json(
                "GET", url, params={"version": "1.0"}, what=f"CSDS lookup for account {account_id}"
            )
        except HttpError as exc:
            if exc.status != 401:
                raise
            failure = AccountNotFoundError(
                account_id,
                f"CSDS does not know account {account_id} (HTTP 401 from {csds}): check the account id",
                status=401,
                body=exc.body,
            )
        if failure is not None:
            raise failure  # outside the ``except`` block: the HttpError says nothing more
        entries = body.get("baseURIs") if isinstance(body, dict) else None
        if not isinstance(entries, list):
            raise HttpError(f"CSDS answer for account {account_id} has no baseURIs list", status=200)
        services: dict[str, str] = {}
        for item in entries:
            if isinstance(item, dict):
                name, host = item.get("service"), item.get("baseURI")
                if isinstance(name, str) and isinstance(host, str) and host:
                    services[name] = host
        return services


#: The shared cache every connection uses unless given another (``lpm.CSDS``).
CSDS = CSDSCache()
