"""Brand token maintenance: keep an agentVep bearer valid for as long as a connection lives.

:class:`TokenMaintainer` is the Node SDK's ``TokenMaintainer`` (reference §2.16) in Python:

* :meth:`~TokenMaintainer.start` logs in (or, given an existing session, refreshes it first and
  logs in only if the refresh answers 401), then refreshes the session every
  ``refresh_interval`` seconds (4 minutes; agentVep wants one at least every 10) in a task it owns.
* :meth:`~TokenMaintainer.on_token_invalid` is what a connection calls when the server refuses
  the bearer (HTTP 401 at the upgrade, close codes 4401/4407): it emits ``token-invalid``, stops
  the refresh loop, logs in again -- once, however many callers report at the same time -- emits
  ``token-regenerated`` and restarts the loop.
* Logins that fail are retried for as long as the maintainer is started, after 5, 10, 30, 60 s...
  up to 4 h (:data:`GENERATE_RETRY_SCHEDULE`), emitting ``error`` and ``generate-token-wait``
  before each wait.  One exception: during :meth:`~TokenMaintainer.start`, a login the server
  *refuses* (HTTP 400/401/403: bad credentials) raises at once, so that opening a connection with
  a wrong password fails instead of hanging; transient failures (429, 5xx, network) are retried.
* :meth:`~TokenMaintainer.stop` cancels every task it owns, removes all listeners (as the Node SDK
  does) and, on request, logs the session out.

Events (:class:`TokenEvent`; payloads are dicts; times are epoch seconds): ``error`` (the
exception), ``refresh-token`` ``{agent_id}``, ``token-invalid`` ``{source}``, ``token-regenerated``
``{agent_id}``, ``generate-token-wait`` ``{seconds}``, ``getAgentToken#request`` ``{start}`` and
``getAgentToken#response`` ``{start, end}``.

The maintainer's life cycle is one table, :data:`TOKEN_MAINTAINER` (the public ``state`` is
INITIAL, STARTED -- any of LOGGING_IN, VALID, REGENERATING, FAILED -- or STOPPED)::

    INITIAL | STOPPED        --start-->               LOGGING_IN
    LOGGING_IN               --logged in-->           VALID
    LOGGING_IN | VALID       --start aborted-->       INITIAL    (start() raised or was cancelled)
    VALID | FAILED           --token invalid-->       REGENERATING
    LOGGING_IN               --token invalid-->       REGENERATING  (reported as the start failed)
    REGENERATING             --regenerated-->         VALID
    REGENERATING             --regeneration failed--> FAILED     (get_token() raises the error)
    any                      --stop-->                STOPPED

A refresh that succeeds or fails transiently keeps VALID; one answered 401 is ``token invalid``.

:class:`StaticTokenMaintainer` serves a caller-supplied bearer (the ``token`` option of a brand
REST connection): no login and no refresh.  :class:`TokenMaintainerProtocol` is the contract a
user-supplied maintainer (the ``token_maintainer`` option) must satisfy.

Why one module (about 700 lines): the token maintainer's states, the single-flight
regeneration, the refresh loop and the static maintainer callers may supply are one contract
(``TokenMaintainerProtocol``) and its two implementations.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from lpm.client.auth import agent_login
from lpm.client.auth.agent_login import AgentSession
from lpm.client.auth.csds import CSDS, CSDSCache, ServiceName
from lpm.client.auth.http import HttpSettings
from lpm.client.events import EventEmitter, cancel_and_wait
from lpm.client.opening import is_permanent
from lpm.client.options import EXTENDED_RECONNECT_SCHEDULE, ConnectionOptions
from lpm.client.retry import Backoff, retry
from lpm.client.state_table import StateTable
from lpm.client.typed_events import TokenEmitter
from lpm.errors import AuthenticationError, ConfigurationError, InvalidStateError, LpmError

log = logging.getLogger("lpm.client.auth.tokens")

#: Seconds to wait after each failed login, the last value repeating forever (Node SDK 1.5.4):
#: the same schedule as reconnects.
GENERATE_RETRY_SCHEDULE: tuple[float, ...] = EXTENDED_RECONNECT_SCHEDULE
#: Seconds between session refreshes (agentVep sessions must be refreshed within 10 minutes).
DEFAULT_REFRESH_INTERVAL = 240.0

_NOT_STARTED = "token maintainer not started"


class MaintainerState(enum.StrEnum):
    """Life cycle of a token maintainer."""

    INITIAL = "INITIAL"
    STARTED = "STARTED"
    STOPPED = "STOPPED"


class TokenState(enum.StrEnum):
    """What a :class:`TokenMaintainer` is doing (finer than :class:`MaintainerState`)."""

    #: Never started, or the last start failed.
    INITIAL = "initial"
    #: start(): the first login (or the refresh of a given session) is under way.
    LOGGING_IN = "logging in"
    #: A session; refreshed every ``refresh_interval``.
    VALID = "valid"
    #: The bearer was refused: logging in again (retried on the schedule).
    REGENERATING = "regenerating"
    #: A regeneration could not succeed (no credentials...): ``get_token()`` raises its error
    #: until the next ``on_token_invalid()``.
    FAILED = "failed"
    STOPPED = "stopped"


class TokenTrigger(enum.StrEnum):
    """What moves a token maintainer from one state to another."""

    START = "start"
    LOGGED_IN = "logged in"
    START_ABORTED = "start aborted"
    TOKEN_INVALID = "token invalid"
    REGENERATED = "regenerated"
    REGENERATION_FAILED = "regeneration failed"
    STOP = "stop"


class TokenEvent(enum.StrEnum):
    """The events of the token maintainers (the Node SDK's names)."""

    ERROR = "error"
    REFRESH_TOKEN = "refresh-token"
    TOKEN_INVALID = "token-invalid"
    TOKEN_REGENERATED = "token-regenerated"
    GENERATE_TOKEN_WAIT = "generate-token-wait"
    GET_AGENT_TOKEN_REQUEST = "getAgentToken#request"
    GET_AGENT_TOKEN_RESPONSE = "getAgentToken#response"


_TS = TokenState
_TT = TokenTrigger

#: The life cycle of a :class:`TokenMaintainer` (see the module docstring).
TOKEN_MAINTAINER: StateTable[TokenState, TokenTrigger] = StateTable.by_state(
    "token maintainer",
    {
        _TS.INITIAL: {_TT.START: _TS.LOGGING_IN},
        _TS.STOPPED: {_TT.START: _TS.LOGGING_IN},
        # TOKEN_INVALID: the first login failed and was reported before start() raised.
        _TS.LOGGING_IN: {
            _TT.LOGGED_IN: _TS.VALID,
            _TT.START_ABORTED: _TS.INITIAL,
            _TT.TOKEN_INVALID: _TS.REGENERATING,
        },
        # START_ABORTED: start()'s caller was cancelled just after the login succeeded.
        _TS.VALID: {_TT.START_ABORTED: _TS.INITIAL, _TT.TOKEN_INVALID: _TS.REGENERATING},
        _TS.FAILED: {_TT.TOKEN_INVALID: _TS.REGENERATING},
        _TS.REGENERATING: {_TT.REGENERATED: _TS.VALID, _TT.REGENERATION_FAILED: _TS.FAILED},
    },
    from_every_state={_TT.STOP: _TS.STOPPED},
)

#: What the public :attr:`TokenMaintainer.state` says of each :class:`TokenState`.
_PUBLIC_STATE = {
    _TS.INITIAL: MaintainerState.INITIAL,
    _TS.STOPPED: MaintainerState.STOPPED,
    _TS.LOGGING_IN: MaintainerState.STARTED,
    _TS.VALID: MaintainerState.STARTED,
    _TS.REGENERATING: MaintainerState.STARTED,
    _TS.FAILED: MaintainerState.STARTED,
}

#: The life cycle of a :class:`StaticTokenMaintainer` (start and stop are idempotent).
STATIC_TOKEN_MAINTAINER: StateTable[MaintainerState, TokenTrigger] = StateTable.by_state(
    "static token maintainer",
    {state: {} for state in MaintainerState},
    from_every_state={_TT.START: MaintainerState.STARTED, _TT.STOP: MaintainerState.STOPPED},
)


@runtime_checkable
class TokenMaintainerProtocol(Protocol):
    """What a connection needs from a token maintainer (the ``token_maintainer`` option).

    A user-supplied maintainer must also be an event emitter (``on``/``off``) and emit
    ``token-regenerated`` when it has a new token, and ``error`` for failures it recovers from.
    ``on_token_invalid`` is called whenever the server refuses the current token; it should
    return once a new token is available (or raise if none can be had).
    """

    @property
    def agent_id(self) -> str | None:
        """``{account_id}.{user_id}``."""
        ...

    @property
    def user_id(self) -> str | None:
        """The agent's numeric user id."""
        ...

    async def start(self) -> None:
        """Obtain the first token (idempotent)."""
        ...

    async def stop(self) -> None:
        """Stop maintaining; cancel everything in flight."""
        ...

    async def get_token(self) -> str:
        """The current bearer (waiting for a regeneration in flight)."""
        ...

    async def get_auth_session_info(self) -> AgentSession:
        """The current session (``token``, ``user_id``, ``user_pid``...)."""
        ...

    async def on_token_invalid(self, source: str) -> object:
        """The server refused the token: get a new one."""
        ...

    def on(self, name: str, handler: Callable[..., Any]) -> Any:
        """Register an event handler."""
        ...

    def off(self, name: str, handler: Callable[..., Any] | None = None) -> None:
        """Remove an event handler."""
        ...


def _caller_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def _close_emitter(emitter: EventEmitter) -> None:
    """Cancel the emitter's handler tasks (never the caller's own: a handler may call stop())."""
    await emitter.close_events()
    emitter.remove_all_listeners()


class _SessionIds:
    """The agent ids both maintainers read from their session (None while there is none).

    A mixin beside :class:`TokenEmitter`, not a subclass of it: the reference pages list the
    events of the classes that derive from an emitter directly.
    """

    _session: AgentSession | None

    @property
    def user_id(self) -> str | None:
        """The agent's numeric user id (once logged in, or as given with a static bearer)."""
        return self._session.user_id if self._session else None

    @property
    def user_pid(self) -> str | None:
        """The agent's PID (new-style id): once logged in, or as given with a static bearer."""
        return self._session.user_pid if self._session else None

    @property
    def agent_id(self) -> str | None:
        """``{account_id}.{user_id}`` (once the user id is known)."""
        return self._session.agent_id if self._session else None


class TokenMaintainer(_SessionIds, TokenEmitter):
    """Keeps an agentVep bearer valid: login, periodic refresh, regeneration on demand.

    ``auth_data`` is the brand's credentials (``{username, password}`` or ``{username, app_key,
    secret, access_token, access_token_secret}``, snake_case or camelCase); ``auth_session_info``
    an existing session (an :class:`AgentSession` or ``{token, csrf, sessionId, userId,
    userPid}``), tried first.  At least one is required; without ``auth_data`` an expired session
    cannot be replaced.  ``http`` carries the CSDS domain and TLS settings (a private default is
    created and closed by :meth:`stop` when omitted); ``csds`` defaults to the shared cache;
    ``agentvep_host`` skips the CSDS lookup.  ``refresh_interval`` and ``retry_schedule`` are in
    seconds (tests shrink them).
    """

    def __init__(
        self,
        *,
        account_id: str,
        auth_data: Mapping[str, Any] | None = None,
        auth_session_info: AgentSession | Mapping[str, Any] | None = None,
        http: HttpSettings | None = None,
        csds: CSDSCache | None = None,
        domains: Mapping[str, str] | None = None,
        agentvep_host: str | None = None,
        refresh_interval: float = DEFAULT_REFRESH_INTERVAL,
        retry_schedule: Sequence[float] = GENERATE_RETRY_SCHEDULE,
    ) -> None:
        super().__init__()
        if not account_id:
            raise ConfigurationError("accountId is a required parameter")
        if auth_data is None and auth_session_info is None:
            raise ConfigurationError("auth_data or auth_session_info is required")
        if auth_data is not None:
            agent_login.login_body(auth_data)  # validate now, before any I/O
        if refresh_interval <= 0:
            raise ConfigurationError("refresh_interval must be positive")
        if not retry_schedule or any(s < 0 for s in retry_schedule):
            raise ConfigurationError("retry_schedule must be a non-empty list of non-negative seconds")
        self.account_id = account_id
        self._auth_data = dict(auth_data) if auth_data is not None else None
        if isinstance(auth_session_info, Mapping):
            auth_session_info = AgentSession.from_mapping(account_id, auth_session_info)
        self._initial_session = auth_session_info
        self._own_http = http is None
        self._http = http or HttpSettings()
        self._csds = csds or CSDS
        self._domains = dict(domains or {})
        self._agentvep_host = agentvep_host
        self.refresh_interval = float(refresh_interval)
        self.retry_schedule = tuple(float(s) for s in retry_schedule)
        self._phase = TokenState.INITIAL
        self._session: AgentSession | None = None
        #: The task producing the current session: the start job, then each regeneration.
        self._generation: asyncio.Task[AgentSession] | None = None
        self._refresh_task: asyncio.Task[None] | None = None

    # ---------------------------------------------------------------- properties

    @property
    def state(self) -> MaintainerState:
        """INITIAL, STARTED or STOPPED."""
        return _PUBLIC_STATE[self._phase]

    def _move(self, trigger: TokenTrigger) -> None:
        new = TOKEN_MAINTAINER.next(self._phase, trigger)
        if new is not self._phase:
            log.debug("token maintainer %s: %s --%s--> %s", self.account_id, self._phase, trigger, new)
            self._phase = new

    @property
    def token(self) -> str | None:
        """The current bearer, if any (prefer ``await get_token()``, which waits for a new one)."""
        return self._session.token if self._session else None

    @property
    def auth_session_info(self) -> AgentSession | None:
        """The current session without waiting (None before the first login)."""
        return self._session

    # ---------------------------------------------------------------- public API

    async def start(self) -> None:
        """Obtain the first token and start refreshing it; idempotent (concurrent calls share one
        start).

        Raises :class:`AuthenticationError` when the credentials are refused; transient failures
        are retried on the schedule while started.  Cancelling the (only) caller aborts the start.
        """
        if self.state is MaintainerState.STARTED:
            gen = self._generation
            if gen is not None and not gen.done():
                await self._join(gen)
            return
        self._move(TokenTrigger.START)
        # No done callback here: start()'s own await retrieves (and raises) the outcome.
        gen = self._generation = asyncio.create_task(self._start_job(), name="lpm-token-start")
        try:
            await self._join(gen)
        except BaseException:
            if self._generation is gen and TOKEN_MAINTAINER.allows(self._phase, TokenTrigger.START_ABORTED):
                # Not started after all: leave things as they were so start() can be tried again.
                gen.cancel()
                with contextlib.suppress(BaseException):
                    await gen
                await self._cancel_refresh()
                self._generation = None
                self._move(TokenTrigger.START_ABORTED)
            raise

    async def stop(self, *, logout: bool = False) -> None:
        """Stop refreshing, cancel any login in flight and remove every listener.

        With ``logout=True`` the session is also ended at agentVep (best effort; failures are
        logged).  Idempotent; :meth:`start` may be called again afterwards.
        """
        was_started = self.state is MaintainerState.STARTED
        self._move(TokenTrigger.STOP)
        gen, self._generation = self._generation, None
        tasks = [t for t in (gen, self._refresh_task) if t is not None and t is not asyncio.current_task()]
        self._refresh_task = None
        # Their outcome no longer matters; an error here was already reported on "error".
        await cancel_and_wait(tasks)
        session = self._session
        if logout and was_started and session is not None and session.refreshable:
            try:
                await agent_login.logout(self._http, await self._agentvep(), session)
            except LpmError as exc:
                log.warning("logout failed: %s", str(exc))
        await _close_emitter(self)
        if self._own_http:
            await self._http.close()

    async def get_token(self) -> str:
        """The current bearer; waits for a login or regeneration in flight.

        Raises :class:`InvalidStateError` unless started, or the error of a regeneration that
        could not succeed.
        """
        return (await self.get_auth_session_info()).token

    async def get_auth_session_info(self) -> AgentSession:
        """The current session; waits like :meth:`get_token`."""
        if self.state is not MaintainerState.STARTED:
            raise InvalidStateError(_NOT_STARTED)
        gen = self._generation
        if gen is not None:
            return await self._join(gen)
        if self._session is None:  # pragma: no cover - a started maintainer always has one of both
            raise InvalidStateError(_NOT_STARTED)
        return self._session

    async def on_token_invalid(self, source: str = "unknown", token: str | None = None) -> str:
        """The server refused the bearer: log in again (single flight) and return the new token.

        ``source`` says who noticed (``"ws-close-4401"``, ``"http-401"``...) and is passed on in
        the ``token-invalid`` event.  Concurrent calls share one regeneration.  When ``token`` is
        given and is no longer the current token, the report is stale (that token was already
        replaced) and the current token is returned without a new login.
        """
        if self.state is not MaintainerState.STARTED:
            raise InvalidStateError(_NOT_STARTED)
        gen = self._generation
        if gen is not None and not gen.done():
            self.emit(TokenEvent.TOKEN_INVALID, {"source": source})
            return (await self._join(gen)).token
        current = self._session
        if token is not None and current is not None and token != current.token:
            log.debug("stale token-invalid report from %s ignored", source)
            return current.token
        self.emit(TokenEvent.TOKEN_INVALID, {"source": source})
        return (await self._join(self._begin_regeneration())).token

    # ---------------------------------------------------------------- tasks

    async def _join(self, gen: asyncio.Task[AgentSession]) -> AgentSession:
        """The result of a generation task, shielded so one waiter's cancellation does not abort
        it for the others."""
        try:
            return await asyncio.shield(gen)
        except asyncio.CancelledError:
            if gen.cancelled() and not _caller_cancelled():
                # The task was cancelled by stop(), not this caller.
                raise InvalidStateError("token maintainer stopped") from None
            raise

    def _regeneration_done(self, task: asyncio.Task[AgentSession]) -> None:
        # Retrieve the outcome so that a regeneration nobody awaits (one the refresh loop
        # started) is still reported rather than logged as "exception never retrieved".
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("token regeneration failed: %s", str(exc))
            self.emit(TokenEvent.ERROR, exc)

    def _begin_regeneration(self) -> asyncio.Task[AgentSession]:
        refresh = self._refresh_task
        if refresh is not None and refresh is not asyncio.current_task():
            refresh.cancel()
        self._refresh_task = None
        self._move(TokenTrigger.TOKEN_INVALID)
        gen = self._generation = asyncio.create_task(self._regeneration_job(), name="lpm-token-regenerate")
        gen.add_done_callback(self._regeneration_done)
        return gen

    async def _cancel_refresh(self) -> None:
        task, self._refresh_task = self._refresh_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _start_refresh_loop(self) -> None:
        session = self._session
        if session is None or not session.refreshable or self._phase is not TokenState.VALID:
            return
        self._refresh_task = asyncio.create_task(self._refresh_loop(), name="lpm-token-refresh")

    async def _start_job(self) -> AgentSession:
        session = self._initial_session
        if session is not None and self._session is None:
            self._session = session
        if session is not None and session.refreshable:
            try:
                await self._refresh(session)
            except AuthenticationError as exc:
                if self._auth_data is None:
                    raise AuthenticationError(
                        f"the existing agent session was refused ({exc}) and no auth_data was given "
                        "to log in again",
                        status=exc.status,
                    ) from exc
                log.info("existing agent session refused (HTTP %s); logging in", exc.status)
                session = await self._generate(fail_fast=True)
            except LpmError as exc:
                # The session may well still be valid: keep it; the refresh loop tries again.
                log.warning("could not refresh the existing agent session: %s", str(exc))
                self.emit(TokenEvent.ERROR, exc)
        elif session is None:
            session = await self._generate(fail_fast=True)
        self._session = session
        self._move(TokenTrigger.LOGGED_IN)
        self._start_refresh_loop()
        return session

    async def _regeneration_job(self) -> AgentSession:
        try:
            session = await self._generate(fail_fast=False)
        except Exception:
            self._move(TokenTrigger.REGENERATION_FAILED)
            raise
        self._session = session
        self._move(TokenTrigger.REGENERATED)
        self.emit(TokenEvent.TOKEN_REGENERATED, {"agent_id": session.agent_id})
        self._start_refresh_loop()
        return session

    async def _generate(self, *, fail_fast: bool) -> AgentSession:
        """Log in, retrying on the schedule for as long as the maintainer is started (the task
        running this is cancelled by :meth:`stop`)."""
        auth_data = self._auth_data
        if auth_data is None:
            raise AuthenticationError(
                "the agent session is no longer valid and no auth_data was given to log in again",
                status=401,
            )

        def retryable(exc: BaseException) -> bool:
            if not isinstance(exc, LpmError) or isinstance(exc, ConfigurationError):
                return False
            # The first login fails fast on what retrying cannot fix (a refused password, an
            # account CSDS does not know); a later one waits it out (it may be an outage).
            return not (fail_fast and (_refused(exc) or is_permanent(exc)))

        def waiting(exc: BaseException, attempt: int, wait: float) -> None:
            log.warning("agent login failed (%s); retry %d in %g s", str(exc), attempt, wait)
            self.emit(TokenEvent.ERROR, exc)
            self.emit(TokenEvent.GENERATE_TOKEN_WAIT, {"seconds": wait})

        return await retry(
            lambda: self._login_once(auth_data),
            backoff=Backoff(self.retry_schedule),
            is_retryable=retryable,
            on_retry=waiting,
        )

    async def _login_once(self, auth_data: Mapping[str, Any]) -> AgentSession:
        host = await self._agentvep()
        start = time.time()
        self.emit(TokenEvent.GET_AGENT_TOKEN_REQUEST, {"start": start})
        try:
            return await agent_login.login(self._http, host, self.account_id, auth_data)
        finally:
            self.emit(TokenEvent.GET_AGENT_TOKEN_RESPONSE, {"start": start, "end": time.time()})

    async def _agentvep(self) -> str:
        if self._agentvep_host:
            return self._agentvep_host
        return await self._csds.lookup(
            self.account_id, ServiceName.AGENT_VEP, http=self._http, domains=self._domains
        )

    async def _refresh(self, session: AgentSession) -> None:
        await agent_login.refresh(self._http, await self._agentvep(), session)

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_interval)
            session = self._session
            if session is None:  # pragma: no cover - the loop only runs with a session
                return
            try:
                await self._refresh(session)
            except AuthenticationError as exc:
                if exc.status != 401:
                    self.emit(TokenEvent.ERROR, exc)
                    continue
                log.info("agent session expired (refresh answered 401); logging in again")
                # This task ends here; the regeneration starts a new loop when it succeeds.
                self._refresh_task = None
                self.emit(TokenEvent.TOKEN_INVALID, {"source": "refresh"})
                self._begin_regeneration()
                return
            except LpmError as exc:
                log.warning("agent session refresh failed: %s", str(exc))
                self.emit(TokenEvent.ERROR, exc)
            else:
                self.emit(TokenEvent.REFRESH_TOKEN, {"agent_id": session.agent_id})


