"""Skill shift status: the poller of ``poll_shift_status=True`` (Node SDK reference §2.18, §2.14).

A brand connection created with ``poll_shift_status=True`` starts a :class:`ShiftStatusPoller`
when it first connects (before its conversation subscriptions are restored, as the Node SDK
requests the first status before its default subscription) and stops it when it closes.  The
poller asks ``GET https://{asyncMessagingEnt}/api/account/{account}/shift-status`` with the
connection's bearer, at once and then about once a minute: every :data:`POLL_INTERVAL` seconds
minus a random jitter -- up to 99.9 % of it before the second poll (so that many bots started
together spread out), up to 10 % later.  A 401 has the token maintainer regenerate the token
(``on_token_invalid("shift-status")``) and the request is retried once.

The answer is a list of ``{skillId, onShift, nextOn, nextOff}`` (``nextOn`` / ``nextOff``: epoch
milliseconds or null).  Each item updates the connection's :class:`lpm.Skill` of that id
(``on_shift``, ``next_on``, ``next_off``, ``is_in_off_hours()``; conversations of the skill point
at the same object), and a skill whose ``on_shift`` changes emits, on the connection,
``skill-entered-work-hours`` or ``skill-entered-off-hours`` with the item.

Events (:class:`ShiftStatusEvent`).  On the poller: ``getShiftStatus#request`` ``({"start"})``,
``getShiftStatus#response`` ``({"start", "end"})``, ``getShiftStatus#error`` ``(error)`` and
``shiftStatusData`` ``(items)``; the connection re-emits ``getShiftStatus#response`` and
``getShiftStatus#error`` and emits the two skill events.  A failed poll is also reported on the
connection's ``error`` event; polling goes on.

:func:`process_shift_status_response` applies a list of items to a connection (what the poller
does with each answer; also usable with statuses obtained elsewhere).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from lpm.client.events import cancel_and_wait
from lpm.client.typed_events import ShiftStatusEmitter
from lpm.errors import AuthenticationError, ProtocolError

if TYPE_CHECKING:
    from lpm.client.auth.http import HttpSettings
    from lpm.client.model.skill import Skill

__all__ = [
    "FIRST_JITTER",
    "JITTER",
    "POLL_INTERVAL",
    "SERVICE",
    "ShiftStatusEvent",
    "ShiftStatusHost",
    "ShiftStatusPoller",
    "process_shift_status_response",
]

log = logging.getLogger("lpm.client.shift_status")

#: Seconds between two polls (before jitter).
POLL_INTERVAL = 60.0
#: The largest share of the interval taken off the first reschedule, then off the later ones.
FIRST_JITTER = 0.999
JITTER = 0.1
#: The CSDS service that serves ``/shift-status``.
SERVICE = "asyncMessagingEnt"


class ShiftStatusEvent(enum.StrEnum):
    """The shift-status events (the Node SDK's names; see the module docstring)."""

    #: ``({"start"})``: a poll started (epoch ms).
    REQUEST = "getShiftStatus#request"
    #: ``({"start", "end"})``: a poll was answered.
    RESPONSE = "getShiftStatus#response"
    #: ``(error)``: a poll failed (polling goes on).
    ERROR = "getShiftStatus#error"
    #: ``(items)``: the list of ``{skillId, onShift, nextOn, nextOff}`` a poll got.
    DATA = "shiftStatusData"
    #: ``(item)`` on the connection: a known skill's shift started.
    SKILL_ENTERED_WORK_HOURS = "skill-entered-work-hours"
    #: ``(item)`` on the connection: a known skill's shift ended.
    SKILL_ENTERED_OFF_HOURS = "skill-entered-off-hours"


class _Skills(Protocol):
    def skill(self, skill_id: str) -> Skill: ...


class ShiftStatusHost(Protocol):
    """What the poller needs of its brand connection (:class:`lpm.BrandWebsocketConnection` and
    :class:`lpm.BrandRestConnection` are ones)."""

    @property
    def account_id(self) -> str: ...

    @property
    def http(self) -> HttpSettings: ...

    @property
    def conversations(self) -> _Skills: ...

    token_maintainer: Any

    async def lookup_service(self, service: str) -> str: ...

    def emit(self, name: str, *args: Any) -> bool: ...

    def report_error(self, error: BaseException) -> None: ...


def _now_ms() -> int:
    return int(time.time() * 1000)


def process_shift_status_response(connection: ShiftStatusHost, items: Iterable[Any]) -> None:
    """Apply shift-status ``items`` to ``connection``'s skills; a known skill whose ``on_shift``
    changes emits ``skill-entered-work-hours`` / ``skill-entered-off-hours`` with its item
    (the Node SDK's ``processShiftStatusResponse``).  Items that are not objects naming a
    ``skillId`` are skipped."""
    for item in items:
        if not isinstance(item, dict) or item.get("skillId") is None:
            log.debug("shift-status item without a skillId ignored")
            continue
        skill = connection.conversations.skill(str(item["skillId"]))
        if skill.process_shift_status(item):
            name = (
                ShiftStatusEvent.SKILL_ENTERED_WORK_HOURS
                if skill.on_shift
                else ShiftStatusEvent.SKILL_ENTERED_OFF_HOURS
            )
            connection.emit(name, item)


class ShiftStatusPoller(ShiftStatusEmitter):
    """Polls the account's shift status for a brand connection (module docstring).

    ``interval`` (seconds), ``jitter`` (a source of floats in [0, 1)) and ``sleep`` can be
    replaced (tests).  :meth:`start` is idempotent; :meth:`stop` waits for the polling task.
    """

    def __init__(
        self,
        connection: ShiftStatusHost,
        *,
        interval: float = POLL_INTERVAL,
        jitter: Callable[[], float] = random.random,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(connection.report_error)
        self._connection = connection
        self.interval = interval
        self._jitter = jitter
        self._sleep = sleep
        self._task: asyncio.Task[None] | None = None
        #: Polls answered so far.
        self.polls = 0
        # The connection re-emits these two (Node SDK 1.5.4).
        for name in (ShiftStatusEvent.RESPONSE, ShiftStatusEvent.ERROR):
            self.on(name, self._forwarder(name))
        self.on(ShiftStatusEvent.DATA, self._apply)

    def __repr__(self) -> str:
        return f"<ShiftStatusPoller {self._connection.account_id} {'running' if self.running else 'stopped'}>"

    def _forwarder(self, name: ShiftStatusEvent) -> Callable[..., None]:
        def forward(*args: Any) -> None:
            self._connection.emit(name, *args)

        return forward

    def _apply(self, items: list[Any]) -> None:
        process_shift_status_response(self._connection, items)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Poll now, then every minute (minus jitter) until :meth:`stop`."""
        if self.running:
            return
        self._task = asyncio.get_running_loop().create_task(self._run(), name="lpm-shift-status")

    async def stop(self) -> None:
        """Stop polling (a poll in flight is cancelled)."""
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait([task])

    def next_delay(self, first: bool) -> float:
        """Seconds until the next poll: the interval minus up to 99.9 % (after the first poll)
        or 10 % (later) of it."""
        share = FIRST_JITTER if first else JITTER
        return self.interval * (1.0 - share * self._jitter())

    async def _run(self) -> None:
        first = True
        while True:
            try:
                await self.poll()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.info("shift status poll failed: %s", str(exc))
                self.emit(ShiftStatusEvent.ERROR, exc)
                self._connection.report_error(exc)
            await self._sleep(self.next_delay(first))
            first = False

    async def poll(self) -> list[Any]:
        """One poll (a 401 renews the token and retries once); emits the events and returns the
        items."""
        start = _now_ms()
        self.emit(ShiftStatusEvent.REQUEST, {"start": start})
        try:
            items = await self._get()
        except AuthenticationError:
            await self._connection.token_maintainer.on_token_invalid("shift-status")
            items = await self._get()
        self.polls += 1
        self.emit(ShiftStatusEvent.RESPONSE, {"start": start, "end": _now_ms()})
        self.emit(ShiftStatusEvent.DATA, items)
        return items

    async def _get(self) -> list[Any]:
        connection = self._connection
        host = await connection.lookup_service(SERVICE)
        token = await connection.token_maintainer.get_token()
        url = f"{connection.http.base_url(host)}/api/account/{connection.account_id}/shift-status"
        body = await connection.http.request_json(
            "GET",
            url,
            headers={"Authorization": f"Bearer {token}"},
            auth_statuses=(401,),
            what="GET shift-status",
            secrets=(token,),
        )
        if not isinstance(body, list):
            raise ProtocolError(f"shift-status answered {type(body).__name__}, not a list of skills")
        return body
