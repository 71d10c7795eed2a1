"""The token maintainers' life cycles (lpm.client.auth.tokens): every legal move of each table is
taken once through the maintainers' real methods (logins faked), and every other move is refused."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from lpm.client.auth.agent_login import AgentSession
from lpm.client.auth.tokens import (
    STATIC_TOKEN_MAINTAINER,
    TOKEN_MAINTAINER,
    MaintainerState,
    StaticTokenMaintainer,
    TokenEvent,
    TokenMaintainer,
    TokenState,
    TokenTrigger,
)
from lpm.errors import AuthenticationError, ConfigurationError, HttpError, InvalidStateError
from tests.unit.client.state_walk import Move, moves, until

ACC = "12345678"
AUTH = {"username": "agent", "password": "secret-password"}
TS = TokenState


class Logins:
    """A fake agentVep: each login takes the next scripted outcome (a session by default), or
    waits for :meth:`release` when ``gated``."""

    def __init__(self) -> None:
        self.outcomes: list[BaseException | None] = []
        self.gated = False
        self.waiting: asyncio.Future[None] | None = None
        self.count = 0

    async def __call__(self, auth_data: Any) -> AgentSession:
        self.count += 1
        if self.gated:
            self.waiting = asyncio.get_running_loop().create_future()
            try:
                await self.waiting
            finally:
                self.waiting = None
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if outcome is not None:
            raise outcome
        return AgentSession(
            account_id=ACC, token=f"token-{self.count}", user_id="42", csrf="c", session_id="s"
        )

    async def release(self) -> None:
        await until(lambda: self.waiting is not None)
        assert self.waiting is not None
        self.waiting.set_result(None)
        await asyncio.sleep(0)


def maintainer(logins: Logins) -> TokenMaintainer:
    maint = TokenMaintainer(
        account_id=ACC,
        auth_data=AUTH,
        agentvep_host="127.0.0.1:1",
        refresh_interval=3600,
        retry_schedule=(0,),
    )
    maint._login_once = logins  # type: ignore[method-assign]
    return maint


async def test_token_maintainer_walk(taken: dict[str, set[Move]]) -> None:
    logins = Logins()
    maint = maintainer(logins)
    events: list[str] = []

    # INITIAL --stop--> STOPPED --start--> LOGGING_IN --logged in--> VALID
    await maint.stop()  # (removes every listener)
    assert maint._phase is TS.STOPPED and maint.state is MaintainerState.STOPPED
    for name in TokenEvent:
        maint.on(name, lambda *a, name=name: events.append(name))
    logins.gated = True
    start = asyncio.create_task(maint.start())
    await until(lambda: logins.waiting is not None)
    assert maint._phase is TS.LOGGING_IN and maint.state is MaintainerState.STARTED
    await logins.release()
    await start
    assert maint._phase is TS.VALID and maint.token == "token-1"

    # VALID --token invalid--> REGENERATING --regenerated--> VALID
    regen = asyncio.create_task(maint.on_token_invalid("test"))
    await until(lambda: logins.waiting is not None)
    assert maint._phase is TS.REGENERATING and maint.state is MaintainerState.STARTED
    await logins.release()
    assert await regen == "token-2"
    assert maint._phase is TS.VALID
    logins.gated = False

    # VALID --token invalid--> REGENERATING --regeneration failed--> FAILED (a login that cannot
    # succeed by retrying) --token invalid--> REGENERATING --regenerated--> VALID
    logins.outcomes = [ConfigurationError("bad auth data")]
    with pytest.raises(ConfigurationError):
        await maint.on_token_invalid("test")
    assert maint._phase is TS.FAILED and maint.state is MaintainerState.STARTED
    with pytest.raises(ConfigurationError):
        await maint.get_token()  # until the next report
    assert await maint.on_token_invalid("test") == "token-4"
    assert maint._phase is TS.VALID

    # A transient failure while regenerating is retried on the schedule (no move).
    logins.outcomes = [HttpError("503", status=503)]
    assert await maint.on_token_invalid("test") == "token-6"
    assert TokenEvent.GENERATE_TOKEN_WAIT in events

    # REGENERATING --stop--> STOPPED
    logins.gated = True
    regen = asyncio.create_task(maint.on_token_invalid("test"))
    await until(lambda: logins.waiting is not None)
    await maint.stop()
    with pytest.raises(InvalidStateError):
        await regen
    assert maint._phase is TS.STOPPED
    logins.gated = False

    # STOPPED --stop--> STOPPED; LOGGING_IN --start aborted--> INITIAL (credentials refused)
    await maint.stop()
    logins.outcomes = [AuthenticationError("refused", status=401)]
    maint2 = maintainer(logins)
    with pytest.raises(AuthenticationError):
        await maint2.start()
    assert maint2._phase is TS.INITIAL and maint2.state is MaintainerState.INITIAL

    # LOGGING_IN --stop--> STOPPED
    logins.gated = True
    start = asyncio.create_task(maint2.start())
    await until(lambda: logins.waiting is not None)
    await maint2.stop()
    with pytest.raises(InvalidStateError):
        await start
    assert maint2._phase is TS.STOPPED
    logins.gated = False

    # VALID --start aborted--> INITIAL: start()'s caller cancelled just after the login succeeded.
    maint3 = maintainer(logins)
    original_join = maint3._join

    async def join_then_cancelled(gen: asyncio.Task[AgentSession]) -> AgentSession:
        await original_join(gen)
        assert maint3._phase is TS.VALID
        raise asyncio.CancelledError

    maint3._join = join_then_cancelled  # type: ignore[method-assign]
    with pytest.raises(asyncio.CancelledError):
        await maint3.start()
    assert maint3._phase is TS.INITIAL and maint3._refresh_task is None
    del maint3._join

    # LOGGING_IN --token invalid--> REGENERATING: the first login failed and the token was
    # reported invalid before start() raised; the regeneration wins.
    logins.outcomes = [AuthenticationError("refused", status=401)]
    original_join = maint3._join

    async def join_with_report(gen: asyncio.Task[AgentSession]) -> AgentSession:
        try:
            return await original_join(gen)
        except AuthenticationError:
            assert maint3._phase is TS.LOGGING_IN
            await maint3.on_token_invalid("test")
            raise

    maint3._join = join_with_report  # type: ignore[method-assign]
    with pytest.raises(AuthenticationError):
        await maint3.start()
    del maint3._join
    assert maint3._phase is TS.VALID

    # VALID --stop--> STOPPED; FAILED --stop--> STOPPED
    await maint3.stop()
    maint4 = maintainer(logins)
    await maint4.start()
    maint4.on("error", lambda exc: None)
    logins.outcomes = [ConfigurationError("bad")]
    with pytest.raises(ConfigurationError):
        await maint4.on_token_invalid("test")
    assert maint4._phase is TS.FAILED
    await maint4.stop(logout=False)
    assert maint4._phase is TS.STOPPED

    assert taken["token maintainer"] == moves(TOKEN_MAINTAINER)


async def test_refresh_answered_401_regenerates() -> None:
    logins = Logins()
    maint = maintainer(logins)
    maint.refresh_interval = 0.001
    refreshed = asyncio.Event()

    async def refresh(session: AgentSession) -> None:
        refreshed.set()
        raise AuthenticationError("expired", status=401)

    maint._refresh = refresh  # type: ignore[method-assign]
    invalid: list[Any] = []
    maint.on("token-invalid", invalid.append)
    await maint.start()
    await refreshed.wait()
    await until(lambda: maint.token == "token-2")
    assert invalid == [{"source": "refresh"}] and maint._phase is TS.VALID
    await maint.stop()


async def test_every_illegal_token_move_is_refused() -> None:
    maint = maintainer(Logins())
    refused = 0
    for state, trigger in itertools.product(TokenState, TokenTrigger):
        maint._phase = state
        if TOKEN_MAINTAINER.allows(state, trigger):
            maint._move(trigger)
            assert maint._phase == TOKEN_MAINTAINER.next(state, trigger)
            continue
        refused += 1
        with pytest.raises(InvalidStateError, match="token maintainer"):
            maint._move(trigger)
        assert maint._phase == state
    assert refused == len(TokenState) * len(TokenTrigger) - len(TOKEN_MAINTAINER)


async def test_static_token_maintainer_walk(taken: dict[str, set[Move]]) -> None:
    maint = StaticTokenMaintainer(account_id=ACC, token="bearer-value")
    await maint.stop()  # INITIAL --stop-->
    await maint.stop()  # STOPPED --stop-->
    await maint.start()  # STOPPED --start-->
    await maint.start()  # STARTED --start-->
    assert await maint.get_token() == "bearer-value"
    await maint.stop()  # STARTED --stop-->
    fresh = StaticTokenMaintainer(account_id=ACC, token="bearer-value")
    await fresh.start()  # INITIAL --start-->
    assert fresh.state is MaintainerState.STARTED
    assert taken["static token maintainer"] == moves(STATIC_TOKEN_MAINTAINER)
    for state, trigger in itertools.product(MaintainerState, TokenTrigger):
        if trigger not in (TokenTrigger.START, TokenTrigger.STOP):
            with pytest.raises(InvalidStateError):
                STATIC_TOKEN_MAINTAINER.next(state, trigger)


def test_both_maintainers_read_the_agent_ids_from_their_session() -> None:
    static = StaticTokenMaintainer(account_id=ACC, token="bearer-value", user_id="1001", user_pid="pid-1")
    assert (static.user_id, static.user_pid, static.agent_id) == ("1001", "pid-1", f"{ACC}.1001")
    anonymous = StaticTokenMaintainer(account_id=ACC, token="bearer-value")
    assert (anonymous.user_id, anonymous.user_pid, anonymous.agent_id) == (None, None, None)
    maint = TokenMaintainer(account_id=ACC, auth_data=AUTH)
    assert (maint.user_id, maint.user_pid, maint.agent_id) == (None, None, None)  # not logged in yet
    maint._session = AgentSession(account_id=ACC, token="t", user_id="1002", user_pid="pid-2")
    assert (maint.user_id, maint.user_pid, maint.agent_id) == ("1002", "pid-2", f"{ACC}.1002")
