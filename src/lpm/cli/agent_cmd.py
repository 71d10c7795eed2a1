"""``lpm agent``: an agent console in the terminal.

The command logs in as a brand user (username + password, or the OAuth 1 app keys), subscribes
to the agent's conversations and rings, sets the agent state (ONLINE by default) and then reads
``/command`` lines and plain text from stdin — a terminal or a pipe — until ``/quit`` or the end
of input; see :mod:`lpm.cli.agent_console` for the commands and what is printed.

``--embedded`` starts the emulator in-process (default world, a free port unless
``--embedded-port``), logs in as ``agent`` and prints how a consumer joins with ``lpm chat``.

Secrets: the password comes from ``--password``, ``LPM_PASSWORD`` or a hidden prompt (on a
terminal only); neither it nor the app secrets nor any token is ever printed or logged.

Exit codes (:mod:`lpm.cli.common`): 0 after ``/quit`` or the end of input; the login's error
code when it is refused or fails (4 for wrong credentials, 5 when the platform cannot be
reached...); the same codes when the connection is closed for good later; 130 on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from lpm.cli import common
from lpm.cli.common import json_option, run

if TYPE_CHECKING:
    import lpm

DEFAULT_STATE = "online"
EMBEDDED_USERNAME = "agent"
#: The default world's fixed demo password (not a secret: ``lpm emulator`` prints it too).
EMBEDDED_PASSWORD = "agent-password"
#: The default world's agent's skill (support); sales (11) is the bot's.
EMBEDDED_SKILL = "12"

_APP_KEY_FIELDS = ("app_key", "secret", "access_token", "access_token_secret")


@dataclass(frozen=True)
class Login:
    """Where and how to log in (``auth_data`` holds secrets: never print it)."""

    account_id: str
    csds_domain: str | None
    auth_data: dict[str, str]
    ssl: Any = None

    def __repr__(self) -> str:  # no secrets in tracebacks or debug output
        return f"Login(account_id={self.account_id!r}, csds_domain={self.csds_domain!r})"


async def open_connection(login: Login) -> lpm.BrandWebsocketConnection:
    """Create and open the brand connection; a login that fails raises its error.

    The SDK keeps retrying a failed first connect in the background (reporting each failure
    on ``error``); an interactive login should say at once why it failed, so the first failure
    before the connection is up is final.
    """
    import lpm
    from lpm.errors import LpmConnectionError, LpmError

    options: dict[str, Any] = {
        "account_id": login.account_id,
        "user_type": lpm.UserType.BRAND,
        "auth_data": dict(login.auth_data),
        # The console subscribes to this agent's own conversations (see AgentConsole.start).
        "create_default_subscription": False,
        # What the consumer said before the agent joined is shown when it joins.
        "get_all_messages": True,
    }
    if login.csds_domain:
        options["csds_domain"] = login.csds_domain
    if login.ssl is not None:
        options["ssl"] = login.ssl
    conn = lpm.create_connection(**options)
    assert isinstance(conn, lpm.BrandWebsocketConnection)
    failed: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

    def on_error(error: BaseException) -> None:
        if not failed.done():
            failed.set_result(error)

    conn.on("error", on_error)
    opening: asyncio.Future[None] = asyncio.ensure_future(conn.open())
    try:
        waiters: list[asyncio.Future[Any]] = [opening, failed]
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        opening.cancel()
        with contextlib.suppress(BaseException):
            await opening
        await conn.close()
        raise
    conn.off("error", on_error)
    if opening.done():
        opening.result()
        return conn
    opening.cancel()
    with contextlib.suppress(BaseException):
        await opening
    await conn.close()
    error = failed.result()
    if isinstance(error, LpmError):
        raise error
    raise LpmConnectionError(f"login failed: {error}") from error


async def run_agent(login: Login, *, state: str | None, as_json: bool, embedded_port: int | None) -> None:
    """The whole session: (embedded emulator,) login, console, until /quit or end of input."""
    from lpm.cli.agent_console import AGENT_STATE_NAMES, AgentConsole, Output
    from lpm.cli.console import LineReader

    out = Output(as_json=as_json)
    async with contextlib.AsyncExitStack() as stack:
        if embedded_port is not None:
            from lpm.emulator.app import Emulator

            emu = await stack.enter_async_context(Emulator(port=embedded_port))
            login = Login(emu.account_id, emu.csds_domain, login.auth_data)
            join = f"lpm chat --csds-domain {emu.csds_domain} --account {emu.account_id}"
            join += f" --skill {EMBEDDED_SKILL}"
            out.event(
                "embedded",
                f"embedded emulator at {emu.csds_domain} (account {emu.account_id})\n"
                f"a consumer joins with: {join}",
                csds_domain=emu.csds_domain,
                account_id=emu.account_id,
                join=join,
            )
        conn = await open_connection(login)
        stack.push_async_callback(conn.close)
        console = AgentConsole(conn, out)
        stack.push_async_callback(console.stop)
        console.attach()
        username = login.auth_data.get("username", "")
        out.event(
            "login",
            f"logged in as {username} (agent id {conn.agent_id}) on account {login.account_id}",
            account_id=login.account_id,
            username=username,
            agent_id=conn.agent_id,
            user_id=conn.user_id,
        )
        await console.start(AGENT_STATE_NAMES[state] if state else None)
        out.event("ready", "type /help for the commands")
        reader = LineReader()
        stack.callback(reader.close)
        session: asyncio.Future[None] = asyncio.ensure_future(console.read_commands(reader))
        try:
            waiters: list[asyncio.Future[Any]] = [session, console.fatal]
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not session.done():
                session.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await session
        if session.done() and not session.cancelled():
            session.result()  # a bug in a command surfaces with its traceback
        if console.fatal.done():
            raise console.fatal.result()


def _auth_data(
    username: str | None, password: str | None, app_keys: dict[str, str | None], embedded: bool
) -> dict[str, str]:
    given = {k: v for k, v in app_keys.items() if v}
    if given:
        missing = [f"--{k.replace('_', '-')}" for k in _APP_KEY_FIELDS if k not in given]
        if missing:
            raise click.UsageError(f"app key login needs {', '.join(missing)} too")
        if not username:
            raise click.UsageError("app key login needs --username")
        return {"username": username, **{k: str(v) for k, v in given.items()}}
    if embedded:
        return {"username": username or EMBEDDED_USERNAME, "password": password or EMBEDDED_PASSWORD}
    if not username:
        raise click.UsageError("--username is required (or LPM_USERNAME)")
    if not password:
        if not sys.stdin.isatty():
            raise click.UsageError("--password is required (or LPM_PASSWORD) when stdin is not a terminal")
        password = click.prompt("password", hide_input=True, err=True)
    return {"username": username, "password": str(password)}


@click.command("agent")
@click.option("--account", envvar="LPM_ACCOUNT", show_envvar=True, help="Account (site) id.")
@common.csds_domain_option
@click.option("--username", envvar="LPM_USERNAME", show_envvar=True, help="Login name of the agent.")
@click.option(
    "--password",
    envvar="LPM_PASSWORD",
    show_envvar=True,
    help="Password; prefer the environment variable (asked for, hidden, on a terminal when missing).",
)
@click.option(
    "--app-key", envvar="LPM_APP_KEY", show_envvar=True, help="OAuth 1 app key (instead of a password)."
)
@click.option("--secret", envvar="LPM_APP_SECRET", show_envvar=True, help="OAuth 1 app secret.")
@click.option("--access-token", envvar="LPM_ACCESS_TOKEN", show_envvar=True, help="OAuth 1 access token.")
@click.option(
    "--access-token-secret", envvar="LPM_ACCESS_TOKEN_SECRET", show_envvar=True, help="OAuth 1 token secret."
)
@common.ca_file_option
@common.insecure_option
@click.option(
    "--state",
    type=click.Choice(["online", "away", "back_soon", "occupied", "offline", "none"], case_sensitive=False),
    default=DEFAULT_STATE,
    show_default=True,
    help="Agent state set after login (none: leave it as it is).",
)
@click.option(
    "--embedded",
    is_flag=True,
    default=False,
    help="Start the emulator in-process (default world) and log in as agent/agent-password.",
)
@common.embedded_port_option
@json_option
def agent(
    account: str | None,
    csds_domain: str | None,
    username: str | None,
    password: str | None,
    app_key: str | None,
    secret: str | None,
    access_token: str | None,
    access_token_secret: str | None,
    ca_file: str | None,
    insecure: bool,
    state: str,
    embedded: bool,
    embedded_port: int,
    as_json: bool,
) -> None:
    """Log in as an agent: take rings and chat in several conversations from the terminal.

    Lines starting with / are commands (/help lists them); any other line is sent to the
    current conversation.  With --json every event is one JSON object per line on stdout.
    """
    app_keys = {"app_key": app_key, "secret": secret, "access_token": access_token}
    app_keys["access_token_secret"] = access_token_secret
    auth_data = _auth_data(username, password, app_keys, embedded)
    if not embedded and not account:
        raise click.UsageError("--account is required (or LPM_ACCOUNT), unless --embedded")
    ssl = common.ssl_setting(ca_file, insecure)
    login = Login(account or "", csds_domain, auth_data, ssl)
    run(
        run_agent(
            login,
            state=None if state.lower() == "none" else state.lower(),
            as_json=as_json,
            embedded_port=embedded_port if embedded else None,
        )
    )