def _refused(exc: LpmError) -> bool:
    """Whether the server refused the credentials themselves (retrying cannot help at start)."""
    return isinstance(exc, AuthenticationError) and exc.status in (400, 401, 403)


class StaticTokenMaintainer(_SessionIds, TokenEmitter):
    """A caller-supplied bearer (the ``token`` option): no login, no refresh.

    :meth:`on_token_invalid` emits ``token-invalid`` and raises :class:`AuthenticationError`
    (status 401): without credentials nothing can produce a new bearer, so the connection must
    report the failure instead of waiting forever.  Give ``auth_data`` (or a full
    ``auth_agent_session_data``) to have tokens regenerated.
    """

    def __init__(
        self,
        *,
        account_id: str,
        token: str,
        user_id: str | None = None,
        user_pid: str | None = None,
        http: HttpSettings | None = None,
    ) -> None:
        super().__init__()
        # ``http`` is accepted so both maintainers are built alike; a static bearer needs no I/O.
        del http
        if not account_id:
            raise ConfigurationError("accountId is a required parameter")
        if not token:
            raise ConfigurationError("token must be a non-empty string")
        self.account_id = account_id
        self._session: AgentSession = AgentSession(
            account_id=account_id, token=token, user_id=user_id, user_pid=user_pid
        )
        self._state = MaintainerState.INITIAL

    @property
    def state(self) -> MaintainerState:
        """INITIAL, STARTED or STOPPED."""
        return self._state

    @property
    def token(self) -> str:
        """The bearer."""
        return self._session.token

    async def start(self) -> None:
        """Mark started (nothing to fetch)."""
        self._state = STATIC_TOKEN_MAINTAINER.next(self._state, TokenTrigger.START)

    async def stop(self, *, logout: bool = False) -> None:
        """Mark stopped and remove every listener (``logout`` is ignored: no session to end)."""
        self._state = STATIC_TOKEN_MAINTAINER.next(self._state, TokenTrigger.STOP)
        await _close_emitter(self)

    def _started(self) -> AgentSession:
        """The session; :class:`InvalidStateError` unless started."""
        if self._state is not MaintainerState.STARTED:
            raise InvalidStateError(_NOT_STARTED)
        return self._session

    async def get_token(self) -> str:
        """The bearer; :class:`InvalidStateError` unless started."""
        return self._started().token

    async def get_auth_session_info(self) -> AgentSession:
        """The session (token and the ids given at construction)."""
        return self._started()

    async def on_token_invalid(self, source: str = "unknown", token: str | None = None) -> str:
        """Emit ``token-invalid`` and raise :class:`AuthenticationError`: a static bearer cannot be
        regenerated."""
        self._started()  # raises unless started
        self.emit(TokenEvent.TOKEN_INVALID, {"source": source})
        raise AuthenticationError(
            "the bearer given with the token option was refused and cannot be regenerated "
            "(no credentials); use auth_data to have it renewed",
            status=401,
        )


def strip_bearer(token: str) -> str:
    """The token without a ``Bearer`` prefix the caller may have included (it is added once)."""
    value = token.strip()
    return value[7:].strip() if value[:7].lower() == "bearer " else value


def brand_token_maintainer(
    options: ConnectionOptions, http: HttpSettings
) -> TokenMaintainer | StaticTokenMaintainer:
    """The token maintainer a brand connection needs for its options.

    A caller-supplied bearer (``token``) gets a :class:`StaticTokenMaintainer` (nothing can
    regenerate it: a 401 is final); otherwise a :class:`TokenMaintainer` logs in with
    ``auth_data`` or takes over ``auth_agent_session_data``.
    """
    if options.token:
        user_id = options.agent_id.rsplit(".", 1)[-1] if options.agent_id else None
        return StaticTokenMaintainer(
            account_id=options.account_id, token=strip_bearer(options.token), user_id=user_id
        )
    if options.auth_agent_session_data is None and options.auth_data is None:
        raise ConfigurationError("a brand connection needs auth_data, auth_agent_session_data or token")
    if options.auth_agent_session_data is not None and options.auth_data is not None:
        raise ConfigurationError("auth_data and auth_agent_session_data are mutually exclusive")
    return TokenMaintainer(
        account_id=options.account_id,
        auth_data=options.auth_data,
        auth_session_info=options.auth_agent_session_data,
        http=http,
        domains=options.domains,
        refresh_interval=options.token_refresh_interval,
        retry_schedule=options.schedule(),
    )
